"""The fault matrix: a module that traps (``unreachable``) in one Wasm callback, for every callback
kind × every ``failure_policy`` of Envoy 1.40's ``PluginConfig`` (FAIL_CLOSED, FAIL_OPEN,
FAIL_RELOAD with ``reload_config.backoff`` left at its 1 s default).

All the cells of a policy run in one proxy: one listener per cell (an HTTP listener with the cell's
own plugin and VM, or a TCP listener with a network plugin in front of tcp_proxy), so a failed VM
never touches another cell; real Envoy runs the same bootstrap once per policy. The start-up cells
(a trap in ``proxy_on_vm_start``/``proxy_on_configure``) fail the whole proxy and get a config each.

What a cell observes, on either proxy: the first request (or connection) — the one whose callback
traps —, whether its upstream saw it, and the next request (under FAIL_RELOAD after the 1 s reload
backoff: a fresh VM); for TCP what the client got back, or that the connection closed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import wasmtime
from wat_plugin import HTTP_CALL, PAUSE, TRAP, plugin_wat

from wasmlab.config import builder as b
from wasmlab.host.upstream import Response

POLICIES = ("FAIL_CLOSED", "FAIL_OPEN", "FAIL_RELOAD")
RET_TRUE = "(return (i32.const 1))"
STREAM_ONLY = "(if (i32.ne (local.get $b) (i32.const 0)) (then unreachable))"  # parent set: a stream
NOT_ROOT = "(if (i32.ne (local.get $a) (i32.const 1)) (then unreachable))"  # the root context is 1
REGISTER_Q = "(drop (call $register_queue (i32.const 1200) (i32.const 1) (i32.const 700)))"
ENQUEUE_Q = "(drop (call $enqueue (i32.load (i32.const 700)) (i32.const 1216) (i32.const 6)))"

#: HTTP cells: callback kind -> the module's callbacks
HTTP_CELLS: dict[str, dict[str, str]] = {
    "context_create": {"proxy_on_context_create": STREAM_ONLY},
    "request_headers": {"proxy_on_request_headers": TRAP},
    "request_body": {"proxy_on_request_body": TRAP},
    "request_trailers": {"proxy_on_request_trailers": TRAP},
    "response_headers": {"proxy_on_response_headers": TRAP},
    "response_body": {"proxy_on_response_body": TRAP},
    "response_trailers": {"proxy_on_response_trailers": TRAP},
    "log": {"proxy_on_log": TRAP},
    "done": {"proxy_on_done": NOT_ROOT + RET_TRUE},
    "delete": {"proxy_on_delete": NOT_ROOT},
    "tick": {"proxy_on_configure": "(drop (call $tick (i32.const 50)))" + RET_TRUE, "proxy_on_tick": TRAP},
    "queue_ready": {
        "proxy_on_vm_start": REGISTER_Q + RET_TRUE,
        "proxy_on_request_headers": ENQUEUE_Q,
        "proxy_on_queue_ready": TRAP,
    },
    # last: its first request waits for the timeout (the trap leaves the stream paused)
    "http_call_response": {"proxy_on_request_headers": HTTP_CALL + PAUSE, "proxy_on_http_call_response": TRAP},
}
#: network cells (a TCP listener: the Wasm network filter, then tcp_proxy to an echo upstream)
TCP_CELLS: dict[str, dict[str, str]] = {
    "new_connection": {"proxy_on_new_connection": TRAP},
    "downstream_data": {"proxy_on_downstream_data": TRAP},
    "upstream_data": {"proxy_on_upstream_data": TRAP},
}
#: cells that fail the proxy at start-up (one config each)
START_CELLS: dict[str, dict[str, str]] = {
    "vm_start": {"proxy_on_vm_start": TRAP},
    "configure": {"proxy_on_configure": TRAP},
}


def _wasm(tmp_path: Any, cell: str, bodies: dict[str, str]) -> str:
    path = tmp_path / f"{cell}.wasm"
    if not path.exists():
        path.write_bytes(wasmtime.wat2wasm(plugin_wat(bodies)))
    return str(path)


def _plugin(tmp_path: Any, cell: str, bodies: dict[str, str], policy: str, filter_name: str) -> dict[str, Any]:
    f = b.wasm(_wasm(tmp_path, cell, bodies), name=cell, root_id=cell, vm_id=cell, filter_name=filter_name)
    f["typed_config"]["config"]["failure_policy"] = policy
    if filter_name.endswith("network.wasm"):
        f["typed_config"]["@type"] = "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm"
    return f


def _tcp_listener(name: str, port: int, wasm_filter: dict[str, Any]) -> dict[str, Any]:
    tcp_proxy = {
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": name,
            "cluster": "echo",
        },
    }
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [wasm_filter, tcp_proxy]}],
    }


def policy_config(tmp_path: Any, policy: str) -> str:
    """One bootstrap with every HTTP and TCP cell of ``policy`` (each on its own listener)."""
    listeners = []
    port = 10100
    for cell, bodies in HTTP_CELLS.items():
        f = _plugin(tmp_path, cell, bodies, policy, "envoy.filters.http.wasm")
        # Envoy's HTTP/1 codecs drop trailers unless asked: turn them on both ways
        routes = [b.route("/", cluster="backend")]
        listeners.append(b.http_listener(cell, port, routes=routes, http_filters=[f, b.router()], trailers=True))
        port += 1
    for cell, bodies in TCP_CELLS.items():
        listeners.append(
            _tcp_listener(cell, port, _plugin(tmp_path, cell, bodies, policy, "envoy.filters.network.wasm"))
        )
        port += 1
    backend = b.cluster("backend", 8081, trailers=True)
    return b.to_yaml(b.bootstrap(listeners, [backend, b.cluster("echo", 8083)]))


def start_config(tmp_path: Any, policy: str, cell: str) -> str:
    f = _plugin(tmp_path, cell, START_CELLS[cell], policy, "envoy.filters.http.wasm")
    lst = b.http_listener("l0", 10000, routes=[b.route("/", cluster="backend")], http_filters=[f, b.router()])
    return b.to_yaml(b.bootstrap([lst], [b.cluster("backend", 8081)]))


# ---- the upstream every HTTP cell talks to -------------------------------------------------------
class Upstream:
    """Answers with a body and trailers (so every response callback runs) and counts, per path,
    what it received: a cell's requests go to ``/<cell>``, callouts to ``/``."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, request: Any) -> Response:
        with self._lock:
            self.seen[request.path] = self.seen.get(request.path, 0) + 1
        return Response(200, {"content-type": "text/plain"}, b"upstream body\n", trailers=[("x-up", "1")])


# ---- observing a cell ------------------------------------------------------------------------------------
def outcome(fn: Any, **kw: Any) -> Any:
    """A response as (status, body), or the kind of failure: "reset" or "timeout"."""
    try:
        r = fn(**kw)
    except Exception as e:
        return "timeout" if type(e).__name__ == "StreamTimeout" or "timed out" in str(e) else "reset"
    return (r.status, bytes(r.body))


@dataclass
class Cell:
    """What one cell observed on one proxy."""

    first: Any = None
    upstream_saw_first: bool = False
    second: Any = None

    def row(self) -> tuple[Any, bool, Any]:
        return (self.first, self.upstream_saw_first, self.second)


def http_round(target: Any, upstream: Upstream, cells: dict[str, Cell], phase: str, timeout: float) -> None:
    for cell in HTTP_CELLS:
        c = cells.setdefault(cell, Cell())
        before = upstream.seen.get(f"/{cell}", 0)
        kw = {"method": "POST", "path": f"/{cell}", "body": "hello", "listener": cell, "timeout": timeout}
        if phase == "first":
            kw["trailers"] = [("x-t", "1")]
        got = outcome(target.request, **kw)
        setattr(c, phase, got)
        if phase == "first":
            c.upstream_saw_first = upstream.seen.get(f"/{cell}", 0) > before


def tcp_round(target: Any, cells: dict[str, Cell], phase: str) -> None:
    for cell in TCP_CELLS:
        c = cells.setdefault(cell, Cell())
        try:
            conn = target.connect(cell)
            conn.send(b"hello")
            got = conn.recv(timeout=1.0)
            closed = got == b"" and conn.closed
            conn.close()
            setattr(c, phase, ("closed" if closed else got))
        except Exception as e:  # a refused or reset connection is an answer
            setattr(c, phase, f"error {type(e).__name__}")


def wait_for_traps(target: Any, callback: str, count: int, timeout: float = 10.0) -> None:
    """Wait until ``count`` traps of ``callback`` are in the log (timers and queues run on their
    own time; a loaded machine must not change what the next request finds)."""
    words = f"Function: {callback} failed"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hasattr(target, "log_lines"):  # real Envoy
            seen = sum(words in ln.message for ln in target.log_lines())
        else:
            seen = sum(words in ln for ln in target.logs)
        if seen >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"no {count} x '{words}' in the log after {timeout} s")


def observe(target: Any, upstream: Upstream, policy: str, timeout: float) -> dict[str, Cell]:
    """Run every cell of a policy's bootstrap on ``target`` (a wasmlab Proxy or an EnvoyRun)."""
    cells: dict[str, Cell] = {}
    # the tick cell's timers (50 ms) trap on the main thread's VM and the worker's first
    wait_for_traps(target, "proxy_on_tick", 2)
    http_round(target, upstream, cells, "first", timeout)
    tcp_round(target, cells, "first")
    wait_for_traps(target, "proxy_on_queue_ready", 1)  # posted by the queue cell's first request
    if policy == "FAIL_RELOAD":
        time.sleep(1.1)  # past the 1 s reload backoff
    http_round(target, upstream, cells, "second", timeout)
    tcp_round(target, cells, "second")
    return cells


# ---- the summary line ----------------------------------------------------------------------------
SUMMARY = {"cells": 0, "compared": 0, "seconds": 0.0}


def summary_line() -> str | None:
    if not SUMMARY["cells"]:
        return None
    return (
        f"fault matrix: {SUMMARY['cells']} cells, {SUMMARY['compared']} compared with Envoy, {SUMMARY['seconds']:.1f} s"
    )
