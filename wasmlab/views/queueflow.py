"""The queue flow: workers' filters enqueueing into shared queues (per vm_id and name), the queues
filling and draining, ``on_queue_ready`` delivered to the WasmService that registered the queue on
the main thread, timer ticks, and shared-data values changing (the rate limiter's bucket) —
replayed step by step in the browser.

Envoy (and wasmlab): a queue is process-wide, keyed by (vm_id, name); ``proxy_enqueue_shared_queue``
from any thread appends and posts ``on_queue_ready`` to the dispatcher of the last registrant;
the registrant drains it with ``proxy_dequeue_shared_queue`` until it answers EMPTY. Shared data
is process-wide too: ``proxy_get_shared_data`` reads a key's value and CAS on any thread (the rate
limiter reads its bucket on every request and answers 429 itself, with
``proxy_send_local_response``, when the bucket is empty); ``proxy_set_shared_data`` with a stale
CAS fails with CAS_MISMATCH.

The view is laid out like Envoy's threading diagram: worker threads on the left, the
process-wide queues and shared data in the middle, the main thread on the right; each VM sits
under the thread it runs on, whatever it does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import traitlets as t

from ..trace import Event
from .annotate import text
from .layout_draw import value_display
from .render import FILL, PALETTE, Svg, text_width
from .widget import View, event_dict, static


@dataclass
class FlowStep:
    """One thing that moved: ``kind`` is register, enqueue, notify, ready (on_queue_ready
    delivered), dequeue, tick, set / get (shared data) or reply (a local response the VM sent
    itself, e.g. the rate limiter's 429: ``key`` is the shared-data key it read last)."""

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
    roles: set[str] = field(default_factory=set)  # producer / consumer / registrant / ticker / writer / reader


class QueueFlowModel:
    """The steps of a trace's queue and shared-data traffic, and the state after any step."""

    def __init__(self, events: Iterable[Event]) -> None:
        self.events: list[Event] = list(events)
        self.steps: list[FlowStep] = []
        self.queues: list[QueueInfo] = []
        self.keys: list[tuple[str, str]] = []  # (vm_id, key)
        self.actors: dict[str, ActorInfo] = {}
        self._registrants: dict[int, list[str | None]] = {}
        self._last_read: dict[str, int] = {}  # VM -> the shared-data key it read last
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
            a = ev.args if isinstance(ev.args, dict) else {}
            if ev.kind in ("callback", "hostcall") and ev.vm is not None:
                running[ev.thread] = ev.vm
                self._call(i, ev, by_qid)
            elif ev.kind == "queue":
                self._queue_step(i, ev, a, by_qid, running.get(ev.thread))
            elif ev.kind == "timer" and ev.name == "tick":
                self._actor(ev.vm, ev.thread, "ticker")
                period = f"every {a.get('period_ms')} ms"
                self.steps.append(FlowStep(ev.seq, ev.thread, "tick", ev.vm, text=period, event_index=i))
            elif ev.kind == "shared_data" and ev.name == "set":
                self._set_step(i, ev, a, running.get(ev.thread))
        self._drop_replaced_registrants()

    def _key(self, vm_id: str, key: str) -> int:
        if (vm_id, key) not in self.keys:
            self.keys.append((vm_id, key))
        return self.keys.index((vm_id, key))

    def _call(self, i: int, ev: Event, by_qid: dict[int, int]) -> None:
        """Steps a callback or host call makes: on_queue_ready delivered, a shared-data read,
        a local reply (the rate limiter's 429)."""
        d = ev.data if isinstance(ev.data, dict) else {}
        phase = d.get("phase")
        if ev.kind == "callback" and ev.name == "proxy_on_queue_ready" and phase == "enter":
            args = ev.args if isinstance(ev.args, list | tuple) else []
            qi = by_qid.get(args[1], -1) if len(args) > 1 else -1
            self.steps.append(FlowStep(ev.seq, ev.thread, "ready", ev.vm, qi, event_index=i))
            self._actor(ev.vm, ev.thread, "consumer")
            return
        if ev.kind != "hostcall" or phase != "exit":
            return
        raw_detail = d.get("detail")
        detail: dict[str, Any] = raw_detail if isinstance(raw_detail, dict) else {}
        name = ev.name.rsplit(".", 1)[-1]
        if name == "proxy_get_shared_data" and "key" in detail:
            known = [i for i, (_, k) in enumerate(self.keys) if k == str(detail["key"])]
            ki = known[0] if known else self._key(self._vm_id_of(ev.vm), str(detail["key"]))
            ok = ev.result in (None, 0, "OK")
            note = f"cas {detail.get('cas')}" if ok else f"✖ {ev.result} (not found)"
            self._actor(ev.vm, ev.thread, "reader")
            self._last_read[ev.vm or ev.thread] = ki
            self.steps.append(FlowStep(ev.seq, ev.thread, "get", ev.vm, -1, ki, detail.get("cas"), "", ok, i, note))
        elif name == "proxy_send_local_response" and ev.vm in self._last_read:
            status = detail.get("status")
            ki = self._last_read[ev.vm]
            ok = not (isinstance(status, int) and status >= 400)
            note = f"{status} {detail.get('details', '')}".strip()
            self._actor(ev.vm, ev.thread, "reader")
            self.steps.append(FlowStep(ev.seq, ev.thread, "reply", ev.vm, -1, ki, status, "", ok, i, note))

    @staticmethod
    def _vm_id_of(vm: str | None) -> str:
        """A key's vm_id when a read comes before any write (the read does not say it): the
        reading VM's name is its vm_id (``rate_limiter#4`` -> ``rate_limiter``)."""
        return (vm or "").split("#", 1)[0]

    def _queue_step(self, i: int, ev: Event, a: dict[str, Any], by_qid: dict[int, int], actor: str | None) -> None:
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
            self._registrants.setdefault(qi, []).append(ev.vm)
            self._actor(ev.vm, ev.thread, "registrant")
        elif ev.name == "enqueue":
            self._actor(who, ev.thread, "producer")
        elif ev.name == "dequeue":
            self._actor(who, ev.thread, "consumer")
        self.steps.append(
            FlowStep(ev.seq, ev.thread, ev.name, who, qi, -1, a.get("depth"), text(a.get("data", ""), 40), True, i)
        )

    def _set_step(self, i: int, ev: Event, a: dict[str, Any], actor: str | None) -> None:
        d = ev.data if isinstance(ev.data, dict) else {}
        ki = self._key(str(a.get("vm_id", "")), str(a.get("key", "")))
        ok = ev.result in (None, "OK", 0)
        self._actor(actor, ev.thread, "writer")
        value = text(a.get("value", ""), 64)
        note = f"cas {a.get('cas')}→{d.get('new_cas')}" if ok else f"✖ {ev.result} (cas {a.get('cas')})"
        new_cas = d.get("new_cas") if ok else None
        self.steps.append(FlowStep(ev.seq, ev.thread, "set", actor, -1, ki, new_cas, value, ok, i, note))

    def _drop_replaced_registrants(self) -> None:
        """A VM that registered a queue and was replaced as its registrant (the canary, before
        the service VM registered the same queue) never gets on_queue_ready: not a consumer."""
        for qi, regs in self._registrants.items():
            last = self.queues[qi].registrant
            for vm in regs:
                a = self.actors.get(vm or "")
                if vm != last and a is not None and a.roles == {"registrant"}:
                    del self.actors[vm]  # type: ignore[arg-type]

    # ---- state after a step ---------------------------------------------------------------------------
    def state(self, upto: int | None = None) -> dict[str, Any]:
        """Counters after step ``upto`` (inclusive; None = all): per queue its messages waiting,
        enqueued/dequeued/notified counts; per VM what it did; per shared key its value, cas,
        sets, reads and the denials (4xx local replies) that followed a read."""
        end = len(self.steps) if upto is None else min(len(self.steps), upto + 1)
        queues = [{"waiting": [], "enqueued": 0, "dequeued": 0, "ready": 0, "max_depth": 0} for _ in self.queues]
        vms: dict[str, dict[str, int]] = {}
        shared: list[dict[str, Any]] = [
            {"value": None, "cas": None, "sets": 0, "failed": 0, "reads": 0, "denied": 0} for _ in self.keys
        ]
        for s in self.steps[:end]:
            c = vms.setdefault(
                s.vm or s.thread, {"enqueue": 0, "dequeue": 0, "ready": 0, "tick": 0, "set": 0, "get": 0, "denied": 0}
            )
            if s.kind in c:
                c[s.kind] += 1
            if s.kind == "reply" and not s.ok:
                c["denied"] += 1
            if s.queue >= 0:
                self._queue_state(queues[s.queue], s)
            if s.key >= 0:
                sh = shared[s.key]
                if s.kind == "set" and s.ok:
                    sh["value"], sh["cas"] = s.text, s.depth
                    sh["sets"] += 1
                elif s.kind == "set":
                    sh["failed"] += 1
                elif s.kind == "get":
                    sh["reads"] += 1
                elif s.kind == "reply" and not s.ok:
                    sh["denied"] += 1
        return {"queues": queues, "vms": vms, "shared": shared}

    @staticmethod
    def _queue_state(q: dict[str, Any], s: FlowStep) -> None:
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
            if vm not in self.actors:
                continue  # a replaced registrant (the canary): it never got on_queue_ready
            did = ", ".join(f"{k} ×{v}" for k, v in c.items() if v)
            lines.append(f"  {vm} ({self.actors[vm].thread}): {did}")
        for (vm_id, key), s in zip(self.keys, st["shared"], strict=True):
            failed = f", {s['failed']} CAS mismatches" if s["failed"] else ""
            denied = f", {s['denied']} requests denied after reading it" if s["denied"] else ""
            lines.append(
                f"  shared data {key} (vm_id {vm_id}) = {value_display(s['value'] or '')} "
                f"cas {s['cas']} after {s['sets']} sets, {s['reads']} reads{failed}{denied}"
            )
        if not self.steps:
            lines.append("  (no shared queues, ticks or shared data in this trace)")
        return "\n".join(lines)

    def actor_lines(self, a: ActorInfo, c: dict[str, int]) -> list[str]:
        """A VM's box: its name, thread and what it did so far."""
        lines = [a.vm, a.thread]
        did = {
            "producer": f"enqueue ×{c.get('enqueue', 0)}",
            "consumer": f"on_queue_ready ×{c.get('ready', 0)} · dequeue ×{c.get('dequeue', 0)}",
            "registrant": "registered a queue",
            "ticker": f"↻ ticks ×{c.get('tick', 0)}",
            "writer": f"shared-data set ×{c.get('set', 0)}",
            "reader": f"shared-data get ×{c.get('get', 0)}" + (f" · ✖ {c['denied']} denied" if c.get("denied") else ""),
        }
        lines += [did[r] for r in ("producer", "consumer", "registrant", "ticker", "writer", "reader") if r in a.roles]
        if "consumer" in a.roles and "registrant" in a.roles:
            lines.remove("registered a queue")
        return lines

    def svg(self) -> str:
        """The final state, laid out like the interactive view: worker threads | queues and
        shared data | main thread, with arrows for enqueue, on_queue_ready, set and get."""
        st = self.state()
        svg = Svg()
        pos: dict[str, tuple[float, float, float, float]] = {}
        # (column, id, class, lines, fill, stroke) of every box, measured before placing
        boxes: list[tuple[int, str, str, list[str], str, str]] = []
        for a in self.actors.values():
            lines = self.actor_lines(a, st["vms"].get(a.vm, {}))
            boxes.append((2 if a.thread == "main" else 0, a.vm, "actor", lines, FILL["wasm"], PALETTE["blue"]))
        for i, (q, s) in enumerate(zip(self.queues, st["queues"], strict=True)):
            lines = [f"queue {q.name}", f"vm_id {q.vm_id} · id {q.queue_id}"]
            lines += [f"{s['enqueued']} in · {s['dequeued']} out", f"registrant {q.registrant}"]
            boxes.append((1, f"q{i}", "queue", lines, FILL["queue"], PALETTE["orange"]))
        for i, ((vm_id, key), s) in enumerate(zip(self.keys, st["shared"], strict=True)):
            lines = [f"shared data {key}", f"vm_id {vm_id}", f"= {value_display(s['value'] or '')}"]
            lines.append(f"cas {s['cas']} · {s['sets']} sets · {s['reads']} reads")
            lines += [f"✖ {s['failed']} CAS mismatches"] if s["failed"] else []
            lines += [f"✖ {s['denied']} requests denied after reading it"] if s["denied"] else []
            boxes.append((1, f"k{i}", "shared", lines, FILL["shared"], "#8A7F00"))
        widths = [180.0, 180.0, 180.0]
        for col, _, _, lines, _, _ in boxes:
            widths[col] = max(widths[col], max(text_width(x) for x in lines) + 16)
        xs = [10.0, 10 + widths[0] + 40, 10 + widths[0] + widths[1] + 80]
        heads = ("worker threads", "process-wide (by vm_id)", "main thread")
        for x, head in zip(xs, heads, strict=True):
            svg.text(x, 16, head, size=12, font_weight="bold")
        ys = [28.0, 28.0, 28.0]
        for col, id_, cls, lines, fill, stroke in boxes:
            w, h = svg.box(f"qf-{id_}", cls, xs[col], ys[col], lines, fill, stroke, min_w=widths[col])
            pos[id_] = (xs[col], ys[col], w, h)
            ys[col] += h + 8
        for src, dst, cls in self.flow_edges():
            if src in pos and dst in pos:
                self._arrow(svg, pos[src], pos[dst], cls)
        if not self.steps:
            svg.text(10, 44, "no shared queues, ticks or shared data in this trace", size=11)
        else:  # a picture of the end: say what the steps were, and that they are not drawn one by one
            kinds = ", ".join(f"{k} ×{n}" for k, n in Counter(s.kind for s in self.steps).items())
            y = max(ys) + 14
            svg.text(10, y, f"the state after all {len(self.steps)} steps ({kinds})", size=11, fill="#444")
            svg.text(10, y + 15, "re-run the cell to step through them one by one", size=11, fill="#444")
        return svg.done("queue flow")

    def flow_edges(self) -> list[tuple[str, str, str]]:
        """(from, to, kind) of the whole trace: VM names, ``q<i>`` queues and ``k<i>`` keys."""
        out: list[tuple[str, str, str]] = []
        for s in self.steps:
            who = s.vm or ""
            edge = {
                "enqueue": (who, f"q{s.queue}", "enqueue"),
                "ready": (f"q{s.queue}", who, "ready"),
                "set": (who, f"k{s.key}", "set"),
                "get": (f"k{s.key}", who, "get"),
            }.get(s.kind)
            if edge and edge not in out:
                out.append(edge)
        return out

    @staticmethod
    def _arrow(svg: Svg, a: tuple[float, float, float, float], b: tuple[float, float, float, float], cls: str) -> None:
        ax, ay, aw, ah = a
        bx, by, bw, bh = b
        x1, x2 = (ax + aw, bx - 2) if ax < bx else (ax, bx + bw + 2)
        colour = {"enqueue": PALETTE["orange"], "ready": PALETTE["blue"]}.get(cls, "#8A7F00")
        dy = 5 if cls in ("ready", "get") else -5
        dash = "4,3" if cls == "get" else None
        svg.edge(x1, ay + ah / 2 + dy, x2, by + bh / 2 + dy, cls, dash, "", colour, True, 1.5)


class QueueFlowView(View):
    """Shared queues and shared data, replayed (step / scrub / play in the browser): arrows from
    the producers to the queue to its registrant, and from writers and readers to shared data;
    a message travels along them at each step. ``cursor_seq`` links it to other views."""

    _esm = static("common.js", "queue_flow.js")

    queues: t.List[Any] = t.List().tag(sync=True)
    shared_keys: t.List[Any] = t.List().tag(sync=True)
    actors: t.List[Any] = t.List().tag(sync=True)
    steps = t.Dict().tag(sync=True)
    step = t.Int(-1).tag(sync=True)
    speed = t.Float(4.0).tag(sync=True)
    cursor_seq = t.Int(0).tag(sync=True)

    def __init__(self, events: Iterable[Event], title: str = "queue flow") -> None:
        self.model = QueueFlowModel(events)
        m = self.model
        actor_index = {vm: i for i, vm in enumerate(m.actors)}
        names = ("seq", "thread", "kind", "actor", "who", "queue", "key", "depth", "text", "ok", "note", "ev")
        cols: dict[str, list[Any]] = {k: [] for k in names}
        for s in m.steps:
            cols["seq"].append(s.seq)
            cols["thread"].append(s.thread)
            cols["kind"].append(s.kind)
            cols["actor"].append(actor_index.get(s.vm or "", -1))
            cols["who"].append(s.vm or "")
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
            note=", ".join(
                f"{k} {word}{'' if k == 1 else 's'}"
                for k, word in ((len(m.steps), "step"), (len(m.queues), "queue"), (len(m.keys), "shared-data key"))
            ),
        )

    def state(self) -> dict[str, Any]:
        """The state the browser shows at ``step`` (-1: before the first step)."""
        return self.model.state(self.step)

    def details(self, index: int) -> dict[str, Any] | None:
        if not 0 <= index < len(self.model.steps):
            return None
        s = self.model.steps[index]
        return event_dict(self.model.events[s.event_index]) if s.event_index >= 0 else None

    def text(self) -> str:
        return self.model.text()

    def svg(self) -> str | None:
        return self.model.svg()
