"""What a module declares: its ABI version, its callbacks and their signatures, its allocator.

Envoy (proxy-wasm-cpp-host) detects the ABI version from a marker export
(``proxy_abi_version_0_1_0`` / ``_0_2_0`` / ``_0_2_1``) and refuses a module without one; it links
only the host functions of that version; it calls ``malloc`` (or else
``proxy_on_memory_allocate``) to hand data to the guest and refuses a module with neither; and
Envoy 1.40 refuses a module whose callbacks do not have the signatures of its declared version
(old TinyGo builds declared 0.1.0 but exported 3-argument header callbacks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import wasmtime

from .types import ABI_MARKERS, AbiVersion

#: callback name -> (param count, result count); all i32
CALLBACKS: dict[str, tuple[int, int]] = {
    "proxy_on_context_create": (2, 0),
    "proxy_on_vm_start": (2, 1),
    "proxy_validate_configuration": (2, 1),
    "proxy_on_configure": (2, 1),
    "proxy_on_tick": (1, 0),
    "proxy_on_queue_ready": (2, 0),
    "proxy_on_foreign_function": (3, 0),
    "proxy_on_done": (1, 1),
    "proxy_on_log": (1, 0),
    "proxy_on_delete": (1, 0),
    "proxy_on_request_headers": (3, 1),
    "proxy_on_request_body": (3, 1),
    "proxy_on_request_trailers": (2, 1),
    "proxy_on_request_metadata": (2, 1),
    "proxy_on_response_headers": (3, 1),
    "proxy_on_response_body": (3, 1),
    "proxy_on_response_trailers": (2, 1),
    "proxy_on_response_metadata": (2, 1),
    "proxy_on_new_connection": (1, 1),
    "proxy_on_downstream_data": (3, 1),
    "proxy_on_upstream_data": (3, 1),
    "proxy_on_downstream_connection_close": (2, 0),
    "proxy_on_upstream_connection_close": (2, 0),
    "proxy_on_http_call_response": (5, 0),
    "proxy_on_grpc_receive_initial_metadata": (3, 0),
    "proxy_on_grpc_receive": (3, 0),
    "proxy_on_grpc_receive_trailing_metadata": (3, 0),
    "proxy_on_grpc_close": (3, 0),
    "proxy_on_memory_allocate": (1, 1),
    "malloc": (1, 1),
}

#: ABI 0.1.0 header callbacks take (context_id, num_headers)
CALLBACKS_0_1_0 = {"proxy_on_request_headers": (2, 1), "proxy_on_response_headers": (2, 1)}

ENTRY_POINTS = {"_initialize": (0, 0), "_start": (0, 0), "main": (2, 1), "__main_void": (0, 1)}


class ModuleRejected(Exception):
    """The module cannot be loaded; the message is in Envoy's words."""


@dataclass
class ModuleInfo:
    version: AbiVersion
    allocator: str
    callbacks: set[str] = field(default_factory=set)
    entry_points: list[str] = field(default_factory=list)
    has_memory: bool = True


def _arity(t: wasmtime.FuncType) -> tuple[int, int]:
    return len(t.params), len(t.results)


def _bad_signature(name: str, t: wasmtime.FuncType, params: int, results: int) -> str:
    """Envoy's words for an export of the wrong type (proxy-wasm-cpp-host ``getFunction``)."""
    want = " ".join(["i32"] * params) + " -> " + (" ".join(["i32"] * results) or "void")
    got = " ".join(str(p) for p in t.params) + " -> " + (" ".join(str(r) for r in t.results) or "void")
    want = want.replace(" -> ", "void -> ", 1) if not params else want
    got = got.replace(" -> ", "void -> ", 1) if not t.params else got
    return f"Bad function signature for: {name}, want: {want}, but the module exports: {got}"


def inspect_module(module: wasmtime.Module) -> ModuleInfo:
    exports: dict[str, wasmtime.FuncType] = {}
    has_memory = False
    for ex in module.exports:
        if isinstance(ex.type, wasmtime.FuncType):
            exports[ex.name] = ex.type
        elif isinstance(ex.type, wasmtime.MemoryType) and ex.name == "memory":
            has_memory = True
    versions = [v for name, v in ABI_MARKERS.items() if name in exports]
    if not versions:
        raise ModuleRejected("Wasm VM failed Missing or unknown Proxy-Wasm ABI version")
    version = max(versions)
    expected = dict(CALLBACKS)
    if version == AbiVersion.V0_1_0:
        expected.update(CALLBACKS_0_1_0)
    callbacks = set()
    bad = []
    # Envoy looks up the start functions like the callbacks (``main``/``__main_void`` only in a
    # reactor, beside ``_initialize``) and refuses one of another type the same way
    checked = dict(ENTRY_POINTS) if "_initialize" in exports else {"_start": ENTRY_POINTS["_start"]}
    for name, (params, results) in {**checked, **expected}.items():
        t = exports.get(name)
        if t is None:
            continue
        if _arity(t) != (params, results) or any(str(p) != "i32" for p in [*t.params, *t.results]):
            bad.append(_bad_signature(name, t, params, results))
        elif name in expected:
            callbacks.add(name)
    if bad:
        raise ModuleRejected("; ".join(bad) + "; Wasm VM failed Failed to initialize Wasm code")
    if "malloc" in callbacks:
        allocator = "malloc"
    elif "proxy_on_memory_allocate" in callbacks:
        allocator = "proxy_on_memory_allocate"
    else:
        raise ModuleRejected("Wasm VM failed Wasm module is missing malloc function.")
    entry = []
    if "_initialize" in exports:
        entry.append("_initialize")
        if "main" in exports:
            entry.append("main")
        elif "__main_void" in exports:
            entry.append("__main_void")
    elif "_start" in exports:
        entry.append("_start")
    return ModuleInfo(version, allocator, callbacks, entry, has_memory)
