"""The fuzz module: a generated WAT module that imports every host function wasmlab provides.

It exports ``fz_<name>`` for each import (a guest function that passes its arguments to the
import and returns its result), a bump ``malloc``, and callbacks that call one extra import,
``env.wasmlab_fuzz_hook(phase, context_id)``, registered by the fuzz test only. From inside that
hook — so from inside a running callback, with the callback's context current — the test calls
``fz_<name>`` with the example's arguments: each host call crosses into the host exactly as a
module's call does (the proxy's call seam, argument conversion, trace, error handling).

Memory layout (two pages): fixtures (valid names, paths, pairs) from ``FIXTURE_BASE``, writable
out-slots at ``OUT``, the example's blob at ``BLOB``, the heap in the second page.
"""

from __future__ import annotations

import struct

from wasmlab.proxywasm import pairs
from wasmlab.proxywasm.hostcalls import ENV, V01, WASI, HostCall

PAGE = 65536
MEM_END = 2 * PAGE
FIXTURE_BASE = 1024
OUT = 8192
OUT_SLOTS = [OUT + 8 * i for i in range(8)]
BLOB = 12288
BLOB_MAX = 4096

#: where each callback calls the hook from (the hook's ``phase`` argument)
PHASES = {
    "vm_start": 0,
    "configure": 1,
    "tick": 2,
    "request_headers": 3,
    "request_body": 4,
    "response_headers": 5,
    "log": 6,
    "http_call_response": 7,
    "queue_ready": 8,
    "new_connection": 9,
    "downstream_data": 10,
    "upstream_data": 11,
}

#: valid inputs the fuzzer points at (as well as at random places)
_STRINGS: dict[str, bytes] = {
    "cluster": b"backend",
    "header": b"x-fuzz",
    "value": b"v",
    "method": b":method",
    "property": b"request\0path",
    "plugin_name": b"plugin_name",
    "filter_state": b"filter_state",
    "compress": b"compress",
    "uncompress": b"uncompress",
    "clear_route_cache": b"clear_route_cache",
    "queue": b"q",
    "vm_id": b"p",
    "call_headers": pairs.encode([(":method", "GET"), (":path", "/"), (":authority", "backend")]),
    "grpc_service": b"\x0a\x09\x0a\x07backend",
}


def _layout() -> tuple[dict[str, tuple[int, bytes]], list[tuple[int, bytes]]]:
    spans: dict[str, tuple[int, bytes]] = {}
    addr = FIXTURE_BASE
    for name, data in _STRINGS.items():
        spans[name] = (addr, data)
        addr += (len(data) + 15) // 16 * 16
    value_addr = spans["value"][0]
    spans["iovec"] = (addr, struct.pack("<II", value_addr, 1))  # fd_write: one iovec of "v"
    assert addr + 16 < OUT
    return spans, [(a, d) for a, d in spans.values()]


FIXTURES, FIXTURE_WRITES = _layout()
#: (address, length) of each fixture: a matched pointer/length pair
SPANS = [(a, len(d)) for a, d in FIXTURES.values()]

#: never fuzzed: ``env.abort`` traps the guest on purpose (AssemblyScript's abort)
SKIPPED = {"abort": "traps the guest by design (AssemblyScript abort); covered by test_wasm_fixtures"}


def hostcall_of(name: str) -> HostCall:
    return ENV[name] if name in ENV else WASI[name]


def fuzzed_names(version: str) -> list[str]:
    """The host functions the module of ``version`` ("0.2.1" or "0.1.0") imports and fuzzes."""
    if version == "0.1.0":
        return sorted(n for n, hc in ENV.items() if hc.versions == V01)
    env = [n for n, hc in ENV.items() if n not in SKIPPED and n != "wasmlab_fuzz_hook" and hc.versions != V01]
    return sorted(env) + sorted(WASI)


def _sig(hc: HostCall) -> str:
    p = f"(param {' '.join(hc.params)})" if hc.params else ""
    r = f"(result {' '.join(hc.results)})" if hc.results else ""
    return f"{p} {r}"


def _callbacks(version: str) -> list[str]:
    hook = "(drop (call $hook (i32.const {phase}) (local.get 0)))"
    hdr = "(param i32 i32)" if version == "0.1.0" else "(param i32 i32 i32)"

    def cb(name: str, params: str, phase: str, result: str | None) -> str:
        res = (
            f"(result i32) {hook.format(phase=PHASES[phase])} (i32.const {result})"
            if result
            else hook.format(phase=PHASES[phase])
        )
        return f'(func (export "{name}") {params} {res})'

    marker = "proxy_abi_version_" + version.replace(".", "_")
    return [
        f'(func (export "{marker}"))',
        '(func (export "proxy_on_context_create") (param i32 i32))',
        cb("proxy_on_vm_start", "(param i32 i32)", "vm_start", "1"),
        '(func (export "proxy_on_configure") (param i32 i32) (result i32)'
        f" {hook.format(phase=PHASES['configure'])}"
        " (drop (call $proxy_set_tick_period_milliseconds (i32.const 1000))) (i32.const 1))",
        cb("proxy_on_tick", "(param i32)", "tick", None),
        cb("proxy_on_request_headers", hdr, "request_headers", "0"),
        cb("proxy_on_request_body", "(param i32 i32 i32)", "request_body", "0"),
        cb("proxy_on_response_headers", hdr, "response_headers", "0"),
        cb("proxy_on_log", "(param i32)", "log", None),
        cb("proxy_on_http_call_response", "(param i32 i32 i32 i32 i32)", "http_call_response", None),
        cb("proxy_on_queue_ready", "(param i32 i32)", "queue_ready", None),
        cb("proxy_on_new_connection", "(param i32)", "new_connection", "0"),
        cb("proxy_on_downstream_data", "(param i32 i32 i32)", "downstream_data", "0"),
        cb("proxy_on_upstream_data", "(param i32 i32 i32)", "upstream_data", "0"),
        '(func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))',
        '(func (export "proxy_on_delete") (param i32))',
    ]


_MALLOC = f"""(global $heap (mut i32) (i32.const {PAGE}))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (if (i32.gt_u (local.get $n) (i32.const 32768)) (then (return (i32.const 0))))
    (if (i32.gt_u (i32.add (global.get $heap) (local.get $n)) (i32.const {MEM_END}))
      (then (global.set $heap (i32.const {PAGE}))))
    (local.set $p (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (global.get $heap) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (local.get $p))"""


def wat(version: str) -> str:
    names = fuzzed_names(version)
    for helper in ("proxy_set_tick_period_milliseconds", "proxy_http_call"):  # the test's own calls
        if helper not in names:
            names = [*names, helper]
    lines = ["(module", '  (import "env" "wasmlab_fuzz_hook" (func $hook (param i32 i32) (result i32)))']
    for n in names:
        hc = hostcall_of(n)
        module = "env" if hc.module == "env" else "wasi_snapshot_preview1"
        lines.append(f'  (import "{module}" "{n}" (func ${n} {_sig(hc)}))')
    lines.append('  (memory (export "memory") 2)')
    lines.append("  " + _MALLOC)
    lines += ["  " + c for c in _callbacks(version)]
    for n in names:
        hc = hostcall_of(n)
        params = f"(param {' '.join(hc.params)})" if hc.params else ""
        body = " ".join(f"(local.get {i})" for i in range(len(hc.params)))
        call = f"(call ${n} {body})" + ("" if hc.results else " (i32.const -1)")
        lines.append(f'  (func (export "fz_{n}") {params} (result i32) {call})')
    lines.append(")")
    return "\n".join(lines)
