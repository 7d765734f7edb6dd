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
