"""The base of every view: an anywidget whose JavaScript is read from ``static/`` (shipped in the
package, so nothing is fetched from the internet in a classroom), plus the pictures a notebook
keeps where widgets cannot run.

Where a view can be seen without a kernel, and what decides it:

- JupyterLab draws an output with its highest-ranked MIME type; the widget renderer ranks first
  (-10) but is not "safe", so it is used only for trusted outputs. A trusted output whose model is
  gone (a notebook reopened with a new kernel, widget state not saved: JupyterLab's default) reads
  "Error displaying widget: model not found" — and nothing else of that output is shown.
- ``nbconvert --to html`` picks one MIME type per output too, and picks the widget whenever the
  notebook's metadata holds the widget's state (``nbconvert --execute`` and nbclient save it); the
  page then loads the widget manager from a CDN, so offline the output is blank.

So the picture cannot live only in the widget's own bundle. Displaying a view publishes two
outputs (:meth:`View._ipython_display_`): the widget (with a one-line ``text/plain``), then its
static picture (``text/html``: an ``<img>`` of the SVG as a data URI, which JupyterLab's sanitizer
keeps for untrusted notebooks, or an HTML table) with the line "re-run the cell for the
interactive view". The stylesheet every live view loads hides that picture as soon as the widget
next to it has rendered. ``_repr_mimebundle_`` alone (called by other tools) still carries the
fallbacks in one bundle.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from ..trace import Event
from .render import esc

STATIC = Path(__file__).resolve().parent / "static"


def static(*names: str) -> str:
    """The concatenated text of files in ``static/`` (helpers first, the view's module last)."""
    return "\n".join((STATIC / n).read_text(encoding="utf-8") for n in names)


def jsonable(value: Any) -> Any:
    """A trace value as JSON would keep it (bytes -> latin-1 text, tuples -> lists)."""

    def default(v: Any) -> Any:
        if isinstance(v, bytes | bytearray):
            return bytes(v).decode("latin-1")
        if isinstance(v, set | frozenset | tuple):
            return list(v)
        return repr(v)

    return json.loads(json.dumps(value, default=default))


def event_dict(ev: Event) -> dict[str, Any]:
    return jsonable(ev.to_dict())


RERUN = "re-run the cell for the interactive view"
STATIC_MIME = "text/html"


def _svg_img(svg: str, alt: str) -> str:
    """An SVG as an ``<img>`` with a data URI (survives JupyterLab's HTML sanitizer, needs no
    network), in a box that scrolls sideways, with a hint, when it is wider than the output."""
    if "xmlns=" not in svg[:400]:
        svg = svg.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"', 1)
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    m = re.search(r'<svg[^>]*\swidth="([\d.]+)(?:pt|px)?"', svg)
    width = float(m.group(1)) * (4 / 3 if m and 'pt"' in m.group(0) else 1) if m else 0.0
    hint = (
        f'<div class="wl-scroll-hint" style="font-style:italic;color:#555">the picture is {width:.0f} px wide: '
        "where it is cut, scroll → for the rest</div>"
        if width > 640
        else ""
    )
    return (
        f'{hint}<div style="overflow-x:auto;max-width:100%">'
        f'<img class="wl-static-img" alt="{esc(alt[:2000])}" style="max-width:none" '
        f'src="data:image/svg+xml;base64,{data}"/></div>'
    )


def static_html(views: Iterable[View]) -> str:
    """The static pictures of ``views``, with the line saying how to get the interactive ones."""
    parts = []
    for v in views:
        try:
            svg, html = v.svg(), v.html()
        except Exception as e:  # a fallback must never stop the widget from showing
            svg, html = None, f"<pre>{esc(v.text())}</pre><p>(no static picture: {esc(type(e).__name__)}: {esc(e)})</p>"
        picture = _svg_img(svg, v.text()) if svg else (html or f"<pre>{esc(v.text())}</pre>")
        parts.append(
            f'<div class="wl-static" data-wl-view="{esc(type(v).__name__)}" style="margin:0.3em 0">'
            f'<div style="font-weight:bold">{esc(v.title or type(v).__name__)} '
            f'<span style="font-weight:normal;color:#555">— static picture: {RERUN}</span></div>'
            f"{picture}</div>"
        )
    return "".join(parts)


def static_bundle(views: Iterable[View]) -> dict[str, str]:
    """The second output a view leaves in the notebook: its picture, and its text for terminals."""
    views = list(views)
    return {
        STATIC_MIME: static_html(views),
        "text/plain": "\n\n".join(v.text() for v in views) + f"\n({RERUN})",
    }


class View(anywidget.AnyWidget):
    """A view of a trace. Subclasses set ``_esm``/``_css`` and implement :meth:`text` (and
    :meth:`svg` or :meth:`html` where a static picture is cheap). ``svg()``/``html()`` must be
    complete or say what they left out ("first 20 of 37 rows — re-run for all")."""

    _css = static("common.css")

    #: a one-line note shown under the view (e.g. which program drew the picture)
    note = t.Unicode("").tag(sync=True)
    title = t.Unicode("").tag(sync=True)
    #: the trace seq of the event this view's cursor stands on (0: before the first event); views
    #: linked with :func:`wasmlab.views.link` share it in the browser (ipywidgets.jslink)
    cursor_seq = t.Int(0).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_msg(self._on_custom_msg)

    # ---- fallbacks ------------------------------------------------------------------------------
    def text(self) -> str:
        return self.title

    def svg(self) -> str | None:
        return None

    def html(self) -> str | None:
        return None

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget with every fallback in one bundle (what tools that ask for one bundle get)."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, meta = bundle
        data["text/plain"] = self.text()
        try:
            svg = self.svg()
            html = self.html()
        except Exception as e:  # a fallback must never stop the widget from showing
            svg, html = None, None
            data["text/plain"] += f"\n(no static picture: {type(e).__name__}: {e})"
        if svg:
            data["image/svg+xml"] = svg
        if html:
            data["text/html"] = f"<p><i>{esc(self.title)} — static picture: {RERUN}</i></p>{html}"
        return data, meta

    def _ipython_display_(self, **kwargs: Any) -> None:
        """In a notebook: the widget, then its static picture as an output of its own (see the
        module docstring for why two outputs)."""
        display_with_picture(self, [self])

    # ---- messages from the browser --------------------------------------------------------------
    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "details":
            try:
                i = int(content.get("index", -1))
            except (TypeError, ValueError):
                return
            self.send({"type": "details", "index": i, "event": self.details(i)})

    def details(self, index: int) -> dict[str, Any] | None:
        """Everything recorded about event ``index`` (the browser asks when one is clicked)."""
        return None


def display_with_picture(widget: Any, views: list[View]) -> None:
    """Publish ``widget`` (a view, or a box of views) and then the views' static pictures."""
    from IPython.display import display

    # a View's own _repr_mimebundle_ adds the fallbacks: here they go to the second output instead
    own = anywidget.AnyWidget._repr_mimebundle_ if isinstance(widget, View) else type(widget)._repr_mimebundle_
    bundle = own(widget)
    data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
    names = ", ".join(v.title or type(v).__name__ for v in views)
    data = {k: v for k, v in data.items() if k == WIDGET_MIME}
    data["text/plain"] = f"{names}: interactive view (its static picture follows)"
    display(data, metadata=meta or {}, raw=True)
    display(static_bundle(views), raw=True)


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
