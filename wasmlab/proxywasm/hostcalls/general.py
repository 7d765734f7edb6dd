"""General host functions: logging, time, ticks, context control, foreign functions, status.

Envoy's behaviour: ``proxy_log`` writes ``wasm log<plugin name><root_id><vm_id>: msg`` on the
``wasm`` logger (stream contexts name the plugin, root contexts don't, calls outside any context
print ``wasm log: msg``); levels 0..5 are trace..critical and anything above is BAD_ARGUMENT.
``proxy_set_effective_context`` switches the context later host calls act on until the current
callback returns. ``proxy_done`` lets a root context that answered false from ``proxy_on_done``
finish later.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

from ...host.logs import cut_message
from ..types import LOG_LEVELS, WasmResult
from . import V01, V021, hostcall

if TYPE_CHECKING:
    from ..vm import WasmVm

OK = WasmResult.OK
BAD = WasmResult.BAD_ARGUMENT
MEM = WasmResult.INVALID_MEMORY_ACCESS


def log_prefix(vm: WasmVm) -> str:
    ctx = vm.effective
    return ctx.log_prefix() if ctx is not None else ""


@hostcall("proxy_log", 3)
def proxy_log(vm: WasmVm, level: int, ptr: int, size: int) -> Any:
    if level > 5:  # Envoy checks the level before the message's memory
        return BAD
    raw = vm.memory.read(ptr, size)
    if raw is None:
        return MEM
    msg = raw.decode("utf-8", "replace")
    name = LOG_LEVELS[level]
    proxy = vm.proxy
    if proxy.log_enabled(name, "wasm"):
        proxy.log(name, "wasm", f"wasm log{log_prefix(vm)}: {msg}")  # cut there past log_line_limit_kb
    return (OK, {"level": name, "message": cut_message(msg, proxy.log_line_limit)}) if vm.rec.enabled else OK


@hostcall("proxy_get_log_level", 1, versions=V021)
def proxy_get_log_level(vm: WasmVm, out: int) -> Any:
    return OK if vm.memory.write_u32(out, vm.proxy.log_rank("wasm")) else MEM


@hostcall("proxy_get_current_time_nanoseconds", 1)
def proxy_get_current_time_nanoseconds(vm: WasmVm, out: int) -> Any:
    return OK if vm.memory.write_u64(out, vm.proxy.clock.wall_ns()) else MEM


@hostcall("proxy_set_tick_period_milliseconds", 1)
def proxy_set_tick_period_milliseconds(vm: WasmVm, period_ms: int) -> Any:
    ctx = vm.effective
    if ctx is None:
        return BAD
    vm.proxy.wasm.set_tick_period(ctx.root_context(), period_ms)
    return OK, {"period_ms": period_ms}


@hostcall("proxy_set_effective_context", 1)
def proxy_set_effective_context(vm: WasmVm, context_id: int) -> Any:
    """Envoy answers BAD_ARGUMENT for an id no context of this VM has; id 0 (the VM's own
    context) is OK and means the callback's context again."""
    if context_id == 0:
        vm.effective = vm.current
        return OK
    ctx = vm.contexts.get(context_id)
    if ctx is None:
        return BAD
    vm.effective = ctx
    return OK


@hostcall("proxy_done", 0)
def proxy_done(vm: WasmVm) -> Any:
    ctx = vm.effective
    if ctx is None or not ctx.is_root or not ctx.root_context().done_pending:
        return WasmResult.NOT_FOUND
    root = ctx.root_context()
    root.done_pending = False

    def finish() -> None:
        if vm.failed is None and not root.deleted:
            vm.call(root, "proxy_on_delete", root.id)
            vm.remove_context(root)

    vm.defer(finish)
    return OK


def _foreign(vm: WasmVm, name: str, args: bytes) -> tuple[WasmResult, bytes]:
    ctx = vm.effective
    if name == "clear_route_cache":
        f = ctx.filter if ctx is not None else None
        if f is not None:
            f.clear_route_cache()
        return OK, b""
    if name == "compress":
        return OK, zlib.compress(args)
    if name == "uncompress":
        try:
            return OK, zlib.decompress(args)
        except zlib.error:
            return WasmResult.SERIALIZATION_FAILURE, b""
    return WasmResult.NOT_FOUND, b""


@hostcall("proxy_call_foreign_function", 6)
def proxy_call_foreign_function(
    vm: WasmVm, name_ptr: int, name_len: int, args_ptr: int, args_len: int, out_ptr: int, out_len: int
) -> Any:
    got = vm.memory.read_many(name_ptr, name_len, args_ptr, args_len)
    if got is None:
        return MEM
    name, args = got
    code, result = _foreign(vm, name.decode("latin-1"), args)
    if code != OK:
        return code, {"function": name.decode("latin-1")}
    return vm.copy_out(result, out_ptr, out_len), {"function": name.decode("latin-1")}


@hostcall("proxy_get_status", 3)
def proxy_get_status(vm: WasmVm, code_out: int, msg_ptr_out: int, msg_len_out: int) -> Any:
    ctx = vm.effective
    if ctx is None:
        return WasmResult.NOT_FOUND
    code, msg = ctx.root_context().status
    if not vm.memory.write_u32(code_out, code):
        return MEM
    return vm.copy_out(msg, msg_ptr_out, msg_len_out)


# ---- ABI 0.1.0 only -----------------------------------------------------------------------------
@hostcall("proxy_get_configuration", 2, versions=V01)
def proxy_get_configuration(vm: WasmVm, ptr_out: int, len_out: int) -> Any:
    """The plugin's configuration while it is being configured, else the VM's (Envoy's
    ``Context::getConfiguration``: always OK)."""
    ctx = vm.effective
    root = ctx.root_context() if ctx is not None else None
    if root is not None and root.config_phase and root.config_phase != "vm_start":
        data = root.plugin.configuration
    else:
        data = vm.vm_config.configuration
    return vm.copy_out(data, ptr_out, len_out)
