"""Host functions (the module's imports), grouped as the ABI groups them, and the linker.

Each host function is a plain function ``fn(vm, *args) -> int`` registered with :func:`hostcall`
under its import name and the ABI versions that have it. The linker builds a module's import list
in the order the module declares it: ``env.*`` from the detected version's set (an import Envoy
does not provide is a load error: "Failed to load Wasm module due to a missing import: env.X"),
WASI from ``wasi_snapshot_preview1``/``wasi_unstable`` (unknown WASI names get an errno stub of
their exact signature). Every call is wrapped once: arguments made unsigned, a Python exception
turned into ``INTERNAL_FAILURE`` (never raised into wasmtime), and the call traced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import wasmtime

from ...errors import raised_at
from ...trace.shapes import HOSTCALL, HOSTCALL_DETAIL, flat
from ..abi import ModuleRejected
from ..types import AbiVersion, WasmResult
from ..vm import Trapped

if TYPE_CHECKING:
    from ..vm import WasmVm

ALL = frozenset(AbiVersion)
V01 = frozenset({AbiVersion.V0_1_0})
V02 = frozenset({AbiVersion.V0_2_0, AbiVersion.V0_2_1})
V021 = frozenset({AbiVersion.V0_2_1})


class GuestTrap(Exception):
    """Raised by a host function to trap the guest on purpose (``env.abort``)."""


@dataclass(frozen=True)
class HostCall:
    module: str
    name: str
    params: tuple[str, ...]
    results: tuple[str, ...]
    fn: Callable[..., Any]
    versions: frozenset[AbiVersion]


ENV: dict[str, HostCall] = {}
WASI: dict[str, HostCall] = {}
WASI_MODULES = ("wasi_snapshot_preview1", "wasi_unstable")


def hostcall(
    name: str,
    params: str | int,
    results: int = 1,
    versions: frozenset[AbiVersion] = ALL,
    module: str = "env",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(vm, *args)``; ``params`` is a count of i32s or a string like ``"i32 i64"``."""
    ptypes = tuple(["i32"] * params) if isinstance(params, int) else tuple(params.split())

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        hc = HostCall(module, name, ptypes, ("i32",) * results, fn, versions)
        (WASI if module == "wasi" else ENV)[name] = hc
        return fn

    return deco


def _signature(t: wasmtime.FuncType) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(str(p) for p in t.params), tuple(str(r) for r in t.results)


class Linker:
    """Builds a VM's imports for its ABI version."""

    def __init__(self, version: AbiVersion) -> None:
        self.version = version

    def check(self, module: wasmtime.Module) -> None:
        """Reject a module whose imports we cannot satisfy (Envoy's load error), before any VM."""
        for imp in module.imports:
            self._resolve(imp)

    def _resolve(self, imp: wasmtime.ImportType) -> HostCall | None:
        full = f"{imp.module}.{imp.name}"
        if not isinstance(imp.type, wasmtime.FuncType):
            raise ModuleRejected(f"Failed to load Wasm module due to a missing import: {full}")
        if imp.module == "env":
            hc = ENV.get(imp.name or "")
            if hc is None or self.version not in hc.versions:
                raise ModuleRejected(f"Failed to load Wasm module due to a missing import: {full}")
            self._check_type(full, imp.type, hc.params, hc.results)
            return hc
        if imp.module in WASI_MODULES:
            name = imp.name or ""
            if name not in WASI_PREVIEW1:
                raise ModuleRejected(f"Failed to load Wasm module due to a missing import: {full}")
            hc = WASI.get(name)
            if hc is not None:
                self._check_type(full, imp.type, hc.params, hc.results)
            elif name in WASI_HOST_TYPES:
                self._check_type(full, imp.type, *WASI_HOST_TYPES[name])
            return hc
        raise ModuleRejected(f"Failed to load Wasm module due to a missing import: {full}")

    @staticmethod
    def _check_type(full: str, t: wasmtime.FuncType, params: tuple[str, ...], results: tuple[str, ...]) -> None:
        got_p, got_r = _signature(t)
        if (got_p, got_r) != (params, results):

            def sig(p: tuple[str, ...], r: tuple[str, ...]) -> str:
                return " ".join(p) + " -> " + (" ".join(r) or "void")

            raise ModuleRejected(
                f"Failed to load Wasm module due to an import type mismatch: {full}, want: {sig(got_p, got_r)}, "
                f"but host exports: {sig(params, results)}"
            )

    def imports_for(self, vm: WasmVm, module: wasmtime.Module) -> list[wasmtime.Func]:
        out = []
        for imp in module.imports:
            hc = self._resolve(imp)
            full = f"{imp.module}.{imp.name}"
            ftype = imp.type
            assert isinstance(ftype, wasmtime.FuncType)  # _resolve rejected every other import
            fn = wrap(vm, full, hc.fn, hc.params) if hc is not None else wasi_stub(vm, full, ftype)
            out.append(vm.seam.host_func(vm.store, ftype, fn))
        return out


class HostBinding:
    """One host function bound to one VM: what each call seam turns into a wasmtime import.

    ``impl(vm, *args)`` gets i32 arguments unsigned (i64 stay signed) and returns an int, None
    (no result) or ``(int, detail)`` (detail goes to the trace). A Python exception from it is a
    host bug: reported and answered ``INTERNAL_FAILURE``, never raised into wasmtime — except
    :class:`Trapped`/:class:`GuestTrap` (``passthrough``), which trap the guest. The fast seam
    reads these attributes and builds its own crossing; the normal seam calls the object."""

    __slots__ = ("vm", "full", "impl", "params", "rec", "label", "i64")
    passthrough = (Trapped, GuestTrap)

    def __init__(self, vm: WasmVm, full: str, impl: Callable[..., Any], params: tuple[str, ...]) -> None:
        self.vm = vm
        self.full = full
        self.impl = impl
        self.params = params
        self.rec = vm.rec
        self.label = vm.label
        self.i64 = tuple(i for i, p in enumerate(params) if p == "i64")

    def host_bug(self, e: BaseException) -> WasmResult:
        self.vm.proxy.log(
            "critical", "wasm", f"host function {self.full} failed: {type(e).__name__}: {e}{raised_at(e)}"
        )
        return WasmResult.INTERNAL_FAILURE

    def traced(self, uargs: tuple[int, ...]) -> int | None:
        """One call with its enter/exit trace events (unsigned arguments in, result out)."""
        vm = self.vm
        ctx = vm.effective
        cid = ctx.id if ctx is not None else 0
        rec, full, label = self.rec, self.full, self.label
        impl_args = uargs
        if self.i64:  # Envoy traces i64 arguments unsigned too (a delta of -7 as 2**64 - 7)
            uargs = tuple(a & 0xFFFFFFFFFFFFFFFF for a in uargs)
        # compact events (trace.shapes): {"phase"} / {"phase", "detail"} are built when read
        rec.emit("hostcall", full, uargs, None, None, label, cid, "enter", HOSTCALL)
        detail = None
        try:
            result = self.impl(vm, *impl_args)
        except self.passthrough:
            raise
        except Exception as e:
            result = self.host_bug(e)
        if result.__class__ is tuple:
            result, detail = result
        out = None if result is None else int(result)
        if detail is None:
            rec.emit("hostcall", full, uargs, out, None, label, cid, "exit", HOSTCALL)
        elif detail.__class__ is dict:
            rec.emit("hostcall", full, uargs, out, flat(detail), label, cid, "exit", HOSTCALL_DETAIL)
        else:
            rec.record("hostcall", full, uargs, out, {"phase": "exit", "detail": detail}, label, cid, event=False)
        return out

    def __call__(self, *args: int) -> int | None:
        """The call with wasmtime's signed arguments (the normal seam)."""
        i64 = self.i64
        if i64:
            uargs = tuple(a if i in i64 else a & 0xFFFFFFFF for i, a in enumerate(args))
        else:
            uargs = tuple(a & 0xFFFFFFFF for a in args)
        if self.rec.enabled:
            return self.traced(uargs)
        try:
            result = self.impl(self.vm, *uargs)
        except self.passthrough:
            raise
        except Exception as e:
            result = self.host_bug(e)
        if result.__class__ is tuple:
            result = result[0]
        return None if result is None else int(result)


def wrap(vm: WasmVm, full: str, fn: Callable[..., Any], params: tuple[str, ...] = ()) -> HostBinding:
    return HostBinding(vm, full, fn, params)


WASI_ENOSYS = 52

#: the WASI preview1 functions Envoy 1.40 links (``proc_raise`` is missing there)
WASI_PREVIEW1 = frozenset(
    """args_get args_sizes_get environ_get environ_sizes_get clock_res_get clock_time_get fd_advise
    fd_allocate fd_close fd_datasync fd_fdstat_get fd_fdstat_set_flags fd_fdstat_set_rights fd_filestat_get
    fd_filestat_set_size fd_filestat_set_times fd_pread fd_prestat_get fd_prestat_dir_name fd_pwrite fd_read
    fd_readdir fd_renumber fd_seek fd_sync fd_tell fd_write path_create_directory path_filestat_get
    path_filestat_set_times path_link path_open path_readlink path_remove_directory path_rename path_symlink
    path_unlink_file poll_oneoff proc_exit sched_yield random_get sock_accept sock_recv sock_send
    sock_shutdown""".split()
)
#: stubs whose host type in Envoy 1.40 differs from WASI's (a module using WASI's type fails to load)
WASI_HOST_TYPES = {
    "path_link": (("i32",) * 6, ("i32",)),
    "path_symlink": (("i32",) * 4, ("i32",)),
}


def wasi_stub(vm: WasmVm, full: str, t: wasmtime.FuncType) -> HostBinding:
    """A WASI function we do not implement: returns ENOSYS (or nothing) with its own signature."""
    has_result = len(t.results) > 0

    def stub(vm_: WasmVm, *args: int) -> Any:
        return WASI_ENOSYS if has_result else None

    return wrap(vm, full, stub, tuple(str(p) for p in t.params))


# register every group
from . import general, grpc, http, metrics, properties, shared, wasi  # noqa: E402, F401
