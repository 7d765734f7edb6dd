"""The queue flow: workers' filters enqueueing into shared queues (per vm_id and name), the queues
filling and draining, ``on_queue_ready`` delivered to the WasmService that registered the queue on
the main thread, timer ticks, and shared-data values changing (the rate limiter's bucket) —
replayed step by step in the browser.

Envoy (and wasmlab): a queue is process-wide, keyed by (vm_id, name); ``proxy_enqueue_shared_queue``
from any thread appends and posts ``on_queue_ready`` to the dispatcher of the last registrant;
the registrant drains it with ``proxy_dequeue_shared_queue`` until it answers EMPTY.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import traitlets as t

from ..trace import Event
from .annotate import text
from .layout_draw import value_display
from .render import FILL, PALETTE, Svg
from .widget import View, event_dict, static


@dataclass
class FlowStep:
    """One thing that moved: ``kind`` is register, enqueue, notify, ready (on_queue_ready
    delivered), dequeue, tick or set (shared data)."""

    seq: int
    thread: str
    kind: str
    vm: str | None  # the VM that acted (producer, consumer, registrant, ticking root, writer)
    queue: int = -1  # index into QueueFlowModel.queues
    key: int = -1  # index into QueueFlowModel.keys
    depth: int | None = None
    text: str = ""
    ok: bool = True
    event_index: int = -1
    note: str = ""


@dataclass
class QueueInfo:
    vm_id: str
    name: str
    queue_id: int | None
    registrant: str | None = None
    thread: str | None = None


@dataclass
class ActorInfo:
    vm: str
    thread: str
    roles: set[str] = field(default_factory=set)  # producer / consumer / ticker / writer


class QueueFlowModel:
    """The steps of a trace's queue and shared-data traffic, and the state after any step."""

    def __init__(self, events: Iterable[Event]) -> None:
        self.events: list[Event] = list(events)
        self.steps: list[FlowStep] = []
        self.queues: list[QueueInfo] = []
        self.keys: list[tuple[str, str]] = []  # (vm_id, key)
        self.actors: dict[str, ActorInfo] = {}
        self._build()

    def _queue(self, vm_id: str, name: str, qid: Any) -> int:
        for i, q in enumerate(self.queues):
            if (q.vm_id, q.name) == (vm_id, name) or (qid is not None and q.queue_id == qid and not name):
                return i
        self.queues.append(QueueInfo(vm_id, name, qid))
        return len(self.queues) - 1

    def _actor(self, vm: str | None, thread: str, role: str) -> None:
        if vm is None:
            return
        a = self.actors.setdefault(vm, ActorInfo(vm, thread))
        a.roles.add(role)

    def _build(self) -> None:
        running: dict[str, str] = {}  # thread -> the VM it is in
        by_qid: dict[int, int] = {}
        for i, ev in enumerate(self.events):
            kind, a = ev.kind, ev.args if isinstance(ev.args, dict) else {}
            d = ev.data if isinstance(ev.data, dict) else {}
            if kind in ("callback", "hostcall") and ev.vm is not None:
                running[ev.thread] = ev.vm
                if kind == "callback" and ev.name == "proxy_on_queue_ready" and d.get("phase") == "enter":
                    args = ev.args if isinstance(ev.args, list | tuple) else []
                    qi = by_qid.get(args[1], -1) if len(args) > 1 else -1
                    self.steps.append(FlowStep(ev.seq, ev.thread, "ready", ev.vm, qi, event_index=i))
                    self._actor(ev.vm, ev.thread, "consumer")
                continue
            actor = running.get(ev.thread)
            if kind == "queue":
                qid = a.get("queue_id")
                if "name" in a:
                    qi = self._queue(str(a.get("vm_id", "")), str(a["name"]), qid)
                else:
                    qi = by_qid.get(qid, -1) if isinstance(qid, int) else -1
                if isinstance(qid, int) and qi >= 0:
                    by_qid[qid] = qi
                who = ev.vm or actor
                if ev.name == "register" and qi >= 0:
                    self.queues[qi].registrant, self.queues[qi].thread = ev.vm, ev.thread
                    self.queues[qi].queue_id = qid
                    self._actor(ev.vm, ev.thread, "consumer")
                elif ev.name == "enqueue":
                    self._actor(who, ev.thread, "producer")
                elif ev.name == "dequeue":
                    self._actor(who, ev.thread, "consumer")
                self.steps.append(
                    FlowStep(
                        ev.seq, ev.thread, ev.name, who, qi, -1, a.get("depth"), text(a.get("data", ""), 40), True, i
                    )
                )
            elif kind == "timer" and ev.name == "tick":
                self._actor(ev.vm, ev.thread, "ticker")
                period = f"every {a.get('period_ms')} ms"
                self.steps.append(FlowStep(ev.seq, ev.thread, "tick", ev.vm, text=period, event_index=i))
            elif kind == "shared_data" and ev.name == "set":
                key = (str(a.get("vm_id", "")), str(a.get("key", "")))
                if key not in self.keys:
                    self.keys.append(key)
                ok = ev.result in (None, "OK", 0)
                self._actor(actor, ev.thread, "writer")
                value = text(a.get("value", ""), 64)
                note = f"cas {a.get('cas')}→{d.get('new_cas')}" if ok else f"✖ {ev.result} (cas {a.get('cas')})"
                new_cas = d.get("new_cas") if ok else None
                self.steps.append(
                    FlowStep(ev.seq, ev.thread, "set", actor, -1, self.keys.index(key), new_cas, value, ok, i, note)
                )

    # ---- state after a step ---------------------------------------------------------------------------
    def state(self, upto: int | None = None) -> dict[str, Any]:
        """Counters after step ``upto`` (inclusive; None = all): per queue its messages waiting,
        enqueued/dequeued/notified counts; per VM what it did; per shared key its value and cas."""
        end = len(self.steps) if upto is None else min(len(self.steps), upto + 1)
        queues = [{"waiting": [], "enqueued": 0, "dequeued": 0, "ready": 0, "max_depth": 0} for _ in self.queues]
        vms: dict[str, dict[str, int]] = {}
        shared: list[dict[str, Any]] = [{"value": None, "cas": None, "sets": 0, "failed": 0} for _ in self.keys]
        for s in self.steps[:end]:
            c = vms.setdefault(s.vm or s.thread, {"enqueue": 0, "dequeue": 0, "ready": 0, "tick": 0, "set": 0})
            if s.kind in c:
                c[s.kind] += 1
            if s.queue >= 0:
                q = queues[s.queue]
                if s.kind == "enqueue":
                    q["enqueued"] += 1
                    q["waiting"].append(s.text)
                elif s.kind == "dequeue":
                    q["dequeued"] += 1
                    if q["waiting"]:
                        q["waiting"].pop(0)
                elif s.kind == "ready":
                    q["ready"] += 1
                q["max_depth"] = max(q["max_depth"], len(q["waiting"]))
            if s.key >= 0:
                sh = shared[s.key]
                if s.ok:
                    sh["value"], sh["cas"] = s.text, s.depth
                    sh["sets"] += 1
                else:
                    sh["failed"] += 1
        return {"queues": queues, "vms": vms, "shared": shared}

    def text(self) -> str:
        st = self.state()
        lines = [f"Queue flow: {len(self.steps)} steps"]
        for q, s in zip(self.queues, st["queues"], strict=True):
            lines.append(
                f"  queue {q.name} (vm_id {q.vm_id}, id {q.queue_id}) registered by {q.registrant} on {q.thread}: "
                f"{s['enqueued']} enqueued, {s['dequeued']} dequeued, {s['ready']} on_queue_ready, "
                f"{len(s['waiting'])} waiting (max {s['max_depth']})"
            )
        for vm, c in st["vms"].items():
            did = ", ".join(f"{k} ×{v}" for k, v in c.items() if v)
            thread = self.actors[vm].thread if vm in self.actors else vm
            lines.append(f"  {vm} ({thread}): {did}")
        for (vm_id, key), s in zip(self.keys, st["shared"], strict=True):
            failed = f", {s['failed']} CAS mismatches" if s["failed"] else ""
            lines.append(
                f"  shared data {key} (vm_id {vm_id}) = {value_display(s['value'] or '')} "
                f"cas {s['cas']} after {s['sets']} sets{failed}"
            )
        if not self.steps:
            lines.append("  (no shared queues, ticks or shared data in this trace)")
        return "\n".join(lines)

    def svg(self) -> str:
        """Producers → queues → consumers with the final counts, and the shared-data values."""
        st = self.state()
        svg = Svg()
        producers = [a for a in self.actors.values() if "producer" in a.roles]
        consumers = [a for a in self.actors.values() if a.roles & {"consumer", "ticker"}]
        writers = [a for a in self.actors.values() if "writer" in a.roles]
        svg.text(10, 16, "producers (enqueue)", size=12, font_weight="bold")
        svg.text(300, 16, "shared queues", size=12, font_weight="bold")
        svg.text(590, 16, "consumers (main thread)", size=12, font_weight="bold")
        y_of: dict[str, float] = {}
        y = 28.0
        for a in producers:
            n = st["vms"].get(a.vm, {}).get("enqueue", 0)
            _w, h = svg.box(f"p-{a.vm}", "producer", 10, y, [f"{a.vm}", f"{a.thread} · enqueue ×{n}"], FILL["wasm"])
            y_of[a.vm] = y + h / 2
            y += h + 8
        yq = 28.0
        q_y = []
        for q, s in zip(self.queues, st["queues"], strict=True):
            lines = [f"queue {q.name}", f"vm_id {q.vm_id}", f"{s['enqueued']} in · {s['dequeued']} out"]
            _w, h = svg.box(f"q-{q.name}", "queue", 300, yq, lines, FILL["queue"], PALETTE["orange"], min_w=190)
            q_y.append(yq + h / 2)
            yq += h + 8
        yc = 28.0
        for a in consumers:
            c = st["vms"].get(a.vm, {})
            lines = [a.vm, f"{a.thread} · on_queue_ready ×{c.get('ready', 0)}", f"dequeue ×{c.get('dequeue', 0)}"]
            if c.get("tick"):
                lines.append(f"↻ ticks ×{c['tick']}")
            _w, h = svg.box(f"c-{a.vm}", "consumer", 590, yc, lines, FILL["wasm"], PALETTE["blue"])
            for qy in q_y:
                svg.edge(490, qy, 588, yc + h / 2, "ready", None, "", PALETTE["blue"], True, 1.5)
            yc += h + 8
        for a in producers:
            for qy in q_y:
                svg.edge(200, y_of[a.vm], 298, qy, "enqueue", None, "", PALETTE["orange"], True, 1.5)
        ys = max(y, yq, yc) + 16
        if self.keys:
            svg.text(10, ys, "shared data (CAS)", size=12, font_weight="bold")
            ys += 8
            for (vm_id, key), s in zip(self.keys, st["shared"], strict=True):
                lines = [
                    f"{key} (vm_id {vm_id})",
                    f"= {value_display(s['value'] or '')}",
                    f"cas {s['cas']} · {s['sets']} sets" + (f" · ✖ {s['failed']} mismatches" if s["failed"] else ""),
                ]
                _w, h = svg.box(f"sd-{key}", "shared", 10, ys, lines, FILL["shared"], "#8A7F00")
                ys += h + 8
            if writers:
                svg.text(10, ys + 10, "written by " + ", ".join(f"{a.vm} ({a.thread})" for a in writers), size=10)
        if not self.steps:
            svg.text(10, 40, "no shared queues, ticks or shared data in this trace", size=11)
        return svg.done("queue flow")


class QueueFlowView(View):
    """Shared queues and shared data, replayed (step / scrub / play in the browser)."""

    _esm = static("common.js", "queue_flow.js")

    queues = t.List().tag(sync=True)
    shared_keys = t.List().tag(sync=True)
    actors = t.List().tag(sync=True)
    steps = t.Dict().tag(sync=True)
    step = t.Int(-1).tag(sync=True)
    speed = t.Float(4.0).tag(sync=True)

    def __init__(self, events: Iterable[Event], title: str = "queue flow") -> None:
        self.model = QueueFlowModel(events)
        m = self.model
        actor_index = {vm: i for i, vm in enumerate(m.actors)}
        cols: dict[str, list[Any]] = {
            k: [] for k in ("seq", "thread", "kind", "actor", "queue", "key", "depth", "text", "ok", "note", "ev")
        }
        for s in m.steps:
            cols["seq"].append(s.seq)
            cols["thread"].append(s.thread)
            cols["kind"].append(s.kind)
            cols["actor"].append(actor_index.get(s.vm or "", -1))
            cols["queue"].append(s.queue)
            cols["key"].append(s.key)
            cols["depth"].append(s.depth)
            cols["text"].append(s.text)
            cols["ok"].append(1 if s.ok else 0)
            cols["note"].append(s.note)
            cols["ev"].append(s.event_index)
        super().__init__(
            title=title,
            queues=[
                {
                    "vm_id": q.vm_id,
                    "name": q.name,
                    "queue_id": q.queue_id,
                    "registrant": q.registrant,
                    "thread": q.thread,
                }
                for q in m.queues
            ],
            shared_keys=[{"vm_id": v, "key": k} for v, k in m.keys],
            actors=[{"vm": a.vm, "thread": a.thread, "roles": sorted(a.roles)} for a in m.actors.values()],
            steps=cols,
            step=len(m.steps) - 1,
            note=f"{len(m.steps)} steps, {len(m.queues)} queues, {len(m.keys)} shared-data keys",
        )

    def state(self) -> dict[str, Any]:
        """The state the browser shows at ``step``."""
        return self.model.state(self.step if self.step >= 0 else None)

    def details(self, index: int) -> dict[str, Any] | None:
        if not 0 <= index < len(self.model.steps):
            return None
        s = self.model.steps[index]
        return event_dict(self.model.events[s.event_index]) if s.event_index >= 0 else None

    def text(self) -> str:
        return self.model.text()

    def svg(self) -> str | None:
        return self.model.svg()
