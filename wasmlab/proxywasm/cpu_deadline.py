"""The Wasm callback deadline, counted in the CPU time of the callback's thread.

Envoy sets no deadline on a Wasm callback: a module that loops forever hangs its worker. wasmlab
stops such a callback so the learner's kernel lives (``wasm_callback_deadline_s``, 1 s by default).
The mechanism is wasmtime's epoch interruption: a native ticker advances the engine's epoch every
10 ms (:mod:`.epoch_timer`) and a Store whose deadline has passed stops its guest
(:meth:`~.vm.WasmVm.invoke` arms the deadline at 1.5x the budget, at most every half budget).

Epochs count wall-clock time, and in a Python host a callback's wall time is not the time it ran.
The guest runs without the GIL; every host call it makes needs the GIL back first, and with other
Python threads busy (four workers, sixty-four clients) each of those waits can last a switch
interval (5 ms). Measured here: a WasmService draining its shared queue in one
``proxy_on_queue_ready`` spent 0.77 ms of wall time per record, almost all of it waiting, so 2,000
records (a busy second for four workers) would have "run" for 1.5 s and the service VM was stopped,
losing every record it held. A deadline is meant to catch a runaway loop, which burns CPU.

So the Store does not stop the guest when the epoch deadline passes: wasmtime asks
:func:`_on_deadline` first. It reads the CPU time the thread used since the deadline was armed
(``time.thread_time``, which does not grow while the thread waits for the GIL or the machine) and
lets the guest go on for the CPU time it has left, or stops it with the same message a plain epoch
trap gets. A runaway loop uses CPU as fast as the wall clock runs, so it is stopped after 1x to 1.5x
the budget as before; a callback that waits is not, up to a cap of :data:`WALL_FACTOR` times its
budget in wall-clock time, at least :data:`WALL_FLOOR_S` (a loop of host calls on a busy process
uses little CPU per second).
The CPU counted is the thread's since the deadline was armed, which can include the end of the
callback before (a re-arm happens at most every half budget); a VM called on another thread than
the one that armed it starts counting there, so such a first call may get up to twice the
allowance. Nothing of this runs on the per-call path: the check happens only when a deadline
passes, and the thread's CPU time is read when the deadline is armed.
"""

from __future__ import annotations

import ctypes
import threading
import time
import weakref
from typing import Any, Protocol

import wasmtime
from wasmtime import _bindings as ffi

from .module_cache import EPOCH_TICK_S

#: what a stopped callback reports (the trap message of an expired epoch deadline, too)
DEADLINE_MESSAGE = "wasmlab: callback deadline exceeded (an infinite loop?) — the VM was stopped"

#: wasmtime_update_deadline_kind_t: go on (rather than yield to an async caller)
_CONTINUE = 0
#: when the guest is let go on, the next look is at least this share of the budget away
_MIN_EXTENSION = 0.1
#: however it waits, a callback is stopped after this many times its budget of wall-clock time,
#: and never before WALL_FLOOR_S (a small budget must not stop a callback that only waited)
WALL_FACTOR = 20
WALL_FLOOR_S = 10.0

_thread_time = time.thread_time
_monotonic = time.monotonic
_get_ident = threading.get_ident


class Budgeted(Protocol):
    """What the check reads of a VM: its budget and where the deadline was last armed."""

    _deadline_s: float
    _deadline_armed_at: float  # time.monotonic() when armed
    _cpu_armed_at: float  # the arming thread's time.thread_time() then
    _armed_thread: int


def allowance(budget_s: float) -> float:
    """The CPU time a callback may use after the deadline is armed: 1.5x the budget, matching the
    epoch deadline's 1.5x (the deadline is re-armed at most every half budget, so a callback
    starting just before a re-arm is due still gets the whole budget)."""
    return 1.5 * budget_s


def wall_cap(budget_s: float) -> float:
    """The wall-clock time a callback may take after the deadline is armed, however little CPU it
    uses: a loop of host calls waits for the GIL at every call and burns little CPU while other
    threads are busy (measured: with eight busy threads a 0.1 s budget took 6.25 s of wall time to
    stop one), so CPU time alone would let it hold its worker for minutes."""
    return max(WALL_FACTOR * budget_s, WALL_FLOOR_S)


def decide(vm: Budgeted) -> float | None:
    """Seconds of wall time until the next look, or None to stop the guest now."""
    now_cpu, ident = _thread_time(), _get_ident()
    wall_left = wall_cap(vm._deadline_s) - (_monotonic() - vm._deadline_armed_at)
    if wall_left <= 0:
        return None
    if ident != vm._armed_thread:
        # armed from another thread (a VM set up on main, called on its worker): count from here
        vm._cpu_armed_at, vm._armed_thread = now_cpu, ident
        return min(allowance(vm._deadline_s), wall_left)
    left = allowance(vm._deadline_s) - (now_cpu - vm._cpu_armed_at)
    if left <= 0:
        return None
    return min(max(left, _MIN_EXTENSION * vm._deadline_s), wall_left)


_CALLBACK_TYPE = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ctypes.c_uint8),
)
_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()
# function objects of our own (``dll[name]`` makes a new one each time): setting argtypes or
# restype on ``dll.name`` would change wasmtime-py's own binding for the whole process
_set_callback = ffi.dll["wasmtime_store_epoch_deadline_callback"]
_set_callback.restype = None
_set_callback.argtypes = [ctypes.c_void_p, _CALLBACK_TYPE, ctypes.c_void_p, type(_NO_FINALIZER)]
_error_new = ffi.dll["wasmtime_error_new"]
_error_new.restype = ctypes.c_void_p
_error_new.argtypes = [ctypes.c_char_p]

#: the attribute of a Store holding its callback's ctypes thunk (it must live as long as the Store)
_KEEP = "_wasmlab_cpu_deadline"


def install(store: wasmtime.Store, vm: Budgeted) -> None:
    """Have ``store`` ask :func:`decide` (about ``vm``) before it stops a guest at its deadline."""

    ref = weakref.ref(vm)  # the Store must not keep its VM alive (the VM owns the Store)

    def on_deadline(_ctx: Any, _env: Any, delta: Any, kind: Any) -> int:
        try:
            owner = ref()
            wait = decide(owner) if owner is not None else None
            if wait is not None:
                delta[0] = max(1, int(wait / EPOCH_TICK_S))
                kind[0] = _CONTINUE
                return 0
        except BaseException:  # never unwind into wasmtime; stopping is the safe answer
            pass
        # wasmtime makes this error the call's (a WasmtimeError, not a Trap with code INTERRUPT;
        # vm.trap_message finds the message in its text, vm.trap_frames reads its wasm frames)
        return _error_new(DEADLINE_MESSAGE.encode()) or 0

    thunk = _CALLBACK_TYPE(on_deadline)
    store.__dict__[_KEEP] = thunk
    _set_callback(ctypes.cast(store.ptr(), ctypes.c_void_p), thunk, None, _NO_FINALIZER)
