"""What every view derives from one trace event: its lane, the arrow it draws, its stream, a label.

Every event names the call it happens in (``Event.parent``, the seq of that call's ``enter``; for
an ``exit``, the call it closes) and whether it opens or closes a call (``Event.phase``): the
recorder derived both from the order of events on each thread, as one reads Envoy's ``wasm:trace``
lines. :class:`Annotator` reads those fields — one small function per event kind — to know

* who called whom: ``decode_headers`` enters the Wasm filter, which calls
  ``proxy_on_request_headers`` in VM ``hello_vm#4``, which calls ``env.proxy_log`` back into the
  filter — each step becomes an arrow between two **lanes** (downstream, host, each filter, each
  Wasm VM and Lua state, shared queues, shared data, upstream);
* which **stream** an event belongs to, also when the event itself does not say (a host call
  carries its VM and context id; a queue enqueue happens inside a stream's ``proxy_on_log``; a
  callout's answer names its request, and the callback it is delivered to carries its token);
* which Wasm VM is running (the producer of an ``enqueue``, the writer of a shared data ``set``:
  those events carry no VM of their own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..trace import Event, link

DOWNSTREAM = "downstream"
HOST = "host"
UPSTREAM = "upstream"
QUEUES = "queues"
SHARED_DATA = "shared_data"

#: lane kinds, in the order lanes are drawn left to right
LANE_ORDER = ("downstream", "host", "filter", "wasm", "lua", "shared_data", "queues", "upstream")


@dataclass(frozen=True, slots=True)
class Lane:
    """One swimlane: ``key`` is stable (``vm:hello_vm#4``, ``filter:envoy.filters.http.wasm``,
    ``lua:envoy.filters.http.lua@worker_0``), ``label`` is what the view prints on it."""

    key: str
    label: str
    kind: str
    thread: str | None = None
    detail: str = ""


@dataclass(slots=True)
class Row:
    """One event as the views show it."""

    index: int  # position in the trace
    event: Event
    lane: str  # where it happens (key of a Lane)
    src: str  # the arrow it draws: from lane ...
    dst: str  # ... to lane (src == dst: a note on one lane)
    stream: int | None  # the stream (or TCP connection) it belongs to, derived when not recorded
    depth: int  # nesting on its thread (a host call inside a callback inside a filter call: 2)
    label: str  # one line; Envoy's exact wasm:trace line for callbacks and host calls
    note: str  # extra detail (what a host call read or wrote), may be ""
    actor_vm: str | None  # the Wasm VM running on this thread when the event happened
    here: str = HOST  # for a call's enter: the lane control is in until it exits
    call: int = -1  # for an exit: the index of its enter row; for an enter: its own index
    end: int = -1  # for an enter: the index of its exit row (-1 while open or never closed)

    @property
    def seq(self) -> int:
        return self.event.seq


def is_lua_vm(ev: Event) -> bool:
    """A ``vm`` event about a Lua state (rather than a Wasm VM)."""
    if isinstance(ev.vm, str) and ev.vm.startswith("lua:"):
        return True
    if isinstance(ev.data, dict) and ev.data.get("kind") == "lua":
        return True
    return isinstance(ev.args, dict) and str(ev.args.get("runtime", "")).startswith("lua")


def short_filter(name: str) -> str:
    """``envoy.filters.http.wasm`` -> ``wasm``, ``wasmlab.native.tag_a`` -> ``tag_a`` (a lane's
    header has room for about ten characters); other names stay as they are."""
    for prefix in (
        "envoy.filters.http.",
        "envoy.filters.network.",
        "envoy.extensions.filters.http.",
        "wasmlab.native.",
    ):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def text(v: Any, limit: int = 60) -> str:
    """A short, stable rendering of a value; bytes read as latin-1 so that a trace loaded from
    JSON (where bytes became latin-1 strings) renders exactly like the live one."""
    if isinstance(v, bytes | bytearray):
        v = bytes(v).decode("latin-1")
    s = v if isinstance(v, str) else repr(v)
    s = s.replace("\n", "\\n").replace("\r", "\\r")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _kv(d: dict[str, Any], skip: tuple[str, ...] = (), limit: int = 40) -> str:
    return ", ".join(f"{k}={text(v, limit)}" for k, v in d.items() if k not in skip)


def _arglist(args: Any) -> str:
    if isinstance(args, list | tuple):
        return ", ".join(str(a) for a in args)
    if isinstance(args, dict):
        return _kv(args)
    return "" if args is None else text(args)


def _data(ev: Event) -> dict[str, Any]:
    return ev.data if isinstance(ev.data, dict) else {}


def _args(ev: Event) -> dict[str, Any]:
    return ev.args if isinstance(ev.args, dict) else {}


def _queue(a: dict[str, Any]) -> str:
    return a.get("name") or f"queue {a.get('queue_id', '?')}"


def _request_line(a: dict[str, Any]) -> str:
    return f"{a.get('cluster', '?')}: {a.get('method', '')} {a.get('path', '')}"


def _failure(a: dict[str, Any]) -> str:
    fail = a.get("failure")
    return f" {fail}" if fail else ""


#: the events whose label is one line made of their args, and no note, by (kind, name)
_ONE_LINE: dict[tuple[str, str], Callable[[dict[str, Any]], str]] = {
    ("stream", "local_reply"): lambda a: f"local reply {a.get('status')} ({a.get('details', '')})",
    ("upstream", "request"): lambda a: f"upstream {_request_line(a)}",
    ("upstream", "response"): lambda a: f"upstream {a.get('cluster', '?')} answered {a.get('status')}",
    ("callout", "http_request"): lambda a: f"callout → {_request_line(a)}",
    ("callout", "http_response"): lambda a: f"callout ← {a.get('cluster', '?')}: {a.get('status')}{_failure(a)}",
    ("queue", "register"): lambda a: f"register queue {_queue(a)} (id {a.get('queue_id')}) of vm_id {a.get('vm_id')}",
    ("queue", "notify"): lambda a: f"notify root {a.get('root')}: queue {a.get('queue_id')} has data",
}


def label_of(ev: Event) -> tuple[str, str]:
    """``(label, note)`` for one event. Callbacks and host calls read exactly as Envoy's
    ``--component-log-level wasm:trace`` lines; the note adds what wasmlab knows besides."""
    kind, name, a, d = ev.kind, ev.name, _args(ev), _data(ev)
    one_line = _ONE_LINE.get((kind, name))
    if one_line is not None:
        return one_line(a), ""
    phase = d.get("phase")
    if kind in ("callback", "hostcall"):
        if phase == "exit":
            arrow = "[host<-vm]" if kind == "callback" else "[vm<-host]"
            result = "void" if ev.result is None else ev.result
            detail = d.get("detail")
            note = _kv(detail) if isinstance(detail, dict) else ("" if detail is None else text(detail))
            return f"{arrow} {name} return: {result}", note
        arrow = "[host->vm]" if kind == "callback" else "[vm->host]"
        return f"{arrow} {name}({_arglist(ev.args)})", ""
    if kind == "filter":
        f = short_filter(str(a.get("filter", "?")))
        extra = _kv(a, skip=("filter", "kind"))
        if phase == "exit":
            return f"{f}.{name} → {'void' if ev.result is None else ev.result}", ""
        return f"{f}.{name}({extra})", ""
    if kind == "stream":
        if name == "request":
            return f"request {a.get('method', '')} {a.get('path', '')}".rstrip(), f"listener {d.get('listener', '?')}"
        if name == "response":
            return f"response {a.get('status')} ({a.get('details', '')})", f"{a.get('body_size', 0)} body bytes"
        return f"{name}({_kv(a)})", ""
    if kind == "upstream":
        return f"upstream {name}({_kv(a, skip=('headers',))})", ""
    if kind == "vm":
        role = a.get("role") or d.get("kind") or ""
        what = ev.vm or "?"
        if name == "fail":
            return f"✖ VM {what} failed: {text(a.get('message', ''), 80)}", text(a.get("state", ""))
        if name == "reload":
            return f"VM {what} reloaded (reload #{a.get('reloads', '?')})", ""
        tail = f" ({role})" if role else ""
        return f"VM {what} {name}{tail}", _kv(a, skip=("role", "hooks", "guards"), limit=24)
    if kind == "context":
        return f"context {ev.context_id} {name} ({a.get('kind', '?')})", _kv(a, skip=("kind",))
    if kind == "queue":
        if name in ("enqueue", "dequeue"):
            return f"{name} {_queue(a)} → depth {a.get('depth', '?')}", text(a.get("data", ""), 60)
        return f"{name} {_kv(a)}", ""
    if kind == "shared_data":
        new_cas = d.get("new_cas")
        res = "" if ev.result is None else f" → {ev.result}"
        cas = f" (cas {a.get('cas')}{'→' + str(new_cas) if new_cas is not None else ''})"
        return f"shared data {name} {a.get('key', '?')}{cas}{res}", text(a.get("value", ""), 60)
    if kind == "timer":
        return f"↻ {name} root {a.get('root', '?')}", f"period {a.get('period_ms', '?')} ms"
    if kind == "callout":
        return f"callout {name}({_kv(a, skip=('headers',))})", ""
    if kind == "log":
        return f"[{name}][{a.get('logger', '')}] {text(a.get('message', ''), 100)}", ""
    if kind == "trap":
        return f"✖ trap in {name}: {text(a.get('message', ''), 80)}", " | ".join(map(str, a.get("backtrace") or ()))
    if kind == "lua":
        res = "" if ev.result is None else f" -> {text(ev.result, 30)}"
        if phase == "exit":
            return f"lua {name} returned{res}", ""
        return f"lua {name}({_arglist(ev.args)}){res}", text(d.get("error", ""))
    res = "" if ev.result is None else f" -> {text(ev.result, 30)}"
    return f"{kind} {name}({_arglist(ev.args)}){res}", ""


#: callbacks that deliver a callout's answer: their second argument is the call's token
CALLOUT_CALLBACKS = frozenset(
    (
        "proxy_on_http_call_response",
        "proxy_on_grpc_receive_initial_metadata",
        "proxy_on_grpc_receive",
        "proxy_on_grpc_receive_trailing_metadata",
        "proxy_on_grpc_close",
    )
)


@dataclass(slots=True)
class _At:
    """Where an event happens, read from its parent: what every kind's function starts from."""

    ev: Event
    opener: Row | None  # for an exit: the row of the enter it closes
    outer: Row | None  # the row of the call enclosing the event (for an exit: enclosing its call)
    caller: str  # the lane control was in when the event (or its call) began
    stream: int | None
    actor: str | None  # the Wasm VM running
    depth: int


class Annotator:
    """Turns events into :class:`Row` s, in order, reading each event's parent and phase."""

    def __init__(self) -> None:
        self.lanes: dict[str, Lane] = {}
        self._by_seq: dict[int, Row] = {}
        self._ctx_stream: dict[tuple[str, int], int] = {}
        self._vm_info: dict[str, tuple[str, str]] = {}  # vm label -> (thread, role)
        self._token_stream: dict[tuple[str | None, int], int | None] = {}  # (vm, callout token) -> stream
        self._rows: list[Row] = []
        for key, label, kind in ((DOWNSTREAM, "downstream", "downstream"), (HOST, "host (HCM)", "host")):
            self.lanes[key] = Lane(key, label, kind)
        self._kind_fns = {
            "stream": self._stream,
            "filter": self._filter,
            "callback": self._callback,
            "hostcall": self._hostcall,
            "lua": self._lua,
            "vm": self._vm,
            "context": self._context,
            "trap": self._trap,
            "queue": self._queue,
            "shared_data": self._shared_data,
            "timer": self._timer,
            "callout": self._callout,
            "upstream": self._upstream,
        }

    # ---- lanes ------------------------------------------------------------------------------------
    def _lane(self, key: str, label: str, kind: str, thread: str | None = None, detail: str = "") -> str:
        if key not in self.lanes:
            self.lanes[key] = Lane(key, label, kind, thread, detail)
        return key

    def _filter_lane(self, ev: Event) -> str:
        a = _args(ev)
        name = str(a.get("filter", "?"))
        fkind = str(a.get("kind", "native"))
        return self._lane(f"filter:{name}", short_filter(name), "filter", None, fkind)

    def _vm_lane(self, vm: str, thread: str) -> str:
        thread_, role = self._vm_info.get(vm, (thread, ""))
        label = f"{vm} · {thread_}" + (f" · {role}" if role else "")
        return self._lane(f"vm:{vm}", label, "wasm", thread_, role)

    def _lua_lane(self, ev: Event) -> str:
        """One lane per Lua filter per thread (Envoy: one state per script per worker; a filter
        with per-route scripts has several states, which share the lane)."""
        d, a = _data(ev), _args(ev)
        flt = str(d.get("filter") or a.get("filter") or "lua")
        short = short_filter(flt)
        label = f"Lua state · {ev.thread}" if short == "lua" else f"Lua {short} · {ev.thread}"
        return self._lane(f"lua:{flt}@{ev.thread}", label, "lua", ev.thread, "lua")

    def _host_side(self, row: Row | None) -> str:
        """The innermost lane outside any VM or Lua state: where a host call is answered."""
        while row is not None:
            if not row.here.startswith(("vm:", "lua:")):
                return row.here
            row = self._by_seq.get(row.event.parent) if row.event.parent is not None else None
        return HOST

    # ---- the replay -------------------------------------------------------------------------------
    def rows(self, events: Iterable[Event]) -> list[Row]:
        return [self.row(ev) for ev in link(events)]

    def _where(self, ev: Event) -> _At:
        by_seq = self._by_seq
        near = by_seq.get(ev.parent) if ev.parent is not None else None
        opener = near if ev.phase == "exit" else None
        outer = near if opener is None else by_seq.get(opener.event.parent) if opener.event.parent else None
        stream = _data(ev).get("stream")
        if stream is None and ev.vm is not None and ev.context_id:
            stream = self._ctx_stream.get((ev.vm, ev.context_id))
        if stream is None and near is not None:
            stream = near.stream
        caller = outer.here if outer is not None else HOST
        actor = near.actor_vm if near is not None else None
        depth = opener.depth if opener is not None else outer.depth + 1 if outer is not None else 0
        return _At(ev, opener, outer, caller, stream, actor, depth)

    def row(self, ev: Event) -> Row:
        at = self._where(ev)
        fn = self._kind_fns.get(ev.kind, self._note)
        lane, src, dst, here = fn(at)
        label, note = label_of(ev)
        index = len(self._rows)
        r = Row(index, ev, lane, src, dst, at.stream, at.depth, label, note, at.actor, here)
        if ev.phase == "enter":
            r.call = index
            self._by_seq[ev.seq] = r
        elif at.opener is not None:
            r.call = at.opener.index
            at.opener.end = index
        elif ev.kind == "callout":
            self._by_seq[ev.seq] = r  # its answer names it
        self._rows.append(r)
        return r

    # ---- one function per kind: each returns (lane, src, dst, here) -------------------------------
    def _note(self, at: _At) -> tuple[str, str, str, str]:
        """A log line and anything new: a note where control is."""
        return at.caller, at.caller, at.caller, at.caller

    def _stream(self, at: _At) -> tuple[str, str, str, str]:
        name = at.ev.name
        if name == "local_reply":
            return HOST, HOST, HOST, HOST
        if name in ("request", "tcp_connect", "tcp_downstream_data"):
            return DOWNSTREAM, DOWNSTREAM, HOST, HOST
        return DOWNSTREAM, HOST, DOWNSTREAM, HOST

    def _filter(self, at: _At) -> tuple[str, str, str, str]:
        lane = self._filter_lane(at.ev)
        if at.ev.phase == "enter":
            return lane, at.caller, lane, lane
        return lane, lane, at.caller, at.caller

    def _callback(self, at: _At) -> tuple[str, str, str, str]:
        ev = at.ev
        lane = self._vm_lane(ev.vm or "?", ev.thread)
        at.actor = ev.vm
        if ev.phase == "exit":
            return lane, lane, at.caller, lane
        token = ev.args[1] if ev.name in CALLOUT_CALLBACKS and isinstance(ev.args, list | tuple) else None
        if at.stream is None and token is not None:
            at.stream = self._token_stream.get((ev.vm, token))
        return lane, at.caller, lane, lane

    def _hostcall(self, at: _At) -> tuple[str, str, str, str]:
        ev = at.ev
        lane = self._vm_lane(ev.vm or "?", ev.thread)
        at.actor = ev.vm
        host_side = self._host_side(at.outer)
        if ev.phase == "exit":
            return lane, host_side, lane, host_side
        return lane, lane, host_side, host_side

    def _lua(self, at: _At) -> tuple[str, str, str, str]:
        """A script only ever talks to its own filter (also when resumed from the host)."""
        ev = at.ev
        lane = self._lua_lane(ev)
        flt = _data(ev).get("filter")
        host_side = self._lane(f"filter:{flt}", short_filter(str(flt)), "filter", None, "lua") if flt else HOST
        back = at.caller if at.outer is not None else host_side
        if ev.phase == "enter":
            return lane, back, lane, lane
        if ev.phase == "exit":
            return lane, lane, back, lane
        return lane, lane, host_side, lane  # a handle call, a yield, an error

    def _vm(self, at: _At) -> tuple[str, str, str, str]:
        ev = at.ev
        if is_lua_vm(ev):
            lane = self._lua_lane(ev)
        else:
            if ev.name == "create" and ev.vm is not None:
                self._vm_info[ev.vm] = (ev.thread, str(_args(ev).get("role", "")))
            lane = self._vm_lane(ev.vm or "?", ev.thread)
        return lane, lane, lane, lane

    def _context(self, at: _At) -> tuple[str, str, str, str]:
        ev = at.ev
        lane = self._vm_lane(ev.vm or "?", ev.thread)
        stream = _data(ev).get("stream")
        if ev.name == "create" and stream is not None and ev.vm is not None:
            self._ctx_stream[(ev.vm, ev.context_id or 0)] = stream
        elif ev.name == "delete" and ev.vm is not None:
            self._ctx_stream.pop((ev.vm, ev.context_id or 0), None)
        return lane, lane, lane, lane

    def _trap(self, at: _At) -> tuple[str, str, str, str]:
        ev = at.ev
        lane = self._vm_lane(ev.vm, ev.thread) if ev.vm else self._lua_lane(ev) if "lua" in str(ev.data) else HOST
        return lane, lane, lane, lane

    def _queue(self, at: _At) -> tuple[str, str, str, str]:
        ev = at.ev
        lane = self._lane(QUEUES, "shared queues", "queues")
        # the VM behind the host call (the producer of an enqueue, the consumer of a dequeue)
        vm = ev.vm or at.actor
        vm_lane = self._vm_lane(vm, ev.thread) if vm else at.caller
        if ev.name in ("register", "enqueue"):
            return lane, vm_lane, lane, at.caller
        return lane, lane, vm_lane, at.caller  # notify: to the registrant; dequeue: into the VM

    def _shared_data(self, at: _At) -> tuple[str, str, str, str]:
        lane = self._lane(SHARED_DATA, "shared data", "shared_data")
        src = self._vm_lane(at.actor, at.ev.thread) if at.actor else at.caller
        return lane, src, lane, at.caller

    def _timer(self, at: _At) -> tuple[str, str, str, str]:
        ev = at.ev
        lane = self._vm_lane(ev.vm, ev.thread) if ev.vm else at.caller
        return lane, HOST, lane, at.caller

    def _upstream(self, at: _At) -> tuple[str, str, str, str]:
        lane = self._lane(UPSTREAM, "upstream", "upstream")
        if at.ev.name.endswith("request"):
            return lane, at.caller, lane, at.caller
        return lane, lane, at.caller, at.caller

    def _callout(self, at: _At) -> tuple[str, str, str, str]:
        """A request leaves from the VM (or Lua state's filter) that made it; its answer (and a
        timeout) names the request (``data["request"]``) and goes back to the same lane, on the
        request's stream; the token lets the callback that gets the answer find the stream too."""
        ev, d = at.ev, _data(at.ev)
        lane = self._lane(UPSTREAM, "upstream", "upstream")
        if ev.name.endswith("request"):
            src = self._vm_lane(at.actor, ev.thread) if at.actor is not None else at.caller
            if d.get("token") is not None:
                self._token_stream[(at.actor, d["token"])] = at.stream
            return lane, src, lane, src
        request = self._by_seq.get(d["request"]) if d.get("request") is not None else None
        if request is None:
            return lane, lane, at.caller, at.caller
        if at.stream is None:
            at.stream = request.stream
        at.actor = request.actor_vm
        return lane, lane, request.src, request.src

    def ordered_lanes(self, used: set[str] | None = None) -> list[Lane]:
        """Lanes left to right: downstream, host, filters, Wasm VMs and Lua states (main thread
        first, then by worker), shared data, queues, upstream."""

        def thread_rank(t: str | None) -> tuple[int, int]:
            if t is None or t == "main":
                return (0, 0)
            if t.startswith("worker_") and t[7:].isdigit():
                return (1, int(t[7:]))
            return (2, 0)

        order = {k: i for i, k in enumerate(LANE_ORDER)}
        lanes = [ln for ln in self.lanes.values() if used is None or ln.key in used]
        first = {ln.key: i for i, ln in enumerate(self.lanes.values())}
        lanes.sort(
            key=lambda ln: (
                order.get("wasm" if ln.kind == "lua" else ln.kind, 9),
                thread_rank(ln.thread) if ln.kind in ("wasm", "lua") else (0, 0),
                first[ln.key],
            )
        )
        return lanes


def annotate(events: Iterable[Event]) -> tuple[list[Row], list[Lane]]:
    """Rows for ``events`` and the lanes they use, left to right."""
    a = Annotator()
    rows = a.rows(events)
    used = {DOWNSTREAM, HOST}
    for r in rows:
        used.update((r.lane, r.src, r.dst))
    return rows, a.ordered_lanes(used)
