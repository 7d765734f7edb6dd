"""Drawing the VM layout: Graphviz DOT (used when ``dot`` is on PATH) and the built-in SVG
layout (a fixed grid: one block per thread, VMs down, their contexts across, what they share by
``vm_id`` in a column on the right). Both give every VM, context, queue and shared-data key the same
SVG ``id``, so the widget can show the layout at any moment of the trace by restyling them."""

from __future__ import annotations

import struct
from typing import Any

from .layout import LayoutModel, VMNode
from .render import FILL, LINE_H, PALETTE, Svg, dot_attrs, dot_quote, render_dot, text_width

ROLE_DASH = {"base": "dotted", "canary": "dashed"}


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


class LayoutDrawing:
    """Stable ids, node texts and the two renderings of one :class:`LayoutModel`."""

    def __init__(self, model: LayoutModel) -> None:
        self.m = model
        self.vm_ids: dict[str, str] = {k: f"wl-vm-{i}" for i, k in enumerate(model.vms)}
        self.group_ids = {g: f"wl-g-{i}" for i, g in enumerate(model.vm_ids())}
        self.queue_ids = {k: f"wl-q-{i}" for i, k in enumerate(model.queues)}
        self.shared_ids = {k: f"wl-sd-{i}" for i, k in enumerate(model.shared)}

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
        if vm.replaced_by:
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
        return [f"{c.kind} context {c.id}", f"plugin {c.plugin}", status]

    @staticmethod
    def streams_lines(vm: VMNode, at: int | None) -> list[str]:
        live = [c.id for c in vm.live_streams(at)]
        total = sum(1 for c in vm.streams if at is None or c.born <= at)
        shown = ", ".join(map(str, live[:6])) + (" …" if len(live) > 6 else "")
        return ["stream contexts", f"{total} created", f"{len(live)} live: {shown}" if live else "none live"]

    def queue_lines(self, key: tuple[str, str]) -> list[str]:
        q = self.m.queues[key]
        return [
            f"queue {q.name}",
            f"vm_id {q.vm_id} · id {q.queue_id}",
            f"{q.enqueued} enqueued · {q.dequeued} dequeued",
            f"depth {q.depth} (max {q.max_depth})",
        ]

    def shared_lines(self, key: tuple[str, str]) -> list[str]:
        sk = self.m.shared[key]
        return [f"shared data {sk.key}", f"vm_id {sk.vm_id} · cas {sk.cas}", f"= {value_display(sk.value)}"]

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

    def _edges(self) -> list[tuple[str, str, str, str]]:
        """(from id, to id, class, label) for what crosses threads: vm_id membership, enqueue,
        on_queue_ready, shared data writes."""
        out = []
        m = self.m
        for vm_id, vms in m.vm_ids().items():
            for vm in vms:
                out.append((self.vm_ids[vm.key], self.group_ids[vm_id], "member", ""))
        for key, q in m.queues.items():
            qid = self.queue_ids[key]
            if q.vm_id in self.group_ids:
                out.append((self.group_ids[q.vm_id], qid, "owns", ""))
            for who, n in q.producers.items():
                if who in self.vm_ids:
                    out.append((self.vm_ids[who], qid, "enqueue", f"enqueue ×{n}"))
            if q.registrant in self.vm_ids:
                n = q.notified or sum(q.consumers.values())
                out.append((qid, self.vm_ids[q.registrant], "ready", f"on_queue_ready ×{n}"))
        for key, sk in m.shared.items():
            sid = self.shared_ids[key]
            if sk.vm_id in self.group_ids:
                out.append((self.group_ids[sk.vm_id], sid, "owns", ""))
            for who, n in sk.writers.items():
                if who in self.vm_ids:
                    out.append((self.vm_ids[who], sid, "set", f"set ×{n}"))
        return out

    # ---- Graphviz -------------------------------------------------------------------------------
    def dot(self, at: int | None = None) -> str:
        m = self.m
        out = [
            "digraph vm_layout {",
            '  graph [rankdir=LR, fontname="Helvetica", fontsize=11, nodesep=0.12, ranksep=0.4,'
            ' newrank=true, bgcolor="white"];',
            '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, margin="0.1,0.04"];',
            '  edge [fontname="Helvetica", fontsize=9, color="#555555"];',
        ]
        for ti, t in enumerate(m.threads):
            title = "main thread" if t == "main" else f"{t} (worker thread)"
            out.append(f"  subgraph cluster_t{ti} {{")
            out.append(
                f'    id="wl-t-{ti}"; label={dot_quote(title)}; style="rounded,filled"; fillcolor="{FILL["thread"]}";'
                f' color="#999999"; fontname="Helvetica-Bold";'
            )
            vms = m.on_thread(t)
            if not vms:
                out.append(f'    "wl-empty-{ti}" [shape=plaintext, style="", label="no VMs or Lua states"];')
            for vm in vms:
                vid = self.vm_ids[vm.key]
                fill, stroke = self.vm_fill(vm, at)
                style = "rounded,filled" + ("," + ROLE_DASH[vm.role] if vm.role in ROLE_DASH else "")
                if vm.status(at) == "destroyed":
                    style = "rounded,filled,dashed"
                out.append(
                    f"    {dot_quote(vid)} "
                    + dot_attrs(
                        id=vid,
                        class_=self.vm_class(vm, at),
                        label="\n".join(self.vm_lines(vm, at)),
                        fillcolor=fill,
                        color=stroke,
                        style=style,
                        penwidth="2" if vm.role in ("main", "service", "replica") else "1",
                    )
                    + ";"
                )
                for c in vm.contexts.values():
                    cid = f"{vid}-ctx-{c.id}"
                    out.append(
                        f"    {dot_quote(cid)} "
                        + dot_attrs(
                            id=cid,
                            class_="ctx",
                            label="\n".join(self.ctx_lines(c, at)),
                            fillcolor="white",
                            color=PALETTE["grey"],
                        )
                        + ";"
                    )
                    out.append(f"    {dot_quote(vid)} -> {dot_quote(cid)} [arrowhead=none];")
                if vm.streams:
                    sid = f"{vid}-streams"
                    out.append(
                        f"    {dot_quote(sid)} "
                        + dot_attrs(
                            id=sid,
                            class_="streams",
                            label="\n".join(self.streams_lines(vm, at)),
                            fillcolor="white",
                            color=PALETTE["grey"],
                            style="rounded,filled,dashed",
                        )
                        + ";"
                    )
                    out.append(f"    {dot_quote(vid)} -> {dot_quote(sid)} [arrowhead=none];")
            out.append("  }")
        if self.group_ids:
            out.append("  subgraph cluster_shared {")
            out.append(
                '    id="wl-shared"; label="process-wide, by vm_id (shared data, shared queues)"; style="rounded";'
                ' color="#999999";'
            )
            for vm_id, vms in m.vm_ids().items():
                gid = self.group_ids[vm_id]
                out.append(
                    f"    {dot_quote(gid)} "
                    + dot_attrs(
                        id=gid, class_="group", label="\n".join(self.group_lines(vm_id, vms)), fillcolor="white"
                    )
                    + ";"
                )
            for key in m.queues:
                qid = self.queue_ids[key]
                out.append(
                    f"    {dot_quote(qid)} "
                    + dot_attrs(
                        id=qid,
                        class_="queue",
                        label="\n".join(self.queue_lines(key)),
                        fillcolor=FILL["queue"],
                        color=PALETTE["orange"],
                        shape="box",
                    )
                    + ";"
                )
            for key in m.shared:
                sid = self.shared_ids[key]
                out.append(
                    f"    {dot_quote(sid)} "
                    + dot_attrs(
                        id=sid,
                        class_="shared",
                        label="\n".join(self.shared_lines(key)),
                        fillcolor=FILL["shared"],
                        color="#8A7F00",
                    )
                    + ";"
                )
            out.append("  }")
        # an invisible root pointing at each thread's first node, in order: dot then stacks the
        # threads top-down (main, worker_0, worker_1...) whatever edges cross between them
        out.append('  "wl-root" [style=invis, shape=point, width=0.01];')
        for ti, t in enumerate(m.threads):
            vms = m.on_thread(t)
            first = self.vm_ids[vms[0].key] if vms else f"wl-empty-{ti}"
            out.append(f'  "wl-root" -> {dot_quote(first)} [style=invis];')
        styles = {
            "member": 'style=dashed, arrowhead=none, color="#999999", minlen=3',
            "owns": "arrowhead=none",
            "enqueue": f'color="{PALETTE["orange"]}", penwidth=1.6, minlen=3',
            "ready": f'color="{PALETTE["blue"]}", penwidth=1.6, constraint=false',
            "set": 'color="#8A7F00", penwidth=1.4',
        }
        for a, b, cls, label in self._edges():
            lab = f", label={dot_quote(label)}" if label else ""
            out.append(f'  {dot_quote(a)} -> {dot_quote(b)} [class="{cls}", {styles[cls]}{lab}];')
        out.append("}")
        return "\n".join(out)

    # ---- built-in grid ----------------------------------------------------------------------------
    def builtin_svg(self, at: int | None = None) -> str:
        m = self.m
        svg = Svg()
        pos: dict[str, tuple[float, float, float, float]] = {}  # id -> x, y, w, h
        row_end: dict[str, float] = {}

        def size(lines: list[str]) -> tuple[float, float]:
            return max(text_width(s) for s in lines) + 16, len(lines) * LINE_H + 8

        # measure every thread block first, so the blocks can be drawn behind their boxes
        y = 8.0
        blocks = []
        for t in m.threads:
            rows = []
            by = y + 26
            width = 200.0
            for vm in m.on_thread(t):
                items = [(self.vm_ids[vm.key], self.vm_lines(vm, at), "vm")]
                items += [
                    (f"{self.vm_ids[vm.key]}-ctx-{c.id}", self.ctx_lines(c, at), "ctx") for c in vm.contexts.values()
                ]
                if vm.streams:
                    items.append((f"{self.vm_ids[vm.key]}-streams", self.streams_lines(vm, at), "streams"))
                x = 22.0
                h = 0.0
                placed = []
                for id_, lines, cls in items:
                    w, hh = size(lines)
                    placed.append((id_, lines, cls, x, by, w))
                    x += w + 16
                    h = max(h, hh)
                rows.append((vm, placed))
                row_end[self.vm_ids[vm.key]] = x - 16
                width = max(width, x)
                by += h + 10
            height = max(by - y, 44)
            blocks.append((t, y, width, height, rows))
            y += height + 12
        col_x = max((b[2] for b in blocks), default=200) + 90
        for t, ty, w, h, rows in blocks:
            svg.add(f'<g class="thread" id="wl-t-{m.threads.index(t)}">')
            svg.rect(10, ty, w, h, FILL["thread"], PALETTE["grey"])
            svg.text(18, ty + 16, "main thread" if t == "main" else f"{t} (worker thread)", size=12, font_weight="bold")
            if not rows:
                svg.text(22, ty + 36, "no VMs or Lua states", fill="#555")
            svg.add("</g>")
            for vm, placed in rows:
                for id_, lines, cls, x, by, bw in placed:
                    if cls == "vm":
                        fill, stroke = self.vm_fill(vm, at)
                        dash = {"dotted": "2,2", "dashed": "5,3"}.get(ROLE_DASH.get(vm.role, ""))
                        if vm.status(at) == "destroyed":
                            dash = "5,3"
                        svg.box(id_, self.vm_class(vm, at), x, by, lines, fill, stroke, dash)
                    else:
                        svg.box(id_, cls, x, by, lines, "white", PALETTE["grey"], "5,3" if cls == "streams" else None)
                    pos[id_] = (x, by, bw, size(lines)[1])
                if len(placed) > 1:  # the VM owns the contexts next to it
                    first, nxt = placed[0], placed[1]
                    y_mid = first[4] + 11
                    svg.add(
                        f'<line x1="{first[3] + first[5]:.1f}" y1="{y_mid:.1f}" x2="{nxt[3]:.1f}" y2="{y_mid:.1f}"'
                        ' stroke="#999" stroke-width="0.8"/>'
                    )
        # the process-wide column
        cy = 8.0
        if self.group_ids:
            svg.text(col_x, cy + 12, "process-wide, by vm_id", size=12, font_weight="bold")
            cy += 22
        for vm_id, vms in m.vm_ids().items():
            gid = self.group_ids[vm_id]
            lines = self.group_lines(vm_id, vms)
            w, h = svg.box(gid, "group", col_x, cy, lines, "white")
            pos[gid] = (col_x, cy, w, h)
            cy += h + 8
            for key, q in m.queues.items():
                if q.vm_id == vm_id:
                    qid = self.queue_ids[key]
                    w, h = svg.box(
                        qid, "queue", col_x + 24, cy, self.queue_lines(key), FILL["queue"], PALETTE["orange"]
                    )
                    pos[qid] = (col_x + 24, cy, w, h)
                    cy += h + 8
            for key, sk in m.shared.items():
                if sk.vm_id == vm_id:
                    sid = self.shared_ids[key]
                    w, h = svg.box(sid, "shared", col_x + 24, cy, self.shared_lines(key), FILL["shared"], "#8A7F00")
                    pos[sid] = (col_x + 24, cy, w, h)
                    cy += h + 8
            cy += 10
        colours = {"member": "#999999", "enqueue": PALETTE["orange"], "ready": PALETTE["blue"], "set": "#8A7F00"}
        for a, b, cls, label in self._edges():
            if a not in pos or b not in pos or cls == "owns":
                continue
            ax, ay, aw, ah = pos[a]
            bx, by, bw, bh = pos[b]
            colour = colours[cls]
            if cls == "ready":  # back from the queue to the VM that drains it
                svg.edge(
                    ax,
                    ay + ah / 2 + 6,
                    row_end.get(b, bx + bw) + 2,
                    by + bh / 2 + 6,
                    cls,
                    None,
                    label,
                    colour,
                    True,
                    1.5,
                )
                continue
            x1 = row_end.get(a, ax + aw)
            member = cls == "member"
            svg.edge(
                x1,
                ay + ah / 2,
                bx - 2,
                by + bh / 2,
                cls,
                "4,3" if member else None,
                label,
                colour,
                not member,
                1 if member else 1.5,
            )
        return svg.done("VM layout")

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

    def entities(self) -> dict[str, Any]:
        """What the widget needs to restyle the picture at any seq: born/died per id."""
        vms, ctxs, streams = [], [], []
        for vm in self.m.vms.values():
            vid = self.vm_ids[vm.key]
            vms.append([vid, vm.born, vm.died, vm.failed, vm.runtime])
            for c in vm.contexts.values():
                ctxs.append([f"{vid}-ctx-{c.id}", c.born, c.died])
            if vm.streams:
                streams.append([f"{vid}-streams", [[c.born, c.died, c.id] for c in vm.streams]])
        return {"vms": vms, "ctxs": ctxs, "streams": streams}
