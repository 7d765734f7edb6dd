"""wasmlab side by side with real Envoy: alignment on (thread, kind, name, args)."""

from __future__ import annotations

import json
import time

import pytest
from view_traces import wasm_trace  # noqa: F401

from conftest import CONFIGS
from wasmlab import Proxy
from wasmlab.trace import Event
from wasmlab.views import CompareView, compare
from wasmlab.views.compare import align_key


def as_envoy_sees_it(events) -> list[Event]:
    """What the log parser makes of these events: no VM or context ids, no time, no arguments on
    a return line, only callbacks, host calls and wasm log lines."""
    out = []
    for ev in events:
        if ev.kind in ("callback", "hostcall"):
            exit_ = ev.data.get("phase") == "exit"
            args = None if exit_ else list(ev.args)
            data = {"phase": "exit" if exit_ else "enter"}
            out.append(
                Event(len(out) + 1, 0, ev.thread, ev.worker, None, None, ev.kind, ev.name, args, ev.result, data)
            )
        elif ev.kind == "log":
            out.append(Event(len(out) + 1, 0, ev.thread, ev.worker, None, None, "log", ev.name, ev.args, None, None))
    return out


def test_the_same_run_is_identical(wasm_trace):
    v = CompareView(wasm_trace, as_envoy_sees_it(wasm_trace))
    assert v.identical and not v.differences
    assert v.summary["counts"]["same"] == len(v.aligned) > 50
    assert v.aligned[0].thread == "main"  # main first, then the workers
    assert v.current == -1
    json.dumps(v.get_state())


def test_differences_are_found_and_named(wasm_trace):
    right = as_envoy_sees_it(wasm_trace)
    # Envoy "returns" 1 where wasmlab returned 0, and never calls the first proxy_on_log
    i = next(i for i, ev in enumerate(right) if ev.name == "proxy_on_request_headers" and ev.result == 0)
    right[i] = right[i]._replace(result=1)
    j = next(j for j, ev in enumerate(right) if ev.name == "proxy_on_log")
    k = next(k for k in range(j + 1, len(right)) if right[k].name == "proxy_on_log")
    removed = right[j : k + 1]
    del right[j : k + 1]
    rows = compare(wasm_trace, right)
    differs = [r for r in rows if r.tag == "differs"]
    assert len(differs) == 1
    assert differs[0].left_text == "[host<-vm] proxy_on_request_headers return: 0"
    assert differs[0].right_text == "[host<-vm] proxy_on_request_headers return: 1"
    assert differs[0].why == "returns 0 here, 1 on Envoy"
    only = [r for r in rows if r.tag == "only wasmlab"]
    assert [r.left.name for r in only] == [ev.name for ev in removed if align_key(ev) is not None]
    assert only[0].left.name == "proxy_on_log" and len(only) > 2
    assert not [r for r in rows if r.tag == "only envoy"]
    v = CompareView(wasm_trace, right)
    assert v.current == next(i for i, r in enumerate(rows) if r.tag != "same")
    assert "≠" in v.text() and "returns 0 here, 1 on Envoy" in v.rows["why"]
    assert v.svg().startswith("<svg")


def test_per_thread(wasm_trace):
    rows = compare(wasm_trace, as_envoy_sees_it(wasm_trace), thread="worker_1")
    assert rows and {r.thread for r in rows} == {"worker_1"}


@pytest.mark.envoy
def test_wasmlab_and_real_envoy_trace_the_same_request_identically(envoy_bin):
    from wasmlab import envoy as real

    config = CONFIGS / "wasm" / "hello.yaml"
    p = Proxy.from_yaml(config, workers=1, component_log_level="wasm:trace")
    e = real.run(config, workers=1, component_log_level="wasm:trace")
    try:
        assert p.request("GET", "/hello").status == e.request("GET", "/hello").status == 200
        time.sleep(0.3)
    finally:
        p.close()
        e.close()
    try:
        v = p.views.compare(e)
        assert v.identical, v.text()
        assert {r.thread for r in v.aligned} == {"main", "worker_0"}
        assert sum(1 for r in v.aligned if r.left.name == "proxy_on_request_headers") == 2
    finally:
        e.__exit__(None, None, None)


def test_an_envoy_side_without_trace_lines_is_a_clear_error(wasm_trace):
    from wasmlab.views import views

    with pytest.raises(ValueError, match='component_log_level="wasm:trace"'):
        views(wasm_trace).compare([])


def test_the_differing_part_of_a_line_is_marked(wasm_trace):
    from wasmlab.views.compare import diff_spans

    a, b = "[host<-vm] proxy_on_request_headers return: 0", "[host<-vm] proxy_on_request_headers return: 1"
    (la, lb), (ra, rb) = diff_spans(a, b)
    assert a[la:lb] == "0" and b[ra:rb] == "1"
    # whole numbers, not the one digit that differs
    (la, lb), (ra, rb) = diff_spans("env.proxy_log(2, 2048, 38)", "env.proxy_log(2, 2048, 36)")
    assert "env.proxy_log(2, 2048, 38)"[la:lb] == "38" and "env.proxy_log(2, 2048, 36)"[ra:rb] == "36"
    assert diff_spans("same", "same") is None
    right = as_envoy_sees_it(wasm_trace)
    i = next(i for i, ev in enumerate(right) if ev.name == "proxy_on_request_headers" and ev.result == 0)
    right[i] = right[i]._replace(result=1)
    v = CompareView(wasm_trace, right)
    k = v.rows["tag"].index("differs")
    lo, hi = v.rows["lmark"][k]
    assert v.rows["left"][k][lo:hi] == "0" and v.rows["rmark"][k] == [lo, hi]
    assert all(m is None for t, m in zip(v.rows["tag"], v.rows["lmark"], strict=True) if t != "differs")
    svg = v.svg()
    assert 'font-weight="bold" fill="#8a3b00" text-decoration="underline">0</tspan>' in svg


def test_the_static_picture_shows_every_line_or_says_what_it_left_out(wasm_trace):
    right = as_envoy_sees_it(wasm_trace)
    v = CompareView(wasm_trace, right)
    n = len(v.aligned)
    idx, left_out = v.shown_rows(limit=n)
    assert idx == list(range(n)) and left_out == ""
    assert v.svg().count("<text") >= n  # one line per aligned row, none cut
    idx, left_out = v.shown_rows(limit=20)
    assert len(idx) == 20 and left_out == f"first 20 of {n} lines, all the same — re-run the cell for all"
    right[5] = right[5]._replace(name="proxy_on_something_else")
    v = CompareView(wasm_trace, right)
    idx, left_out = v.shown_rows(limit=20)
    assert len(idx) < len(v.aligned) and "re-run the cell for all" in left_out and "differences" in left_out
    big = CompareView(wasm_trace, right)
    big.shown_rows = lambda limit=120: v.shown_rows(limit=20)  # type: ignore[method-assign]
    assert "re-run the cell for all" in big.svg() and "re-run the cell for all" in big.text()
