"""The trace: one schema, a bounded ring, JSON round trip, and off means off."""

from __future__ import annotations

from helpers import config
from wasmlab import Event, Proxy, Trace


def test_events_follow_the_schema_and_round_trip_through_json(tmp_path):
    with Proxy.from_yaml(config(), workers=2) as p:
        p.request("GET", "/direct", worker=1)
        trace = p.trace
    ev = next(e for e in trace if e.kind == "stream")
    assert ev.thread == "worker_1" and ev.worker == 1 and ev.vm is None
    assert ev.data["stream"] >= 1
    assert Event._fields == (
        "seq",
        "t_ns",
        "thread",
        "worker",
        "vm",
        "context_id",
        "kind",
        "name",
        "args",
        "result",
        "data",
        "parent",
        "phase",
    )
    again = Trace.from_json(trace.to_json())
    assert [e.to_dict() for e in again] == [e.to_dict() for e in Trace.from_json(trace.to_json())]
    assert [e.name for e in again] == trace.names()
    path = trace.save(tmp_path / "t.json")
    assert len(Trace.load(path)) == len(trace)
    seqs = [e.seq for e in trace]
    assert seqs == sorted(seqs)


def test_filter_callbacks_have_enter_and_exit_events():
    with Proxy.from_yaml(config(), workers=1) as p:
        p.request("GET", "/direct")
        f = p.trace.filter(kind="filter")
    phases = [(e.name, e.data["phase"], e.result) for e in f]
    assert phases == [("decode_headers", "enter", None), ("decode_headers", "exit", "StopIteration")]


def test_ring_keeps_only_the_last_events():
    with Proxy.from_yaml(config(), workers=1, trace_capacity=50) as p:
        for _ in range(30):
            p.request("GET", "/direct")
        trace = p.trace
    assert len(trace) == 50
    assert trace[0].seq > 1


def test_trace_false_records_nothing():
    with Proxy.from_yaml(config(), workers=1, trace=False) as p:
        p.request("GET", "/direct")
        assert len(p.trace) == 0


def test_logs_use_envoys_shape():
    with Proxy.from_yaml(config(), workers=1) as p:
        assert "[info][config] all dependencies initialized. starting workers" in p.logs


def test_mermaid_and_text_exports():
    with Proxy.from_yaml(config(), workers=1) as p:
        p.request("GET", "/direct")
        t = p.trace
    assert t.mermaid().startswith("sequenceDiagram\n")
    assert "stream   request(" in t.text()


# ---- parent and phase ------------------------------------------------------------------------------
def _fake_clock():
    n = iter(range(1, 10**9))
    return lambda: next(n)


def test_parent_is_the_enclosing_call_on_the_same_thread_and_exit_names_the_call_it_closes():
    """Two threads interleave their calls: each event's parent is the open call of its own thread."""
    import threading

    from wasmlab.trace import Recorder, set_thread_identity

    rec = Recorder(_fake_clock())
    enter, exit_ = {"phase": "enter"}, {"phase": "exit"}
    step_a, step_b = threading.Event(), threading.Event()
    out: dict[str, list] = {}

    def worker(name: str, mine: threading.Event, other: threading.Event) -> None:
        set_thread_identity(name, int(name[-1]))
        evs = [rec.record("filter", "decode_headers", None, None, enter)]
        mine.set()
        other.wait(5)  # the other thread has opened its call too
        evs.append(rec.record("callback", "proxy_on_request_headers", (2, 1), None, enter))
        evs.append(rec.record("log", "info", {"message": "hi"}))
        evs.append(rec.record("callback", "proxy_on_request_headers", (2, 1), 0, exit_))
        evs.append(rec.record("filter", "decode_headers", None, "Continue", {"phase": "exit", "stream": 1}))
        evs.append(rec.record("stream", "response", None, None, {"phase": "event", "stream": 1}))
        out[name] = evs

    threads = [
        threading.Thread(target=worker, args=("worker_0", step_a, step_b)),
        threading.Thread(target=worker, args=("worker_1", step_b, step_a)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    for evs in out.values():
        filt, cb, log, cb_exit, filt_exit, point = evs
        assert {e.thread for e in evs} == {filt.thread}
        assert (filt.parent, filt.phase) == (None, "enter")
        assert (cb.parent, cb.phase) == (filt.seq, "enter")
        assert (log.parent, log.phase) == (cb.seq, None)
        assert (cb_exit.parent, cb_exit.phase) == (cb.seq, "exit")
        assert (filt_exit.parent, filt_exit.phase) == (filt.seq, "exit")
        assert (point.parent, point.phase) == (None, None)  # "event" is a point event
    assert out["worker_0"][1].parent != out["worker_1"][1].parent


def test_a_trap_closes_the_callback_it_ended():
    from wasmlab.trace import Recorder

    rec = Recorder(_fake_clock())
    cb = rec.record("callback", "proxy_on_request_headers", (2, 1), None, {"phase": "enter"})
    hc = rec.record("hostcall", "env.proxy_log", (1,), None, {"phase": "enter"})
    trap = rec.record("trap", "proxy_on_request_headers", {"message": "unreachable"}, vm="v")
    after = rec.record("log", "error", {"message": "failed"})
    assert trap.parent == hc.seq and cb.seq == hc.parent
    assert after.parent is None


def test_real_requests_nest_callbacks_in_filters_and_host_calls_in_callbacks():
    from conftest import CONFIGS

    with Proxy.from_yaml(CONFIGS / "wasm" / "hello.yaml", workers=2) as p:
        p.request("GET", "/hello", worker=0)
        p.request("GET", "/hello", worker=1)
        trace = p.trace
    by_seq = {e.seq: e for e in trace}
    hostcalls = [e for e in trace if e.kind == "hostcall" and e.phase == "enter" and e.thread != "main"]
    assert hostcalls
    for hc in hostcalls:
        parent = by_seq[hc.parent]
        assert (parent.kind, parent.phase, parent.thread) == ("callback", "enter", hc.thread)
        grand = by_seq[parent.parent] if parent.parent else None
        if parent.name == "proxy_on_request_headers":
            assert (grand.kind, grand.name, grand.thread) == ("filter", "decode_headers", hc.thread)
    for e in trace:
        if e.phase == "exit":
            opener = by_seq[e.parent]
            assert (opener.kind, opener.name, opener.phase, opener.thread) == (e.kind, e.name, "enter", e.thread)
        assert e.phase == (e.data.get("phase") if isinstance(e.data, dict) else None) or e.phase is None


def test_callout_events_carry_the_stream_and_the_token():
    from conftest import CONFIGS
    from wasmlab import Response

    with Proxy.from_yaml(CONFIGS / "wasm" / "http_auth.yaml", workers=1) as p:
        p.upstream("auth", lambda req: Response(200, [("x-user", "bob")], b"ok"))
        p.request("GET", "/hello", headers={"authorization": "Bearer ok"})
        p.wait_idle()
        trace = p.trace
    stream = next(e.data["stream"] for e in trace if e.kind == "stream" and e.name == "request")
    req = next(e for e in trace if e.kind == "callout" and e.name == "http_request")
    resp = next(e for e in trace if e.kind == "callout" and e.name == "http_response")
    call = next(e for e in trace if e.kind == "hostcall" and e.name.endswith("proxy_http_call") and e.phase == "exit")
    assert req.data["stream"] == resp.data["stream"] == stream
    assert req.data["token"] == resp.data["token"] == call.data["detail"]["token"]
    assert resp.data["request"] == req.seq
    assert req.parent == call.parent  # made inside the proxy_http_call host call
    answer = next(e for e in trace if e.kind == "callback" and e.name == "proxy_on_http_call_response")
    assert answer.args[1] == req.data["token"]


def test_traces_saved_before_parent_and_phase_still_load_and_get_them():
    with Proxy.from_yaml(config(), workers=1) as p:
        p.request("GET", "/direct")
        trace = p.trace
    old = [{k: v for k, v in e.to_dict().items() if k not in ("parent", "phase")} for e in trace]
    import json

    again = Trace.from_json(json.dumps(old, default=str))
    assert [(e.seq, e.parent, e.phase) for e in again] == [(e.seq, e.parent, e.phase) for e in trace]
    assert any(e.phase == "enter" for e in again)


# ---- the ring: flat, bounded, whole events, read lazily ----------------------------------------------
def test_ring_keeps_the_last_events_whole_while_threads_record_at_once():
    """Four threads record through several chunk rotations into a small ring: the trace is the
    last ``capacity`` events, in seq order, each row with its own thread's fields."""
    import threading

    from wasmlab.trace import Recorder, set_thread_identity

    rec = Recorder(_fake_clock(), capacity=1000)
    per_thread = 3000

    def worker(i: int) -> None:
        set_thread_identity(f"worker_{i}", i)
        for n in range(per_thread):
            rec.record("log", "info", {"n": n}, None, {"stream": i}, vm=f"vm{i}", context_id=i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    trace = rec.trace()
    assert len(trace) == rec.capacity == 1000
    assert [e.seq for e in trace] == list(range(4 * per_thread - 999, 4 * per_thread + 1))
    for e in trace:
        i = e.worker
        assert (e.thread, e.vm, e.context_id, e.data["stream"]) == (f"worker_{i}", f"vm{i}", i, i)
        assert isinstance(e, Event) and (e.kind, e.name, e.parent, e.phase) == ("log", "info", None, None)


def test_recording_leaves_no_object_per_event_for_the_garbage_collector():
    """The ring keeps fields, not one tuple per event: 20,000 events add a few chunk lists to
    what the cyclic GC tracks, not 20,000 objects (an Event per event did)."""
    import gc

    from wasmlab.trace import Recorder

    rec = Recorder(_fake_clock())
    data = {"phase": "event", "stream": 1}
    rec.record("log", "info", "warm", None, data)
    gc.collect()
    before = len(gc.get_objects())
    for n in range(20_000):
        rec.record("log", "info", n, None, data)
    gc.collect()
    assert len(gc.get_objects()) - before < 100
    assert len(rec.trace()) == 20_001


def test_a_trace_filters_rows_and_builds_events_when_read():
    """Also: ``event=False`` (a call site that ignores the result) records the same event."""
    from wasmlab.trace import Recorder

    rec = Recorder(_fake_clock())
    enter, exit_ = {"phase": "enter", "stream": 1}, {"phase": "exit", "stream": 1}
    seen = []
    rec.subscribe(seen.append)
    assert rec.record("filter", "decode_headers", {"filter": "f"}, None, enter, event=False) is None
    rec.record("log", "info", {"message": "m"}, None, {"stream": 2})
    rec.record("filter", "decode_headers", {"filter": "f"}, "Continue", exit_, event=False)
    trace = rec.trace()
    assert seen == trace.events  # event=False skips only the returned Event
    assert len(trace) == 3 and trace.names() == ["decode_headers", "info", "decode_headers"]
    only = trace.filter(kind="filter", stream=1)
    assert [(e.phase, e.parent, e.result) for e in only] == [("enter", None, None), ("exit", 1, "Continue")]
    assert all(type(e) is Event for e in only.events) and only[1] == only.events[1]
    assert trace.filter(stream=2).names() == ["info"]
    assert [e.to_dict() for e in Trace.from_json(trace.to_json())] == [e.to_dict() for e in trace]
    assert rec.snapshot() == trace.events


def test_clear_forgets_the_ring_but_not_lifecycle_state_and_subscribers_see_every_event():
    from wasmlab.trace import Recorder

    rec = Recorder(_fake_clock(), capacity=10)
    seen = []
    unsubscribe = rec.subscribe(seen.append)
    rec.record("vm", "create", {"kind": "wasm"}, vm="v")
    cb = rec.record("callback", "proxy_on_tick", (1,), None, {"phase": "enter"}, vm="v")
    for n in range(25):
        rec.record("log", "info", n)
    rec.clear()
    assert len(rec.trace()) == 0
    assert [e.name for e in rec.snapshot(include_state=True)] == ["create"]
    after = rec.record("log", "info", "after")
    assert after.parent == cb.seq  # the call is still open on this thread
    assert rec.trace().events == [after]
    unsubscribe()
    rec.record("log", "info", "unseen")
    assert seen[-1] == after and len(seen) == 28 and seen[1] == cb
