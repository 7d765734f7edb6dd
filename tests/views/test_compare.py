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
