"""Tiny Proxy-Wasm modules written as WAT bodies, for host-call and fault tests.

``plugin_wat({"proxy_on_request_headers": "(call $continue (i32.const 0)) drop ..."})`` gives an
ABI 0.2.1 module whose named callbacks run the given WAT (the callback's parameters are
``$a``, ``$b``, ``$c``...); callbacks that return a status return the body's value, or 0 when the
body does not return (end it with ``PAUSE`` to pause). Every host function the tests use is
imported under a short name; strings live at fixed addresses (see ``STRINGS``).
"""

from __future__ import annotations

from wasmlab.proxywasm import pairs
from wasmlab.proxywasm.abi import CALLBACKS

IMPORTS = {
    "log": ("proxy_log", 3),
    "continue": ("proxy_continue_stream", 1),
    "close": ("proxy_close_stream", 1),
    "local": ("proxy_send_local_response", 8),
    "http_call": ("proxy_http_call", 10),
    "effective": ("proxy_set_effective_context", 1),
    "tick": ("proxy_set_tick_period_milliseconds", 1),
    "register_queue": ("proxy_register_shared_queue", 3),
    "enqueue": ("proxy_enqueue_shared_queue", 3),
    "get_header": ("proxy_get_header_map_value", 5),
    "add_header": ("proxy_add_header_map_value", 5),
    "get_buffer": ("proxy_get_buffer_bytes", 5),
    "done": ("proxy_done", 0),
}

_CALLOUT = pairs.encode([(":method", "GET"), (":path", "/"), (":authority", "callout")])
#: address -> bytes placed in memory (the WAT refers to them by address and length)
STRINGS = {
    1024: b"backend",  # 7: a cluster name
    1056: _CALLOUT,  # the callout's headers, as pairs
    1200: b"q",  # 1: a queue name
    1216: b"denied",  # 6: a local reply body
    1232: b"x-wasm",  # 6: a header name
}
CALLOUT_HEADERS = (1056, len(_CALLOUT))


def _data(addr: int, raw: bytes) -> str:
    return f'(data (i32.const {addr}) "' + "".join(f"\\{b:02x}" for b in raw) + '")'


def plugin_wat(bodies: dict[str, str], abi: str = "0_2_1", scan: bool = False) -> str:
    """A module exporting ``malloc``, the ABI marker and the callbacks in ``bodies``; with
    ``scan``, also ``$scan``: a function that calls every host function (see :func:`scan_calls`)."""
    lines = ["(module"]
    for short, (name, n) in IMPORTS.items():
        params = " ".join(["i32"] * n)
        lines.append(f'  (import "env" "{name}" (func ${short} (param {params}) (result i32)))')
    if scan:
        lines += scan_calls()
    lines += [
        '  (memory (export "memory") 1)',
        "  (global $heap (mut i32) (i32.const 16384))",
        f'  (func (export "proxy_abi_version_{abi}"))',
        '  (func (export "malloc") (param i32) (result i32) (local $p i32)',
        "    (local.set $p (global.get $heap))",
        "    (global.set $heap (i32.add (global.get $heap) (local.get 0)))",
        "    (local.get $p))",
    ]
    lines += ["  " + _data(a, s) for a, s in STRINGS.items()]
    for name, body in bodies.items():
        nparams, nresults = CALLBACKS[name]
        params = " ".join(f"(param ${chr(97 + i)} i32)" for i in range(nparams))
        result = " (result i32)" if nresults else ""
        tail = " (i32.const 0)" if nresults else ""
        lines.append(f'  (func (export "{name}") {params}{result} {body}{tail})')
    lines.append(")")
    return "\n".join(lines)


#: host calls the scan leaves out: they trap, end the stream, re-arm timers or loop (tested on their own)
SCAN_SKIPS = frozenset(
    {
        "abort",
        "proxy_done",
        "proxy_close_stream",
        "proxy_send_local_response",
        "proxy_set_tick_period_milliseconds",
        "proxy_enqueue_shared_queue",  # from proxy_on_queue_ready: a notification loop
    }
)


def scan_calls() -> list[str]:
    """Imports of every ABI 0.2.1 host function and ``$scan``, which calls each one with its first
    argument (a map, buffer, stream, queue or metric id...) from 0 to 8 and in-bounds pointers
    and sizes for the rest, dropping what they answer."""
    from wasmlab.proxywasm.hostcalls import ENV
    from wasmlab.proxywasm.types import AbiVersion

    imports, body = [], []
    for name, hc in sorted(ENV.items()):
        if AbiVersion.V0_2_1 not in hc.versions or name in SCAN_SKIPS:
            continue
        params = " ".join(hc.params)
        result = " (result i32)" if hc.results else ""
        imports.append(f'  (import "env" "{name}" (func $h_{name} (param {params}){result}))')
        for first in range(9):
            args = []
            for i, t in enumerate(hc.params):
                v = first if i == 0 else (2048 + 64 * i if i % 2 else 8)
                args.append(f"({t}.const {v})")
            call = f"(call $h_{name} {' '.join(args)})"
            body.append(f"    (drop {call})" if hc.results else f"    {call}")
    return [
        *imports,
        '  (data (i32.const 2048) "x-wasm\\00\\00hello world, some bytes")',
        "  (func $scan",
        *body,
        "  )",
    ]


# ---- snippets ----------------------------------------------------------------------------------------
LOCAL_403 = (  # 403 "denied", no details, no headers, no gRPC status
    "(drop (call $local (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 1216) (i32.const 6) "
    "(i32.const 0) (i32.const 0) (i32.const -1)))"
)
CONTINUE_REQ = "(drop (call $continue (i32.const 0)))"
CONTINUE_RESP = "(drop (call $continue (i32.const 1)))"
CLOSE_REQ = "(drop (call $close (i32.const 0)))"
HTTP_CALL = (
    f"(drop (call $http_call (i32.const 1024) (i32.const 7) (i32.const {CALLOUT_HEADERS[0]}) "
    f"(i32.const {CALLOUT_HEADERS[1]}) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) "
    "(i32.const 5000) (i32.const 512)))"
)
TRAP = "unreachable"
SCAN = "(call $scan)"
PAUSE = "(return (i32.const 1))"
