"""What every view derives from one trace event: its lane, the arrow it draws, its stream, a label.

The trace is flat: a callback, the host calls it makes and the log lines they write are separate
events. Envoy's own ``wasm:trace`` output is read the same way — by the order of the lines on one
thread. :class:`Annotator` replays that order with one call stack per thread, so that it knows

* who called whom: ``decode_headers`` enters the Wasm filter, which calls
  ``proxy_on_request_headers`` in VM ``hello_vm#4``, which calls ``env.proxy_log`` back into the
  filter — each step becomes an arrow between two **lanes** (downstream, host, each filter, each
  Wasm VM and Lua state, shared queues, shared data, upstream);
* which **stream** an event belongs to, also when the event itself does not say (a host call
  carries its VM and context id; a queue enqueue happens inside a stream's ``proxy_on_log``);
* which Wasm VM is running on the thread (the producer of an ``enqueue``, the writer of a shared
  data ``set``: those events carry no VM of their own).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..trace import Event

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


def label_of(ev: Event) -> tuple[str, str]:
    """``(label, note)`` for one event. Callbacks and host calls read exactly as Envoy's
    ``--component-log-level wasm:trace`` lines; the note adds what wasmlab knows besides."""
    kind, name, a, d = ev.kind, ev.name, _args(ev), _data(ev)
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
        if name == "local_reply":
            return f"local reply {a.get('status')} ({a.get('details', '')})", ""
        return f"{name}({_kv(a)})", ""
    if kind == "upstream":
        if name == "request":
            return f"upstream {a.get('cluster', '?')}: {a.get('method', '')} {a.get('path', '')}", ""
        if name == "response":
            return f"upstream {a.get('cluster', '?')} answered {a.get('status')}", ""
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
        q = a.get("name") or f"queue {a.get('queue_id', '?')}"
        if name in ("enqueue", "dequeue"):
            return f"{name} {q} → depth {a.get('depth', '?')}", text(a.get("data", ""), 60)
        if name == "register":
            return f"register queue {q} (id {a.get('queue_id')}) of vm_id {a.get('vm_id')}", ""
        if name == "notify":
            return f"notify root {a.get('root')}: queue {a.get('queue_id')} has data", ""
        return f"{name} {_kv(a)}", ""
    if kind == "shared_data":
        extra = d.get("new_cas")
        res = "" if ev.result is None else f" → {ev.result}"
        cas = f" (cas {a.get('cas')}{'→' + str(extra) if extra is not None else ''})"
        return f"shared data {name} {a.get('key', '?')}{cas}{res}", text(a.get("value", ""), 60)
    if kind == "timer":
        return f"↻ {name} root {a.get('root', '?')}", f"period {a.get('period_ms', '?')} ms"
    if kind == "callout":
        if name == "http_request":
            return f"callout → {a.get('cluster', '?')}: {a.get('method', '')} {a.get('path', '')}", ""
        if name == "http_response":
            fail = a.get("failure")
            return f"callout ← {a.get('cluster', '?')}: {a.get('status')}{' ' + str(fail) if fail else ''}", ""
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


class _Frame:
    __slots__ = ("kind", "name", "here", "stream", "vm")

    def __init__(self, kind: str, name: str, here: str, stream: int | None, vm: str | None) -> None:
        self.kind = kind
        self.name = name
        self.here = here  # the lane control is in while this frame is open
        self.stream = stream
        self.vm = vm


class Annotator:
    """Turns events into :class:`Row` s, in order, keeping one call stack per thread."""

    def __init__(self) -> None:
        self.lanes: dict[str, Lane] = {}
        self._stacks: dict[str, list[_Frame]] = {}
        self._ctx_stream: dict[tuple[str, int], int] = {}
        self._vm_info: dict[str, tuple[str, str]] = {}  # vm label -> (thread, role)
        # a callout's answer belongs to the stream that made the call: (thread, cluster) -> streams
        self._callouts: dict[tuple[str, str], list[int | None]] = {}
        # ... and so does the callback it is delivered to (a root context's, right after it)
        self._carry: dict[str, int | None] = {}
        self._index = 0
        for key, label, kind in ((DOWNSTREAM, "downstream", "downstream"), (HOST, "host (HCM)", "host")):
            self.lanes[key] = Lane(key, label, kind)

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

    # ---- the replay -------------------------------------------------------------------------------
    def rows(self, events: Iterable[Event]) -> list[Row]:
        return [self.row(ev) for ev in events]

    def row(self, ev: Event) -> Row:
        stack = self._stacks.setdefault(ev.thread, [])
        top = stack[-1] if stack else None
        d = _data(ev)
        phase = d.get("phase")
        stream = d.get("stream")
        if stream is None and ev.vm is not None and ev.context_id:
            stream = self._ctx_stream.get((ev.vm, ev.context_id))
        if stream is None and top is not None:
            stream = top.stream
        caller = top.here if top is not None else HOST
        kind = ev.kind
        carried = self._carry.pop(ev.thread, None)
        if stream is None and carried is not None and kind == "callback" and phase == "enter":
            stream = carried
        actor = next((f.vm for f in reversed(stack) if f.vm is not None), None)
        lane = src = dst = HOST
        depth = len(stack)

        if kind == "stream":
            lane = DOWNSTREAM if ev.name != "local_reply" else HOST
            if ev.name in ("request", "tcp_connect", "tcp_downstream_data"):
                src, dst = DOWNSTREAM, HOST
            elif ev.name == "local_reply":
                src = dst = HOST
            else:
                src, dst = HOST, DOWNSTREAM
        elif kind == "filter":
            lane = self._filter_lane(ev)
            if phase == "enter":
                src, dst = HOST, lane
                stack.append(_Frame(kind, ev.name, lane, stream, None))
            elif phase == "exit":
                depth = self._pop(stack, kind, ev.name)
                src, dst = lane, HOST
            else:
                src, dst = lane, HOST
        elif kind in ("callback", "hostcall"):
            lane = self._vm_lane(ev.vm or "?", ev.thread)
            host_side = next((f.here for f in reversed(stack) if not f.here.startswith(("vm:", "lua:"))), HOST)
            actor = ev.vm
            if kind == "callback":
                if phase == "exit":
                    depth = self._pop(stack, kind, ev.name)
                    caller = stack[-1].here if stack else HOST
                    src, dst = lane, caller
                else:
                    src, dst = caller, lane
                    stack.append(_Frame(kind, ev.name, lane, stream, ev.vm))
            else:
                if phase == "exit":
                    depth = self._pop(stack, kind, ev.name)
                    src, dst = host_side, lane
                else:
                    src, dst = lane, host_side
                    stack.append(_Frame(kind, ev.name, host_side, stream, ev.vm))
        elif kind == "lua":
            lane = self._lua_lane(ev)
            # a script only ever talks to its own filter (also when resumed from the host)
            flt = d.get("filter")
            host_side = self._lane(f"filter:{flt}", short_filter(str(flt)), "filter", None, "lua") if flt else HOST
            if phase == "enter":
                src, dst = (caller if top is not None else host_side), lane
                stack.append(_Frame(kind, ev.name, lane, stream, None))
            elif phase == "exit":
                depth = self._pop(stack, kind, ev.name)
                src, dst = lane, stack[-1].here if stack else host_side
            else:  # a handle call, a yield, an error: the script talks to its filter
                src, dst = lane, host_side
        elif kind == "vm":
            if is_lua_vm(ev):
                lane = self._lua_lane(ev)
            else:
                if ev.name == "create" and ev.vm is not None:
                    self._vm_info[ev.vm] = (ev.thread, str(_args(ev).get("role", "")))
                lane = self._vm_lane(ev.vm or "?", ev.thread)
            src = dst = lane
        elif kind == "context":
            lane = src = dst = self._vm_lane(ev.vm or "?", ev.thread)
            if ev.name == "create" and d.get("stream") is not None and ev.vm is not None:
                self._ctx_stream[(ev.vm, ev.context_id or 0)] = d["stream"]
            elif ev.name == "delete" and ev.vm is not None:
                self._ctx_stream.pop((ev.vm, ev.context_id or 0), None)
        elif kind == "trap":
            lane = src = dst = (
                self._vm_lane(ev.vm, ev.thread) if ev.vm else self._lua_lane(ev) if "lua" in str(d) else HOST
            )
            self._pop(stack, "callback", ev.name)  # a trapped callback never returns
        elif kind == "queue":
            lane = self._lane(QUEUES, "shared queues", "queues")
            # the VM behind the host call (the producer of an enqueue, the consumer of a dequeue)
            vm_lane = self._vm_lane(ev.vm or actor or "?", ev.thread) if (ev.vm or actor) else caller
            if ev.name in ("register", "enqueue"):
                src, dst = vm_lane, lane
            else:  # notify: to the registrant's root context; dequeue: into the VM draining it
                src, dst = lane, vm_lane
        elif kind == "shared_data":
            lane = self._lane(SHARED_DATA, "shared data", "shared_data")
            src, dst = (self._vm_lane(actor, ev.thread) if actor else caller), lane
        elif kind == "timer":
            lane = self._vm_lane(ev.vm, ev.thread) if ev.vm else caller
            src, dst = HOST, lane
        elif kind in ("callout", "upstream"):
            lane = self._lane(UPSTREAM, "upstream", "upstream")
            if kind == "callout":
                if actor is not None:
                    caller = self._vm_lane(actor, ev.thread)
                key = (ev.thread, str(_args(ev).get("cluster")))
                if ev.name == "http_request":
                    self._callouts.setdefault(key, []).append(stream)
                elif self._callouts.get(key):
                    stream = self._callouts[key].pop(0)
                    self._carry[ev.thread] = stream
            if ev.name.endswith("request"):
                src, dst = caller, lane
            else:
                src, dst = lane, caller
        else:  # log and anything new: a note where control is
            lane = src = dst = caller
        label, note = label_of(ev)
        r = Row(self._index, ev, lane, src, dst, stream, depth, label, note, actor)
        self._index += 1
        return r

    @staticmethod
    def _pop(stack: list[_Frame], kind: str, name: str) -> int:
        """Close the innermost open ``kind name`` (and anything left open inside it); returns the
        depth it was opened at. A trace that starts mid-call (a full ring) just has no frame."""
        for i in range(len(stack) - 1, -1, -1):
            if stack[i].kind == kind and stack[i].name == name:
                del stack[i:]
                return i
        return len(stack)

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
