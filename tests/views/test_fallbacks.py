"""Every view renders without Graphviz, has text/plain and SVG (or HTML) fallbacks, saveable
state, and JavaScript that fetches nothing from the network."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from importlib import resources

import pytest
from view_traces import lua_trace, service_trace, trap_trace, wasm_trace  # noqa: F401

from conftest import ROOT, need
from wasmlab.views import render_dot, views
from wasmlab.views.layout import LayoutModel
from wasmlab.views.layout_draw import LayoutDrawing
from wasmlab.views.widget import STATIC

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def every_view(trace):
    v = views(trace)
    return {
        "vm_layout": v.vm_layout(),
        "timeline": v.timeline(),
        "queue_flow": v.queue_flow(),
        "inspector": v.inspector(),
        "compare": v.compare(trace),
    }


def check_bundle(name, view):
    data, _meta = view._repr_mimebundle_()
    assert WIDGET_MIME in data, name
    assert data["text/plain"].strip() and not data["text/plain"].startswith("<"), name
    assert "image/svg+xml" in data or "text/html" in data, name
    if "image/svg+xml" in data:
        assert data["image/svg+xml"].lstrip().startswith("<svg"), name
    json.dumps(view.get_state())  # plain JSON: the notebook saves it
    return data


@pytest.fixture
def no_dot(tmp_path, monkeypatch):
    """PATH without Graphviz (nor graphviz-pure)."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("dot") is None and shutil.which("graphviz-pure") is None
    return empty


def test_without_dot_every_view_still_renders(no_dot, wasm_trace, service_trace, trap_trace, lua_trace):
    svg, backend = render_dot("digraph { a -> b }")
    assert svg is None and "not on PATH" in backend
    for trace in (wasm_trace, service_trace, trap_trace, lua_trace):
        for name, view in every_view(trace).items():
            data = check_bundle(name, view)
            if name == "vm_layout":
                assert view.backend.startswith("built-in") and "built-in" in view.note
                assert 'id="wl-vm-0"' in view.picture and data["image/svg+xml"] == view.picture


def test_a_broken_dot_falls_back_too(no_dot, wasm_trace):
    fake = no_dot / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: syntax error in line 1' >&2\nexit 1\n")
    fake.chmod(0o755)
    v = views(wasm_trace).vm_layout()
    assert v.backend.startswith("built-in layout (") and "failed: Error: syntax error" in v.backend
    assert "<svg" in v.picture


def test_with_dot_the_layout_is_drawn_by_graphviz(service_trace):
    need(shutil.which("dot") is not None, "Graphviz dot (apt-get install graphviz)")
    v = views(service_trace).vm_layout()
    assert v.backend.startswith("Graphviz") and 'class="graph"' in v.picture
    d = LayoutDrawing(LayoutModel.from_events(service_trace))
    for vid in d.vm_ids.values():
        assert f'id="{vid}"' in v.picture.replace("&#45;", "-")
    check_bundle("vm_layout", v)
    builtin = views(service_trace).vm_layout(engine="builtin")
    assert builtin.backend == "built-in layout" and 'class="graph"' not in builtin.picture


def test_javascript_and_css_ship_in_the_package_and_fetch_nothing():
    files = {p.name for p in STATIC.iterdir()}
    views_js = {f"{n}.js" for n in ("common", "timeline", "vm_layout", "queue_flow", "inspector", "compare")}
    assert views_js | {"common.css"} <= files
    packaged = resources.files("wasmlab.views") / "static"
    assert (packaged / "timeline.js").is_file()
    for p in STATIC.iterdir():
        text = p.read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text, p.name
        if p.suffix == ".js":
            assert "import " not in text.replace("import(", ""), p.name  # no module imports at all
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "views/static/*" in pyproject["tool"]["setuptools"]["package-data"]["wasmlab"]


def test_views_of_a_proxy_and_of_a_saved_trace(proxy_factory, tmp_path):
    from conftest import CONFIGS
    from wasmlab.views import load_trace

    p = proxy_factory(CONFIGS / "wasm" / "hello.yaml", workers=1)
    p.request("GET", "/hello")
    p.wait_idle()
    assert "running proxy" in repr(p.views)
    path = p.trace.save(tmp_path / "t.json")
    saved = load_trace(path)
    assert "saved trace" in repr(saved)
    assert saved.timeline().columns["label"] == p.views.timeline().columns["label"][: len(saved.events())]
    assert saved.inspector().requests == p.views.inspector().requests
    with pytest.raises(ValueError, match="engine must be"):
        p.views.vm_layout(engine="neato")
    assert os.environ.get("PATH")


def test_a_proxy_without_tracing_says_so(proxy_factory):
    from conftest import CONFIGS

    p = proxy_factory(CONFIGS / "hello.yaml", workers=1, trace=False)
    p.request("GET", "/hello")
    for view in (p.views.timeline(), p.views.vm_layout(), p.views.queue_flow(), p.views.inspector()):
        assert view.note.startswith("nothing recorded: this proxy was built with trace=False")


def displayed(obj) -> list[dict]:
    """What a notebook keeps when ``obj`` is displayed: one data dict per output."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import display
    from IPython.utils.capture import capture_output

    InteractiveShell.instance()
    with capture_output() as cap:
        display(obj)
    return [o.data for o in cap.outputs]


def test_a_displayed_view_leaves_its_static_picture_as_an_output_of_its_own(service_trace):
    """nbconvert picks the widget whenever its state is saved, and JupyterLab shows only "model
    not found" for a trusted widget output whose model is gone: so the picture is a second output
    (an <img> data URI that JupyterLab's sanitizer keeps), with the line saying how to get the
    interactive view back."""
    import base64
    import re

    for name, view in every_view(service_trace).items():
        outs = displayed(view)
        assert len(outs) == 2, name
        widget, picture = outs
        assert set(widget) == {WIDGET_MIME, "text/plain"}, name
        assert widget[WIDGET_MIME]["model_id"] == view.model_id
        html = picture["text/html"]
        assert 'class="wl-static"' in html and "re-run the cell for the interactive view" in html, name
        assert WIDGET_MIME not in picture and picture["text/plain"].startswith(view.text()[:40]), name
        if view.svg():
            src = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', html).group(1)
            svg = base64.b64decode(src).decode()
            assert svg.lstrip().startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in svg[:300], name
        else:
            assert "<table>" in html or "<pre>" in html, name


def test_a_picture_that_fails_says_so_and_the_widget_still_shows(service_trace):
    v = views(service_trace).inspector()
    v.html = lambda: 1 / 0  # type: ignore[method-assign]
    widget, picture = displayed(v)
    assert WIDGET_MIME in widget
    assert "no static picture: ZeroDivisionError" in picture["text/html"]


def test_the_hiding_rule_only_hides_a_picture_next_to_a_rendered_view():
    css = (STATIC / "common.css").read_text()
    assert ".jp-OutputArea-child:has(.wl[data-ready]) + .jp-OutputArea-child:has(.wl-static) { display: none; }" in css
