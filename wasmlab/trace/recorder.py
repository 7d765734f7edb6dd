"""Recorder: the one place every host step is written to, and ``Trace``, the view users read.

Envoy shows its internals through log lines (``--component-log-level wasm:trace``); wasmlab records
structured events instead and renders log lines from them. Recording is a counter increment, a
clock read and one tuple appended to a bounded ring (``collections.deque`` appends are atomic
under the GIL), so it is cheap enough to leave on in lessons. Each thread also keeps the stack of
its open calls (an ``enter`` pushes, its ``exit`` pops), which gives every event its ``parent``;
call sites only say ``data["phase"]`` ("enter"/"exit"). ``trace=False`` turns it off:
``Recorder.enabled`` is then False and hot paths skip building event arguments at all.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .events import Event, close_call, link, unwind_trap

#: per-thread identity, set by each dispatcher thread when it starts
_thread_info = threading.local()


def set_thread_identity(name: str, worker: int | None) -> None:
    _thread_info.ident = (name, worker)


def thread_identity() -> tuple[str, int | None]:
    ident = getattr(_thread_info, "ident", None)
    if ident is None:
        return threading.current_thread().name, None
    return ident


_new_event = tuple.__new__


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
        self._ring: deque[Event] = deque(maxlen=capacity)
        self._subscribers: list[Callable[[Event], None]] = []
        #: lifecycle events (VMs, root contexts, queue registrations, traps), kept through
        #: clear() and ring overflow so views can still tell what exists
        self._state: deque[Event] = deque(maxlen=20_000)
        #: per thread: its identity and the calls open on it (their enter events, innermost
        #: last) — identity fixed at the thread's first event (a dispatcher names its
        #: thread before it runs anything)
        self._calls = threading.local()

    @property
    def capacity(self) -> int:
        return self._ring.maxlen or 0

    def record(
        self,
        kind: str,
        name: str,
        args: Any = None,
        result: Any = None,
        data: Any = None,
        vm: str | None = None,
        context_id: int | None = None,
    ) -> Event | None:
        if not self.enabled:
            return None
        try:
            thread, worker, stack = self._calls.here
        except AttributeError:
            thread, worker, stack = self._calls.here = (*thread_identity(), [])
        phase = data.get("phase") if data.__class__ is dict else None
        if phase == "exit":
            top = stack[-1] if stack else None
            if top is not None and top[7] == name and top[6] == kind:
                stack.pop()
                parent = top[0]
            else:
                parent = close_call(stack, kind, name)
        else:
            parent = stack[-1][0] if stack else None
            if phase is not None and phase != "enter":
                phase = None  # a point event that names its phase ("event")
        seq, t_ns = next(self._seq), self._clock_ns()
        ev = _new_event(
            Event, (seq, t_ns, thread, worker, vm, context_id, kind, name, args, result, data, parent, phase)
        )
        if phase == "enter":
            stack.append(ev)
        self._ring.append(ev)
        if kind in _STATE_KINDS:
            if _is_state(ev):
                self._state.append(ev)
            if kind == "trap":
                unwind_trap(stack, ev)
        if self._subscribers:
            for fn in list(self._subscribers):
                try:
                    fn(ev)
                except Exception:  # a broken view must never break the host
                    pass
        return ev

    def current_stream(self) -> int | None:
        """The stream the innermost open call on this thread works for (``data["stream"]`` of the
        nearest call that names one), or None: what a callout started inside it belongs to."""
        for frame in reversed(getattr(self._calls, "here", ("", None, []))[2]):
            data = frame[10]
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

    def snapshot(self, include_state: bool = False) -> list[Event]:
        """The events in the ring, oldest first. ``include_state`` puts the lifecycle events the
        ring no longer holds (cleared or overwritten) in front, so a layout still knows every VM."""
        events = _copy(self._ring)
        if not include_state:
            return events
        in_ring = {e.seq for e in events}
        return [e for e in _copy(self._state) if e.seq not in in_ring] + events

    def clear(self) -> None:
        self._ring.clear()

    def trace(self) -> Trace:
        return Trace(self.snapshot(), recorder=self)


def _copy(d: deque[Event]) -> list[Event]:
    # list(deque) while another thread appends can raise "deque mutated during iteration"
    for _ in range(100):
        try:
            return list(d)
        except RuntimeError:
            continue
    return list(d.copy())


_STATE_KINDS = frozenset(("vm", "context", "queue", "trap"))


def _is_state(ev: Event) -> bool:
    kind = ev.kind
    if kind == "context":
        return isinstance(ev.args, dict) and ev.args.get("kind") == "root"
    if kind == "queue":
        return ev.name == "register"
    return kind == "vm" or (kind == "trap" and ev.vm is not None)


class Trace:
    """A list of events with the exports DESIGN promises (JSON, text, Envoy log lines)."""

    def __init__(self, events: Iterable[Event], recorder: Recorder | None = None) -> None:
        self.events: list[Event] = list(events)
        self._recorder = recorder

    # sequence protocol
    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, i: int) -> Event:
        return self.events[i]

    def __repr__(self) -> str:
        return f"<Trace {len(self.events)} events>"

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
        out = []
        for ev in self.events:
            if kinds is not None and ev.kind not in kinds:
                continue
            if name is not None and ev.name != name:
                continue
            if thread is not None and ev.thread != thread:
                continue
            if vm is not None and ev.vm != vm:
                continue
            if stream is not None and not (isinstance(ev.data, dict) and ev.data.get("stream") == stream):
                continue
            out.append(ev)
        return Trace(out)

    def names(self) -> list[str]:
        return [ev.name for ev in self.events]

    # exports
    def to_list(self) -> list[dict[str, Any]]:
        return [ev.to_dict() for ev in self.events]

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
