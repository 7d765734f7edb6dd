"""The queue flow: enqueue on workers, on_queue_ready and dequeue on main, ticks, shared data."""

from __future__ import annotations

import json
import struct

from view_traces import rate_limiter_trace, service_trace, wasm_trace  # noqa: F401

from wasmlab.views import QueueFlowModel, QueueFlowView


def test_stats_service_flow_in_order(service_trace):
    m = QueueFlowModel(service_trace)
    assert [(q.vm_id, q.name) for q in m.queues] == [("stats_service", "stats")]
    q = m.queues[0]
    assert q.thread == "main" and m.actors[q.registrant].thread == "main"
    kinds = [s.kind for s in m.steps]
    # the canary registers first, then the service VM (the last registrant gets the notifications)
    assert kinds[:2] == ["register", "register"]
    assert kinds.count("enqueue") == kinds.count("dequeue") == 4
    assert kinds[-1] == "tick"
    # every enqueue (on a worker) posts one notification, and each becomes one on_queue_ready on
    # main; a message is dequeued on main after it was enqueued, inside an on_queue_ready. (Which
    # on_queue_ready drains which message depends on thread timing, in Envoy too.)
    assert kinds.count("notify") == kinds.count("ready") == 4
    for i, s in enumerate(m.steps):
        if s.kind == "enqueue":
            assert s.thread.startswith("worker_")
            assert "notify" in [x.kind for x in m.steps[i + 1 :]]
            assert any(x.kind == "dequeue" and x.text == s.text for x in m.steps[i + 1 :])
        if s.kind == "dequeue":
            assert "ready" in [x.kind for x in m.steps[:i]]
        if s.kind in ("notify", "ready", "dequeue", "tick"):
            assert s.thread == "main"
    enq = [s.text for s in m.steps if s.kind == "enqueue"]
    deq = [s.text for s in m.steps if s.kind == "dequeue"]
    assert sorted(enq) == sorted(deq) == sorted(f"GET /r/{i} 200" for i in range(4))
    producers = {a.vm: a.thread for a in m.actors.values() if "producer" in a.roles}
    assert sorted(producers.values()) == ["worker_0", "worker_1"]
    state = m.state()
    assert state["queues"][0]["enqueued"] == state["queues"][0]["dequeued"] == 4
    assert state["queues"][0]["waiting"] == []
    assert state["vms"][q.registrant]["tick"] == 1
    assert sum(state["vms"][vm]["enqueue"] for vm in producers) == 4


def test_state_after_a_step_shows_the_queue_filling(service_trace):
    m = QueueFlowModel(service_trace)
    first = next(i for i, s in enumerate(m.steps) if s.kind == "enqueue")
    st = m.state(first)
    assert st["queues"][0]["waiting"] == [m.steps[first].text]
    assert m.state(first - 1)["queues"][0]["waiting"] == []


def test_rate_limiter_bucket_values_change_by_cas(rate_limiter_trace):
    m = QueueFlowModel(rate_limiter_trace)
    assert m.keys == [("rate_limiter", "rate_limiter.bucket")]
    sets = [s for s in m.steps if s.kind == "set"]
    tokens = [struct.unpack("<Q", s.text.encode("latin-1")[:8])[0] for s in sets if s.ok]
    assert tokens[0] == 5  # the main VM fills the bucket at start
    assert tokens[1:] == sorted(tokens[1:], reverse=True) and tokens[-1] == 0  # each request takes one
    cas = [s.depth for s in sets if s.ok]
    assert cas == sorted(cas) and len(set(cas)) == len(cas)
    writers = {s.vm for s in sets[1:]}
    assert {m.actors[w].thread for w in writers} == {"worker_0", "worker_1"}
    st = m.state()
    assert st["shared"][0]["sets"] == len(tokens) and st["shared"][0]["cas"] == cas[-1]
    assert "(u64 0)" in m.text()


def test_view_state_text_and_picture(service_trace, wasm_trace):
    v = QueueFlowView(service_trace)
    json.dumps(v.get_state())
    assert v.step == len(v.model.steps) - 1
    assert v.steps["kind"] == [s.kind for s in v.model.steps]
    v.step = 2
    assert v.state() == v.model.state(2)
    d = v.details(0)
    assert d["kind"] == "queue" and d["name"] == "register"
    assert "queue stats" in v.text() and "4 enqueued, 4 dequeued" in v.text()
    assert "queue stats" in v.svg()
    empty = QueueFlowView(wasm_trace)
    assert empty.model.steps == [] and "no shared queues" in empty.text()
