"""``Proxy(options=...)``: wasmlab's own knobs, checked once when the proxy is built.

Envoy has none of these settings. Its Wasm VMs are bounded only by the module's own declared
maximum and wasm32's 4 GiB; V8 has no per-callback deadline; shared data, shared queues and log
lines have no size limit (``proxy-wasm-cpp-host``'s ``SharedData`` and ``SharedQueue`` keep
whatever they are given). A notebook kernel is a smaller place than an Envoy server, so wasmlab
caps them, counts what a cap refused or cut (``wasmlab.*`` counters in ``proxy.stats()``) and
logs it once; each cap can be changed here (``0`` lifts a cap where that is allowed).
"""

from __future__ import annotations

from typing import Any

#: option -> what it does (the message for a misspelt option lists them)
PROXY_OPTIONS = {
    "wasm_call_path": "auto | fast | normal: how the host calls into wasmtime",
    "wasm_callback_deadline_s": (
        "seconds of CPU time one Wasm callback may use (1 to 1.5 times it; 20 times it, at least 10 s,"
        " of wall-clock time) before the VM is stopped, default 1.0"
    ),
    "wasm_memory_limit_mb": "linear memory cap per Wasm VM in MiB, 1 to 4096 (wasm32's 4 GiB), default 512",
    "wasm_shared_data_limit_mb": "shared data (keys + values, all vm_ids) in MiB, default 64, 0 = no limit",
    "wasm_shared_queue_limit_mb": "what one shared queue holds in MiB (+64 B an item), default 16, 0 = no limit",
    "log_line_limit_kb": "longest proxy log line (and trace copy of a log message) in KiB, default 4, 0 = no limit",
    "log_memory_limit_mb": "proxy.logs keeps its newest lines within this many MiB, default 64, 0 = no limit",
    "lua_instruction_limit": "Lua VM instructions per hook run, default 100000000, 0 = no limit",
    "lua_memory_limit_mb": "memory cap per Lua state, default 64, 0 = no limit",
    "lua_hook_every": "instructions between two guard checks, default 10000",
    "lua_time_limit_s": "wall-clock seconds per Lua hook run (with the instruction guard), default 10, 0 = no limit",
    "lua_sandbox": "True (default): no ffi, loadlib, os.exit/execute, io.popen/open, debug.*; False: what Envoy allows",
}

#: the defaults of the caps this module checks (the Lua filter holds the Lua options' defaults)
DEFAULTS: dict[str, Any] = {
    "wasm_callback_deadline_s": 1.0,
    "wasm_memory_limit_mb": 512,
    "wasm_shared_data_limit_mb": 64,
    "wasm_shared_queue_limit_mb": 16,
    "log_line_limit_kb": 4,
    "log_memory_limit_mb": 64,
}

#: an int option -> (lowest, highest) allowed
_INT_RANGES = {
    "wasm_memory_limit_mb": (1, 4096),
    "wasm_shared_data_limit_mb": (0, 1 << 20),
    "wasm_shared_queue_limit_mb": (0, 1 << 20),
    "log_line_limit_kb": (0, 1 << 20),
    "log_memory_limit_mb": (0, 1 << 20),
}


def check_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """The options with wasmlab's defaults filled in; a ``ValueError`` names a misspelt option
    or a value out of range (``wasm_memory_limit_mb: -1`` used to lift the cap silently)."""
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict of proxy options, got {type(options).__name__}")
    given = dict(options or {})
    unknown = sorted(set(given) - set(PROXY_OPTIONS))
    if unknown:
        known = ", ".join(f"{k} ({v})" for k, v in PROXY_OPTIONS.items())
        raise ValueError(f"unknown proxy option {unknown[0]!r}; the options are: {known}")
    for name, (low, high) in _INT_RANGES.items():
        if name in given:
            v = given[name]
            if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
                raise ValueError(f"proxy option {name} must be an int from {low} to {high}, got {v!r}")
    for name in ("lua_instruction_limit", "lua_memory_limit_mb", "lua_hook_every", "lua_time_limit_s"):
        v = given.get(name, 0)
        # at most 2**53: the largest integer a Lua number holds exactly (and no inf or nan)
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 2**53:
            raise ValueError(f"proxy option {name} must be a number >= 0, got {v!r}")
    if not isinstance(given.get("lua_sandbox", True), bool):
        raise ValueError(f"proxy option lua_sandbox must be True or False, got {given['lua_sandbox']!r}")
    if "wasm_callback_deadline_s" in given:
        v = given["wasm_callback_deadline_s"]
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0.01 <= v <= 3600:
            raise ValueError(f"proxy option wasm_callback_deadline_s must be seconds from 0.01 to 3600, got {v!r}")
    return {**DEFAULTS, **given}


def mib(options: dict[str, Any], name: str) -> int | None:
    """A MiB cap in bytes, None when lifted (0)."""
    v = int(options.get(name, DEFAULTS[name]))
    return v * 1024 * 1024 if v else None
