"""The callback timeline: every event of a trace on swimlanes, in order — downstream, the host, each
filter of the chain, each Wasm VM and Lua state, shared data, shared queues, upstream — with
step / scrub / play in the browser, filters (worker, stream, filter, kind) and the same sequence
as a Mermaid sequence diagram and as Envoy's ``wasm:trace`` text.

Modes (``TimelineView.mode``): ``"lanes"`` draws each call with its return as one nested item (as
Chrome DevTools' performance panel and Jaeger draw spans); what a Wasm callback or a Lua run does
inside is folded until expanded. ``"events"`` shows every event as its own row (a call and its
return are two rows, as in Envoy's log); ``"compact"`` is that without the return rows;
``"envoy"`` is Envoy's ``wasm:trace`` text of the selection."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import traitlets as t

from ..trace import KINDS, Event
from ..trace.export import envoy_lines
from .annotate import Lane, Row, annotate, text
from .render import KIND_COLOUR, PALETTE, Svg, text_width
from .widget import View, event_dict, static

#: kinds a timeline hides until asked (they repeat what the host calls already show)
HIDDEN_BY_DEFAULT = ("log",)
#: calls whose insides the nested view folds until expanded (host calls, logs, coroutine steps)
FOLDED_BY_DEFAULT = ("callback", "lua")
#: display modes: value -> what the mode menu says
MODES = {
    "lanes": "nested calls",
    "events": "every event (call and return rows)",
    "compact": "compact (no return rows)",
    "envoy": "Envoy wasm:trace text",
}
#: rows a static picture draws at most
STATIC_ROWS = 150


def call_label(enter: Row, leave: Row | None) -> str:
    """A call and its return as one line: ``wasm.decode_headers(end_stream=True) → Continue``."""
    if leave is None:
        return f"{enter.label} → (no return in this trace)"
    res = leave.event.result
    return f"{enter.label} → {'void' if res is None else text(res, 30)}"


def fold_default(row: Row) -> bool:
    return row.event.kind in FOLDED_BY_DEFAULT


def thread_order(threads: Iterable[str]) -> list[str]:
    from .layout import thread_rank

    return sorted(set(threads), key=thread_rank)


def is_flagged(ev: Event) -> bool:
    """Events a teacher wants to find fast: traps, failed VMs, local replies, resets, 5xx."""
    if ev.kind == "trap" or (ev.kind == "vm" and ev.name == "fail"):
        return True
    if ev.kind == "stream":
        if ev.name in ("local_reply", "reset", "reset_complete"):
            return True
        status = ev.args.get("status") if isinstance(ev.args, dict) else None
        return isinstance(status, int) and status >= 500
    return False


class TimelineModel:
    """Rows and lanes of a trace, and the filters the widget applies."""

    def __init__(self, events: Iterable[Event]) -> None:
        self.events: list[Event] = list(events)
        self.rows, self.lanes = annotate(self.events)
        self.lane_index = {ln.key: i for i, ln in enumerate(self.lanes)}
        self.threads = thread_order(r.event.thread for r in self.rows)
        self.kinds = [k for k in KINDS if any(r.event.kind == k for r in self.rows)]
        self.kinds += sorted({r.event.kind for r in self.rows} - set(self.kinds))
        self.streams = self._streams()
        self._enter_index = {r.seq: r.index for r in self.rows if r.event.phase == "enter"}

    def _streams(self) -> list[dict[str, Any]]:
        info: dict[int, dict[str, Any]] = {}
        for r in self.rows:
            s = r.stream
            if s is None:
                continue
            d = info.setdefault(s, {"id": s, "thread": r.event.thread, "request": "", "status": None})
            ev = r.event
            if ev.kind == "stream" and isinstance(ev.args, dict):
                if ev.name == "request":
                    d["request"] = f"{ev.args.get('method', '')} {ev.args.get('path', '')}"
                elif ev.name == "tcp_connect":
                    d["request"] = f"TCP {ev.args.get('listener', '')}"
                elif ev.name == "response" or ev.name.startswith("reset"):
                    d["status"] = ev.args.get("status") or ev.name
        out = []
        for s in sorted(info):
            d = info[s]
            status = "" if d["status"] is None else f" → {d['status']}"
            d["label"] = f"stream {s}: {d['request'] or '?'}{status} ({d['thread']})"
            out.append(d)
        return out

    def lane(self, key: str) -> Lane:
        return self.lanes[self.lane_index[key]]

    def up(self, r: Row) -> int:
        """The index of the row of the call ``r`` happens in (for an exit: enclosing its call), -1."""
        parent = self.rows[r.call].event.parent if r.event.phase == "exit" and r.call >= 0 else r.event.parent
        return self._enter_index.get(parent, -1) if parent is not None else -1

    def items(self, rows: Sequence[Row], unfolded: Iterable[int] = (), folded: Iterable[int] = ()) -> list[Row]:
        """The nested view of ``rows``: a call's return row is merged into its call, and what a
        folded call does inside is hidden. Calls fold by :data:`FOLDED_BY_DEFAULT` unless their
        row index is in ``unfolded``; ``folded`` folds more."""
        show_in = set(unfolded)
        hide_in = set(folded)
        chosen = {r.index for r in rows}
        out = []
        hidden: set[int] = set()  # enter rows whose insides are hidden (folded or inside a fold)
        for r in rows:
            up = self.up(r)
            if up in hidden:
                if r.event.phase == "enter":
                    hidden.add(r.index)
                continue
            if r.event.phase == "exit" and r.call in chosen:
                continue
            if r.event.phase == "enter" and (r.index in hide_in or (fold_default(r) and r.index not in show_in)):
                hidden.add(r.index)
            out.append(r)
        return out

    def select(
        self,
        worker: str | int | None = None,
        stream: int | None = None,
        filter: str | None = None,
        kinds: Sequence[str] | None = None,
    ) -> list[Row]:
        """The rows the widget shows for these filters (``None`` = no filter). ``worker`` is a
        thread name or a worker index; ``filter`` a lane key or a filter name (rows that touch
        that lane); ``kinds`` the event kinds to show."""
        thread = f"worker_{worker}" if isinstance(worker, int) else worker
        lane = None
        if filter:
            lane = filter if filter in self.lane_index else f"filter:{filter}"
        kindset = set(kinds) if kinds is not None else None
        out = []
        for r in self.rows:
            ev = r.event
            if thread and ev.thread != thread:
                continue
            if stream is not None and r.stream != stream:
                continue
            if kindset is not None and ev.kind not in kindset:
                continue
            if lane is not None and lane not in (r.lane, r.src, r.dst):
                continue
            out.append(r)
        return out

    def columns(self) -> dict[str, Any]:
        """The rows as columns (compact JSON for the browser: ~60 bytes per event)."""
        t0 = self.rows[0].event.t_ns if self.rows else 0
        kinds = self.kinds
        kidx = {k: i for i, k in enumerate(kinds)}
        tidx = {th: i for i, th in enumerate(self.threads)}
        li = self.lane_index
        cols: dict[str, list[Any]] = {
            k: []
            for k in (
                "seq", "t", "th", "lane", "src", "dst", "kind", "ph", "st", "depth", "flag", "label", "note",
                "end", "up", "ret",
            )
        }  # fmt: skip
        rows = self.rows
        for r in rows:
            ev = r.event
            cols["seq"].append(ev.seq)
            cols["t"].append(int(((ev.t_ns or 0) - (t0 or 0)) // 1000))
            cols["th"].append(tidx[ev.thread])
            cols["lane"].append(li[r.lane])
            cols["src"].append(li[r.src])
            cols["dst"].append(li[r.dst])
            cols["kind"].append(kidx[ev.kind])
            phase = ev.phase
            cols["ph"].append(1 if phase == "enter" else 2 if phase == "exit" else 0)
            cols["end"].append(r.end)
            cols["up"].append(self.up(r))
            cols["ret"].append(call_label(r, rows[r.end] if r.end >= 0 else None) if phase == "enter" else "")
            cols["st"].append(-1 if r.stream is None else r.stream)
            cols["depth"].append(r.depth)
            cols["flag"].append(1 if is_flagged(ev) else 0)
            cols["label"].append(r.label)
            cols["note"].append(r.note)
        cols["kinds"] = list(kinds)
        cols["threads"] = list(self.threads)
        return cols

    # ---- other renderings ---------------------------------------------------------------------------
    def mermaid(self, rows: Sequence[Row], limit: int = 300) -> str:
        """A Mermaid ``sequenceDiagram`` of ``rows`` (JupyterLab renders it natively)."""
        used: list[str] = []
        for r in rows[:limit]:
            for k in (r.src, r.dst):
                if k not in used:
                    used.append(k)
        used.sort(key=lambda k: self.lane_index[k])
        alias = {k: f"L{self.lane_index[k]}" for k in used}
        out = ["sequenceDiagram"]
        for k in used:
            out.append(f"    participant {alias[k]} as {_mermaid_text(self.lane(k).label)}")
        for r in rows[:limit]:
            text = _mermaid_text(f"#{r.seq} {r.label}")
            if r.src == r.dst:
                out.append(f"    Note over {alias[r.src]}: {text}")
            else:
                phase = r.event.data.get("phase") if isinstance(r.event.data, dict) else None
                arrow = "-->>" if phase == "exit" else "->>"
                out.append(f"    {alias[r.src]}{arrow}{alias[r.dst]}: {text}")
        if len(rows) > limit:
            first = alias[used[0]] if used else "L0"
            out.append(f"    Note over {first}: … {len(rows) - limit} more events (filter the timeline to see them)")
        return "\n".join(out)

    @staticmethod
    def envoy_text(rows: Sequence[Row], with_thread: bool = True) -> str:
        """The rows' callbacks, host calls and Wasm/Lua log lines as Envoy prints them with
        ``--component-log-level wasm:trace``."""
        out = []
        for r in rows:
            for line in envoy_lines([r.event]):
                out.append(f"[{r.event.thread}] {line}" if with_thread else line)
        return "\n".join(out)

    def svg(self, rows: Sequence[Row], limit: int = STATIC_ROWS, nested: bool = True) -> str:
        """A static swimlane picture of ``rows`` (nested: one item per call, folded as the widget
        folds by default); it says what it leaves out."""
        shown = self.items(rows) if nested else list(rows)
        folded = len(rows) - len(shown) - sum(1 for r in shown if r.event.phase == "enter" and r.end >= 0)
        items = shown[:limit]
        used = sorted({k for r in items for k in (r.src, r.dst, r.lane)}, key=lambda k: self.lane_index[k])
        if not used:
            used = [ln.key for ln in self.lanes[:2]]
        col_w, head, row_h = 92.0, 46.0, 18.0
        x_of = {k: 20 + col_w * i + col_w / 2 for i, k in enumerate(used)}
        text_x = 20 + col_w * len(used) + 10
        svg = Svg()
        bottom = head + row_h * len(items) + 4
        for k in used:
            self._svg_lane_head(svg, k, x_of[k], head, bottom)
        for i, r in enumerate(items):
            self._svg_item(svg, r, x_of, head + row_h * i + row_h / 2, text_x, nested)
        notes = []
        if not items:
            notes.append("no events match")
        if len(shown) > len(items):
            notes.append(f"first {len(items)} of {len(shown)} rows — re-run the cell for all")
        if folded > 0:
            notes.append(f"{folded} events inside folded calls (host calls, logs) — expand them in the live view")
        for j, line in enumerate(notes):
            svg.text(text_x, bottom + 14 + 14 * j, line, size=11, fill="#B00" if "first" in line else "#444")
        svg.grow(text_x + text_width("x" * 90, 10), bottom + 14 * len(notes) + 10)
        return svg.done("callback timeline")

    def _svg_lane_head(self, svg: Svg, key: str, x: float, head: float, bottom: float) -> None:
        ln = self.lane(key)
        parts = ln.label.split(" · ")
        svg.text(x, 16, parts[0], size=10, anchor="middle", font_weight="bold")
        sub = " · ".join(parts[1:]) or ln.detail
        if sub:
            svg.text(x, 29, sub, size=9, anchor="middle", fill="#444")
        svg.add(
            f'<line x1="{x:.1f}" y1="{head - 8}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="#bbb" stroke-dasharray="3,3"/>'
        )

    def _svg_item(self, svg: Svg, r: Row, x_of: dict[str, float], y: float, text_x: float, nested: bool) -> None:
        """One row: a dot (a note on one lane), an arrow, or — a call in the nested picture — the
        call's arrow with its return drawn back under it."""
        colour = KIND_COLOUR.get(r.event.kind, PALETTE["black"])
        x1, x2 = x_of[r.src], x_of[r.dst]
        merged = nested and r.event.phase == "enter" and r.end >= 0
        if r.src == r.dst:
            svg.add(f'<circle cx="{x1:.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>')
        else:
            dy = -3 if merged else 0
            dash = ' stroke-dasharray="4,2"' if r.event.phase == "exit" else ""
            svg.add(
                f'<line x1="{x1:.1f}" y1="{y + dy:.1f}" x2="{x2:.1f}" y2="{y + dy:.1f}" stroke="{colour}"'
                f' stroke-width="1.6"{dash} marker-end="url(#wl-arrow)"/>'
            )
            if merged:
                svg.add(
                    f'<line x1="{x2:.1f}" y1="{y + 3:.1f}" x2="{x1:.1f}" y2="{y + 3:.1f}" stroke="{colour}"'
                    ' stroke-width="1.2" stroke-dasharray="4,2" marker-end="url(#wl-arrow)"/>'
                )
        label = call_label(r, self.rows[r.end]) if merged else r.label
        label = f"#{r.seq} {r.event.thread}  {r.event.kind:<8} {'  ' * min(r.depth, 6)}{label}"
        svg.text(text_x, y + 4, label, size=10, family="monospace", fill="#B00" if is_flagged(r.event) else None)


_MERMAID_ESCAPES = {"#": "#35;", ";": "#59;", "<": "#lt;", ">": "#gt;", "\n": " "}


def _mermaid_text(s: str) -> str:
    """Mermaid's entity codes for what would end a statement or read as markup (in one pass)."""
    return re.sub(r"[#;<>\n]", lambda m: _MERMAID_ESCAPES[m.group()], s)


class TimelineView(View):
    """Swimlanes of a trace, replayed in the browser (step, scrub, play, pause, filters, details).

    The browser does the animation; the kernel is only asked for an event's full record when one
    is clicked. ``step`` (the highlighted row's index in :attr:`model` ``.rows``) and the filters
    are synced both ways and saved with the notebook's widget state."""

    _esm = static("common.js", "timeline.js")
    _css = static("common.css", "timeline.css")

    lanes: t.List[Any] = t.List().tag(sync=True)
    columns = t.Dict().tag(sync=True)
    streams: t.List[Any] = t.List().tag(sync=True)
    step = t.Int(0).tag(sync=True)
    worker = t.Unicode("").tag(sync=True)
    stream = t.Int(-1).tag(sync=True)
    filter = t.Unicode("").tag(sync=True)
    kinds = t.List(t.Unicode()).tag(sync=True)
    mode = t.Unicode("lanes").tag(sync=True)
    speed = t.Float(6.0).tag(sync=True)
    # cursor_seq (the shared cursor of linked views) is the base class's: 0 until a cursor moves;
    # the browser follows it and sends back ``step`` (the kernel does not compute the step itself:
    # folding is the browser's, and a different answer would echo back to the linked views)

    def __init__(
        self,
        events: Iterable[Event],
        worker: str | int | None = None,
        stream: int | None = None,
        filter: str | None = None,
        kinds: Sequence[str] | None = None,
        title: str = "callback timeline",
        mode: str = "lanes",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.model = TimelineModel(events)
        m = self.model
        thread = f"worker_{worker}" if isinstance(worker, int) else (worker or "")
        lane = ""
        if filter:
            lane = filter if filter in m.lane_index else f"filter:{filter}"
        visible = list(kinds) if kinds is not None else [k for k in m.kinds if k not in HIDDEN_BY_DEFAULT]
        super().__init__(
            lanes=[{"key": ln.key, "label": ln.label, "kind": ln.kind, "detail": ln.detail} for ln in m.lanes],
            columns=m.columns(),
            streams=[{"id": s["id"], "label": s["label"], "thread": s["thread"]} for s in m.streams],
            mode=mode,
            worker=thread,
            stream=-1 if stream is None else stream,
            filter=lane,
            kinds=visible,
            title=title,
            note=f"{len(m.rows)} events, {len(m.lanes)} lanes, {len(m.streams)} streams",
        )
        rows = self.visible()
        self.step = rows[0].index if rows else 0

    def visible(self) -> list[Row]:
        """The rows the current filters show (what the browser shows, computed the same way)."""
        return self.model.select(
            self.worker or None, None if self.stream < 0 else self.stream, self.filter or None, self.kinds
        )

    @property
    def current(self) -> Row | None:
        rows = self.model.rows
        return rows[self.step] if 0 <= self.step < len(rows) else None

    def mermaid(self, limit: int = 300) -> str:
        return self.model.mermaid(self.visible(), limit)

    def show_mermaid(self, limit: int = 300) -> None:
        """Display the visible rows as a Mermaid sequence diagram (JupyterLab ≥ 4.1 draws it)."""
        from IPython.display import display

        src = self.mermaid(limit)
        display({"text/vnd.mermaid": src, "text/plain": src}, raw=True)

    def envoy_text(self) -> str:
        """What the "Envoy wasm:trace text" mode shows: the callbacks, host calls and Wasm/Lua
        log lines of the rows the thread, stream and filter choices select (any kind box)."""
        stream = None if self.stream < 0 else self.stream
        rows = self.model.select(self.worker or None, stream, self.filter or None, None)
        return self.model.envoy_text(rows)

    def details(self, index: int) -> dict[str, Any] | None:
        rows = self.model.rows
        if not 0 <= index < len(rows):
            return None
        r = rows[index]
        d = event_dict(r.event)
        d.update(
            {
                "lane": self.model.lane(r.lane).label,
                "from": self.model.lane(r.src).label,
                "to": self.model.lane(r.dst).label,
                "stream": r.stream,
                "label": r.label,
                "note": r.note,
            }
        )
        return d

    def text(self, limit: int = 60) -> str:
        rows = self.visible()
        nested = self.mode == "lanes"
        shown = self.model.items(rows) if nested else rows
        head = f"Callback timeline: {len(self.model.rows)} events on {len(self.model.lanes)} lanes"
        lanes = "lanes: " + " | ".join(ln.label for ln in self.model.lanes)
        body = []
        for r in shown[:limit]:
            merged = nested and r.event.phase == "enter" and r.end >= 0
            label = call_label(r, self.model.rows[r.end]) if merged else r.label
            note = f"   [{r.note}]" if r.note else ""
            body.append(f"#{r.seq:<6} {r.event.thread:<9} {r.event.kind:<9} {'  ' * min(r.depth, 6)}{label}{note}")
        more = [f"first {limit} of {len(shown)} rows — re-run the cell for all"] if len(shown) > limit else []
        if nested and len(shown) < len(rows):
            more.append("calls with their returns on one line; host calls inside Wasm callbacks folded")
        return "\n".join([head, lanes, *body, *more])

    def svg(self) -> str | None:
        return self.model.svg(self.visible(), nested=self.mode != "events")

    def compare(self, other: Any, thread: str | None = None) -> Any:
        """Side by side with real Envoy's trace of the same requests (an ``EnvoyRun`` or a Trace)."""
        from .compare import CompareView

        return CompareView(self.model.events, other, thread=thread)
