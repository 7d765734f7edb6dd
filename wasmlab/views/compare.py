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
from .render import PALETTE, Svg, text_width
from .widget import View, static

SAME, DIFFERS, ONLY_LEFT, ONLY_RIGHT = "same", "differs", "only wasmlab", "only envoy"
#: what each tag is printed as (words and a glyph: never colour alone)
TAG_TEXT = {SAME: "=", DIFFERS: "≠", ONLY_LEFT: "◀ only wasmlab", ONLY_RIGHT: "only envoy ▶"}


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
        cols: dict[str, list[Any]] = {"thread": [], "tag": [], "left": [], "right": [], "why": []}
        for r in self.aligned:
            cols["thread"].append(r.thread)
            cols["tag"].append(r.tag)
            cols["left"].append(r.left_text)
            cols["right"].append(r.right_text)
            cols["why"].append(r.why)
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
        lines = [head]
        diffs = [i for i, r in enumerate(self.aligned) if r.tag != SAME]
        show = sorted({j for i in diffs[:10] for j in range(max(0, i - 2), min(len(self.aligned), i + 3))})
        if not diffs:
            show = list(range(min(12, len(self.aligned))))
        prev = -1
        for i in show:
            if prev >= 0 and i != prev + 1:
                lines.append("   …")
            r = self.aligned[i]
            lines.append(f"{TAG_TEXT[r.tag]:>15} [{r.thread}] {r.left_text:<60} | {r.right_text}")
            prev = i
        return "\n".join(lines)

    def svg(self) -> str | None:
        """The first differences (or the first lines) side by side."""
        diffs = [i for i, r in enumerate(self.aligned) if r.tag != SAME]
        idx = sorted({j for i in diffs[:8] for j in range(max(0, i - 1), min(len(self.aligned), i + 2))})
        if not diffs:
            idx = list(range(min(20, len(self.aligned))))
        svg = Svg()
        left, right = self.summary["titles"]
        col = 480.0
        svg.text(110, 16, left, size=12, font_weight="bold")
        svg.text(110 + col, 16, right, size=12, font_weight="bold")
        y = 24.0
        fills = {DIFFERS: "#F7D7C2", ONLY_LEFT: "#D6E8F5", ONLY_RIGHT: "#D6E8F5", SAME: "white"}
        for i in idx:
            r = self.aligned[i]
            svg.rect(4, y, 100 + 2 * col, 16, fills[r.tag], "#ddd")
            svg.text(8, y + 12, TAG_TEXT[r.tag], size=10, fill=PALETTE["black"])
            svg.text(110, y + 12, r.left_text[:78], size=10, family="monospace")
            svg.text(110 + col, y + 12, r.right_text[:78], size=10, family="monospace")
            y += 18
        svg.grow(110 + 2 * col + text_width("x" * 10), y)
        return svg.done("wasmlab vs real Envoy")
