"""Side by side: a wasmlab trace and real Envoy's trace of the same requests, differences marked.

Real Envoy's trace comes from its log (``wasmlab.envoy.run(config,
component_log_level="wasm:trace").trace``, parsed by ``wasmlab/envoy/logparse.py``): callbacks and
host calls with their names, arguments and results, and the ``wasm log`` / ``script log`` lines,
each on a named thread — but without VM or context ids. So the two traces are aligned per thread
on what both have, ``(kind, name, args)`` (``(kind, name, result)`` for a return), with
``difflib.SequenceMatcher``, the algorithm behind ``diff``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import traitlets as t

from ..trace import Event
from ..trace.export import envoy_lines
from .layout import thread_rank
from .render import PALETTE, Svg, esc, text_width
from .widget import View, static

SAME, DIFFERS, ONLY_LEFT, ONLY_RIGHT = "same", "differs", "only wasmlab", "only envoy"
#: what each tag is printed as (words and a glyph: never colour alone)
TAG_TEXT = {SAME: "=", DIFFERS: "≠", ONLY_LEFT: "◀ only wasmlab", ONLY_RIGHT: "only envoy ▶"}
GLYPH = {SAME: "=", DIFFERS: "≠", ONLY_LEFT: "◀", ONLY_RIGHT: "▶"}


def align_key(ev: Event) -> tuple[Any, ...] | None:
    """What two traces are compared on (None: the event is not compared)."""
    d = ev.data if isinstance(ev.data, dict) else {}
    if ev.kind in ("callback", "hostcall"):
        if d.get("phase") == "exit":
            return (ev.kind, ev.name, "return", str("void" if ev.result is None else ev.result))
        return (ev.kind, ev.name, tuple(str(a) for a in (ev.args or ())))
    if ev.kind == "log" and isinstance(ev.args, dict) and ev.args.get("logger") in ("wasm", "lua"):
        msg = str(ev.args.get("message", ""))
        if msg.startswith(("wasm log", "script log")):
            return ("log", msg)
    return None


def _line(ev: Event) -> str:
    lines = envoy_lines([ev])
    return lines[0] if lines else f"{ev.kind} {ev.name}"


@dataclass
class CompareRow:
    thread: str
    tag: str
    left: Event | None
    right: Event | None
    why: str = ""

    @property
    def left_text(self) -> str:
        return _line(self.left) if self.left is not None else ""

    @property
    def right_text(self) -> str:
        return _line(self.right) if self.right is not None else ""


def _wordy(c: str) -> bool:
    return c.isalnum() or c == "_"


def diff_spans(a: str, b: str) -> tuple[list[int], list[int]] | None:
    """Where two lines differ: ``[start, end)`` in each, from the longest common prefix and
    suffix, widened to whole words/numbers (``38`` vs ``36`` marks both numbers, not one digit).
    None when the texts are equal."""
    if a == b:
        return None
    p = 0
    while p < min(len(a), len(b)) and a[p] == b[p]:
        p += 1
    s = 0
    while s < min(len(a), len(b)) - p and a[len(a) - 1 - s] == b[len(b) - 1 - s]:
        s += 1
    while p > 0 and _wordy(a[p - 1]):
        p -= 1
    while s > 0 and _wordy(a[len(a) - s]):
        s -= 1
    return [p, len(a) - s], [p, len(b) - s]


def _why(a: tuple[Any, ...], b: tuple[Any, ...]) -> str:
    if a[:2] != b[:2]:
        return "a different call"
    if len(a) > 2 and a[2] == "return" and len(b) > 2 and b[2] == "return":
        return f"returns {a[3]} here, {b[3]} on Envoy"
    return "different arguments" if a[0] != "log" else "a different message"


def as_events(source: Any) -> list[Event]:
    """An EnvoyRun (its ``.trace``), a Trace, or any iterable of events."""
    if hasattr(source, "trace") and not isinstance(source, list):
        source = source.trace
    if hasattr(source, "events"):
        return list(source.events)
    return list(source)


def compare(left: Iterable[Event], right: Iterable[Event], thread: str | None = None) -> list[CompareRow]:
    """Aligned rows, thread by thread (main first, then the workers in order)."""
    lhs = [(ev, k) for ev in left if (k := align_key(ev)) is not None and (thread is None or ev.thread == thread)]
    rhs = [(ev, k) for ev in right if (k := align_key(ev)) is not None and (thread is None or ev.thread == thread)]
    threads = sorted({ev.thread for ev, _ in lhs} | {ev.thread for ev, _ in rhs}, key=thread_rank)
    out: list[CompareRow] = []
    for th in threads:
        a = [(ev, k) for ev, k in lhs if ev.thread == th]
        b = [(ev, k) for ev, k in rhs if ev.thread == th]
        sm = difflib.SequenceMatcher(None, [k for _, k in a], [k for _, k in b], autojunk=False)
        for op, i1, i2, j1, j2 in sm.get_opcodes():
            if op == "equal":
                out.extend(
                    CompareRow(th, SAME, a[i][0], b[j][0]) for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
                )
                continue
            paired = min(i2 - i1, j2 - j1) if op == "replace" else 0
            for x in range(paired):
                ea, ka = a[i1 + x]
                eb, kb = b[j1 + x]
                out.append(CompareRow(th, DIFFERS, ea, eb, _why(ka, kb)))
            out.extend(CompareRow(th, ONLY_LEFT, a[i][0], None) for i in range(i1 + paired, i2))
            out.extend(CompareRow(th, ONLY_RIGHT, None, b[j][0]) for j in range(j1 + paired, j2))
    return out


class CompareView(View):
    """wasmlab (left) and real Envoy (right), aligned per thread; differences marked with ≠ and
    "only wasmlab" / "only envoy", and a button to jump from one difference to the next."""

    _esm = static("common.js", "compare.js")

    rows = t.Dict().tag(sync=True)
    summary = t.Dict().tag(sync=True)
    only_differences = t.Bool(False).tag(sync=True)
    current = t.Int(-1).tag(sync=True)

    def __init__(
        self,
        wasmlab: Any,
        envoy: Any,
        thread: str | None = None,
        titles: tuple[str, str] = ("wasmlab", "real Envoy"),
        title: str = "wasmlab vs real Envoy",
    ) -> None:
        self.left_events, self.right_events = as_events(wasmlab), as_events(envoy)
        comparable = any(align_key(ev) is not None for ev in self.left_events)
        if comparable and not any(align_key(ev) is not None for ev in self.right_events):
            raise ValueError(
                f"the {titles[1]} side has no Wasm trace lines to compare with: run it with "
                'wasmlab.envoy.run(config, component_log_level="wasm:trace") and send it the same requests'
            )
        self.aligned = compare(self.left_events, self.right_events, thread)
        counts = {tag: sum(1 for r in self.aligned if r.tag == tag) for tag in TAG_TEXT}
        cols: dict[str, list[Any]] = {k: [] for k in ("thread", "tag", "left", "right", "why", "lmark", "rmark")}
        for r in self.aligned:
            cols["thread"].append(r.thread)
            cols["tag"].append(r.tag)
            cols["left"].append(r.left_text)
            cols["right"].append(r.right_text)
            cols["why"].append(r.why)
            spans = diff_spans(r.left_text, r.right_text) if r.tag == DIFFERS else None
            cols["lmark"].append(spans[0] if spans else None)
            cols["rmark"].append(spans[1] if spans else None)
        first = next((i for i, r in enumerate(self.aligned) if r.tag != SAME), -1)
        super().__init__(
            title=title,
            rows=cols,
            summary={"counts": counts, "titles": list(titles), "identical": self.identical},
            current=first,
            note=", ".join(f"{n} {tag}" for tag, n in counts.items()),
        )

    @property
    def identical(self) -> bool:
        return bool(self.aligned) and all(r.tag == SAME for r in self.aligned)

    @property
    def differences(self) -> list[CompareRow]:
        return [r for r in self.aligned if r.tag != SAME]

    def text(self) -> str:
        s = self.summary["counts"]
        head = (
            f"wasmlab vs real Envoy: {len(self.aligned)} aligned lines — {s[SAME]} same, {s[DIFFERS]} differ, "
            f"{s[ONLY_LEFT]} only in wasmlab, {s[ONLY_RIGHT]} only in Envoy"
        )
        if not self.aligned:
            return head + "\n(no callbacks, host calls or wasm/lua log lines to compare)"
        idx, left_out = self.shown_rows(limit=60)
        lines = [head] + ([f"({left_out})"] if left_out else [])
        prev = -1
        for i in idx:
            if prev >= 0 and i != prev + 1:
                lines.append("   …")
            r = self.aligned[i]
            lines.append(f"{TAG_TEXT[r.tag]:>15} [{r.thread}] {r.left_text:<60} | {r.right_text}")
            prev = i
        return "\n".join(lines)

    def shown_rows(self, limit: int = 120) -> tuple[list[int], str]:
        """The rows a static picture shows, and what it left out ("" when it shows all)."""
        n = len(self.aligned)
        if n <= limit:
            return list(range(n)), ""
        diffs = [i for i, r in enumerate(self.aligned) if r.tag != SAME]
        if not diffs:
            return list(range(limit)), f"first {limit} of {n} lines, all the same — re-run the cell for all"
        idx = sorted({j for i in diffs[:40] for j in range(max(0, i - 1), min(n, i + 2))})
        return idx, (
            f"{len(idx)} of {n} lines: {min(len(diffs), 40)} of {len(diffs)} differences with one line around each"
            " — re-run the cell for all"
        )

    def svg(self) -> str | None:
        """Every aligned line (up to 120; beyond that every difference with a line around it, and
        the picture says what it left out). Same lines are written once; a differing line is
        written for both sides with the differing part marked."""
        idx, left_out = self.shown_rows()
        left, right = self.summary["titles"]
        svg = Svg()
        size, line = 11.0, 15.0
        mono = "DejaVu Sans Mono,Menlo,Consolas,monospace"
        c = self.summary["counts"]
        svg.text(6, 14, f"{left} vs {right}", size=13, font_weight="bold")
        head = f"{len(self.aligned)} lines: {c[SAME]} same, {c[DIFFERS]} differ, {c[ONLY_LEFT]} only {left}, "
        svg.text(6, 30, head + f"{c[ONLY_RIGHT]} only {right}", size=size)
        y = 36.0
        if left_out:
            svg.text(6, y + 12, "⚠ " + left_out, size=size, fill=PALETTE["vermillion"], font_weight="bold")
            y += line
        if not self.aligned:
            svg.text(6, y + 12, "(no callbacks, host calls or wasm/lua log lines to compare)", size=size)
            y += line
        fills = {DIFFERS: "#F7D7C2", ONLY_LEFT: "#D6E8F5", ONLY_RIGHT: "#D6E8F5", SAME: "white"}
        x_text = 6 + 90.0
        prev = -1
        for i in idx:
            r = self.aligned[i]
            if prev >= 0 and i != prev + 1:
                svg.text(x_text, y + 11, "…", size=size)
                y += line
            prev = i
            lines: list[tuple[str, str, list[int] | None]]
            if r.tag == SAME:
                lines = [("", r.left_text, None)]
            elif r.tag == DIFFERS:
                spans = diff_spans(r.left_text, r.right_text) or ([0, 0], [0, 0])
                lines = [(f"{left}: ", r.left_text, spans[0]), (f"{right}: ", r.right_text, spans[1])]
                if r.why:
                    lines.append(("why: ", r.why, None))
            elif r.tag == ONLY_LEFT:
                lines = [(f"only {left}: ", r.left_text, None)]
            else:
                lines = [(f"only {right}: ", r.right_text, None)]
            h = line * len(lines) + 2
            svg.rect(4, y, 92 + max(text_width(p + t, size) for p, t, _ in lines), h, fills[r.tag], "#ddd")
            svg.text(8, y + 11.5, GLYPH[r.tag], size=size, font_weight="bold")
            svg.text(22, y + 11.5, r.thread, size=size, fill="#555")
            for k, (prefix, body, mark) in enumerate(lines):
                svg.add(_marked_text(x_text, y + 11.5 + k * line, prefix, body, mark, size, mono))
                svg.grow(x_text + text_width(prefix + body, size) + 8, y + h)
            y += h + 1
        svg.grow(420, y + 4)
        return svg.done(f"{left} vs {right}")


def _marked_text(x: float, y: float, prefix: str, body: str, mark: list[int] | None, size: float, family: str) -> str:
    """One SVG text line; the differing part (``mark``) bold on an orange background."""
    if mark and mark[1] > mark[0]:
        a, b = mark
        parts = (
            f'{esc(body[:a])}<tspan font-weight="bold" fill="#8a3b00" text-decoration="underline">'
            f"{esc(body[a:b])}</tspan>{esc(body[b:])}"
        )
    else:
        parts = esc(body)
    pre = f'<tspan fill="#555">{esc(prefix)}</tspan>' if prefix else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" font-family="{family}" xml:space="preserve">'
        f"{pre}{parts}</text>"
    )
