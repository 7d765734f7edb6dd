"""WASI (``wasi_snapshot_preview1`` and ``wasi_unstable``) and the toolchains' ``env`` extras.

Envoy gives modules a small WASI: ``fd_write`` to stdout/stderr becomes a log line (info/error,
trailing newline dropped), clocks, ``random_get`` (at most 64 KiB), the plugin's environment
variables, no arguments, ``proc_exit`` only logs, ``poll_oneoff`` reports no events (the Go
runtime depends on it), ``sched_yield``; files and sockets do not exist (``fd_prestat_get`` says
EBADF so wasi-libc's start-up finds no pre-opened directories). Every other WASI function a module
imports gets a stub with its exact signature returning ENOSYS. AssemblyScript's ``env.abort``
logs its message and traps; emscripten's ``env.emscripten_notify_memory_growth`` does nothing.
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING, Any

from . import GuestTrap, hostcall

if TYPE_CHECKING:
    from ..vm import WasmVm

ESUCCESS = 0
EBADF = 8
EFAULT = 21
EINVAL = 28
ENOENT = 44
ENOSYS = 52
MAX_RANDOM = 64 * 1024


def _log(vm: WasmVm, level: str, text: str) -> None:
    from .general import log_prefix

    if vm.proxy.log_enabled(level, "wasm"):
        vm.proxy.log(level, "wasm", f"wasm log{log_prefix(vm)}: {text}")


@hostcall("fd_write", 4, module="wasi")
def fd_write(vm: WasmVm, fd: int, iovs: int, iovs_len: int, nwritten_out: int) -> Any:
    if fd not in (1, 2):
        return EBADF
    mem = vm.memory
    raw = mem.read(iovs, 8 * iovs_len)
    if raw is None:
        return EFAULT
    chunks = []
    for i in range(iovs_len):
        ptr, size = struct.unpack_from("<II", raw, 8 * i)
        data = mem.read(ptr, size)
        if data is None:
            return EFAULT
        chunks.append(data)
    data = b"".join(chunks)
    if not mem.write_u32(nwritten_out, len(data)):
        return EFAULT
    text = data.decode("utf-8", "replace")
    if text.endswith("\n"):
        text = text[:-1]
    if fd == 2:
        vm.stderr_tail = [*vm.stderr_tail[-2:], text]
    _log(vm, "info" if fd == 1 else "error", text)
    return ESUCCESS, {"fd": fd, "text": text}


@hostcall("fd_read", 4, module="wasi")
def fd_read(vm: WasmVm, fd: int, iovs: int, iovs_len: int, nread_out: int) -> Any:
    return ENOSYS


@hostcall("fd_close", 1, module="wasi")
def fd_close(vm: WasmVm, fd: int) -> Any:
    vm.proxy.log("trace", "wasm", "wasi_unstable fd_close")
    return ESUCCESS


@hostcall("fd_seek", "i32 i64 i32 i32", module="wasi")
def fd_seek(vm: WasmVm, fd: int, offset: int, whence: int, out: int) -> Any:
    vm.proxy.log("trace", "wasm", "wasi_unstable fd_seek")
    return ESUCCESS


@hostcall("path_open", "i32 i32 i32 i32 i32 i64 i64 i32 i32", module="wasi")
def path_open(vm: WasmVm, *args: int) -> Any:
    return ENOENT


@hostcall("fd_prestat_get", 2, module="wasi")
def fd_prestat_get(vm: WasmVm, fd: int, out: int) -> Any:
    return EBADF


@hostcall("fd_prestat_dir_name", 3, module="wasi")
def fd_prestat_dir_name(vm: WasmVm, fd: int, ptr: int, size: int) -> Any:
    return EBADF


@hostcall("fd_fdstat_get", 2, module="wasi")
def fd_fdstat_get(vm: WasmVm, fd: int, out: int) -> Any:
    if fd not in (1, 2):
        return EBADF
    # filetype CHARACTER_DEVICE (2), flags 0, rights base/inheriting: fd_write (1 << 6)
    stat = struct.pack("<BxHxxxxQQ", 2, 0, 1 << 6, 0)
    return ESUCCESS if vm.memory.write(out, stat) else EFAULT


@hostcall("fd_fdstat_set_flags", 2, module="wasi")
def fd_fdstat_set_flags(vm: WasmVm, fd: int, flags: int) -> Any:
    return ESUCCESS if fd in (0, 1, 2) else EBADF


#: where the guest's monotonic clock starts under ``clock="virtual"``: a machine's monotonic
#: clock counts from boot and is never 0 (Go's runtime throws "nanotime returning zero" when it
#: reads 0); the virtual clock's own time starts at 0, so the guest sees it one second after boot
VIRTUAL_BOOT_NS = 1_000_000_000


@hostcall("clock_time_get", "i32 i64 i32", module="wasi")
def clock_time_get(vm: WasmVm, clock_id: int, precision: int, out: int) -> Any:
    clock = vm.proxy.clock
    boot = VIRTUAL_BOOT_NS if clock.virtual else 0
    now = clock.wall_ns() if clock_id == 0 else clock.monotonic_ns() + boot
    return ESUCCESS if vm.memory.write_u64(out, now) else EFAULT


@hostcall("clock_res_get", 2, module="wasi")
def clock_res_get(vm: WasmVm, clock_id: int, out: int) -> Any:
    return ESUCCESS if vm.memory.write_u64(out, 1) else EFAULT


@hostcall("random_get", 2, module="wasi")
def random_get(vm: WasmVm, ptr: int, size: int) -> Any:
    if size > MAX_RANDOM:
        return EINVAL
    return ESUCCESS if vm.memory.write(ptr, os.urandom(size)) else EFAULT


def _env(vm: WasmVm) -> list[bytes]:
    return [f"{k}={v}".encode() + b"\0" for k, v in vm.vm_config.environment.items()]


@hostcall("environ_sizes_get", 2, module="wasi")
def environ_sizes_get(vm: WasmVm, count_out: int, size_out: int) -> Any:
    env = _env(vm)
    ok = vm.memory.write_u32(count_out, len(env)) and vm.memory.write_u32(size_out, sum(map(len, env)))
    return ESUCCESS if ok else EFAULT


@hostcall("environ_get", 2, module="wasi")
def environ_get(vm: WasmVm, ptrs: int, buf: int) -> Any:
    pos = buf
    for i, item in enumerate(_env(vm)):
        if not vm.memory.write_u32(ptrs + 4 * i, pos) or not vm.memory.write(pos, item):
            return EFAULT
        pos += len(item)
    return ESUCCESS


@hostcall("args_sizes_get", 2, module="wasi")
def args_sizes_get(vm: WasmVm, argc_out: int, size_out: int) -> Any:
    ok = vm.memory.write_u32(argc_out, 0) and vm.memory.write_u32(size_out, 0)
    return ESUCCESS if ok else EFAULT


@hostcall("args_get", 2, module="wasi")
def args_get(vm: WasmVm, argv: int, buf: int) -> Any:
    return ESUCCESS


@hostcall("proc_exit", 1, results=0, module="wasi")
def proc_exit(vm: WasmVm, code: int) -> Any:
    vm.proxy.log("warning", "wasm", f"wasm log{_prefix(vm)}: proc_exit({code}) called; ignored as Envoy does")
    return None, {"code": code}


def _prefix(vm: WasmVm) -> str:
    from .general import log_prefix

    return log_prefix(vm)


@hostcall("poll_oneoff", 4, module="wasi")
def poll_oneoff(vm: WasmVm, in_ptr: int, out_ptr: int, nsubs: int, nevents_out: int) -> Any:
    return ESUCCESS if vm.memory.write_u32(nevents_out, 0) else EFAULT


@hostcall("sched_yield", 0, module="wasi")
def sched_yield(vm: WasmVm) -> Any:
    return ESUCCESS


# ---- env extras of toolchains ----------------------------------------------------------------------
# env.abort is a wasmlab addition: real Envoy 1.40 does not provide it and refuses to load a module
# that imports it (AssemblyScript: build with --use abort=...). The proxy logs a warning when a
# module imports it.
@hostcall("abort", 4, results=0)
def env_abort(vm: WasmVm, msg_ptr: int, file_ptr: int, line: int, column: int) -> Any:
    msg = _as_string(vm, msg_ptr) or "abort"
    where = _as_string(vm, file_ptr)
    text = f"abort: {msg}" + (f" at {where}:{line}:{column}" if where else "")
    vm.proxy.log("error", "wasm", f"wasm log{_prefix(vm)}: {text}")
    raise GuestTrap(text)


def _as_string(vm: WasmVm, ptr: int) -> str | None:
    """An AssemblyScript string: UTF-16LE, byte length in the u32 before it."""
    if ptr < 4:
        return None
    size = vm.memory.read_u32(ptr - 4)
    if size is None or size > 4096:
        return None
    raw = vm.memory.read(ptr, size)
    return raw.decode("utf-16-le", "replace") if raw is not None else None


@hostcall("emscripten_notify_memory_growth", 1, results=0)
def emscripten_notify_memory_growth(vm: WasmVm, index: int) -> Any:
    return None


@hostcall("pthread_equal", 2)
def pthread_equal(vm: WasmVm, a: int, b: int) -> Any:
    return int(a == b)
