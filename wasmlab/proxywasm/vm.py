"""WasmVm: one instance of a module in its own Store, owned by one thread, and its contexts.

Envoy (proxy-wasm-cpp-host ``WasmBase``) keeps per VM: the instance, the map of contexts with one
id counter (0 is the hidden VM context; the first root context is 1, streams follow), the fail
state, and a queue of actions to run after the current guest call returns (continue, close,
local replies). A trap fails the VM: it never runs again, and the filter applies its failure
policy. This module is that, plus wasmlab's trace: every host->VM callback and VM->host call is an
event, with its raw arguments and result, the way ``--component-log-level wasm:trace`` shows them.

Threading: a VM is created and used on one dispatcher thread only (its Store must never be used by
two threads); other threads reach it by posting to that dispatcher.
"""

from __future__ import annotations

import functools
import itertools
import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import wasmtime

from ..trace.shapes import CALLBACK
from . import cpu_deadline
from .abi import ModuleInfo, ModuleRejected
from .callseam import GuestMemory
from .module_cache import CompiledCode, deadline_ticks, engine, ensure_epoch_ticker
from .types import AbiVersion, FailState, WasmResult

if TYPE_CHECKING:
    from ..host.dispatcher import Dispatcher
    from ..host.services import ServerContext
    from .hostcalls import Linker
    from .plugin import PluginConfig, VmConfig
    from .stream_host import StreamHost

_instance_ids = itertools.count(1)
_monotonic = time.monotonic
_thread_time = time.thread_time
_get_ident = threading.get_ident
_u32 = struct.Struct("<I").pack  # a guest u32 (pointer or size), little-endian


class Trapped(Exception):
    """A guest call trapped; the VM is failed (the message is already logged)."""


class Context:
    """A Proxy-Wasm context: root (one per plugin per VM) or stream (one per HTTP stream/connection)."""

    __slots__ = ("id", "vm", "root", "plugin", "filter", "kind", "deleted")

    def __init__(
        self,
        cid: int,
        vm: WasmVm,
        root: RootContext | None,
        plugin: PluginConfig,
        kind: str,
        filter: StreamHost | None = None,
    ) -> None:
        self.id = cid
        self.vm = vm
        self.root = root
        self.plugin = plugin
        #: the filter (or access-log view) this context serves; None for root contexts
        self.filter = filter
        self.kind = kind  # "root", "http", "tcp"
        self.deleted = False

    @property
    def is_root(self) -> bool:
        return self.root is None

    def root_context(self) -> RootContext:
        return self if isinstance(self, RootContext) else self.root  # type: ignore[return-value]

    def log_prefix(self) -> str:
        """Envoy's ``wasm log<prefix>: msg``: stream contexts name the plugin, root contexts don't."""
        p = self.plugin
        parts = (p.root_id, p.vm_config.vm_id) if self.is_root else (p.name, p.root_id, p.vm_config.vm_id)
        return "".join(" " + x for x in parts if x)


class RootContext(Context):
    __slots__ = (
        "tick_timer",
        "tick_period_ms",
        "http_calls",
        "callout_response",
        "status",
        "config_phase",
        "foreign_args",
        "grpc_calls",
        "grpc_current",
        "done_pending",
    )

    def __init__(self, cid: int, vm: WasmVm, plugin: PluginConfig) -> None:
        super().__init__(cid, vm, None, plugin, "root")
        self.tick_timer: Any = None
        self.tick_period_ms = 0
        self.http_calls: dict[int, Any] = {}
        self.callout_response: Any = None  # AsyncResponse during proxy_on_http_call_response
        self.status: tuple[int, bytes] = (0, b"")
        self.config_phase: str | bool = False  # plugin configuration readable (context create / configure)
        self.foreign_args: bytes | None = None
        self.grpc_calls: dict[int, Any] = {}
        self.grpc_current: Any = None
        self.done_pending = False


class WasmVm:
    """One VM instance (Envoy: a WasmBase with its runtime)."""

    def __init__(
        self,
        proxy: ServerContext,
        code: CompiledCode,
        info: ModuleInfo,
        vm_config: VmConfig,
        role: str,
        dispatcher: Dispatcher,
        linker: Linker,
    ) -> None:
        self._alive = False  # counted in the VM gauges (set once the imports resolved)
        self.proxy = proxy
        self.code = code
        self.info = info
        self.vm_config = vm_config
        self.role = role  # base, canary, main, replica, service
        self.dispatcher = dispatcher
        self.label = f"{vm_config.vm_id or 'vm'}#{next(_instance_ids)}"
        self.rec = proxy.recorder
        #: record a lifecycle step of this VM (Recorder.record, a no-op when tracing is off)
        self._record = functools.partial(self.rec.record, vm=self.label, event=False)
        self.contexts: dict[int, Context] = {}
        self._next_id = itertools.count(1)
        self._next_token = itertools.count(1)
        self.failed: FailState | None = None
        self.failed_at_ns: int | None = None
        #: the guest's last WASI stderr lines (a start-up failure names them, as Envoy's log shows them)
        self.stderr_tail: list[str] = []
        self.current: Context | None = None  # context of the callback being run (None = VM context 0)
        self.effective: Context | None = None  # after proxy_set_effective_context
        self.deferred: list[Callable[[], None]] = []
        self._depth = 0
        self.metrics: dict[int, tuple[int, str]] = {}
        #: the Store was freed (:meth:`release`); the VM is an empty shell
        self.released = False
        #: one id sequence per metric type, as Envoy's (counters 4, 8...; gauges 5, 9...)
        self._metric_ids = [itertools.count(1) for _ in range(3)]
        self._make_store(proxy.options)
        self._record(
            "vm",
            "create",
            {
                "role": role,
                "vm_id": vm_config.vm_id,
                "abi": info.version.label,
                "allocator": info.allocator,
                "code_sha256": code.sha256[:12],
                "code_size": code.size,
                "compiled": code.source,
            },
        )
        try:
            imports = linker.imports_for(self, code.module)  # raises ModuleRejected for a missing import
        except ModuleRejected:
            self.release()
            raise
        stats = proxy.stat_store
        stats.inc(f"wasm.{vm_config.runtime}.created")
        stats.gauge_add(f"wasm.{vm_config.runtime}.active", 1)
        stats.gauge_add("wasm.wasm_vm_count", 1)
        self._alive = True
        self.instance = self._instantiate(code, imports)
        exports = self.instance.exports(self.store)
        mem = exports.get("memory")
        self.memory = self.seam.memory(self.store, mem if isinstance(mem, wasmtime.Memory) else None)
        self.funcs: dict[str, Callable[..., Any]] = {}
        types = {ex.name: ex.type for ex in code.module.exports}
        for name in [*info.callbacks, *info.entry_points]:
            f = exports.get(name)
            if isinstance(f, wasmtime.Func):
                self.funcs[name] = self.seam.bind_export(self.store, f, types.get(name))
        #: ABI 0.1.0 header callbacks take no end_of_stream argument
        self.abi_010 = info.version == AbiVersion.V0_1_0

    # ---- ids ----------------------------------------------------------------------------------
    def next_context_id(self) -> int:
        return next(self._next_id)

    def next_token(self) -> int:
        return next(self._next_token)

    def _instantiate(self, code: CompiledCode, imports: list[Any]) -> wasmtime.Instance:
        """The module's instance (its start function runs here); a trap, a start function past
        the deadline or a link error refuses the module, in Envoy's words."""
        try:
            return wasmtime.Instance(self.store, code.module, imports)
        except wasmtime.Trap as e:
            self.release()
            raise ModuleRejected(f"Failed to start base Wasm: the start function trapped: {trap_message(e)}") from None
        except wasmtime.WasmtimeError as e:
            self.release()
            if cpu_deadline.DEADLINE_MESSAGE in str(e):  # stopped by cpu_deadline: a trap to Envoy
                raise ModuleRejected(
                    f"Failed to start base Wasm: the start function trapped: {cpu_deadline.DEADLINE_MESSAGE}"
                ) from None
            raise ModuleRejected(f"Failed to instantiate Wasm module: {str(e).splitlines()[0]}") from None

    def exports(self, name: str) -> bool:
        """Whether the module exports callback or entry point ``name`` (from the module's info:
        still true once the VM is released and its live ``funcs`` are gone)."""
        return name in self.info.callbacks or name in self.info.entry_points

    def runs(self, name: str) -> bool:
        """Whether a stream callback ``name`` reaches this VM: the module exports it, or the VM
        has failed (Envoy's ``CHECK_FAIL_HTTP`` fails the stream before it looks for the export)."""
        # self.exports(name), without its frame: a body callback asks this for every chunk
        return self.failed is not None or name in self.info.callbacks or name in self.info.entry_points

    # ---- trace --------------------------------------------------------------------------------
    def _make_store(self, opts: dict[str, Any]) -> None:
        """The VM's Store, with the memory cap and the per-callback deadline (epoch ticks)."""
        self._deadline = deadline_ticks(float(opts.get("wasm_callback_deadline_s", 1.0)))
        ensure_epoch_ticker()
        self.seam = self.proxy.wasm.seam
        self.store = wasmtime.Store(engine())
        mem_mb = int(opts.get("wasm_memory_limit_mb", 512))
        self.store.set_limits(memory_size=mem_mb * 1024 * 1024)
        self._set_deadline = self.seam.deadline_setter(self.store)
        # The epoch deadline is re-armed to 1.5x the budget at most every half budget, so a call
        # gets between 1x and 1.5x the budget while most calls skip the C call. The budget is
        # CPU time: when the deadline passes, cpu_deadline asks how much the thread really ran.
        self._deadline_s = float(opts.get("wasm_callback_deadline_s", 1.0))
        self._deadline_armed_at = -1e18
        self._deadline_rearm_s = self._deadline_s / 2
        self._deadline_ticks = max(2, (3 * self._deadline + 1) // 2)
        self._arm_deadline(_monotonic())
        cpu_deadline.install(self.store, self)

    def _arm_deadline(self, now: float) -> None:
        """Give the guest 1.5x its budget from ``now``, counted in this thread's CPU time."""
        self._set_deadline(self._deadline_ticks)
        self._deadline_armed_at = now
        self._cpu_armed_at = _thread_time()
        self._armed_thread = _get_ident()

    def stream_of(self, ctx: Context | None) -> int | None:
        f = ctx.filter if ctx is not None else None
        return f.stream_id if f is not None else None

    # ---- calling the guest ----------------------------------------------------------------------
    def call(self, ctx: Context | None, name: str, *args: int) -> Any:
        """Run a guest export with ``ctx`` as the current context. Returns its result (unsigned),
        or None if the module does not export it. Raises :class:`Trapped` if it trapped, or if
        the VM failed before (checked first: a failed VM may be released, its ``funcs`` empty)."""
        if self.failed is not None:
            raise Trapped(self.failed)
        fn = self.funcs.get(name)
        if fn is None:
            return None
        return self.invoke(fn, ctx, name, args)

    def invoke(self, fn: Callable[..., Any], ctx: Context | None, name: str, args: tuple[int, ...]) -> Any:
        """:meth:`call` with the export already looked up (``self.funcs[name]``)."""
        if self.failed is not None:
            raise Trapped(self.failed)
        depth = self._depth
        if depth or self.rec.enabled:
            return self._invoke_nested_or_traced(fn, ctx, name, args, depth)
        # the hot path: a top-level call with tracing off
        now = _monotonic()
        if now - self._deadline_armed_at >= self._deadline_rearm_s:
            self._arm_deadline(now)
        self.current = self.effective = ctx
        self._depth = 1
        try:
            result = fn(*args)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as e:
            self.deferred.clear()
            self._depth = 0
            self.current = self.effective = None
            self._trapped(name, e, ctx.id if ctx is not None else 0)
            raise Trapped(self.failed or "trap") from None
        finally:
            self._depth = 0
            self.current = self.effective = None
        if self.deferred:
            self._run_deferred()
        return result if result is None else result & 0xFFFFFFFF

    def _run_deferred(self) -> None:
        actions, self.deferred = self.deferred, []
        for action in actions:
            action()

    def _invoke_nested_or_traced(
        self, fn: Callable[..., Any], ctx: Context | None, name: str, args: tuple[int, ...], depth: int
    ) -> Any:
        prev_current = self.current
        prev_effective = self.effective
        self.current = self.effective = ctx
        self._depth = depth + 1
        rec = self.rec.enabled
        if rec:
            # compact events (trace.shapes.CALLBACK): data is the stream id, {"phase", "stream"}
            # when read; the stream is looked up once for both
            stream, cid = self.stream_of(ctx), ctx.id if ctx is not None else 0
            self.rec.emit("callback", name, args, None, stream, self.label, cid, "enter", CALLBACK)
        if depth == 0:
            now = _monotonic()
            if now - self._deadline_armed_at >= self._deadline_rearm_s:
                self._arm_deadline(now)
        try:
            result = fn(*args)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as e:
            if depth == 0:
                self.deferred.clear()
            self._depth = depth
            self.current = prev_current
            self.effective = prev_effective
            self._trapped(name, e, ctx.id if ctx is not None else 0)
            raise Trapped(self.failed or "trap") from None
        finally:
            self._depth = depth
            self.current = prev_current
            self.effective = prev_effective
        if result is not None:
            result &= 0xFFFFFFFF
        if rec:
            self.rec.emit("callback", name, args, result, stream, self.label, cid, "exit", CALLBACK)
        if depth == 0 and self.deferred:
            self._run_deferred()
        return result

    def defer(self, action: Callable[[], None]) -> None:
        """Run ``action`` after the current top-level guest call returns (Envoy's re-entrancy rule)."""
        if self._depth == 0:
            action()
        else:
            self.deferred.append(action)

    def _trapped(self, name: str, error: Exception, cid: int) -> None:
        if self.failed is not None:
            return  # a nested call (the allocator) already trapped and failed this VM
        msg = trap_message(error)
        frames = trap_frames(error)
        self._record("trap", name, {"message": msg, "backtrace": frames}, None, None, context_id=cid)
        text = f"Function: {name} failed: {msg}"
        if frames:
            text += "\nProxy-Wasm plugin in-VM backtrace:\n" + "\n".join(f"  {i}:  {f}" for i, f in enumerate(frames))
        self.proxy.log("error", "wasm", text)
        self.fail(FailState.RUNTIME_ERROR, f"Function: {name} failed: {msg}")

    def fail(self, state: FailState, message: str) -> None:
        if self.failed is None:
            self.failed = state
            self.failed_at_ns = self.proxy.clock.monotonic_ns()
            self._record("vm", "fail", {"state": state.value, "message": message})
            for c in list(self.contexts.values()):
                if isinstance(c, RootContext) and c.tick_timer is not None:
                    c.tick_timer.disable()

    # ---- start -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Run the module's entry points (``_initialize`` + ``main``/``__main_void``, or ``_start``)."""
        for name in self.info.entry_points:
            args = (0, 0) if name == "main" else ()
            self.call(None, name, *args)
        self._record("vm", "start", {"entry_points": list(self.info.entry_points), "role": self.role})

    # ---- memory helpers for host calls ---------------------------------------------------------------
    def alloc(self, size: int) -> int:
        """Allocate ``size`` bytes in the guest with its allocator (runs in the VM context)."""
        return self.call(None, self.info.allocator, size) or 0

    def copy_out(self, data: bytes, ptr_ptr: int, size_ptr: int) -> WasmResult:
        """Hand ``data`` to the guest: allocate, copy, write (ptr, size) to the out-pointers."""
        mem = self.memory
        if not data:
            if ptr_ptr and not mem.write_u32(ptr_ptr, 0):
                return WasmResult.INVALID_MEMORY_ACCESS
            if size_ptr and not mem.write_u32(size_ptr, 0):
                return WasmResult.INVALID_MEMORY_ACCESS
            return WasmResult.OK
        if ptr_ptr == 0 and size_ptr == 0:
            return WasmResult.OK
        p = self.alloc(len(data))
        if p == 0 or not mem.write(p, data):
            return WasmResult.INVALID_MEMORY_ACCESS
        # mem.write_u32, without its frame: this runs for every value a host call hands out
        if not mem.write(ptr_ptr, _u32(p & 0xFFFFFFFF)) or not mem.write(size_ptr, _u32(len(data))):
            return WasmResult.INVALID_MEMORY_ACCESS
        return WasmResult.OK

    # ---- contexts ---------------------------------------------------------------------------------------
    def new_context(self, root: RootContext, plugin: PluginConfig, kind: str, filter: StreamHost) -> Context:
        """A stream context with the VM's next id, registered (Envoy creates a ``Context`` per
        stream, its id from the same counter as root contexts). Every stream makes one: the id,
        the object and the registration in one call."""
        ctx = Context(next(self._next_id), self, root, plugin, kind, filter)
        self.contexts[ctx.id] = ctx
        if self.rec.enabled:
            self._record_create(ctx)
        return ctx

    def add_context(self, ctx: Context) -> None:
        self.contexts[ctx.id] = ctx
        if self.rec.enabled:
            self._record_create(ctx)

    def _record_create(self, ctx: Context) -> None:
        self._record(
            "context",
            "create",
            {"kind": ctx.kind, "plugin": ctx.plugin.name, "parent": ctx.root.id if ctx.root else 0},
            None,
            {"stream": self.stream_of(ctx)} if ctx.filter is not None else None,
            context_id=ctx.id,
        )

    def remove_context(self, ctx: Context) -> None:
        if ctx.deleted:
            return
        ctx.deleted = True
        self.contexts.pop(ctx.id, None)
        if self.rec.enabled:
            self._record("context", "delete", {"kind": ctx.kind}, None, None, context_id=ctx.id)

    @property
    def alive(self) -> bool:
        return self._alive

    def destroy(self) -> None:
        """The VM is gone (Envoy destroys it): its timers stop and its contexts are forgotten."""
        for c in list(self.contexts.values()):
            if isinstance(c, RootContext) and c.tick_timer is not None:
                c.tick_timer.disable()
        if self._alive:
            self._alive = False
            stats = self.proxy.stat_store
            stats.gauge_add(f"wasm.{self.vm_config.runtime}.active", -1)
            stats.gauge_add("wasm.wasm_vm_count", -1)
        self._record("vm", "destroy", {"role": self.role})
        self.release()

    def release(self) -> None:
        """Free the Store now: the instance, its linear memory, the host functions and what
        they hold (this VM among them). Call it on the VM's own thread, or once that thread has
        ended: a Store is never used by two threads. Nothing runs in the VM afterwards: its
        exports are forgotten (every guest call looks its export up in ``funcs``, so a call is
        a no-op instead of a jump into freed memory; a failed VM's calls raise ``Trapped`` even
        before that, and what the module exports is still known from ``info``) and its memory
        reads as empty.
        Inside one of its own guest calls it waits until the call returns."""
        if self.released:
            return
        if self._depth:
            self.deferred.append(self.release)
            return
        self.released = True
        self.funcs = {}
        self.memory = GuestMemory(self.store, None)
        self.seam.close_store(self.store)


def trap_message(error: Exception) -> str:
    """Envoy's (V8's) wording for a trap, e.g. ``Uncaught RuntimeError: unreachable``."""
    code = getattr(error, "trap_code", None)
    name = getattr(code, "name", None)
    v8 = {
        "UNREACHABLE": "Uncaught RuntimeError: unreachable",
        "MEMORY_OUT_OF_BOUNDS": "Uncaught RuntimeError: memory access out of bounds",
        "HEAP_MISALIGNED": "Uncaught RuntimeError: operation does not support unaligned accesses",
        "INTEGER_DIVISION_BY_ZERO": "Uncaught RuntimeError: divide by zero",
        "INTEGER_OVERFLOW": "Uncaught RuntimeError: divide result unrepresentable",
        "BAD_CONVERSION_TO_INTEGER": "Uncaught RuntimeError: float unrepresentable in integer range",
        "STACK_OVERFLOW": "Uncaught RangeError: Maximum call stack size exceeded",
        "INDIRECT_CALL_TO_NULL": "Uncaught RuntimeError: null function or function signature mismatch",
        "BAD_SIGNATURE": "Uncaught RuntimeError: null function or function signature mismatch",
        "TABLE_OUT_OF_BOUNDS": "Uncaught RuntimeError: table index is out of bounds",
        "INTERRUPT": cpu_deadline.DEADLINE_MESSAGE,
    }
    if name in v8:
        return v8[name]
    text = str(error)
    if cpu_deadline.DEADLINE_MESSAGE in text:  # stopped by cpu_deadline (an error, not a Trap)
        return cpu_deadline.DEADLINE_MESSAGE
    for line in text.splitlines():
        if "Caused by" in line:
            continue
        if line.strip() and not line.startswith(" ") and "backtrace" not in line:
            return line.strip()
    return text.splitlines()[-1].strip() if text else "trap"


def trap_frames(error: Exception) -> list[str]:
    frames = getattr(error, "frames", None)
    if frames is None and isinstance(error, wasmtime.WasmtimeError):
        frames = _error_frames(error)  # a deadline stop from cpu_deadline is an error, not a Trap
    frames = frames or []
    out = []
    for f in frames:
        fn = getattr(f, "func_name", None) or f"wasm-function[{getattr(f, 'func_index', '?')}]"
        out.append(f"{getattr(f, 'module_offset', 0):#x} - {fn}")
    return out


def _error_frames(error: wasmtime.WasmtimeError) -> list[Any]:
    """The wasm frames of an error (``wasmtime_error_wasm_trace``), as ``Trap.frames`` reads a
    trap's: the same raw function names. (wasmtime-py has no public call for it.)"""
    from ctypes import byref

    from wasmtime import _ffi
    from wasmtime._trap import Frame, FrameList

    owner = FrameList(error)
    _ffi.wasmtime_error_wasm_trace(error.ptr(), byref(owner.vec))
    return [Frame._from_ptr(owner.vec.data[i], owner) for i in range(owner.vec.size)]
