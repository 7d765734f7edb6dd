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


# ---- issue 15: live consumers, threads, reads and denials, the browser -------------------------------
def test_a_replaced_registrant_is_not_a_consumer(service_trace):
    m = QueueFlowModel(service_trace)
    regs = [s.vm for s in m.steps if s.kind == "register"]
    assert len(regs) == 2 and regs[0] != regs[1]
    canary, service = regs
    assert canary not in m.actors  # it registered first, was replaced, never got on_queue_ready
    assert m.queues[0].registrant == service and "consumer" in m.actors[service].roles
    assert canary not in m.text() and f"registered by {service}" in m.text()
    # the static picture: producers -> queue -> the registrant, nothing to the canary
    assert sorted(m.flow_edges()) == sorted(
        [(vm, "q0", "enqueue") for vm, a in m.actors.items() if "producer" in a.roles] + [("q0", service, "ready")]
    )
    svg = m.svg()
    assert svg.count('class="edge enqueue"') == 2 and svg.count('class="edge ready"') == 1
    assert f"the state after all {len(m.steps)} steps" in svg and "re-run the cell to step through them" in svg


def test_rate_limiter_reads_and_the_429s_they_cause_are_steps(rate_limiter_trace):
    m = QueueFlowModel(rate_limiter_trace)
    denied = [ev for ev in rate_limiter_trace.filter(kind="stream", name="response") if ev.args.get("status") == 429]
    assert denied  # 7 requests, 5 tokens
    replies = [s for s in m.steps if s.kind == "reply"]
    assert [s.ok for s in replies] == [False] * len(denied) and all(s.depth == 429 for s in replies)
    for s in replies:  # each denial follows a read of the bucket by the same VM on its worker
        i = m.steps.index(s)
        read = next(x for x in reversed(m.steps[:i]) if x.vm == s.vm)
        assert read.kind == "get" and read.key == s.key == 0 and s.thread.startswith("worker_")
    gets = [s for s in m.steps if s.kind == "get"]
    first_set = next(s.seq for s in m.steps if s.kind == "set")
    assert len(gets) >= 7 and all(s.ok for s in gets if s.seq > first_set)
    assert not gets[0].ok and "not found" in gets[0].note  # the main VM reads before it fills the bucket
    st = m.state()
    assert st["shared"][0]["denied"] == len(denied) and st["shared"][0]["reads"] == len(gets)
    # every VM sits under the thread it runs on (workers are not "main thread")
    threads = {a.vm: a.thread for a in m.actors.values()}
    assert {threads[s.vm] for s in replies} <= {"worker_0", "worker_1"}
    assert all(threads[s.vm] == s.thread for s in m.steps if s.vm in threads)
    assert "requests denied after reading it" in m.text()


def test_queue_flow_fits_moves_and_follows_the_shared_cursor(chromium, tmp_path, service_trace):
    from test_layout import MEASURE, open_harness

    v = QueueFlowView(service_trace)
    kinds = v.steps["kind"]
    first_enqueue = kinds.index("enqueue")
    for width in (650, 900):
        pw, browser, page = open_harness(chromium, tmp_path, v, width)
        try:
            m = page.evaluate(MEASURE)
            assert m["overflow"] <= 0.5 and m["font"] >= 11, m
            workers = page.eval_on_selector_all('[data-col="workers"] [data-vm]', "bs => bs.map(b => b.dataset.vm)")
            main = page.eval_on_selector_all('[data-col="main"] [data-vm]', "bs => bs.map(b => b.dataset.vm)")
            assert sorted(workers) == sorted(a["vm"] for a in v.actors if a["thread"].startswith("worker_"))
            assert main == [v.model.queues[0].registrant]
            # arrows: producers -> queue -> registrant, drawn in the interactive view too
            assert page.locator(".wl-qf-edge.enqueue").count() == 2 and page.locator(".wl-qf-edge.ready").count() == 1
            page.click('button[data-act="first"]')
            for _ in range(first_enqueue):
                page.click('button[data-act="step"]')
            assert page.locator(".wl-current").count() == 2  # the producer and the queue
            travel = page.locator(".wl-qf-travel")
            assert travel.is_visible() and v.steps["text"][first_enqueue] in travel.inner_text()
            seq = v.steps["seq"][first_enqueue]
            assert json.loads(page.evaluate("window.saved.at(-1)")) == seq
            assert page.inner_text(".wl-details").startswith(f"#{seq} enqueue")
            # another view moves the shared cursor: this one follows to its last step at or before it
            last_ready = max(i for i, k in enumerate(kinds) if k == "ready")
            page.evaluate(f"model.set('cursor_seq', {v.steps['seq'][last_ready] + 1})")
            assert page.inner_text(".wl-pos").startswith(f"step {last_ready + 1} of")
            assert page.inner_text(".wl-details").startswith(f"#{v.steps['seq'][last_ready]} ready")
            assert page.errors == []
        finally:
            browser.close()
            pw.stop()
