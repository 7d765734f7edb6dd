"""The base of every view: an anywidget whose JavaScript is read from ``static/`` (shipped in the
package, so nothing is fetched from the internet in a classroom), plus the fallbacks a notebook
shows where widgets cannot run: ``text/plain`` always, ``image/svg+xml`` or ``text/html`` where
they are cheap (nbconvert, GitHub and nbviewer render those)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from ..trace import Event

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


class View(anywidget.AnyWidget):
    """A view of a trace. Subclasses set ``_esm``/``_css`` and implement :meth:`text` (and
    :meth:`svg` or :meth:`html` where a static picture is cheap)."""

    _css = static("common.css")

    #: a one-line note shown under the view (e.g. which program drew the picture)
    note = t.Unicode("").tag(sync=True)
    title = t.Unicode("").tag(sync=True)

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
            data["text/html"] = html
        return data, meta

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
