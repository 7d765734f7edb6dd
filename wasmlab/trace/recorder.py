"""Recorder: the one place every host step is written to, and ``Trace``, the view users read.

Envoy shows its internals through log lines (``--component-log-level wasm:trace``); wasmlab records
structured events instead and renders log lines from them. Recording is a counter increment, a
clock read and one tuple of fields copied into a bounded ring (:mod:`.ring`: the events are kept
flat, not as objects, so that the garbage collector never walks them); ``Event`` objects are built
when the trace is read. Each thread also keeps the stack of its open calls (an ``enter`` pushes,
its ``exit`` pops), which gives every event its ``parent``; call sites only say
``data["phase"]`` ("enter"/"exit"). The hottest call sites (filter callbacks, Wasm callbacks and
host calls) use :meth:`Recorder.emit` with compact values instead of dicts (:mod:`.shapes`: the
dicts are built when read). ``trace=False`` turns it off: ``Recorder.enabled`` is then False and
hot paths skip building event arguments at all.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

from .events import DATA, Event, close_call, link, unwind_trap
from .ring import EventRing
from .shapes import SHAPE, expand, freeze

#: per-thread identity, set by each dispatcher thread when it starts
_thread_info = threading.local()


def set_thread_identity(name: str, worker: int | None) -> None:
    _thread_info.ident = (name, worker)


def thread_identity() -> tuple[str, int | None]:
    ident = getattr(_thread_info, "ident", None)
    if ident is None:
        return threading.current_thread().name, None
    return ident


#: a row (a plain tuple of the 13 fields) -> an Event, without Event.__new__'s argument parsing
#: (``record`` calls ``tuple.__new__(Event, row)`` itself: the partial costs one more call)
as_event: Callable[[tuple[Any, ...]], Event] = partial(tuple.__new__, Event)
_new_event = tuple.__new__

#: the bottom of every thread's call stack: a row that is no call (its seq, the parent of a
#: top-level event, is None), so the hot path never checks for an empty stack
_NO_CALL: tuple[Any, ...] = (None,) * 14


DEFAULT_CAPACITY = 200_000


class Recorder:
    """Thread-safe bounded event ring."""

    def __init__(
        self,
        clock_ns: Callable[[], int],
        enabled: bool = True,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self.enabled = enabled
        self._clock_ns = clock_ns
        self._seq = itertools.count(1)
        self._ring = EventRing(capacity)
        self._chunk_events = self._ring.chunk_events
        self._subscribers: list[Callable[[Event], None]] = []
        #: lifecycle events (VMs, root contexts, queue registrations, traps), kept through
        #: clear() and ring overflow so views can still tell what exists
        self._state: deque[Event] = deque(maxlen=20_000)
        #: per thread: its identity and the calls open on it (their rows, innermost last) —
        #: identity fixed at the thread's first event (a dispatcher names its thread before it
        #: runs anything)
        self._calls = threading.local()

    @property
    def capacity(self) -> int:
        return self._ring.capacity

    def record(
        self,
        kind: str,
        name: str,
        args: Any = None,
        result: Any = None,
        data: Any = None,
        vm: str | None = None,
        context_id: int | None = None,
        *,
        event: bool = True,
    ) -> Event | None:
        """Record one event and return it (None when tracing is off).

        A call names its phase in ``data["phase"]`` ("enter"/"exit"; anything else is a point
        event). ``event=False`` returns None instead: building the returned ``Event`` is the
        largest part of what recording costs once the ring keeps rows, so a call site that ignores
        the result can skip it (views and traces still get every event in full)."""
        if not self.enabled:
            return None
        phase = data.get("phase") if data.__class__ is dict else None
        if phase is not None and phase != "enter" and phase != "exit":
            phase = None  # a point event that names its phase ("event")
        kept_args, kept_data, shape = freeze(args, data)
        row = self.emit(kind, name, kept_args, result, kept_data, vm, context_id, phase, shape)
        if not event and kind not in _STATE_KINDS:
            return None
        ev = _new_event(Event, (*row[:8], args, result, data, row[11], row[12]))
        if kind in _STATE_KINDS:
            self._lifecycle(ev, self._calls.here[2])
        return ev if event else None

    def emit(
        self,
        kind: str,
        name: str,
        args: Any,
        result: Any,
        data: Any,
        vm: str | None,
        context_id: int | None,
        phase: str | None,
        shape: int | None,
    ) -> tuple[Any, ...]:
        """The hot path under :meth:`record`: the caller checked ``enabled``, names the phase
        (``"enter"``, ``"exit"`` or None) and may give compact ``args``/``data`` with a
        :mod:`.shapes` number (built into dicts when read). Returns the ring row (14 fields).
        Lifecycle events (vm, context, queue, trap, config) go through :meth:`record`."""
        try:
            thread, worker, stack = self._calls.here
        except AttributeError:
            thread, worker, stack = self._calls.here = (*thread_identity(), [_NO_CALL])
        # parent: the innermost open call on this thread (an exit closes its own);
        # stack rows index as Event fields: 0 seq, 6 kind, 7 name
        top = stack[-1]
        if phase != "exit":
            parent = top[0]
        elif top[7] == name and top[6] == kind:
            stack.pop()
            parent = top[0]
        else:
            parent = close_call(stack, kind, name)
        seq = next(self._seq)
        t_ns = self._clock_ns()
        row = (seq, t_ns, thread, worker, vm, context_id, kind, name, args, result, data, parent, phase, shape)
        # into the ring (see ring.py: kept flat, so the garbage collector never walks it)
        self._ring.put(row)
        if not seq % self._chunk_events:
            self._ring.rotate()
        if phase == "enter":
            stack.append(row)
        if self._subscribers:
            self._publish(_new_event(Event, expand(row)))
        return row

    def _lifecycle(self, ev: Event, stack: list[tuple[Any, ...]]) -> None:
        """A VM, context, queue or trap event: keep it through clear() if it tells what exists; a
        trap ends the callback it happened in."""
        if _is_state(ev):
            self._state.append(ev)
        if ev.kind == "trap":
            unwind_trap(stack, ev.name)

    def _publish(self, ev: Event) -> None:
        for fn in list(self._subscribers):
            try:
                fn(ev)
            except Exception:  # a broken view must never break the host
                pass

    def current_stream(self) -> int | None:
        """The stream the innermost open call on this thread works for (``data["stream"]`` of the
        nearest call that names one), or None: what a callout started inside it belongs to."""
        for frame in reversed(getattr(self._calls, "here", ("", None, [_NO_CALL]))[2]):
            data = expand(frame)[DATA]
            if data.__class__ is dict and data.get("stream") is not None:
                return data["stream"]
        return None

    def subscribe(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``fn(event)`` for every new event (on the recording thread); returns unsubscribe."""
        self._subscribers.append(fn)

        def unsubscribe() -> None:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

        return unsubscribe

    def rows(self) -> list[tuple[Any, ...]]:
        """The events in the ring as rows (plain tuples in ``Event._fields`` order), oldest first."""
        return [r[:SHAPE] if r[SHAPE] is None else expand(r) for r in self._ring.rows()]

    def snapshot(self, include_state: bool = False) -> list[Event]:
        """The events in the ring, oldest first. ``include_state`` puts the lifecycle events the
        ring no longer holds (cleared or overwritten) in front, so a layout still knows every VM."""
        events = list(map(as_event, self.rows()))
        if not include_state:
            return events
        in_ring = {e.seq for e in events}
        return [e for e in _copy(self._state) if e.seq not in in_ring] + events

    def clear(self) -> None:
        self._ring.clear()

    def trace(self) -> Trace:
        """The events in the ring as a :class:`Trace` (its ``Event`` objects are built on first read)."""
        return Trace.from_rows(self.rows(), recorder=self)


def _copy(d: deque[Event]) -> list[Event]:
    # list(deque) while another thread appends can raise "deque mutated during iteration"
    for _ in range(100):
        try:
            return list(d)
        except RuntimeError:
            continue
    return list(d.copy())


_STATE_KINDS = frozenset(("vm", "context", "queue", "trap", "config"))


def _is_state(row: tuple[Any, ...]) -> bool:
    """Whether a vm/context/queue/trap/config row tells what exists (rows index as Event fields);
    configuration updates are kept so the layout still knows its generations after clear()."""
    kind = row[6]
    if kind == "context":
        args = row[8]
        return isinstance(args, dict) and args.get("kind") == "root"
    if kind == "queue":
        return row[7] == "register"
    return kind in ("vm", "config") or (kind == "trap" and row[4] is not None)


class Trace:
    """A list of events with the exports DESIGN promises (JSON, text, Envoy log lines).

    A trace read from the recorder holds rows (plain tuples, as the ring keeps them) and builds
    its ``Event`` objects the first time they are read: ``len``, ``filter`` and ``names`` work on
    the rows, so narrowing a large trace before reading it never builds the events it drops."""

    def __init__(self, events: Iterable[Event], recorder: Recorder | None = None) -> None:
        self._events: list[Event] | None = list(events)
        self._rows: Sequence[tuple[Any, ...]] = self._events
        self._recorder = recorder

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[Any, ...]], recorder: Recorder | None = None) -> Trace:
        """A trace over rows (tuples in ``Event._fields`` order); events are built when read."""
        trace = cls((), recorder)
        trace._rows, trace._events = rows, None
        return trace

    @property
    def events(self) -> list[Event]:
        if self._events is None:
            self._events = list(map(as_event, self._rows))
            self._rows = self._events
        return self._events

    @events.setter
    def events(self, events: list[Event]) -> None:
        self._events = list(events)
        self._rows = self._events

    # sequence protocol
    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> Event:
        return self.events[i]

    def __repr__(self) -> str:
        return f"<Trace {len(self._rows)} events>"

    def clear(self) -> None:
        """Forget recorded events (the live recorder too)."""
        self.events = []
        if self._recorder is not None:
            self._recorder.clear()

    def filter(
        self,
        kind: str | Iterable[str] | None = None,
        name: str | None = None,
        thread: str | None = None,
        stream: int | None = None,
        vm: str | None = None,
    ) -> Trace:
        kinds = {kind} if isinstance(kind, str) else set(kind) if kind is not None else None
        out: list[tuple[Any, ...]] = []
        # rows and events index alike: (seq, t_ns, thread, worker, vm, context_id, kind, name,
        # args, result, data, ...)
        for row in self._rows:
            if kinds is not None and row[6] not in kinds:
                continue
            if name is not None and row[7] != name:
                continue
            if thread is not None and row[2] != thread:
                continue
            if vm is not None and row[4] != vm:
                continue
            if stream is not None:
                data = row[DATA]
                if not (isinstance(data, dict) and data.get("stream") == stream):
                    continue
            out.append(row)
        if self._events is None:
            return Trace.from_rows(out)
        return Trace(cast(list[Event], out))  # already events: keep them

    def names(self) -> list[str]:
        return [row[7] for row in self._rows]

    # exports
    def to_list(self) -> list[dict[str, Any]]:
        fields = Event._fields
        return [dict(zip(fields, row, strict=True)) for row in self._rows]  # Event.to_dict, from rows

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_list(), indent=indent, default=_json_default)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(self.to_json())
        return p

    @classmethod
    def from_json(cls, text: str) -> Trace:
        """A saved trace; one saved before events had ``parent``/``phase`` gets them derived."""
        dicts = json.loads(text)
        events = [Event.from_dict(d) for d in dicts]
        if dicts and "phase" not in dicts[0]:
            events = link(events)
        return cls(events)

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        return cls.from_json(Path(path).read_text())

    def text(self) -> str:
        from .export import event_text

        return "\n".join(event_text(ev) for ev in self.events)

    def envoy_lines(self, thread: str | None = None) -> list[str]:
        from .export import envoy_lines

        return envoy_lines(self.events, thread)

    def mermaid(self) -> str:
        from .export import mermaid

        return mermaid(self.events)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return value.decode("latin-1")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return repr(value)
