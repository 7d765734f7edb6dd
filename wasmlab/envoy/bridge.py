"""The bridge to real Envoy: run the same YAML, the same upstream apps, the same requests.

``run(config, workers=1)`` rewrites the bootstrap so every listener and the admin interface bind
free 127.0.0.1 ports and every cluster endpoint points at a loopback server that serves the app
given to ``upstream()`` (default: the same JSON echo app the in-process proxy uses). Envoy starts
with ``--concurrency`` = workers and the YAML's folder as its working directory (so relative
``filename``s mean the same files on both sides), and the bridge waits for ``/ready``. Requests go
out on raw sockets with exactly the headers ``proxy.request`` would use. ``close()`` always stops
Envoy and the servers it started, by PID.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

import yaml

from ..errors import EnvoyFailed
from ..host.proxy import StreamReset, make_request_spec
from ..host.tcp import tcp_echo_app
from ..host.update import UpdateResult
from ..host.upstream import NO_APP, echo_app
from ..http import Response
from ..trace import Trace
from .binary import find_envoy
from .lds_files import LdsFiles, wait_update
from .logparse import LOG_FORMAT, LogLine, parse_lines, to_trace
from .verbatim_yaml import Verbatim, dump_verbatim
from .wire import LoopbackServer, TcpClient, TcpLoopbackServer, WireError, free_port, send_request


def _load_source(config: str | os.PathLike[str]) -> tuple[dict[str, Any], Path, str]:
    """(YAML data, working dir, name) for a path or YAML text."""
    if isinstance(config, os.PathLike) or ("\n" not in str(config) and Path(str(config)).is_file()):
        path = Path(config)
        return yaml.load(path.read_text(), Loader=Verbatim), path.resolve().parent, str(path)
    return yaml.load(str(config), Loader=Verbatim), Path.cwd(), "<string>"


def _critical(text: str) -> str:
    """The line explaining why Envoy refused to start."""
    lines = parse_lines(text)
    for ln in reversed(lines):
        if ln.level in ("critical", "error"):
            msg = ln.message
            if "error initializing configuration" in msg:
                msg = msg.split("': ", 1)[-1] if "': " in msg else msg
            return " ".join(msg.split())
    tail = [ln for ln in text.strip().splitlines() if ln.strip()]
    return tail[-1] if tail else "envoy exited without a message"


def validate(config: str | os.PathLike[str], timeout: float = 60.0) -> tuple[bool, str]:
    """Run ``envoy --mode validate``; returns (ok, message)."""
    exe = find_envoy()
    if isinstance(config, os.PathLike) or ("\n" not in str(config) and Path(str(config)).is_file()):
        path = Path(config).resolve()
        cwd = path.parent
        tmp = None
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as tmp:
            tmp.write(str(config))
        path = Path(tmp.name)
        cwd = Path.cwd()
    try:
        proc = subprocess.run(
            [
                exe,
                "--mode",
                "validate",
                "-c",
                str(path),
                "--disable-hot-restart",
                "--use-dynamic-base-id",
                "--log-format",
                LOG_FORMAT,
                "-l",
                "error",
            ],
            cwd=cwd,
            capture_output=True,
            text=True,
            errors="replace",  # Envoy may quote a config's bytes that are not UTF-8
            timeout=timeout,
        )
    finally:
        if tmp is not None:
            os.unlink(tmp.name)
    if proc.returncode == 0:
        return True, proc.stdout.strip()
    return False, _critical(proc.stderr + proc.stdout)


def _stop_process(proc: subprocess.Popen[bytes], servers: list[LoopbackServer]) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        except OSError:
            pass
    for s in servers:
        s.close()


#: how many times a start whose port was taken meanwhile is tried with fresh ports
_BIND_TRIES = 3


class EnvoyRun:
    """A running real Envoy with its loopback upstreams."""

    #: every run not yet garbage-collected (the tests look for Envoys that outlive their test)
    instances: weakref.WeakSet[EnvoyRun] = weakref.WeakSet()

    def __init__(
        self,
        config: str | os.PathLike[str],
        workers: int = 1,
        apps: dict[str, Any] | None = None,
        log_level: str = "info",
        component_log_level: str | None = None,
        timeout: float = 30.0,
        dynamic: bool = False,
        drain_time_s: int | None = None,
    ) -> None:
        # The ports are picked free just before Envoy binds them; another process (a parallel
        # test run) can take one in between. Envoy then refuses the config: try again with others.
        for attempt in range(_BIND_TRIES):
            try:
                self._start(config, workers, apps, log_level, component_log_level, timeout, dynamic, drain_time_s)
                return
            except EnvoyFailed as e:
                if "Address already in use" not in str(e) or attempt == _BIND_TRIES - 1:
                    raise

    def _start(
        self,
        config: str | os.PathLike[str],
        workers: int,
        apps: dict[str, Any] | None,
        log_level: str,
        component_log_level: str | None,
        timeout: float,
        dynamic: bool,
        drain_time_s: int | None,
    ) -> None:
        data, cwd, name = _load_source(config)
        if not isinstance(data, dict):
            raise EnvoyFailed(f"{name}: not an Envoy bootstrap")
        self.name = name
        self.cwd = cwd
        self.workers = workers
        self._apps: dict[str, Any] = dict(apps or {})
        self.servers: dict[str, Any] = {}
        self.listener_ports: dict[str, int] = {}
        self.tcp_listeners: set[str] = set()
        self._rewrite(data)
        self._tmpdir = tempfile.TemporaryDirectory(prefix="wasmlab-envoy-")
        #: with ``dynamic``, the listeners come from a watched LDS file that ``update`` replaces
        self.lds: LdsFiles | None = None
        if dynamic:
            self.lds = LdsFiles(Path(self._tmpdir.name))
            self.lds.write((data.get("static_resources") or {}).pop("listeners", None) or [])
            data["dynamic_resources"] = self.lds.bootstrap()
            # Envoy requires a node id and cluster for any xDS source, a file included
            node = data.setdefault("node", {})
            node.setdefault("id", "wasmlab")
            node.setdefault("cluster", "wasmlab")
        cfg_path = Path(self._tmpdir.name) / "envoy.yaml"
        cfg_path.write_text(dump_verbatim(data))
        self.log_path = Path(self._tmpdir.name) / "envoy.log"
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        args = [
            find_envoy(),
            "-c",
            str(cfg_path),
            "--concurrency",
            str(workers),
            "--disable-hot-restart",
            "--use-dynamic-base-id",
            "-l",
            log_level,
            "--log-format",
            LOG_FORMAT,
            # written by this Envoy once its admin listens: proof that /ready came from it and
            # not from another process that took the port first
            "--admin-address-path",
            str(Path(self._tmpdir.name) / "admin_address"),
        ]
        if component_log_level:
            args += ["--component-log-level", component_log_level]
        if drain_time_s is not None:
            args += ["--drain-time-s", str(int(drain_time_s)), "--drain-strategy", "immediate"]
        self.proc = subprocess.Popen(args, cwd=cwd, stdout=self._log_file, stderr=subprocess.STDOUT)
        EnvoyRun.instances.add(self)
        self._finalizer = weakref.finalize(self, _stop_process, self.proc, list(self.servers.values()))
        self._closed = False
        self._final_log: str | None = None
        self._thread_names: dict[int, str] = {}
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.close()
            raise

    # ---- config rewrite ---------------------------------------------------------------------
    def _app(self, cluster: str) -> Any:
        return self._apps.get(cluster, echo_app)

    def _rewrite(self, data: dict[str, Any]) -> None:
        """Point every endpoint at a loopback server of its cluster's app, then give the admin and
        every listener a free port. (In that order: a port picked free is released before Envoy
        binds it, and a loopback server started after could be given the same one; the bridge's
        own ``/ready`` probe then reached an app, which recorded it as an upstream request.)"""
        sr = data.get("static_resources") or {}
        tcp_clusters: set[str] = set()
        for i, lst in enumerate(sr.get("listeners") or []):
            name = lst.get("name") or f"listener_{i}"
            for chain in lst.get("filter_chains") or []:
                for f in chain.get("filters") or []:
                    tc = f.get("typed_config") or {}
                    if str(tc.get("@type", "")).endswith("tcp_proxy.v3.TcpProxy"):
                        self.tcp_listeners.add(name)
                        tcp_clusters.add(str(tc.get("cluster", "")))
        self._picked: set[int] = set()
        self._serve_clusters(sr, tcp_clusters)
        self.admin_port = self._free_port()
        data["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": self.admin_port}}}
        for i, lst in enumerate(sr.get("listeners") or []):
            name = lst.get("name") or f"listener_{i}"
            port = self.listener_ports.get(name) or self._free_port()
            lst["address"] = {"socket_address": {"address": "127.0.0.1", "port_value": port}}
            self.listener_ports[name] = port

    def _free_port(self) -> int:
        """A free port no other part of this config was given (a port picked free is released
        until Envoy binds it, so the OS may hand it out twice)."""
        taken = self._picked | {s.port for s in self.servers.values()}
        port = free_port()
        while port in taken:
            port = free_port()
        self._picked.add(port)
        return port

    def _serve_clusters(self, sr: dict[str, Any], tcp_clusters: set[str]) -> None:
        for c in sr.get("clusters") or []:
            name = c["name"]
            la = c.get("load_assignment") or {}
            has_endpoints = any(g.get("lb_endpoints") for g in la.get("endpoints") or [])
            if name in tcp_clusters and name not in self._apps:
                self._apps[name] = tcp_echo_app
            app = self._app(name)
            if not has_endpoints and name not in self._apps:
                continue
            if app is None or app is NO_APP:
                port = self._free_port()  # nothing listens there: a refused connection
            else:
                kind = TcpLoopbackServer if name in tcp_clusters else LoopbackServer
                server = kind(functools.partial(self._app, name), name)
                self.servers[name] = server
                port = server.port
            c["type"] = "STATIC"
            c.pop("dns_lookup_family", None)
            c["load_assignment"] = {
                "cluster_name": name,
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
                        ]
                    }
                ],
            }

    def update(self, config: str | os.PathLike[str], timeout: float = 30.0) -> UpdateResult:
        """Apply the listeners of ``config`` as an LDS update (needs ``dynamic=True``): the file
        is replaced by an atomic rename; returns once Envoy applied or rejected it. Listeners
        keep their ports by name; clusters stay those of the first config."""
        if self.lds is None:
            raise EnvoyFailed("update() needs run(..., dynamic=True): the listeners must come from LDS")
        data, _, _ = _load_source(config)
        listeners = (data.get("static_resources") or {}).get("listeners") or []
        for i, lst in enumerate(listeners):
            name = lst.get("name") or f"listener_{i}"
            self.listener_ports.setdefault(name, free_port())
            lst["address"] = {"socket_address": {"address": "127.0.0.1", "port_value": self.listener_ports[name]}}
        before = self.stats()
        self.lds.write(listeners)
        return wait_update(self.stats, self.log_text, before, timeout, [str(ls.get("name")) for ls in listeners])

    def upstream(self, cluster_name: str, app: Any) -> None:
        """Swap the app behind a cluster's loopback server (apps only; not None)."""
        if cluster_name not in self.servers:
            raise KeyError(f"no loopback upstream for cluster {cluster_name!r}")
        self._apps[cluster_name] = app

    # ---- lifecycle --------------------------------------------------------------------------
    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EnvoyFailed(f"real Envoy refused {self.name}: {_critical(self.log_text())}")
            try:
                r = send_request("127.0.0.1", self.admin_port, "GET", "/ready", [("host", "localhost")], b"", 1.0)
                if r.status == 200 and self._admin_is_ours():
                    self._read_thread_names()
                    return
            except (OSError, WireError):
                pass
            time.sleep(0.02)
        raise EnvoyFailed(f"real Envoy did not become ready within {timeout:g}s")

    def _admin_is_ours(self) -> bool:
        try:
            written = (Path(self._tmpdir.name) / "admin_address").read_text().strip()
        except OSError:
            return False
        return written.endswith(f":{self.admin_port}")

    def _read_thread_names(self) -> None:
        pid = self.proc.pid
        names = {pid: "main"}
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                comm = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
                if comm.startswith("wrk:"):
                    names[int(tid)] = comm[4:]
        except OSError:
            pass
        self._thread_names = names

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._finalizer()
        try:
            self._log_file.close()
        except OSError:
            pass

    def __enter__(self) -> EnvoyRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        # the log outlives the run: its trace, logs and a comparison still work after the block
        self._final_log = self.log_text()
        self._tmpdir.cleanup()

    # ---- traffic ------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        headers: Any = None,
        body: bytes | str = b"",
        timeout: float = 10.0,
        listener: str | None = None,
        trailers: Any = None,
    ) -> Response:
        spec = make_request_spec(method, path, headers, body, trailers)
        port = self.listener_ports[listener] if listener else next(iter(self.listener_ports.values()))
        try:
            return send_request(
                "127.0.0.1", port, spec.method, spec.path, spec.wire_headers(), spec.body, timeout, spec.trailers
            )
        except WireError as e:
            raise StreamReset(str(e)) from None

    def connect(self, listener: str | None = None) -> TcpClient:
        """Open a TCP connection to a tcp_proxy listener (same API as ``proxy.connect``)."""
        names = [n for n in self.listener_ports if n in self.tcp_listeners]
        if not names:
            raise KeyError("this config has no TCP listener")
        name = listener or names[0]
        return TcpClient(self.listener_ports[name])

    def stats(self) -> dict[str, int]:
        r = send_request("127.0.0.1", self.admin_port, "GET", "/stats?format=json", [("host", "localhost")], b"")
        out: dict[str, int] = {}
        for s in json.loads(r.body).get("stats", []):
            if "value" in s:
                out[s["name"]] = s["value"]
        return out

    def log_text(self) -> str:
        if self._final_log is not None:
            return self._final_log
        try:
            self._log_file.flush()
        except (OSError, ValueError):
            pass
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_lines(self) -> list[LogLine]:
        return parse_lines(self.log_text())

    def wait_for_log(self, predicate: Any, timeout: float = 5.0) -> bool:
        """Wait until some parsed log line satisfies ``predicate(LogLine)``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(predicate(ln) for ln in self.log_lines()):
                return True
            time.sleep(0.02)
        return False

    @property
    def logs(self) -> list[str]:
        """Log lines in ``proxy.logs`` shape: ``[level][logger] message``."""
        return [ln.short() for ln in self.log_lines()]

    def thread_name(self, tid: int) -> str:
        return self._thread_names.get(tid, f"tid{tid}")

    @property
    def trace(self) -> Trace:
        return to_trace(self.log_lines(), self._thread_names)


#: ``run(config, workers=1, apps=None, ...)``: start real Envoy on ``config`` (use as a context
#: manager); the same parameters as :class:`EnvoyRun`, which it is. With ``dynamic=True`` its listeners
#: come from an LDS file that :meth:`EnvoyRun.update` replaces; ``drain_time_s`` is ``--drain-time-s``
run = EnvoyRun
