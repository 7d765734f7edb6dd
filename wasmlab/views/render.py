"""Static pictures: Graphviz ``dot`` when it is on PATH, a built-in SVG layout when it is not.

``render_dot`` is the one place that runs Graphviz. It tries ``dot`` on PATH, then the pip-only
``graphviz-pure`` binary, and returns ``None`` (never raises) when neither works; callers then
use their built-in layout. The pictures are what nbconvert, GitHub and nbviewer show for a view
(its ``image/svg+xml``), and what the VM layout widget draws in the browser.

Colours are the Okabe–Ito palette (safe for the common colour-vision deficiencies); every
colour also has a word or a line style next to it, so nothing is told by colour alone.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from typing import Any

#: Okabe & Ito (2008), "Color Universal Design"
PALETTE = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "grey": "#999999",
}

#: light fills (the palette mixed with white) for boxes with dark text on them
FILL = {
    "wasm": "#D6E8F5",  # blue
    "lua": "#F5E1EC",  # purple
    "native": "#CCEDE3",  # green
    "queue": "#FAEBCC",  # orange
    "shared": "#FCF9D9",  # yellow
    "thread": "#F7F7F7",
    "failed": "#F7D7C2",  # vermillion
    "destroyed": "#EEEEEE",
}

#: kinds of trace event -> colour (the kind's name is always printed next to it too)
KIND_COLOUR = {
    "stream": PALETTE["black"],
    "filter": PALETTE["green"],
    "callback": PALETTE["blue"],
    "hostcall": PALETTE["sky"],
    "lua": PALETTE["purple"],
    "vm": PALETTE["orange"],
    "context": PALETTE["grey"],
    "queue": PALETTE["orange"],
    "timer": PALETTE["grey"],
    "callout": PALETTE["black"],
    "log": PALETTE["grey"],
    "trap": PALETTE["vermillion"],
    "shared_data": PALETTE["yellow"],
    "upstream": PALETTE["black"],
}


def esc(s: Any) -> str:
    return html.escape(str(s), quote=True)


def graphviz_binary() -> str | None:
    """``dot`` on PATH, else ``graphviz-pure`` (pip), else None. Looked up on every call: a
    test (or a learner) may change PATH."""
    return shutil.which("dot") or shutil.which("graphviz-pure")


def render_dot(src: str, timeout: float = 20.0) -> tuple[str | None, str]:
    """``(svg, backend)``: the SVG Graphviz made of ``src`` and which program made it, or
    ``(None, reason)`` when no Graphviz is usable. Never raises."""
    exe = graphviz_binary()
    if exe is None:
        return None, "built-in layout (Graphviz `dot` is not on PATH)"
    try:
        p = subprocess.run([exe, "-Tsvg"], input=src.encode(), capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"built-in layout ({exe} failed: {type(e).__name__})"
    if p.returncode != 0 or b"<svg" not in p.stdout:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        return None, f"built-in layout ({exe} failed: {err[-1] if err else p.returncode})"
    out = p.stdout.decode()
    return out[out.index("<svg") :], f"Graphviz ({exe.rsplit('/', 1)[-1]})"


def dot_quote(s: Any) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot_attrs(**kw: Any) -> str:
    return "[" + ", ".join(f"{k.rstrip('_')}={dot_quote(v)}" for k, v in kw.items() if v is not None) + "]"


# ---- a tiny SVG builder for the built-in layouts --------------------------------------------------
CHAR_W = 6.4  # average advance of an 11 px sans-serif character
LINE_H = 14


def text_width(s: str, size: float = 11) -> float:
    return len(s) * CHAR_W * size / 11


class Svg:
    """Collects SVG elements; :meth:`done` wraps them with the right size."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.w = 0.0
        self.h = 0.0

    def grow(self, x: float, y: float) -> None:
        self.w, self.h = max(self.w, x), max(self.h, y)

    def add(self, s: str) -> None:
        self.parts.append(s)

    def rect(self, x: float, y: float, w: float, h: float, fill: str, stroke: str = "#333", **kw: Any) -> None:
        extra = "".join(f' {k.replace("_", "-")}="{esc(v)}"' for k, v in kw.items() if v is not None)
        self.add(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="4" fill="{fill}"'
            f' stroke="{stroke}"{extra}/>'
        )
        self.grow(x + w, y + h)

    def text(
        self,
        x: float,
        y: float,
        s: str,
        size: float = 11,
        anchor: str = "start",
        family: str = "Helvetica,Arial,sans-serif",
        **kw: Any,
    ) -> None:
        extra = "".join(f' {k.replace("_", "-")}="{esc(v)}"' for k, v in kw.items() if v is not None)
        self.add(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"'
            f' font-family="{family}"{extra}>{esc(s)}</text>'
        )
        self.grow(x + (text_width(s, size) if anchor == "start" else text_width(s, size) / 2), y + 4)

    def box(
        self,
        id_: str,
        cls: str,
        x: float,
        y: float,
        lines: list[str],
        fill: str,
        stroke: str = "#333",
        dash: str | None = None,
        min_w: float = 0,
    ) -> tuple[float, float]:
        """A node: a rounded box with one text line per entry (the last line is the status a
        view may rewrite), as ``<g id class>`` like Graphviz's nodes. Returns (w, h)."""
        w = max(min_w, max(text_width(s) for s in lines) + 16)
        h = len(lines) * LINE_H + 8
        self.add(f'<g id="{esc(id_)}" class="node {esc(cls)}">')
        self.rect(x, y, w, h, fill, stroke, stroke_dasharray=dash)
        for i, s in enumerate(lines):
            self.text(x + w / 2, y + 15 + i * LINE_H, s, anchor="middle", font_weight="bold" if i == 0 else None)
        self.add("</g>")
        return w, h

    def edge(
        self,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        cls: str,
        dash: str | None = None,
        label: str = "",
        color: str = "#555",
        arrow: bool = True,
        width: float = 1.0,
    ) -> None:
        mx = (x1 + x2) / 2
        d = f"M{x1:.1f},{y1:.1f} C{mx:.1f},{y1:.1f} {mx:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        marker = ' marker-end="url(#wl-arrow)"' if arrow else ""
        self.add(
            f'<g class="edge {esc(cls)}"><path d="{d}" fill="none" stroke="{color}" stroke-width="{width}"'
            f"{dash_attr}{marker}/>"
            + (
                f'<text x="{mx:.1f}" y="{(y1 + y2) / 2 - 3:.1f}" font-size="9" text-anchor="middle"'
                f' font-family="Helvetica,Arial,sans-serif" fill="#222">{esc(label)}</text>'
                if label
                else ""
            )
            + "</g>"
        )

    def done(self, title: str = "") -> str:
        w, h = self.w + 12, self.h + 12
        defs = (
            '<defs><marker id="wl-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"'
            ' orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>'
        )
        t = f"<title>{esc(title)}</title>" if title else ""
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" height="{h:.0f}" viewBox="0 0 {w:.0f} {h:.0f}"'
            f' class="wl-svg">{t}{defs}<rect width="100%" height="100%" fill="white"/>' + "".join(self.parts) + "</svg>"
        )
