"""Proxy: the in-process Envoy-like host a lesson or test builds from Envoy YAML.

Like Envoy, it has a main thread and N worker threads, each running a :class:`Dispatcher`. At
start the main thread loads every extension (Envoy: config load, Wasm canary VMs, Lua script
validation, WasmService), then the workers start and build their thread-local state (Wasm VM
replicas, Lua states). A request runs entirely on one worker: ``proxy.request`` posts it to the
worker's dispatcher and waits for the response; it never blocks longer than ``timeout``.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..config.bootstrap import Bootstrap
from ..errors import ConfigError, ProxyClosed, StartupError, StreamTimeout, WasmlabError
from ..http import HeaderMap, Response
from ..trace import Recorder, Trace
from ..trace.recorder import DEFAULT_CAPACITY
from . import cells
from .access_log import AccessLogWriter
from .batch import Batch, in_flight_limit, parse_requests
from .dispatcher import Activity, Dispatcher, RealClock, VirtualClock
from .extensions import collect_extensions, load_config
from .hcm import ActiveStream, HttpConnectionManager
from .lifecycle import Waiters, on_own_thread, report_task_error, shut_down, stop_server
from .logs import ProxyLog
from .options import PROXY_OPTIONS, check_options, mib
from .services import ServerContext
from .stats import Stats
from .upstream import NO_APP, Cluster, UpstreamPool

_MISSING: Any = object()


class StreamReset(WasmlabError):
    """The proxy reset the stream instead of completing a response (e.g. ``proxy_close_stream``)."""

    def __init__(self, details: str, response: Response | None = None) -> None:
        super().__init__(f"the proxy reset the stream ({details})")
        self.details = details
        self.response = response


@dataclass
class RequestSpec:
    """A normalised client request: what ``proxy.request`` and the Envoy bridge both send."""

    method: str
    path: str
    authority: str
    headers: list[tuple[str, str]]  # lower-cased names, no host, in order (+content-length)
    body: bytes
    trailers: list[tuple[str, str]] | None = None
    #: the request head as an HTTP/1.1 client sends it: its bytes (request line, header lines and
    #: the blank line, CRLFs included) and its header lines (``host`` included); what Envoy's
    #: codec holds against ``max_request_headers_kb`` and ``max_headers_count``
    head_bytes: int = 0
    head_lines: int = 0

    def wire_headers(self) -> list[tuple[str, str]]:
        """Header lines an HTTP/1.1 client sends for this request (``Host`` first); a request
        with trailers is sent chunked (Envoy's codec drops that header before the filters)."""
        out = [("host", self.authority), *self.headers]
        if self.trailers is not None and not any(k in ("content-length", "transfer-encoding") for k, _ in out):
            out.append(("transfer-encoding", "chunked"))
        return out


def _header_map(value: Any, what: str) -> HeaderMap:
    """A caller's ``headers``/``trailers`` (a dict, a HeaderMap or (name, value) pairs)."""
    if value is None:
        return HeaderMap()
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise TypeError(f"{what} must be a dict or a list of (name, value) pairs, got {type(value).__name__}")
    return HeaderMap(value)


def make_request_spec(
    method: str,
    path: str,
    headers: Any = None,
    body: bytes | str | None = b"",
    trailers: Any = None,
) -> RequestSpec:
    if not isinstance(method, str) or not method or not method.isascii() or any(c in method for c in " \r\n:"):
        raise ValueError(f"method must be an HTTP method such as 'GET', got {method!r}")
    if not isinstance(path, str) or not (path.startswith("/") or (path == "*" and method == "OPTIONS")):
        raise ValueError(f"path must start with '/', got {path!r}")
    if any(c in path for c in " \r\n"):
        raise ValueError(f"path must not contain spaces or line breaks, got {path!r}")
    pairs = _header_map(headers, "headers")
    authority = None
    out: list[tuple[str, str]] = []
    size = 0  # the header names' and values' characters
    for k, v in pairs:
        if k == "host":  # Envoy's HTTP/1 codec joins host lines with "," (measured)
            authority = v if authority is None else f"{authority},{v}"
            continue
        if k.startswith(":") or not k or any(c in k for c in " \r\n:"):
            raise ValueError(f"invalid header name {k!r}")
        if "\r" in v or "\n" in v:
            raise ValueError(f"header {k!r} has a line break in its value")
        out.append((k, v))
        size += len(k) + len(v)
    if isinstance(body, str):
        body = body.encode()
    elif body is not None and not isinstance(body, bytes | bytearray | memoryview):
        # bytes(5) would be five NUL bytes, not an error
        raise TypeError(f"body must be bytes or str, got {type(body).__name__}")
    body = bytes(body or b"")
    tr = list(_header_map(trailers, "trailers")) if trailers is not None else None
    if (
        body
        and tr is None
        and not any(k == "content-length" for k, _ in out)
        and not any(k == "transfer-encoding" for k, _ in out)
    ):
        out.append(("content-length", str(len(body))))
        size += len("content-length") + len(out[-1][1])
    spec = RequestSpec(method, path, "localhost" if authority is None else authority, out, body, tr)
    lines = len(out) + 1  # the host line comes first
    if tr is not None and not any(k in ("content-length", "transfer-encoding") for k, _ in out):
        lines += 1  # a body with trailers goes chunked
        size += len("transfer-encoding") + len("chunked")
    # "GET /p HTTP/1.1\r\n", "host: <authority>\r\n", ": " and "\r\n" per header, "\r\n"
    spec.head_bytes = len(method) + len(path) + len(spec.authority) + 18 + size + 4 * lines
    spec.head_lines = lines
    return spec


def check_timeout(timeout: Any) -> float:
    """A caller's ``timeout``: seconds > 0; ``None`` or ``float('inf')`` waits without a limit
    (capped at the longest wait the platform allows, as ``threading`` refuses longer ones)."""
    if timeout is None:
        return threading.TIMEOUT_MAX
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    return min(float(timeout), threading.TIMEOUT_MAX)


class _Pending:
    """Where a worker leaves one stream's outcome for the caller (an Event only when someone
    waits on this one stream; ``request_many`` counts completions instead)."""

    __slots__ = ("event", "response", "reset", "stream", "callback", "done")

    def __init__(self, callback: Callable[[_Pending], None] | None = None) -> None:
        self.event = threading.Event() if callback is None else None
        self.response: Response | None = None
        self.reset: StreamReset | None = None
        self.stream: ActiveStream | None = None
        self.callback = callback
        self.done = False

    def set(self, response: Response) -> None:
        self.response = response
        self._done()

    def set_reset(self, details: str, partial: Response | None) -> None:
        self.reset = StreamReset(details, partial)
        self._done()

    def _done(self) -> None:
        self.done = True
        if self.event is not None:
            self.event.set()
        callback, self.callback = self.callback, None
        if callback is not None:
            callback(self)

    def result(self) -> Response:
        if self.reset is not None:
            raise self.reset
        assert self.response is not None
        return self.response


def _shutdown_reset(pending: _Pending | None) -> bool:
    """The stream was reset because its worker shut down (``Proxy.close``)."""
    return pending is not None and pending.reset is not None and pending.reset.details == "shutdown"


def _check_arguments(workers: Any, clock: Any, trace_capacity: Any, upstreams: Any) -> None:
    """Refuse a ``Proxy`` argument of the wrong kind by name (before anything starts)."""
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 64:
        raise ValueError(f"workers must be an int from 1 to 64, got {workers!r}")
    if clock not in ("real", "virtual"):
        raise ValueError(f"clock must be 'real' or 'virtual', got {clock!r}")
    if isinstance(trace_capacity, bool) or not isinstance(trace_capacity, int) or trace_capacity < 0:
        raise ValueError(f"trace_capacity must be an int >= 0 (events kept), got {trace_capacity!r}")
    if upstreams is not None and not isinstance(upstreams, dict):
        raise TypeError(f"upstreams must be a dict of cluster name to app, got {type(upstreams).__name__}")


class Proxy:
    """An Envoy-like proxy running in this process. Use :meth:`from_yaml`; close it (or use
    ``with``) to run every shutdown callback."""

    def __init__(
        self,
        config: Bootstrap,
        workers: int = 2,
        clock: str = "real",
        trace: bool = True,
        trace_capacity: int = DEFAULT_CAPACITY,
        log_level: str = "info",
        options: dict[str, Any] | None = None,
        component_log_level: str | None = None,
        upstreams: dict[str, Any] | None = None,
    ) -> None:
        _check_arguments(workers, clock, trace_capacity, upstreams)
        self._config = config
        self._options = check_options(options)
        clk = VirtualClock() if clock == "virtual" else RealClock()
        recorder = Recorder(clk.monotonic_ns, enabled=bool(trace), capacity=trace_capacity)
        stats = Stats()
        line_kb = self._options["log_line_limit_kb"]
        self._log = ProxyLog(
            recorder,
            log_level,
            component_levels=component_log_level,
            memory_limit=mib(self._options, "log_memory_limit_mb"),
            line_limit=line_kb * 1024 if line_kb else None,
            stats=stats,
        )
        # fields Envoy accepts that wasmlab runs without (docs/envoy-fidelity.md), then what Envoy
        # does with the config without a word (not in the trace: it is about the config, not the run)
        ignored = [f"{where}: accepted as Envoy does, but has no effect in wasmlab" for where in config.source.ignored]
        for line in ignored + config.source.notices:
            self._log.log("warning", "config", line, record=False)
        activity = Activity()
        on_error = functools.partial(report_task_error, self._log.log)  # holds the log, not the proxy
        # the services extensions run on; the Proxy itself is what lessons and tests drive
        self._server = srv = ServerContext(
            clock=clk,
            recorder=recorder,
            loggers=self._log,
            stat_store=stats,
            access_log=AccessLogWriter(),
            activity=activity,
            clusters={name: Cluster(c) for name, c in config.clusters.items()},
            upstream_pool=UpstreamPool(self._log.log),
            options=self._options,
            main=Dispatcher("main", None, clk, activity, on_error),
            workers=[Dispatcher(f"worker_{i}", i, clk, activity, on_error) for i in range(workers)],
        )
        srv.node = config.node
        srv.hcms.update({lst.name: HttpConnectionManager(srv, lst) for lst in config.http_listeners})
        self._tcp_listeners = {lst.name: lst for lst in config.listeners if lst.hcm is None}
        from .tcp import tcp_echo_app
        from .upstream import echo_app

        for lst in self._tcp_listeners.values():
            for nf in lst.network_filters:
                cname = getattr(nf.config, "cluster", None)
                if cname in srv.clusters and srv.clusters[cname].app is echo_app:
                    srv.clusters[cname].app = tcp_echo_app
        #: every extension object with start_main/start_worker/stop_worker/stop_main hooks
        self._extensions: list[Any] = []
        self._rr = itertools.count()
        self._closed = False
        self._close_lock = threading.Lock()
        self._shut_down = threading.Event()  # set once close() has finished
        self._waiters = Waiters()
        # also runs if the proxy is collected without close(): nothing of its threads holds it
        self._finalizer = weakref.finalize(self, stop_server, srv)
        self._views: Any = None
        self._updater: Any = None
        # apps that must serve before start-up (e.g. a cluster serving vm_config.code.remote)
        for cname, app in (upstreams or {}).items():
            self.upstream(cname, app)
        self._start()
        cells.adopt(self)  # a re-run notebook cell closes the proxy its last run built

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_yaml(
        cls,
        source: str | os.PathLike[str],
        workers: int = 2,
        clock: str = "real",
        trace: bool = True,
        **kwargs: Any,
    ) -> Proxy:
        """Build and start a proxy from an Envoy bootstrap: a path, or YAML text."""
        return cls(load_config(source), workers=workers, clock=clock, trace=trace, **kwargs)

    def _start(self) -> None:
        # Envoy builds the listeners' filters (and their Wasm VMs) before bootstrap extensions
        # such as a WasmService, and tears the service down after the filters
        self._extensions.extend(collect_extensions(self._config, self._server.hcms))
        try:
            self._server.main.start()
            self._server.main.run_sync(self._start_main, timeout=120)
            for w in self._server.workers:
                w.start()
            for w in self._server.workers:
                w.run_sync(self._start_worker, w, timeout=120)
        except BaseException:
            self._closed = True
            self._finalizer()
            raise

    def _start_main(self) -> None:
        self._log.log("info", "main", "starting main dispatch loop")
        for ext in self._extensions:
            ext.start_main(self._server)
        self._log.log("info", "config", "all dependencies initialized. starting workers")

    def _start_worker(self, dispatcher: Dispatcher) -> None:
        for ext in self._extensions:
            ext.start_worker(dispatcher)

    # ---- public API -----------------------------------------------------------------------------
    @property
    def config(self) -> Bootstrap:
        """The typed config this proxy runs (data: read it, do not change it)."""
        return self._config

    def set_log_level(self, level: str) -> None:
        """Envoy's ``-l``: lines below this level are dropped (default ``info``)."""
        self._log.set_level(level)

    @property
    def log_level(self) -> str:
        return self._log.level

    @property
    def logs(self) -> list[str]:
        """The proxy log so far: ``[level][logger] message`` lines."""
        return self._log.lines()

    @property
    def access_logs(self) -> list[str]:
        """Lines written by stdout/stderr access loggers."""
        return list(self._server.access_log.lines)

    @property
    def trace(self) -> Trace:
        """The recorded events (the last ``trace_capacity`` of them)."""
        return self._server.recorder.trace()

    @property
    def recorder(self) -> Recorder:
        """The live recorder behind :attr:`trace` (views subscribe to it to follow the proxy)."""
        return self._server.recorder

    def stats(self) -> dict[str, int]:
        """Counters and gauges with Envoy's names (only those touched so far)."""
        return self._server.stat_store.snapshot()

    @property
    def views(self) -> Any:
        if self._views is None:
            from ..views import Views

            self._views = Views(lambda: self._server.recorder.snapshot(), recorder=self._server.recorder, proxy=self)
        return self._views

    def update(self, source: str | os.PathLike[str], drain_time_s: float = 0.0) -> Any:
        """Apply new listeners as Envoy applies an LDS update (``host/update.py``); returns an
        ``UpdateResult`` (``accepted``, Envoy's ``reason`` when rejected, ``listeners``). The old
        listeners retire once their streams ended and ``drain_time_s`` passed (Envoy's
        ``--drain-time-s``)."""
        self._check_open()
        if self._updater is None:
            from .update import ListenerUpdater  # imported by need: most proxies never update

            self._updater = ListenerUpdater(self)
        return self._updater.update(source, drain_time_s)

    def upstream(self, cluster_name: str, app: Any = _MISSING) -> Any:
        """Serve ``cluster_name`` with ``app`` (``Request -> Response``); ``None`` = nothing listening.
        Without ``app`` it works as a decorator."""
        if cluster_name not in self._server.clusters:
            known = ", ".join(sorted(self._server.clusters)) or "none"
            raise KeyError(f"no cluster named {cluster_name!r} in the config (clusters: {known})")
        if app is _MISSING:

            def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
                self.upstream(cluster_name, fn)
                return fn

            return deco
        if app is not None and not callable(app):
            raise TypeError(f"an upstream app must be callable (Request -> Response), got {type(app).__name__}")
        self._server.clusters[cluster_name].app = NO_APP if app is None else app
        return app

    def connect(self, listener: str | None = None, worker: int | None = None) -> Any:
        """Open a TCP connection to a listener whose chain is network filters (e.g. tcp_proxy)."""
        self._check_open()
        from .tcp import Connection

        if not self._tcp_listeners:
            raise ConfigError("this config has no TCP listener (network filters ending in tcp_proxy)")
        if listener is None:
            lst = next(iter(self._tcp_listeners.values()))
        elif listener in self._tcp_listeners:
            lst = self._tcp_listeners[listener]
        else:
            raise KeyError(f"no TCP listener named {listener!r} (TCP listeners: {', '.join(self._tcp_listeners)})")
        return Connection(self._server, lst, self._worker(worker))

    def _hcm(self, listener: str | None) -> HttpConnectionManager:
        if not self._server.hcms:
            raise ConfigError("this config has no HTTP listener (no http_connection_manager)")
        if listener is None:
            return next(iter(self._server.hcms.values()))
        try:
            return self._server.hcms[listener]
        except KeyError:
            raise KeyError(f"no HTTP listener named {listener!r} (listeners: {', '.join(self._server.hcms)})") from None

    def _worker(self, worker: int | None) -> Dispatcher:
        if worker is None:
            return self._server.workers[next(self._rr) % len(self._server.workers)]
        if not isinstance(worker, int) or isinstance(worker, bool) or not 0 <= worker < len(self._server.workers):
            raise ValueError(f"worker must be 0..{len(self._server.workers) - 1}, got {worker!r}")
        return self._server.workers[worker]

    def _check_open(self) -> None:
        if self._closed:
            raise ProxyClosed("this proxy was closed; create a new one with Proxy.from_yaml(...)")
        if threading.current_thread().name in {d.name for d in (self._server.main, *self._server.workers)} and any(
            d.is_current() for d in (self._server.main, *self._server.workers)
        ):
            raise RuntimeError("proxy.request cannot be called from the proxy's own threads (it would deadlock)")

    def request(
        self,
        method: str,
        path: str,
        headers: Any = None,
        body: bytes | str = b"",
        worker: int | None = None,
        timeout: float | None = 10.0,
        listener: str | None = None,
        trailers: Any = None,
    ) -> Response:
        """Send one request through the proxy and wait for its response."""
        self._check_open()
        timeout = check_timeout(timeout)
        hcm = self._hcm(listener)
        spec = make_request_spec(method, path, headers, body, trailers)
        d = self._worker(worker)
        pending = _Pending()
        event = pending.event
        assert event is not None  # a _Pending without a callback has its Event
        what = f"{method} {path}"
        if not self._waiters.add(event):
            raise self._closed_during(what)
        try:
            d.post(hcm.new_stream, d, spec, pending)
            answered = event.wait(timeout)
        finally:
            self._waiters.discard(event)
        if _shutdown_reset(pending) or (self._waiters.stopped and not pending.done):
            raise self._closed_during(what)
        if not answered:
            raise self._timeout(pending, d, what, timeout)
        return pending.result()

    def _closed_during(self, what: str) -> ProxyClosed:
        return ProxyClosed(
            f"the proxy was closed while {what} was in flight; create a new one with Proxy.from_yaml(...)"
        )

    def _timeout(self, pending: _Pending, d: Dispatcher, what: str, timeout: float) -> StreamTimeout:
        stream = pending.stream
        holder = "the stream never started (the worker is busy)"
        if stream is not None:
            try:
                holder = d.run_sync(lambda: stream.fm.holder() if stream.fm else stream.waiting_on(), timeout=2.0)
                d.post(stream.reset, "stream_timeout")
            except TimeoutError:
                holder = f"{d.name} is busy: a filter callback has not returned"
        return StreamTimeout(f"{what} on {d.name}: no response after {timeout:g}s; the stream is held by {holder}")

    def request_many(
        self,
        requests: Iterable[Any],
        concurrency: int | None = None,
        timeout: float | None = 60.0,
        listener: str | None = None,
    ) -> list[Response]:
        """Send many requests spread over the workers and return their responses in order.

        At most ``concurrency`` are in flight at once (default 64 per worker, ``host/batch.py``);
        each finished one starts the next. Ctrl-C or ``timeout`` cancels the rest of the batch."""
        self._check_open()
        timeout = check_timeout(timeout)
        hcm = self._hcm(listener)
        specs = parse_requests(requests, make_request_spec)
        for _, worker in specs:  # a bad worker is the caller's error now, not a stalled batch later
            if worker is not None:
                self._worker(worker)
        limit = in_flight_limit(concurrency, len(self._server.workers))
        batch = Batch(hcm, specs, limit, self._worker, _Pending)
        if specs and not self._waiters.add(batch.all_done):  # close() wakes the batch
            raise self._closed_during(f"request_many ({len(specs)} of {len(specs)} requests)")
        try:
            return batch.run(timeout, lambda p, d, what: self._timeout(p, d, what, timeout), self._batch_closed)
        finally:
            self._waiters.discard(batch.all_done)

    def _batch_closed(self, results: list[_Pending | None]) -> ProxyClosed | None:
        """The error for a batch the proxy was closed under (None if it was not)."""
        left = sum(_shutdown_reset(p) or (self._waiters.stopped and (p is None or not p.done)) for p in results)
        return self._closed_during(f"request_many ({left} of {len(results)} requests)") if left else None

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no task is queued and no upstream call is in flight."""
        return self._server.activity.wait_idle(timeout)

    def advance(self, seconds: float) -> None:
        """Move the virtual clock forward, firing due timers on their own threads in order."""
        clock = self._server.clock
        if not isinstance(clock, VirtualClock):
            raise RuntimeError("advance() needs a virtual clock: Proxy.from_yaml(..., clock='virtual')")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds * 1e9):
            raise ValueError(f"advance() takes a finite number of seconds, got {seconds!r}")
        if seconds < 0:
            raise ValueError("advance() cannot move time backwards")
        self._check_open()
        target = clock.monotonic_ns() + int(seconds * 1e9)
        dispatchers = [self._server.main, *self._server.workers]
        while True:
            # let posted work and quick upstream answers land first; a slow app does not block time
            self._server.activity.wait_idle(1.0)
            best: tuple[tuple[int, int], Dispatcher] | None = None
            for d in dispatchers:
                nt = d.next_timer()
                if nt is not None and nt[0] <= target and (best is None or nt < best[0]):
                    best = (nt, d)
            if best is None:
                break
            clock.set(best[0][0])
            best[1].run_sync(best[1].fire_due_timers, timeout=30.0)
        clock.set(target)
        self._server.activity.wait_idle(1.0)

    # ---- shutdown -------------------------------------------------------------------------------
    def close(self) -> None:
        """Shut down like Envoy (workers tear down their state, then the main thread), then give
        back what a process exit would: threads, wasmtime Stores, Lua states (``lifecycle.py``).
        Requests still in flight end with ``ProxyClosed``. Safe to call again and from any
        thread: a second caller waits until the first has finished; on one of the proxy's own
        threads (a filter, an upstream app) the shutdown runs on a thread of its own once the
        caller's callback has returned, and this returns at once."""
        with self._close_lock:
            first, self._closed = not self._closed, True
        if on_own_thread(self._server):
            if first:
                threading.Thread(target=self._shutdown, name="wasmlab-close", daemon=True).start()
            return
        if first:
            self._shutdown()
        else:
            self._shut_down.wait(60.0)

    def _shutdown(self) -> None:
        try:
            shut_down(self._server, self._extensions, self._log)
        finally:
            self._finalizer()
            self._waiters.wake_all()
            if self._views is not None:
                self._views.source_closed()
            self._shut_down.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running"
        return (
            f"<wasmlab.Proxy {state}: {len(self._server.workers)} workers, listeners={list(self._server.hcms)}, "
            f"clusters={list(self._server.clusters)}, clock={'virtual' if self._server.clock.virtual else 'real'}>"
        )


__all__ = ["PROXY_OPTIONS", "Proxy", "RequestSpec", "StartupError", "StreamReset", "make_request_spec"]
