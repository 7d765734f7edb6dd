"""Drawing the VM layout the way Envoy's threading diagram does: the main thread, the process-wide
pieces (shared queues, shared data) and the worker threads side by side, each thread with its VMs
in creation order (base, canary, main/service, replicas) and their contexts under them.

Three renderings of one :class:`LayoutModel`, all at a chosen moment ``at`` (a trace seq; None =
now) and all showing nothing that happens after it:

- :meth:`LayoutDrawing.scene` — plain data for the widget, which draws and re-flows the picture in
  the browser (threads wrap into rows of what fits the output area);
- :meth:`LayoutDrawing.builtin_svg` — a static three-column picture (main | shared | workers);
- :meth:`LayoutDrawing.dot` — the same as Graphviz source (used for the static picture when
  ``dot`` is on PATH).

Every VM, context, queue and shared-data key has the same ``id`` in all three.
"""

from __future__ import annotations

import struct
from itertools import pairwise
from typing import Any

from .layout import Ctx, LayoutModel, QueueNode, SharedKey, VMNode
from .render import FILL, LINE_H, PALETTE, Svg, dot_attrs, dot_quote, render_dot, text_width

ROLE_DASH = {"base": "dotted", "canary": "dashed"}
SVG_DASH = {"dotted": "2,2", "dashed": "6,3"}
#: arrows: class -> colour (the legend names each)
EDGE_COLOUR = {"enqueue": PALETTE["orange"], "ready": PALETTE["blue"], "set": "#8A7F00", "member": "#999999"}
#: at most this many traffic records per queue / shared key go to the browser (newest kept)
MAX_LOG = 20000


def value_display(s: str, limit: int = 28) -> str:
    """A shared-data value: text when printable, else hex with the first 8 bytes read as a u64
    (the rate limiter's token count, for example)."""
    if s and all(32 <= ord(c) < 127 for c in s):
        return repr(s if len(s) <= limit else s[: limit - 1] + "…")
    raw = s.encode("latin-1", errors="replace")
    hexs = raw[:8].hex(" ") + (" …" if len(raw) > 8 else "")
    if len(raw) >= 8:
        return f"{hexs} (u64 {struct.unpack('<Q', raw[:8])[0]})"
    return hexs or "''"


def thread_title(t: str) -> str:
    return "main thread" if t == "main" else f"{t} (worker thread)" if t.startswith("worker_") else t


def before(seq: int, at: int | None) -> bool:
    return at is None or seq <= at


class LayoutDrawing:
    """Stable ids, node texts and the renderings of one :class:`LayoutModel`."""

    def __init__(self, model: LayoutModel, group: bool = False) -> None:
        self.m = model
        self.group = group  # draw the vm_id groups and every VM's line to its group
        self.vm_ids: dict[str, str] = {k: f"wl-vm-{i}" for i, k in enumerate(model.vms)}
        self.group_ids = {g: f"wl-g-{i}" for i, g in enumerate(model.vm_ids())}
        self.queue_ids = {k: f"wl-q-{i}" for i, k in enumerate(model.queues)}
        self.shared_ids = {k: f"wl-sd-{i}" for i, k in enumerate(model.shared)}

    # ---- the state at a moment ------------------------------------------------------------------
    @staticmethod
    def registrant_at(q: QueueNode, at: int | None) -> str | None:
        """The VM that gets ``on_queue_ready`` at ``at``: the last registrant so far."""
        who = [vm for seq, vm in q.registrants if before(seq, at)]
        return who[-1] if who else (q.registrant if not q.registrants else None)

    @staticmethod
    def queue_counts(q: QueueNode, at: int | None) -> dict[str, dict[str, int]]:
        """``{"enqueue": {VM: n}, "dequeue": {VM: n}, "notify": {VM: n}}`` up to ``at``."""
        out: dict[str, dict[str, int]] = {"enqueue": {}, "dequeue": {}, "notify": {}}
        for seq, who, what in q.log:
            if before(seq, at):
                out[what][who] = out[what].get(who, 0) + 1
        return out

    @staticmethod
    def writes(sk: SharedKey, at: int | None) -> dict[str, int]:
        out: dict[str, int] = {}
        for seq, who, _value, _cas in sk.log:
            if before(seq, at):
                out[who] = out.get(who, 0) + 1
        return out

    def visible_vms(self, thread: str, at: int | None) -> list[VMNode]:
        return [vm for vm in self.m.on_thread(thread) if before(vm.born, at)]

    # ---- texts --------------------------------------------------------------------------------------
    @staticmethod
    def vm_status(vm: VMNode, at: int | None) -> str:
        return {
            "not created": "not created yet",
            "running": "running",
            "failed": "✖ failed",
            "destroyed": "destroyed",
        }[vm.status(at)]

    def vm_lines(self, vm: VMNode, at: int | None) -> list[str]:
        if vm.runtime == "lua":
            lines = [vm.label, f"filter {vm.vm_id} · {vm.info.get('runtime', 'lua')}"]
        else:
            lines = [vm.label, f"{vm.role} VM · vm_id {vm.vm_id}"]
        if vm.reloaded_from:
            lines.append(f"reload of {vm.reloaded_from}")
        if vm.replaced_by and before(vm.replaced_at or 0, at):
            lines.append(f"replaced by {vm.replaced_by}")
        return [*lines, self.vm_status(vm, at)]

    @staticmethod
    def ctx_lines(c: Any, at: int | None) -> list[str]:
        if at is not None and c.born > at:
            status = "not created yet"
        elif c.died is not None and (at is None or c.died <= at):
            status = "deleted"
        else:
            status = "live"
        gen = f" · generation {c.generation}" if getattr(c, "generation", 1) > 1 else ""
        return [f"{c.kind} context {c.id} · {status}", f"plugin {c.plugin}{gen}"]

    @staticmethod
    def streams_lines(vm: VMNode, at: int | None) -> list[str]:
        live = [c.id for c in vm.live_streams(at)]
        total = sum(1 for c in vm.streams if before(c.born, at))
        shown = ", ".join(map(str, live[:6])) + (" …" if len(live) > 6 else "")
        return [f"stream contexts: {total} created", f"{len(live)} live: {shown}" if live else "none live"]

    def traffic_lines(self, vm: VMNode, at: int | None) -> list[str]:
        """What this VM did with the process-wide pieces so far (next to the VM that did it)."""
        out = []
        for q in self.m.queues.values():
            c = self.queue_counts(q, at)
            if c["enqueue"].get(vm.key):
                out.append(f"→ enqueue ×{c['enqueue'][vm.key]} (queue {q.name})")
            if self.registrant_at(q, at) == vm.key and before(q.born, at):
                n = sum(c["notify"].values())
                out.append(f"← on_queue_ready ×{n} (queue {q.name})")
        for sk in self.m.shared.values():
            n = self.writes(sk, at).get(vm.key, 0)
            if n:
                out.append(f"→ set ×{n} ({sk.key})")
        return out

    def queue_lines(self, key: tuple[str, str], at: int | None = None) -> list[str]:
        q = self.m.queues[key]
        c = self.queue_counts(q, at)
        enq, deq = sum(c["enqueue"].values()), sum(c["dequeue"].values())
        return [f"queue {q.name}", f"vm_id {q.vm_id} · id {q.queue_id}", f"{enq} enqueued · {deq} dequeued"]

    def shared_lines(self, key: tuple[str, str], at: int | None = None) -> list[str]:
        sk = self.m.shared[key]
        sets = [(v, c) for s, _w, v, c in sk.log if before(s, at)]
        value, cas = sets[-1] if sets else (sk.value, sk.cas) if at is None else ("", None)
        return [f"shared data {sk.key}", f"vm_id {sk.vm_id} · cas {cas}", f"= {value_display(value)}"]

    def group_lines(self, vm_id: str, vms: list[VMNode]) -> list[str]:
        threads = sorted({vm.thread for vm in vms})
        return [f"vm_id {vm_id}", f"{len(vms)} VMs on {len(threads)} thread{'s' if len(threads) != 1 else ''}"]

    @staticmethod
    def vm_fill(vm: VMNode, at: int | None) -> tuple[str, str]:
        st = vm.status(at)
        if st == "failed":
            return FILL["failed"], PALETTE["vermillion"]
        if st == "destroyed" or st == "not created":
            return FILL["destroyed"], PALETTE["grey"]
        return (FILL["lua"], PALETTE["purple"]) if vm.runtime == "lua" else (FILL["wasm"], PALETTE["blue"])

    def vm_class(self, vm: VMNode, at: int | None) -> str:
        return f"vm {vm.runtime} role-{vm.role} wl-{vm.status(at).replace(' ', '-')}"

    def _edges(self, at: int | None = None) -> list[tuple[str, str, str, str]]:
        """(from id, to id, class, label) for what crosses threads at ``at``: enqueue,
        on_queue_ready, shared-data writes (and vm_id membership when grouping)."""
        out = []
        m = self.m
        if self.group:
            for vm_id, vms in m.vm_ids().items():
                out += [(self.vm_ids[vm.key], self.group_ids[vm_id], "member", "") for vm in vms if before(vm.born, at)]
        for key, q in m.queues.items():
            if not before(q.born, at):
                continue
            qid = self.queue_ids[key]
            c = self.queue_counts(q, at)
            for who, n in c["enqueue"].items():
                if who in self.vm_ids:
                    out.append((self.vm_ids[who], qid, "enqueue", f"enqueue ×{n}"))
            reg = self.registrant_at(q, at)
            if reg in self.vm_ids:
                out.append((qid, self.vm_ids[reg], "ready", f"on_queue_ready ×{sum(c['notify'].values())}"))
        for key, sk in m.shared.items():
            for who, n in self.writes(sk, at).items():
                if who in self.vm_ids:
                    out.append((self.vm_ids[who], self.shared_ids[key], "set", f"set ×{n}"))
        return out

    # ---- Graphviz -------------------------------------------------------------------------------
    def dot(self, at: int | None = None) -> str:
        """Graphviz source: three columns (main | process-wide | workers), each VM one node with
        its contexts and traffic written in it."""
        out = [
            "digraph vm_layout {",
            '  graph [rankdir=LR, fontname="Helvetica", fontsize=11, nodesep=0.15, ranksep=0.5,'
            ' newrank=true, bgcolor="white"];',
            '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, margin="0.1,0.04"];',
            '  edge [fontname="Helvetica", fontsize=9, color="#555555"];',
        ]
        columns: list[list[str]] = [[], [], []]  # node ids per column
        for ti, t in enumerate(self.m.threads):
            col = 0 if t == "main" else 2
            out += self._dot_thread(ti, t, at, columns[col])
        out += self._dot_shared(at, columns[1])
        firsts = [c[0] for c in columns if c]
        for ids in columns:
            if len(ids) > 1:
                out.append("  { rank=same; " + "; ".join(dot_quote(n) for n in ids) + "; }")
        for a, b in pairwise(firsts):  # order the columns left to right
            out.append(f"  {dot_quote(a)} -> {dot_quote(b)} [style=invis];")
        styles = {
            "member": 'style=dashed, arrowhead=none, color="#999999"',
            "enqueue": f'color="{PALETTE["orange"]}", penwidth=1.6',
            "ready": f'color="{PALETTE["blue"]}", penwidth=1.6',
            "set": 'color="#8A7F00", penwidth=1.4',
        }
        edges = self._edges(at)
        for a, b, cls, label in edges:
            tip = f", tooltip={dot_quote(label)}" if label else ""
            out.append(f'  {dot_quote(a)} -> {dot_quote(b)} [class="{cls}", constraint=false, {styles[cls]}{tip}];')
        legend = "\n".join(self.legend(at, {e[2] for e in edges}))
        out.append(f"  label={dot_quote(legend)}; labelloc=b; labeljust=l; fontsize=10;")
        out.append("}")
        return "\n".join(out)

    def _dot_thread(self, ti: int, t: str, at: int | None, column: list[str]) -> list[str]:
        out = [
            f"  subgraph cluster_t{ti} {{",
            f'    id="wl-t-{ti}"; label={dot_quote(thread_title(t))}; style="rounded,filled";'
            f' fillcolor="{FILL["thread"]}"; color="#999999"; fontname="Helvetica-Bold";',
        ]
        vms = self.visible_vms(t, at)
        if not vms:
            out.append(f'    "wl-empty-{ti}" [shape=plaintext, style="", label="no VMs or Lua states"];')
            column.append(f"wl-empty-{ti}")
        for vm in vms:
            vid = self.vm_ids[vm.key]
            fill, stroke = self.vm_fill(vm, at)
            style = "rounded,filled" + ("," + ROLE_DASH[vm.role] if vm.role in ROLE_DASH else "")
            lines = self.vm_lines(vm, at)
            lines += [s for c in vm.contexts.values() if before(c.born, at) for s in self.ctx_lines(c, at)]
            if any(before(c.born, at) for c in vm.streams):
                lines += self.streams_lines(vm, at)
            lines += self.traffic_lines(vm, at)
            attrs = dot_attrs(
                id=vid,
                class_=self.vm_class(vm, at),
                label="\n".join(lines),
                fillcolor=fill,
                color=stroke,
                style=style,
                penwidth="2" if vm.role in ("main", "service", "replica") else "1",
            )
            out.append(f"    {dot_quote(vid)} {attrs};")
            column.append(vid)
        out.append("  }")
        return out

    def _dot_shared(self, at: int | None, column: list[str]) -> list[str]:
        items = self._shared_items(at)
        if not items:
            return []
        out = [
            "  subgraph cluster_shared {",
            '    id="wl-shared"; label="process-wide (by vm_id)"; style="rounded"; color="#999999";',
        ]
        for id_, cls, lines, fill, stroke in items:
            out.append(
                f"    {dot_quote(id_)} "
                + dot_attrs(id=id_, class_=cls, label="\n".join(lines), fillcolor=fill, color=stroke)
                + ";"
            )
            column.append(id_)
        out.append("  }")
        return out

    def _shared_items(self, at: int | None) -> list[tuple[str, str, list[str], str, str]]:
        """(id, class, lines, fill, stroke) of the process-wide column at ``at``."""
        m = self.m
        items = []
        if self.group:
            for vm_id, vms in m.vm_ids().items():
                seen = [vm for vm in vms if before(vm.born, at)]
                if seen:
                    items.append((self.group_ids[vm_id], "group", self.group_lines(vm_id, seen), "white", "#333"))
        for key, q in m.queues.items():
            if before(q.born, at):
                items.append(
                    (self.queue_ids[key], "queue", self.queue_lines(key, at), FILL["queue"], PALETTE["orange"])
                )
        for key, sk in m.shared.items():
            if before(sk.born, at):
                items.append((self.shared_ids[key], "shared", self.shared_lines(key, at), FILL["shared"], "#8A7F00"))
        return items

    # ---- built-in picture -------------------------------------------------------------------------
    def builtin_svg(self, at: int | None = None) -> str:
        """Three columns like Envoy's threading diagram: the main thread, the process-wide queues
        and shared data, the worker threads (stacked); arrows for the traffic between them."""
        svg = Svg()
        pos: dict[str, tuple[float, float, float, float]] = {}  # id -> x, y, w, h
        main = [t for t in self.m.threads if t == "main"]
        workers = [t for t in self.m.threads if t != "main"]
        x = 8.0
        x = self._svg_threads(svg, main, x, at, pos) + 32 if main else x
        items = self._shared_items(at)
        if items:
            y = 8.0
            svg.text(x, y + 14, "process-wide (by vm_id)", size=12, font_weight="bold")
            y += 24
            width = 0.0
            for id_, cls, lines, fill, stroke in items:
                w, h = svg.box(id_, cls, x, y, lines, fill, stroke)
                pos[id_] = (x, y, w, h)
                width = max(width, w)
                y += h + 10
            x += width + 32
        self._svg_threads(svg, workers, x, at, pos)
        edges = self._edges(at)
        for a, b, cls, _label in edges:
            if a in pos and b in pos:
                self._svg_edge(svg, pos[a], pos[b], cls)
        y = svg.h + 18
        for line in self.legend(at, {e[2] for e in edges}):
            svg.text(8, y, line, size=11, fill="#444")
            y += LINE_H
        return svg.done("VM layout")

    def legend(self, at: int | None, edge_kinds: set[str]) -> list[str]:
        """What the picture's styles mean — only those it uses at ``at``."""
        vms = [vm for vm in self.m.vms.values() if before(vm.born, at)]
        roles = {vm.role for vm in vms}
        states = {vm.status(at) for vm in vms}
        items = [
            ("base" in roles, "dotted border = base VM"),
            ("canary" in roles, "dashed border = canary VM"),
            (bool(roles & {"main", "service", "replica"}), "thick border = main / service / replica VM"),
            (any(vm.runtime == "lua" and vm.status(at) == "running" for vm in vms), "pink = Lua state"),
            ("destroyed" in states, "grey + 'destroyed' = destroyed (the border keeps its role)"),
            ("failed" in states, "red + '✖ failed' = failed"),
            ("enqueue" in edge_kinds, "orange arrow = enqueue"),
            ("ready" in edge_kinds, "blue arrow = on_queue_ready (to the registrant)"),
            ("set" in edge_kinds, "olive arrow = shared-data set"),
            ("member" in edge_kinds, "grey dashed = member of a vm_id"),
        ]
        shown = [text for used, text in items if used]
        return [" · ".join(shown[i : i + 2]) for i in range(0, len(shown), 2)]

    def _svg_threads(
        self, svg: Svg, threads: list[str], x: float, at: int | None, pos: dict[str, tuple[float, float, float, float]]
    ) -> float:
        """Thread blocks stacked at ``x``; returns their right edge."""
        blocks = []
        for t in threads:
            rows: list[tuple[str, VMNode | Ctx, list[str]]] = []
            for vm in self.visible_vms(t, at):
                rows.append((self.vm_ids[vm.key], vm, [*self.vm_lines(vm, at), *self.traffic_lines(vm, at)]))
                for c in vm.contexts.values():
                    if before(c.born, at):
                        rows.append((f"{self.vm_ids[vm.key]}-ctx-{c.id}", c, self.ctx_lines(c, at)))
                if any(before(c.born, at) for c in vm.streams):
                    rows.append((f"{self.vm_ids[vm.key]}-streams", vm, self.streams_lines(vm, at)))
            blocks.append((t, rows))
        width = max([200.0] + [text_width(s) + 48 for _, rows in blocks for _, _, ls in rows for s in ls])
        y = 8.0
        for t, rows in blocks:
            inner = sum(len(ls) * LINE_H + 14 for _, _, ls in rows) or 20
            svg.add(f'<g class="thread" id="wl-t-{self.m.threads.index(t)}">')
            svg.rect(x, y, width, inner + 30, FILL["thread"], PALETTE["grey"])
            svg.text(x + 8, y + 16, thread_title(t), size=12, font_weight="bold")
            if not rows:
                svg.text(x + 12, y + 36, "no VMs or Lua states", fill="#555")
            svg.add("</g>")
            by = y + 26
            for id_, obj, lines in rows:
                if isinstance(obj, VMNode) and id_ == self.vm_ids[obj.key]:
                    fill, stroke = self.vm_fill(obj, at)
                    dash = SVG_DASH.get(ROLE_DASH.get(obj.role, ""))
                    w, h = svg.box(id_, self.vm_class(obj, at), x + 8, by, lines, fill, stroke, dash, width - 16)
                    pos[id_] = (x + 8, by, w, h)
                else:
                    cls = "streams" if id_.endswith("-streams") else "ctx"
                    w, h = svg.box(id_, cls, x + 24, by, lines, "white", PALETTE["grey"], None, width - 32)
                by += h + 6
            y = by + 14 if rows else y + 56
        return x + width

    @staticmethod
    def _svg_edge(
        svg: Svg, a: tuple[float, float, float, float], b: tuple[float, float, float, float], cls: str
    ) -> None:
        """An arrow between two boxes (no label: the counts are written in the boxes, where a
        label mid-arrow would land on other boxes)."""
        ax, ay, aw, ah = a
        bx, by, bw, bh = b
        if ax + aw < bx:  # left to right
            x1, x2 = ax + aw, bx - 2
        else:
            x1, x2 = ax, bx + bw + 2
        y1, y2 = ay + min(ah / 2, 20), by + min(bh / 2, 20)
        if cls == "ready":
            y1, y2 = y1 + 6, y2 + 6
        member = cls == "member"
        svg.edge(x1, y1, x2, y2, cls, "4,3" if member else None, "", EDGE_COLOUR[cls], not member, 1 if member else 1.5)

    # ---- either -------------------------------------------------------------------------------------
    def svg(self, at: int | None = None, engine: str = "auto") -> tuple[str, str]:
        """``(svg, backend)``: Graphviz when usable (``engine="auto"``), else the built-in grid."""
        if engine in ("auto", "dot"):
            out, backend = render_dot(self.dot(at))
            if out is not None:
                return out, backend
        else:
            backend = "built-in layout"
        return self.builtin_svg(at), backend

    # ---- for the browser ----------------------------------------------------------------------------
    def scene(self) -> dict[str, Any]:
        """Everything the widget needs to draw the layout at any moment (born/died per entity and
        the traffic with its seqs), as plain JSON."""
        m = self.m
        vid = self.vm_ids
        vms, ctxs, streams = [], [], []
        for t in m.threads:
            for vm in m.on_thread(t):
                vms.append(
                    {
                        "id": vid[vm.key], "label": vm.label, "thread": t, "role": vm.role, "runtime": vm.runtime,
                        "vm_id": vm.vm_id, "born": vm.born, "died": vm.died, "failed": vm.failed,
                        "fail": vm.fail_message[:200], "reloaded_from": vm.reloaded_from,
                        "replaced_by": vm.replaced_by, "replaced_at": vm.replaced_at,
                        "lua_runtime": str(vm.info.get("runtime", "")),
                    }
                )  # fmt: skip
                for c in vm.contexts.values():
                    ctxs.append({"id": f"{vid[vm.key]}-ctx-{c.id}", "vm": vid[vm.key], "kind": c.kind, "cid": c.id,
                                 "plugin": c.plugin, "born": c.born, "died": c.died,
                                 "gen": c.generation if len(m.generations) > 1 else None})  # fmt: skip
                if vm.streams:
                    streams.append([vid[vm.key], [[c.born, c.died, c.id] for c in vm.streams]])
        queues = [
            {
                "id": self.queue_ids[k], "name": q.name, "vm_id": q.vm_id, "queue_id": q.queue_id, "born": q.born,
                "reg": [[s, vid.get(v or "")] for s, v in q.registrants] or [[q.born, vid.get(q.registrant or "")]],
                "log": [[s, vid.get(w), what[0]] for s, w, what in q.log[-MAX_LOG:]],
                "dropped": max(0, len(q.log) - MAX_LOG),
            }
            for k, q in m.queues.items()
        ]  # fmt: skip
        shared = [
            {"id": self.shared_ids[k], "key": sk.key, "vm_id": sk.vm_id, "born": sk.born,
             "log": [[s, vid.get(w), value_display(v), c] for s, w, v, c in sk.log[-MAX_LOG:]]}
            for k, sk in m.shared.items()
        ]  # fmt: skip
        return {
            "threads": [{"name": t, "title": thread_title(t)} for t in m.threads],
            "vms": vms,
            "ctxs": ctxs,
            "streams": streams,
            "queues": queues,
            "shared": shared,
            "last_seq": m.last_seq,
            # config generations (proxy.update): [number, update seq, accepted seq, retired seq]
            "gens": [[g.number, g.born, g.accepted, g.retired] for g in m.generations if g.rejected is None],
        }

    def mark_ids(self) -> list[str]:
        """The id of the box each lifecycle mark changed (what the widget highlights)."""
        out = []
        for target in self.m.mark_targets:
            if target[0] == "vm":
                out.append(self.vm_ids.get(target[1], ""))
            elif target[0] == "ctx":
                vm = self.vm_ids.get(target[1], "")
                c = self.m.vms[target[1]].contexts.get(target[2]) if target[1] in self.m.vms else None
                out.append(f"{vm}-ctx-{target[2]}" if c is not None else f"{vm}-streams" if vm else "")
            elif target[0] == "config":
                out.append("")  # an update changes the whole picture, not one box
            else:
                out.append(self.queue_ids.get((target[1], target[2]), ""))
        return out

    def entities(self) -> dict[str, Any]:
        """Born/died per id (kept for callers of the earlier widget protocol)."""
        vms, ctxs, streams = [], [], []
        for vm in self.m.vms.values():
            vid = self.vm_ids[vm.key]
            vms.append([vid, vm.born, vm.died, vm.failed, vm.runtime])
            for c in vm.contexts.values():
                ctxs.append([f"{vid}-ctx-{c.id}", c.born, c.died])
            if vm.streams:
                streams.append([f"{vid}-streams", [[c.born, c.died, c.id] for c in vm.streams]])
        return {"vms": vms, "ctxs": ctxs, "streams": streams}
