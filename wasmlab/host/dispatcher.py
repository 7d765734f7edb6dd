"""Dispatcher: one event loop per thread, as every Envoy thread runs one.

Envoy's main thread and each worker thread run a libevent loop (``Event::Dispatcher``): other
threads never touch a worker's state, they ``post()`` a task to it; timers belong to the thread
that created them. wasmlab does the same with a Python thread per dispatcher, a task queue and a
timer heap.

Clocks: ``RealClock`` is the machine's clock; ``VirtualClock`` stands still until
``Proxy.advance(seconds)`` moves it, which fires due timers on their own threads one at a time in
(due time, arming order), so tick-driven lessons and tests are deterministic.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from ..trace import set_thread_identity


def run_guarded(fn: Callable[..., Any], args: tuple[Any, ...], on_error: Callable[[BaseException], None]) -> None:
    """Run one task of a stream or connection: a Python exception from it (a bug in the host) goes
    to ``on_error``, which logs it and ends what the task belonged to, instead of unwinding the
    worker's loop and leaving the stream hanging."""
    try:
        fn(*args)
    except BaseException as e:  # SystemExit from a filter or an app must not end the thread either
        on_error(e)


class RealClock:
    virtual = False
    # the builtins themselves, not functions calling them: the recorder reads the clock for
    # every trace event
    monotonic_ns = staticmethod(time.monotonic_ns)
    wall_ns = staticmethod(time.time_ns)


class VirtualClock:
    """A clock that only moves when told to (``Proxy.advance``)."""

    virtual = True

    def __init__(self) -> None:
        self._now = 0
        self._wall0 = time.time_ns()

    def monotonic_ns(self) -> int:
        return self._now

    def wall_ns(self) -> int:
        return self._wall0 + self._now

    def set(self, now_ns: int) -> None:
        if now_ns > self._now:
            self._now = now_ns


Clock = RealClock | VirtualClock

_timer_seq = itertools.count(1)
#: the farthest a timer may be armed (Envoy's Duration bound, ~292 years): a longer one is as good
#: as never and must not overflow the loop's arithmetic
_MAX_TIMER_S = 9_223_372_035.0


class Timer:
    """A one-shot timer owned by one dispatcher (Envoy ``Event::Timer``). Re-enable to repeat."""

    __slots__ = ("_dispatcher", "_callback", "_generation", "due_ns", "name")

    def __init__(self, dispatcher: Dispatcher, callback: Callable[[], None], name: str) -> None:
        self._dispatcher = dispatcher
        self._callback = callback
        self._generation = 0
        self.due_ns: int | None = None
        self.name = name

    def enable(self, seconds: float) -> None:
        """Fire once after ``seconds`` (on the owning dispatcher's thread)."""
        self._generation += 1
        if not seconds < _MAX_TIMER_S:  # also inf and nan: "never", as far as a run can see
            seconds = _MAX_TIMER_S
        self.due_ns = self._dispatcher.clock.monotonic_ns() + int(max(0.0, seconds) * 1e9)
        self._dispatcher._arm(self)

    def enable_ms(self, ms: float) -> None:
        self.enable(ms / 1000.0)

    def disable(self) -> None:
        self._generation += 1
        self.due_ns = None

    @property
    def enabled(self) -> bool:
        return self.due_ns is not None


def _peek(counter: itertools.count[int]) -> int:
    """The next value of ``counter`` without advancing it (its pickle state is ``(count, (n,))``)."""
    state = counter.__reduce__()
    assert isinstance(state, tuple)
    return int(state[1][0])


class Activity:
    """Counts work in flight (posted tasks, upstream calls) so callers can wait for quiet.

    Two ``itertools.count`` objects (``next()`` is atomic under the GIL) keep the hot path free of
    locks; ``wait_idle`` polls, which only tests and the virtual clock do."""

    def __init__(self) -> None:
        self._begun = itertools.count()
        self._ended = itertools.count()
        self.begin = self._begun.__next__
        self.end = self._ended.__next__

    @property
    def busy(self) -> int:
        # ``ended`` first: a task posts its follow-up work (begin) before it ends, so reading
        # ``begun`` first could miss a follow-up posted in between and call a busy proxy idle
        # (seen: a WasmService tick ran before the queue_ready tasks the workers had posted)
        ended = _peek(self._ended)
        return _peek(self._begun) - ended

    def wait_idle(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0002
        while self.busy > 0:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.005)
        return True


_STOP = object()
#: C stack of every dispatcher thread. Lua hooks run here, and LuaJIT recurses on the C stack when
#: a C function calls back into Lua (``string.gsub`` with a function replacement calling itself):
#: it stops at its own Lua stack limit ("stack overflow", an ordinary Lua error) only if the C
#: stack holds out that long. Measured here: 8 (the default), 16, 32, 48 and 64 MiB segfault the
#: whole process; 96 MiB is the first that gives the clean error. Pages are only used when
#: touched, so the headroom costs address space, not memory.
THREAD_STACK_BYTES = 128 * 1024 * 1024
#: ``threading.stack_size`` is process-wide: set it only around our own ``Thread.start``
_STACK_SIZE_LOCK = threading.Lock()
#: the longest the loop sleeps before it looks at its timers again
_MAX_SLEEP_S = 3600.0


class Dispatcher:
    """An event loop on its own thread: posted tasks first in, first out, plus timers."""

    def __init__(
        self,
        name: str,
        worker: int | None,
        clock: Clock,
        activity: Activity | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self.name = name
        self.worker = worker
        self.clock = clock
        self._activity = activity or Activity()
        self._on_error = on_error
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._heap: list[tuple[int, int, int, Timer]] = []
        self._heap_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ident: int | None = None
        self._after: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._stopped = False
        #: per-thread slots (Envoy ThreadLocal): filter configs keep worker state here
        self.slots: dict[Any, Any] = {}

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name=self.name, daemon=True)
        with _STACK_SIZE_LOCK:
            previous = threading.stack_size(THREAD_STACK_BYTES)
            try:
                self._thread.start()
            finally:
                threading.stack_size(previous)
        ready.wait()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None or self._stopped:
            return
        self._stopped = True
        self._queue.put(_STOP)
        if threading.get_ident() != self._ident:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopped

    @property
    def ended(self) -> bool:
        """Its thread never started or has finished (nothing can run on it any more)."""
        return self._thread is None or not self._thread.is_alive()

    def is_current(self) -> bool:
        return threading.get_ident() == self._ident

    # ---- tasks ---------------------------------------------------------------------------
    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` later on this dispatcher's thread (never inline)."""
        self._activity.begin()
        self._queue.put((fn, args))

    def after_task(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on this thread right after the task running now (cheaper than post)."""
        self._after.append((fn, args))

    def run_sync(self, fn: Callable[..., Any], *args: Any, timeout: float | None = 30.0) -> Any:
        """Run ``fn(*args)`` on this thread and return its result (inline if already here)."""
        if self.is_current():
            return fn(*args)
        done = threading.Event()
        box: list[Any] = [None, None]

        def task() -> None:
            try:
                box[0] = fn(*args)
            except BaseException as e:  # handed back to the caller
                box[1] = e
            finally:
                done.set()

        self.post(task)
        if not done.wait(timeout):
            raise TimeoutError(f"{self.name} did not finish {getattr(fn, '__name__', fn)} in {timeout}s")
        if box[1] is not None:
            raise box[1]
        return box[0]

    # ---- timers --------------------------------------------------------------------------
    def create_timer(self, callback: Callable[[], None], name: str = "timer") -> Timer:
        return Timer(self, callback, name)

    def _arm(self, timer: Timer) -> None:
        assert timer.due_ns is not None
        with self._heap_lock:
            heapq.heappush(self._heap, (timer.due_ns, next(_timer_seq), timer._generation, timer))
        if not self.clock.virtual and not self.is_current():
            self._queue.put(None)  # wake the loop so it recomputes its sleep

    def next_timer(self) -> tuple[int, int] | None:
        """(due_ns, seq) of the earliest live timer, for the virtual clock driver."""
        with self._heap_lock:
            while self._heap:
                due, seq, gen, timer = self._heap[0]
                if gen != timer._generation:
                    heapq.heappop(self._heap)
                    continue
                return due, seq
        return None

    def fire_due_timers(self) -> int:
        """Fire every timer due now (on this thread). Returns how many fired."""
        now = self.clock.monotonic_ns()
        fired = 0
        while True:
            with self._heap_lock:
                if not self._heap:
                    break
                due, _seq, gen, timer = self._heap[0]
                if gen != timer._generation:
                    heapq.heappop(self._heap)
                    continue
                if due > now:
                    break
                heapq.heappop(self._heap)
            timer.due_ns = None
            timer._generation += 1
            fired += 1
            self._safely(timer._callback, ())
            while self._after:
                after, self._after = self._after, []
                for afn, aargs in after:
                    self._safely(afn, aargs)
        return fired

    # ---- loop ----------------------------------------------------------------------------
    def _run(self, ready: threading.Event) -> None:
        self._ident = threading.get_ident()
        set_thread_identity(self.name, self.worker)
        ready.set()
        q = self._queue
        virtual = self.clock.virtual
        while True:
            timeout = None
            if not virtual:
                nxt = self.next_timer()
                if nxt is not None:
                    # a far timer (a route timeout of years) wakes the loop once an hour to look
                    # again: Queue.get refuses a timeout past threading.TIMEOUT_MAX (OverflowError)
                    timeout = min(_MAX_SLEEP_S, max(0.0, (nxt[0] - self.clock.monotonic_ns()) / 1e9))
            try:
                item = q.get(timeout=timeout) if timeout != 0.0 else q.get_nowait()
            except queue.Empty:
                item = None
            except Exception as e:  # never let the loop itself end the thread
                self._report(e)
                item = None
            if item is _STOP:
                break
            if item is not None:
                fn, args = item
                try:
                    self._safely(fn, args)
                    while self._after:
                        after, self._after = self._after, []
                        for afn, aargs in after:
                            self._safely(afn, aargs)
                finally:
                    self._activity.end()
                # while it waits for the next task the loop holds nothing of the last one
                # (a bound method of the proxy would keep a dropped proxy alive)
                item = fn = args = None
            if not virtual:
                self.fire_due_timers()
        # drain what was posted before stop so waiters are released
        while True:
            try:
                item = q.get_nowait()
            except queue.Empty:
                break
            if item is not None and item is not _STOP:
                self._activity.end()

    def _safely(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Run one task or timer callback. An exception from it is reported (Envoy logs
        "unhandled exception" and would abort; wasmlab keeps the thread serving): the loop must
        outlive any task, or every later request on this worker would wait for a dead thread."""
        try:
            fn(*args)
        except BaseException as e:  # a host bug (or a SystemExit in a filter) must not kill the thread
            self._report(e)

    def _report(self, e: BaseException) -> None:
        try:
            if self._on_error is not None:
                self._on_error(self.name, e)
            else:
                traceback.print_exception(e)
        except Exception:  # the reporter itself failed: print, never die
            traceback.print_exc()
