"""One trace event: every crossing between the host and a filter is one of these.

The schema is DESIGN.md's: ``Event(seq, t_ns, thread, worker, vm, context_id, kind, name, args,
result, data, parent, phase)``. ``thread`` is the dispatcher's name (``main``, ``worker_0``...),
``worker`` its index or None on main, ``vm`` the Wasm VM's id or None, ``kind`` one of
:data:`KINDS`. Stream-level events carry the stream id in ``data["stream"]``.

A call (a filter callback, a Wasm callback or host call, a Lua coroutine run) is two events: its
``enter`` and its ``exit`` (``phase``); everything else is a point event (``phase`` None).
``parent`` is the ``seq`` of the ``enter`` event of the innermost call open on the same thread
when the event happened — for an ``exit``, the call it closes — or None at top level. Envoy has no
such field: its ``wasm:trace`` lines are nested by their order on one thread, which is exactly what
the recorder replays (:func:`link` does the same for traces saved before these fields existed).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

#: every kind an event may have
KINDS = (
    "stream",  # a request/response moving through the HTTP connection manager
    "filter",  # a native, Lua or Wasm filter callback (decode_headers, encode_data...)
    "callback",  # host -> Wasm VM call (proxy_on_request_headers...)
    "hostcall",  # Wasm VM -> host call (proxy_log, proxy_get_header_map_value...)
    "lua",  # Lua handle call, yield, resume
    "vm",  # VM create, start, fail, reload, destroy (Wasm VMs and Lua states)
    "context",  # Proxy-Wasm context create/delete
    "queue",  # shared queue register/enqueue/dequeue/notify
    "timer",  # timer armed/fired (ticks)
    "callout",  # HTTP/gRPC callouts and their responses
    "log",  # a line in the proxy log
    "trap",  # a Wasm trap or Lua error that failed a VM or hook
    "shared_data",  # shared data get/set (CAS)
    "upstream",  # a request handed to an upstream app and its answer
    "config",  # a configuration update (proxy.update): accepted or rejected, old listeners drained
)


class Event(NamedTuple):
    seq: int
    t_ns: int
    thread: str
    worker: int | None
    vm: str | None
    context_id: int | None
    kind: str
    name: str
    args: Any = None
    result: Any = None
    data: Any = None
    parent: int | None = None
    phase: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        return cls._make(d.get(f) for f in cls._fields)

    def __str__(self) -> str:
        from .export import event_text

        return event_text(self)


#: the two phases of a call; any other ``data["phase"]`` (``"event"``) is a point event
PHASES = ("enter", "exit")


#: positions of the fields the call stack reads: the recorder's stack holds raw rows (tuples in
#: ``Event._fields`` order), ``link`` holds events; both index the same way
SEQ, KIND, NAME, DATA = 0, 6, 7, 10


def close_call(stack: list[Any], kind: str, name: str) -> int | None:
    """Pop the innermost open ``kind name`` call (and any call left open inside it: a trap
    unwinds without exits) from a thread's stack of enter events; its ``seq``, or None if it is
    not open."""
    for i in range(len(stack) - 1, -1, -1):
        frame = stack[i]
        if frame[KIND] == kind and frame[NAME] == name:
            del stack[i:]
            return frame[SEQ]
    return None


def unwind_trap(stack: list[Any], name: str) -> None:
    """A trap ends the Wasm callback (or filter callback) ``name`` it happened in, which never
    exits."""
    for kind in ("callback", "filter"):
        if close_call(stack, kind, name) is not None:
            return


def link(events: Iterable[Event]) -> list[Event]:
    """``events`` with ``parent`` and ``phase`` filled in from ``data["phase"]`` and the order of
    events on each thread, as the recorder fills them when recording (for old saved traces and
    traces parsed from Envoy's log). Events that already carry a phase keep their fields."""
    stacks: dict[str, list[Event]] = {}
    out = []
    for ev in events:
        stack = stacks.setdefault(ev.thread, [])
        phase = ev.phase
        if phase is None:
            p = ev.data.get("phase") if isinstance(ev.data, dict) else None
            phase = p if p in PHASES else None
        parent = close_call(stack, ev.kind, ev.name) if phase == "exit" else stack[-1].seq if stack else None
        if ev.phase is None and ev.parent is None and (phase is not None or parent is not None):
            ev = ev._replace(parent=parent, phase=phase)
        if phase == "enter":
            stack.append(ev)
        elif ev.kind == "trap":
            unwind_trap(stack, ev.name)
        out.append(ev)
    return out
