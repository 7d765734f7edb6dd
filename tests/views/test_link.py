"""One cursor: every view has ``cursor_seq``; ``proxy.views.linked(...)`` and
``wasmlab.views.link(...)`` tie them together in the browser with ipywidgets.jslink."""

from __future__ import annotations

import ipywidgets
import pytest
from view_traces import service_trace  # noqa: F401

from wasmlab.views import LinkedViews, link, views
from wasmlab.views.widget import View


def test_every_view_has_a_synced_cursor(service_trace):
    v = views(service_trace)
    for view in (v.timeline(), v.vm_layout(), v.queue_flow(), v.inspector(), v.compare(service_trace)):
        assert isinstance(view, View)
        assert view.cursor_seq == 0 and "cursor_seq" in view.keys and view.get_state()["cursor_seq"] == 0


def test_linked_views_by_name_share_the_cursor_through_jslink(service_trace):
    box = views(service_trace).linked("timeline", "vm_layout", "queue_flow")
    assert isinstance(box, LinkedViews) and isinstance(box, ipywidgets.VBox)
    assert [type(v).__name__ for v in box.children] == ["TimelineView", "VMLayoutView", "QueueFlowView"]
    assert len(box.links) == 2
    first = box.children[0]
    for lk, other in zip(box.links, box.children[1:], strict=True):
        assert isinstance(lk, ipywidgets.widgets.widget_link.Link)  # jslink: lives in the browser, not in the kernel
        assert lk.source == (first, "cursor_seq") and lk.target == (other, "cursor_seq")
    default = views(service_trace).linked()
    assert [type(v).__name__ for v in default.views] == ["TimelineView", "VMLayoutView", "QueueFlowView"]


def test_link_takes_widgets_and_starts_them_together(service_trace):
    v = views(service_trace)
    a, b = v.timeline(), v.inspector()
    a.cursor_seq = 12
    links = link(a, b)
    assert len(links) == 1 and b.cursor_seq == 12
    box = v.linked(v.inspector(), "timeline")
    assert [type(x).__name__ for x in box.views] == ["InspectorView", "TimelineView"]


def test_link_refuses_what_it_cannot_link(service_trace):
    v = views(service_trace)
    with pytest.raises(ValueError, match="at least two"):
        link(v.timeline())
    with pytest.raises(TypeError, match="wasmlab views"):
        link(v.timeline(), ipywidgets.IntSlider())
    with pytest.raises(ValueError, match="linked\\(\\) takes views or the names"):
        v.linked("timeline", "mermaid")


def test_linked_views_leave_one_picture_for_all(service_trace):
    from test_fallbacks import WIDGET_MIME, displayed

    box = views(service_trace).linked()
    widget, picture = displayed(box)
    assert widget[WIDGET_MIME]["model_id"] == box.model_id
    assert picture["text/html"].count('class="wl-static"') == 3
