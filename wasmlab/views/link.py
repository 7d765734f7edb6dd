"""One cursor across views, as Python Tutor keeps one step for all its pictures.

Every view has a synced ``cursor_seq`` trait: the trace ``seq`` of the event its cursor stands on.
:func:`link` ties the traits of several views together with ``ipywidgets.jslink``, a link that
lives in the browser: stepping one view sets its ``cursor_seq``, the browser copies it to the
others, and each moves to its last own step at or before that seq. The kernel is not involved,
so linked views keep moving together while a cell runs, and in a notebook reopened with saved
widget state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets

from .widget import View, display_with_picture


def link(*views: View) -> list[Any]:
    """Link the ``cursor_seq`` of ``views`` (the first with each other one). Keep the returned
    links alive (a closed link stops linking); :class:`LinkedViews` keeps its own."""
    for v in views:
        if not isinstance(v, View):
            raise TypeError(f"link() takes wasmlab views, got {type(v).__name__}")
    if len(views) < 2:
        raise ValueError("link() needs at least two views")
    first = views[0]
    for v in views[1:]:
        if v.cursor_seq != first.cursor_seq:
            v.cursor_seq = first.cursor_seq
    return [widgets.jslink((first, "cursor_seq"), (v, "cursor_seq")) for v in views[1:]]


class LinkedViews(widgets.VBox):
    """A column of views that share one cursor (``proxy.views.linked(...)``)."""

    def __init__(self, views: Sequence[View], **kwargs: Any) -> None:
        super().__init__(children=list(views), **kwargs)
        self.views: list[View] = list(views)
        self.links = link(*self.views)

    def _ipython_display_(self, **kwargs: Any) -> None:
        display_with_picture(self, self.views)

    def __repr__(self) -> str:
        return f"<LinkedViews: {', '.join(type(v).__name__ for v in self.views)} (one cursor)>"
