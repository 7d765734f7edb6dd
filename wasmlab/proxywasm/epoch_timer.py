"""The epoch ticker behind the Wasm callback deadline, driven by a kernel timer instead of a
Python thread.

wasmtime's epoch interruption traps a guest once the engine's epoch passes the Store's deadline;
something must advance the epoch on time. A Python thread that sleeps 10 ms and calls
``increment_epoch`` needs the GIL for every tick, and with 8 Python threads busy it got it so late
that a 1 s deadline fired after 10-13 s (measured: 12.7 s). Envoy's V8/wasmtime hosts have no
GIL to wait for.

So on Linux the ticks come from a POSIX timer with ``SIGEV_THREAD`` notification: glibc calls a C
function on its own thread at every expiry, and the function is wasmtime's
``wasmtime_engine_increment_epoch`` itself (documented safe from any thread), with the engine as
its one pointer argument (``union sigval`` is passed like a pointer on LP64 Linux). No Python code
runs per tick, so the deadline holds whatever Python does: measured here, a 1 s deadline fires
after 1.5 s (the Store's 1.5x budget, see ``vm.py``) with 0 or 8 busy Python threads. Elsewhere,
or if the timer cannot be made, the Python thread remains.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import sys
from typing import Any

_SIGEV_THREAD = 2
_CLOCK_MONOTONIC = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class _SigevThread(ctypes.Structure):
    _fields_ = [("function", ctypes.c_void_p), ("attribute", ctypes.c_void_p)]


class _SigevUnion(ctypes.Union):
    _fields_ = [("pad", ctypes.c_int * 12), ("tid", ctypes.c_int), ("thread", _SigevThread)]


class _Sigevent(ctypes.Structure):
    """glibc's ``struct sigevent`` on LP64 Linux (64 bytes)."""

    _fields_ = [
        ("value", ctypes.c_void_p),
        ("signo", ctypes.c_int),
        ("notify", ctypes.c_int),
        ("un", _SigevUnion),
    ]


#: kept alive for the life of the process
_keep: list[Any] = []


def start_native_ticker(engine: Any, period_s: float) -> bool:
    """Advance ``engine``'s epoch every ``period_s`` from a kernel timer; False if not possible."""
    if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
        return False
    try:
        from wasmtime import _ffi

        increment = _ffi.dll.wasmtime_engine_increment_epoch
        fn_addr = ctypes.cast(increment, ctypes.c_void_p).value
        # the timer gets its own reference to the engine, never released: Python may free its
        # Engine at exit while a tick is in flight (a use after free, measured as a segfault)
        clone = _ffi.dll.wasmtime_engine_clone
        clone.restype = ctypes.c_void_p
        clone.argtypes = [ctypes.c_void_p]
        engine_ptr = clone(ctypes.cast(engine.ptr(), ctypes.c_void_p).value)
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        timer_create = libc.timer_create
        timer_settime = libc.timer_settime
    except (AttributeError, OSError, ImportError):
        return False
    if not fn_addr or not engine_ptr:
        return False
    ev = _Sigevent()
    ev.value = engine_ptr
    ev.notify = _SIGEV_THREAD
    ev.un.thread.function = fn_addr
    timer = ctypes.c_void_p()
    if timer_create(_CLOCK_MONOTONIC, ctypes.byref(ev), ctypes.byref(timer)) != 0:
        return False
    sec = int(period_s)
    nsec = round((period_s - sec) * 1e9)
    spec = _Itimerspec(_Timespec(sec, nsec), _Timespec(sec, nsec))
    if timer_settime(timer, 0, ctypes.byref(spec), None) != 0:
        libc.timer_delete(timer)
        return False
    _keep.extend([timer, ev, spec])
    atexit.register(libc.timer_delete, timer)
    return True
