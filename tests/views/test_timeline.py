"""The callback timeline: lanes, arrows, streams and order, from traces of real runs."""

from __future__ import annotations

import json
import re

from view_traces import callout_trace, lua_trace, native_trace, wasm_trace  # noqa: F401

from conftest import CONFIGS
from wasmlab import Proxy
from wasmlab.trace import Event, Trace
from wasmlab.trace.export import envoy_lines
from wasmlab.views import TimelineModel, TimelineView, load_trace, views

WASM_FILTER = "filter:envoy.filters.http.wasm"


def streams_of(trace: Trace) -> list[int]:
    return [ev.data["stream"] for ev in trace.filter(kind="stream", name="request")]


def enters(rows, kind):
    return [r.event.name for r in rows if r.event.kind == kind and r.event.data.get("phase") == "enter"]


def test_native_lanes_and_one_request_in_order(native_trace):
    m = TimelineModel(native_trace)
    assert [ln.key for ln in m.lanes] == ["downstream", "host", "filter:envoy.filters.http.router", "upstream"]
    assert [r.seq for r in m.rows] == [ev.seq for ev in native_trace]  # every event, in trace order
    s = streams_of(native_trace)[0]
    rows = m.select(stream=s)
    assert [(r.event.kind, r.event.name, r.src, r.dst) for r in rows] == [
        ("stream", "request", "downstream", "host"),
        ("filter", "decode_headers", "host", "filter:envoy.filters.http.router"),
        ("upstream", "request", "filter:envoy.filters.http.router", "upstream"),
        ("filter", "decode_headers", "filter:envoy.filters.http.router", "host"),
        ("upstream", "response", "upstream", "host"),
        ("stream", "response", "host", "downstream"),
    ]
    assert [r.depth for r in rows] == [0, 0, 1, 0, 0, 0]
    assert {r.event.thread for r in m.select(worker=1)} == {"worker_1"}


def test_native_filter_lanes_are_named_without_the_wasmlab_native_prefix():
    """Lane headers have room for about ten characters: two native filters must not both read
    "wasml…" (lesson 01's tag_a / tag_b chain)."""
    with Proxy.from_yaml(CONFIGS / "wasmlab-only" / "native_add_header.yaml", workers=1) as p:
        p.request("GET", "/hello")
    m = TimelineModel(p.trace)
    lane = m.lane("filter:wasmlab.native.add_header")
    assert (lane.label, lane.detail) == ("add_header", "native")
    assert "add_header.decode_headers(end_stream=True)" in [r.label for r in m.rows]
    assert m.select(filter="wasmlab.native.add_header")  # still chosen by its full name


def test_wasm_lanes_one_vm_lane_per_vm_main_first(wasm_trace):
    m = TimelineModel(wasm_trace)
    vm_lanes = [ln for ln in m.lanes if ln.kind == "wasm"]
    assert [(ln.thread, ln.detail) for ln in vm_lanes] == [
        ("main", "base"),
        ("main", "canary"),
        ("main", "main"),
        ("worker_0", "replica"),
        ("worker_1", "replica"),
    ]
    kinds = [ln.kind for ln in m.lanes]
    assert kinds[:2] == ["downstream", "host"] and kinds[-1] == "upstream"
    assert kinds.index("filter") < kinds.index("wasm")
    assert [ln.label for ln in m.lanes if ln.kind == "filter"] == ["wasm", "router"]


def test_wasm_request_callbacks_in_envoy_order_with_arrows(wasm_trace):
    m = TimelineModel(wasm_trace)
    s = streams_of(wasm_trace)[0]
    rows = m.select(stream=s)
    assert {r.event.thread for r in rows} == {"worker_0"}
    names = [n for n in enters(rows, "callback") if n != "malloc"]
    assert names == [
        "proxy_on_context_create",
        "proxy_on_request_headers",
        "proxy_on_response_headers",
        "proxy_on_response_body",
        "proxy_on_response_body",
        "proxy_on_log",
        "proxy_on_done",
        "proxy_on_delete",
    ]
    replica = next(ln.key for ln in m.lanes if ln.thread == "worker_0" and ln.kind == "wasm")
    rh = [r for r in rows if r.event.name == "proxy_on_request_headers"]
    assert [(r.src, r.dst) for r in rh] == [(WASM_FILTER, replica), (replica, WASM_FILTER)]
    # the host calls made inside it go from the VM back to the filter (the host side), one level deeper
    inner = [r for r in rows if r.event.kind == "hostcall" and rh[0].seq < r.seq < rh[1].seq]
    assert inner and all(r.stream == s for r in inner)
    assert all((r.src, r.dst) in ((replica, WASM_FILTER), (WASM_FILTER, replica)) for r in inner)
    assert all(r.depth == rh[0].depth + 1 for r in inner)
    # host calls carry no stream in the trace: the timeline derived it from (vm, context id)
    assert any(not r.event.data.get("stream") for r in inner)


def test_labels_are_envoys_wasm_trace_lines(wasm_trace):
    m = TimelineModel(wasm_trace)
    for r in m.rows:
        if r.event.kind in ("callback", "hostcall"):
            assert [r.label] == envoy_lines([r.event])
    get = next(r for r in m.rows if r.event.name == "env.proxy_get_header_map_value" and r.note)
    assert "key=:path" in get.note and "value=/hello" in get.note


def test_callout_answer_belongs_to_the_stream_that_called(callout_trace):
    m = TimelineModel(callout_trace)
    s = streams_of(callout_trace)[0]
    rows = m.select(stream=s)
    kinds = [(r.event.kind, r.event.name) for r in rows]
    assert ("callout", "http_request") in kinds and ("callout", "http_response") in kinds
    assert "proxy_on_http_call_response" in enters(rows, "callback")
    req = next(r for r in rows if r.event.name == "http_request")
    assert req.src.startswith("vm:") and req.dst == "upstream"
    # the stream resumes after the answer: continue_decoding, then the router
    order = [r.event.name for r in rows if r.event.kind in ("callout", "filter")]
    assert order.index("http_response") < order.index("continue_decoding")


def test_lua_states_get_lanes_per_thread_and_talk_to_their_filter(lua_trace):
    m = TimelineModel(lua_trace)
    lua = [ln for ln in m.lanes if ln.kind == "lua"]
    assert [ln.thread for ln in lua] == ["main", "worker_0", "worker_1"]
    s = streams_of(lua_trace)[0]
    rows = [r for r in m.select(stream=s) if r.event.kind == "lua"]
    lane = "lua:envoy.filters.http.lua@worker_0"
    flt = "filter:envoy.filters.http.lua"
    hook = [r for r in rows if r.event.name == "envoy_on_request"]
    assert [(r.src, r.dst) for r in hook] == [(flt, lane), (lane, flt)]
    calls = [r for r in rows if r.event.data.get("phase") is None]
    assert calls and all((r.src, r.dst) == (lane, flt) for r in calls)
    names = [r.event.name for r in rows]
    assert names.index("yield") < names.index("resume")  # httpCall yields, the answer resumes


def test_synthetic_lua_events_are_shown_generically():
    """A Lua runtime that records only the minimum (no filter name, vm events with runtime=lua)."""
    evs = [
        Event(1, 0, "worker_0", 0, "lua:s1", None, "vm", "create", {"runtime": "lua"}, None, None),
        Event(2, 1, "worker_0", 0, None, None, "lua", "envoy_on_request", {}, None, {"stream": 7, "phase": "enter"}),
        Event(3, 2, "worker_0", 0, None, None, "lua", "headers:get", [":path"], "/", {"stream": 7}),
        Event(
            4, 3, "worker_0", 0, None, None, "lua", "envoy_on_request", {}, "finished", {"stream": 7, "phase": "exit"}
        ),
    ]
    m = TimelineModel(evs)
    lanes = [ln for ln in m.lanes if ln.kind == "lua"]
    assert len(lanes) == 1 and lanes[0].thread == "worker_0"
    assert [r.stream for r in m.rows] == [None, 7, 7, 7]
    assert [r.depth for r in m.rows[1:]] == [0, 1, 0]
    v = TimelineView(evs)
    assert len(v.visible()) == 4 and "lua" in v.text()


def test_widget_filters_and_columns(wasm_trace):
    s = streams_of(wasm_trace)[1]
    v = TimelineView(wasm_trace, stream=s)
    rows = v.visible()
    assert rows and {r.stream for r in rows} == {s}
    assert v.step == rows[0].index and v.current is rows[0]
    assert "log" not in v.kinds  # logs repeat the proxy_log host calls: hidden until asked
    n_without_logs = len(rows)
    v.kinds = [*v.kinds, "log"]
    assert len(v.visible()) > n_without_logs
    cols = v.columns
    n = len(v.model.rows)
    assert all(len(cols[k]) == n for k in ("seq", "lane", "src", "dst", "kind", "st", "label", "note", "ph"))
    assert cols["kinds"][cols["kind"][0]] == wasm_trace[0].kind
    v.worker, v.stream = "worker_0", -1
    assert {r.event.thread for r in v.visible()} == {"worker_0"}
    v.worker, v.filter = "", "envoy.filters.http.router"
    assert v.visible() and all(WASM_FILTER not in (r.src, r.dst) for r in v.visible())
    json.dumps(v.get_state())  # the state is plain JSON: saved with the notebook


def test_mermaid_and_envoy_text_of_the_visible_rows(wasm_trace):
    s = streams_of(wasm_trace)[0]
    v = TimelineView(wasm_trace, stream=s, kinds=["callback", "hostcall", "filter", "stream"])
    src = v.mermaid()
    lines = src.splitlines()
    assert lines[0] == "sequenceDiagram"
    assert any(ln.strip().startswith("participant") and "wasm" in ln for ln in lines)
    messages = [ln for ln in lines if "->>" in ln or "Note over" in ln]
    assert len(messages) == len(v.visible())
    # '#' and ';' are escaped as entity codes: a bare ';' would end a Mermaid statement
    assert ";" not in re.sub(r"#\w+;", "", "".join(messages)) and "#35;" in src
    text = v.envoy_text().splitlines()
    expected = [f"[worker_0] {ln}" for ln in envoy_lines(r.event for r in v.model.select(stream=s))]
    assert text == expected and text[0].startswith("[worker_0] [host->vm] proxy_on_context_create(")
    assert any("wasm log hello" in ln for ln in text)  # Envoy prints the wasm log lines in between


def test_details_give_the_full_record(wasm_trace):
    v = TimelineView(wasm_trace)
    i = next(r.index for r in v.model.rows if r.event.name == "proxy_on_request_headers")
    d = v.details(i)
    assert d["seq"] == v.model.rows[i].seq and d["kind"] == "callback" and d["args"] == [2, 6, 1]
    assert d["to"].startswith("hello_vm#") and d["from"] == "wasm"
    assert v.details(10**9) is None


def test_a_saved_trace_gives_the_same_timeline(wasm_trace, tmp_path):
    path = wasm_trace.save(tmp_path / "t.json")
    a, b = TimelineModel(wasm_trace), load_trace(path).timeline().model
    assert [ln.key for ln in a.lanes] == [ln.key for ln in b.lanes]
    assert [(r.seq, r.src, r.dst, r.stream, r.label, r.note) for r in a.rows] == [
        (r.seq, r.src, r.dst, r.stream, r.label, r.note) for r in b.rows
    ]
    assert views(wasm_trace).timeline().columns == load_trace(path).timeline().columns


def test_static_picture_and_text(wasm_trace):
    v = TimelineView(wasm_trace, stream=streams_of(wasm_trace)[0])
    svg = v.svg()
    assert svg.startswith("<svg") and "proxy_on_request_headers" in svg and "marker-end" in svg
    text = v.text()
    assert text.startswith("Callback timeline:") and "[host->vm] proxy_on_request_headers(2, 6, 1)" in text


# ---- the annotator reads parent, phase, stream and token (synthetic traces) -------------------------
def recorded(script):
    """Events from a real Recorder (so parent and phase are what recording gives), one thread."""
    from wasmlab.trace import Recorder, set_thread_identity

    set_thread_identity("worker_0", 0)
    n = iter(range(1, 10**6))
    rec = Recorder(lambda: next(n))
    for kind, name, args, result, data, vm, ctx in script:
        rec.record(kind, name, args, result, data, vm=vm, context_id=ctx)
    return rec.snapshot()


ENTER, EXIT = {"phase": "enter"}, {"phase": "exit"}


def http_call(stream, token, vm="v#1", ctx=2):
    """decode_headers -> proxy_on_request_headers -> proxy_http_call -> callout request."""
    f = {"filter": "envoy.filters.http.wasm", "kind": "wasm"}
    return [
        ("filter", "decode_headers", f, None, {"stream": stream, "phase": "enter"}, None, None),
        ("callback", "proxy_on_request_headers", (ctx, 6, 1), None, {"stream": stream, "phase": "enter"}, vm, ctx),
        ("hostcall", "env.proxy_http_call", (1, 2), None, ENTER, vm, ctx),
        ("callout", "http_request", {"cluster": "auth"}, None, {"stream": stream, "token": token}, None, None),
        ("hostcall", "env.proxy_http_call", (1, 2), 0, EXIT, vm, ctx),
        ("callback", "proxy_on_request_headers", (ctx, 6, 1), 1, {"stream": stream, "phase": "exit"}, vm, ctx),
        ("filter", "decode_headers", f, "StopIteration", {"stream": stream, "phase": "exit"}, None, None),
    ]


def answer(stream, token, request_seq, vm="v#1", name="http_response"):
    return [
        ("callout", name, {"cluster": "auth", "status": 200}, None,
         {"stream": stream, "token": token, "request": request_seq}, None, None),
        ("callback", "proxy_on_http_call_response", (1, token, 1, 2, 0), None, ENTER, vm, 1),
        ("hostcall", "env.proxy_continue_stream", (0,), None, ENTER, vm, 1),
        ("hostcall", "env.proxy_continue_stream", (0,), 0, EXIT, vm, 1),
        ("callback", "proxy_on_http_call_response", (1, token, 1, 2, 0), None, EXIT, vm, 1),
    ]  # fmt: skip


def test_annotator_nests_by_parent_filter_callback_hostcall():
    m = TimelineModel(recorded(http_call(stream=1, token=7)))
    assert [r.depth for r in m.rows] == [0, 1, 2, 3, 2, 1, 0]
    assert [(r.src, r.dst) for r in m.rows[:3]] == [
        ("host", WASM_FILTER),
        (WASM_FILTER, "vm:v#1"),
        ("vm:v#1", WASM_FILTER),
    ]
    enter, leave = m.rows[1], m.rows[5]
    assert (enter.call, enter.end, leave.call) == (1, 5, 1)


def test_callout_answers_follow_their_request_not_the_order_they_were_sent():
    """Two streams call the same cluster; the second call is answered first. Guessing by order
    (first in, first out per thread and cluster) would swap the streams."""
    first, second = http_call(1, token=3), http_call(2, token=4, ctx=5)
    events = recorded(first + second)
    req1, req2 = (e.seq for e in events if e.kind == "callout")
    events = recorded(first + second + answer(2, 4, req2) + answer(1, 3, req1))
    m = TimelineModel(events)
    answers = [r for r in m.rows if r.event.name == "http_response"]
    assert [r.stream for r in answers] == [2, 1]
    assert all((r.src, r.dst) == ("upstream", "vm:v#1") for r in answers)
    delivered = [r for r in m.rows if r.event.name == "proxy_on_http_call_response" and r.event.phase == "enter"]
    assert [r.stream for r in delivered] == [2, 1]  # found through the token in its arguments
    inner = [r for r in m.rows if r.event.name == "env.proxy_continue_stream"]
    assert [r.stream for r in inner] == [2, 2, 1, 1]


def test_callout_timeout_goes_back_to_the_caller_on_its_stream():
    events = recorded(http_call(9, token=1))
    req = next(e.seq for e in events if e.kind == "callout")
    m = TimelineModel(recorded(http_call(9, token=1) + answer(9, 1, req, name="http_timeout")[:1]))
    timeout = m.rows[-1]
    assert (timeout.src, timeout.dst, timeout.stream) == ("upstream", "vm:v#1", 9)


def test_callout_from_a_root_context_has_no_stream_and_does_not_borrow_one():
    script = [
        ("callback", "proxy_on_tick", (1,), None, ENTER, "v#1", 1),
        ("hostcall", "env.proxy_http_call", (1, 2), None, ENTER, "v#1", 1),
        ("callout", "http_request", {"cluster": "auth"}, None, {"stream": None, "token": 5}, None, None),
        ("hostcall", "env.proxy_http_call", (1, 2), 0, EXIT, "v#1", 1),
        ("callback", "proxy_on_tick", (1,), None, EXIT, "v#1", 1),
    ]
    req = recorded(script)[2].seq
    m = TimelineModel(recorded(http_call(3, token=2) + script + answer(None, 5, req + 7)))
    tick_answer = [r for r in m.rows if r.event.kind == "callout" and r.event.name == "http_response"]
    assert [r.stream for r in tick_answer] == [None]
    assert {r.stream for r in m.rows if r.event.name == "proxy_on_http_call_response"} == {None}


def test_callout_from_lua_leaves_from_the_lua_state():
    d = {"stream": 4, "filter": "envoy.filters.http.lua", "hook": "envoy_on_request"}
    script = [
        ("filter", "decode_headers", {"filter": "envoy.filters.http.lua", "kind": "lua"}, None,
         {"stream": 4, "phase": "enter"}, None, None),
        ("lua", "envoy_on_request", "start", None, {**d, "phase": "enter"}, None, None),
        ("callout", "http_request", {"cluster": "auth"}, None, {"stream": 4, "token": None}, None, None),
        ("lua", "yield", "http call", None, d, None, None),
        ("lua", "envoy_on_request", "start", None, {**d, "phase": "exit"}, None, None),
    ]  # fmt: skip
    m = TimelineModel(recorded(script))
    call = m.rows[2]
    assert call.src == "lua:envoy.filters.http.lua@worker_0" and call.dst == "upstream" and call.stream == 4


# ---- nested calls (the model behind the default "nested calls" mode) ---------------------------------
def test_nested_items_merge_each_call_with_its_return_and_fold_callbacks(wasm_trace):
    m = TimelineModel(wasm_trace)
    s = streams_of(wasm_trace)[0]
    rows = m.select(stream=s)
    items = m.items(rows)
    assert not [r for r in items if r.event.phase == "exit"]  # every return joined its call
    calls = [r for r in items if r.event.phase == "enter"]
    assert all(r.end >= 0 and m.rows[r.end].event.phase == "exit" for r in calls)
    # callbacks are folded: no host call of the stream is an item until its callback is unfolded
    assert not [r for r in items if r.event.kind == "hostcall"]
    cb = next(r for r in items if r.event.name == "proxy_on_request_headers")
    opened = m.items(rows, unfolded=[cb.index])
    inner = [r for r in opened if r.event.kind == "hostcall"]
    assert inner and all(m.up(r) == cb.index and r.depth == cb.depth + 1 for r in inner)
    # the request's whole lifecycle is a handful of rows
    assert len(items) <= len(rows) // 3
    names = [r.event.name for r in items if r.event.kind in ("filter", "stream")]
    assert names[0] == "request" and "response" in names


def test_nested_item_label_is_the_call_with_its_result(wasm_trace):
    m = TimelineModel(wasm_trace)
    s = streams_of(wasm_trace)[0]
    item = next(r for r in m.items(m.select(stream=s)) if r.event.name == "decode_headers")
    cols = m.columns()
    assert cols["ret"][item.index] == f"{item.label} → {m.rows[item.end].event.result}"
    assert cols["end"][item.index] == item.end and cols["up"][item.end] == cols["up"][item.index]


def test_modes_and_an_unknown_mode_is_refused(native_trace):
    v = TimelineView(native_trace, mode="events")
    assert v.mode == "events"
    try:
        TimelineView(native_trace, mode="bars")
    except ValueError as e:
        assert "nested" not in str(e) and "lanes" in str(e)
    else:
        raise AssertionError("an unknown mode must be refused")


def test_static_picture_of_a_large_trace_reaches_the_requests_and_says_what_it_left_out():
    """Lesson-sized runs start with many VM start-up events: the picture used to stop there."""
    with Proxy.from_yaml(CONFIGS / "wasm" / "hello.yaml", workers=2) as p:
        for i in range(40):
            p.request("GET", "/hello", worker=i % 2)
        p.wait_idle()
        trace = p.trace
    v = TimelineView(trace)
    svg = v.svg()
    assert "request GET /hello" in svg
    shown = v.model.items(v.visible())
    assert len(shown) > 150 and "first 150 of " in svg and "re-run the cell for all" in svg
    assert "folded calls" in svg
    text = v.text()
    assert f"of {len(shown)} rows — re-run the cell for all" in text


def test_static_picture_of_a_small_selection_is_complete(native_trace):
    v = TimelineView(native_trace, stream=streams_of(native_trace)[0])
    svg = v.svg()
    assert "re-run" not in svg and "request GET /hello" in svg
    assert svg.count("decode_headers") == 1  # call and return: one item


def test_cursor_seq_is_the_shared_one(wasm_trace):
    from wasmlab.views.widget import View

    s = streams_of(wasm_trace)[1]
    v = TimelineView(wasm_trace, stream=s)
    # the contract's one definition (views/widget.py): 0 = before the first event, until a cursor
    # moves in the browser (which follows it and sends back ``step``)
    assert v.cursor_seq == 0 and "cursor_seq" in v.keys and v.step == v.visible()[0].index
    assert TimelineView.class_traits()["cursor_seq"] is View.class_traits()["cursor_seq"]
