"""The inspector: the event table's filters and the per-request summaries."""

from __future__ import annotations

import json

from view_traces import callout_trace, lua_trace, ratelimit_trace, service_trace, trap_trace, wasm_trace  # noqa: F401

from wasmlab.views import InspectorView


def test_request_summaries_of_a_wasm_run(wasm_trace):
    v = InspectorView(wasm_trace)
    assert [s.request for s in v.summaries] == ["GET /hello", "GET /hello"]
    assert [s.thread for s in v.summaries] == ["worker_0", "worker_1"]
    s = v.summaries[0]
    assert s.status == 200 and s.outcome() == "200" and s.latency_ms is not None and s.latency_ms >= 0
    assert [f.name for f in s.filters] == ["envoy.filters.http.wasm", "envoy.filters.http.router"]
    assert s.filters[0].calls == [
        "decode_headers→Continue",
        "encode_headers→Continue",
        "encode_data→Continue",
        "encode_data→Continue",
    ]
    assert s.filters[1].calls == ["decode_headers→StopIteration"]
    assert s.upstream == ["backend → 200"] and not s.traps
    assert s.vm_calls >= 8 and s.host_calls >= 8
    assert s.events == len(v.timeline.select(stream=s.stream))
    assert v.requests[0]["filter_names"] == ["wasm", "router"]
    json.dumps(v.get_state())


def test_local_reply_trap_and_callout_summaries(ratelimit_trace, trap_trace, callout_trace, lua_trace):
    rl = InspectorView(ratelimit_trace).summaries
    assert [s.status for s in rl].count(429) >= 1 and any(s.local_reply for s in rl if s.status == 429)
    trap = InspectorView(trap_trace)
    by_path = {s.request: s for s in trap.summaries}
    assert by_path["GET /trap"].status == 503 and by_path["GET /trap"].local_reply
    assert "unreachable" in by_path["GET /trap"].traps[0]
    assert by_path["GET /ok"].status == 200
    co = InspectorView(callout_trace).summaries[0]
    assert "callout auth → 200" in co.upstream and co.status == 200
    lua = InspectorView(lua_trace).summaries[0]
    assert lua.filters[0].kind == "lua" and lua.filters[0].calls[0] == "decode_headers→StopIteration"
    assert "continue_decoding" in lua.filters[0].calls and lua.vm_calls >= 2
    # handle methods (handle:headers, headers:get, handle:httpCall...) are the Lua side's host calls
    lua_handle_calls = [
        e for e in lua_trace if e.kind == "lua" and ":" in e.name and e.data.get("stream") == lua.stream
    ]
    assert lua_handle_calls and lua.host_calls == len(lua_handle_calls)


def test_event_filters(wasm_trace):
    v = InspectorView(wasm_trace)
    assert len(v.rows()) == len(wasm_trace)
    v.kind = "callback"
    assert {r.event.kind for r in v.rows()} == {"callback"}
    v.kind, v.thread = "", "worker_1"
    assert {r.event.thread for r in v.rows()} == {"worker_1"}
    v.thread, v.stream = "", v.summaries[0].stream
    assert {r.stream for r in v.rows()} == {v.summaries[0].stream}
    v.stream, v.search = -1, "proxy_on_request_headers"
    found = v.rows()
    assert found and all("proxy_on_request_headers" in r.label + r.note + r.event.name for r in found)
    assert any(r.event.kind == "callback" for r in found) and any(r.event.kind == "log" for r in found)
    assert v.details(0)["seq"] == wasm_trace[0].seq
    assert len(v.columns["vm"]) == len(v.columns["seq"]) == len(wasm_trace)


def test_fallbacks(trap_trace):
    v = InspectorView(trap_trace)
    assert "GET /trap" in v.text() and "503 (local reply)" in v.text()
    assert "<table>" in v.html() and "GET /trap" in v.html()


def test_times_under_the_virtual_clock_do_not_read_zero(service_trace, wasm_trace):
    from wasmlab.views.inspector import clock_of, latency_text

    v = InspectorView(service_trace)  # virtual clock, advanced by 1 s at the end
    assert v.clock == "virtual" and "virtual clock" in v.note
    s = v.summaries[0]
    assert s.latency_ms == 0 and latency_text(s, v.clock) == f"0 s virtual, {s.events} events"
    assert "0.000" not in v.text() and "virtual" in v.html()
    assert max(v.columns["t"]) == 1_000_000  # µs: the advance is there for the browser to show
    real = InspectorView(wasm_trace)
    assert real.clock == "real" and clock_of(list(wasm_trace)) == "real"
    assert latency_text(real.summaries[0], "real").endswith(" ms")


def test_long_static_pictures_say_what_they_left_out(service_trace):
    v = InspectorView(service_trace, stream=InspectorView(service_trace).summaries[0].stream)
    text = v.text()
    rows = [r for r in v.timeline.rows if r.stream == v.stream]
    if len(rows) > 60:
        assert f"first 60 of {len(rows)} events shown — re-run the cell for all" in text
    else:
        assert "re-run" not in text
