"""The VM layout: threads, VMs, contexts and what they share, from real runs and live."""

from __future__ import annotations

import asyncio
import json
import threading

from view_traces import (  # noqa: F401
    TRAP_WASM,
    lua_trace,
    native_trace,
    reload_trace,
    service_trace,
    trap_trace,
    wasm_trace,
)

from conftest import CONFIGS
from wasm_diff import plugin_yaml
from wasmlab import Proxy
from wasmlab.views import LayoutModel, VMLayoutView
from wasmlab.views.layout_draw import LayoutDrawing, value_display


def by_role(vms):
    return {vm["role"]: vm for vm in vms}


def last_response_seq(trace) -> int:
    return max(ev.seq for ev in trace.filter(kind="stream", name="response"))


def test_wasm_layout_matches_envoys_thread_and_vm_layout(wasm_trace):
    m = LayoutModel.from_events(wasm_trace)
    assert m.threads == ["main", "worker_0", "worker_1"]
    s = m.summary()
    assert [vm["role"] for vm in s["main"]] == ["base", "canary", "main"]
    main = by_role(s["main"])
    assert main["canary"]["roots"] == [(1, "hello")] and main["main"]["roots"] == [(1, "hello")]
    assert main["base"]["roots"] == []  # the base VM is a template: no contexts
    for w in ("worker_0", "worker_1"):
        (replica,) = s[w]
        assert replica["role"] == "replica" and replica["vm_id"] == "hello_vm"
        assert replica["roots"] == [(1, "hello")] and replica["streams_total"] == 1
    assert {vm_id: len(vms) for vm_id, vms in m.vm_ids().items()} == {"hello_vm": 5}
    # after proxy.close() every VM is destroyed; just after the last response only the canary is
    at = last_response_seq(wasm_trace)
    statuses = {vm.role + "@" + vm.thread: vm.status(at) for vm in m.vms.values()}
    assert statuses == {
        "base@main": "running",
        "canary@main": "destroyed",
        "main@main": "running",
        "replica@worker_0": "running",
        "replica@worker_1": "running",
    }
    assert {vm.status() for vm in m.vms.values()} == {"destroyed"}


def test_stream_contexts_are_live_only_during_their_request(wasm_trace):
    m = LayoutModel.from_events(wasm_trace)
    replica = next(vm for vm in m.vms.values() if vm.thread == "worker_0")
    (ctx,) = replica.streams
    assert ctx.id == 2 and ctx.kind == "http" and ctx.died is not None
    assert replica.live_streams(ctx.born) == [ctx]
    assert replica.live_streams(ctx.died) == [] and replica.live_streams(ctx.born - 1) == []


def test_marks_are_the_lifecycle_events_in_order(wasm_trace):
    m = LayoutModel.from_events(wasm_trace)
    seqs = [s for s, _ in m.marks]
    assert seqs == sorted(seqs)
    expected = [ev.seq for ev in wasm_trace if ev.kind in ("vm", "context", "trap")]
    assert seqs == expected
    assert "VM hello_vm#" in m.marks[0][1] and "create (base)" in m.marks[0][1]


def test_service_layout_shows_the_queue_across_threads(service_trace):
    m = LayoutModel.from_events(service_trace)
    service = [vm for vm in m.vms.values() if vm.role == "service"]
    assert len(service) == 1 and service[0].thread == "main" and service[0].vm_id == "stats_service"
    q = m.queues[("stats_service", "stats")]
    assert q.registrant == service[0].key and q.thread == "main"
    assert q.enqueued == q.dequeued == 4 and q.depth == 0
    replicas = {vm.key: vm.thread for vm in m.vms.values() if vm.role == "replica"}
    assert set(q.producers) == set(replicas) and sum(q.producers.values()) == 4
    assert set(replicas.values()) == {"worker_0", "worker_1"}
    assert set(q.consumers) == {service[0].key}
    d = LayoutDrawing(m)
    edges = {(a, b, cls) for a, b, cls, _ in d._edges()}
    for key in replicas:
        assert (d.vm_ids[key], d.queue_ids[("stats_service", "stats")], "enqueue") in edges
    assert (d.queue_ids[("stats_service", "stats")], d.vm_ids[service[0].key], "ready") in edges


def test_a_trap_fails_only_its_workers_vm(trap_trace):
    m = LayoutModel.from_events(trap_trace)
    at = last_response_seq(trap_trace)
    w0 = m.on_thread("worker_0")[0]
    w1 = m.on_thread("worker_1")[0]
    assert w0.status(at) == "failed" and "unreachable" in w0.fail_message
    assert w1.status(at) == "running"
    assert m.traps and m.traps[0][1] == w0.key
    assert "✖ failed" in LayoutDrawing(m).vm_lines(w0, at)


def test_fail_reload_replaces_the_failed_vm(reload_trace):
    m = LayoutModel.from_events(reload_trace)
    old, new = m.on_thread("worker_0")
    assert old.failed is not None and old.replaced_by == new.key
    assert new.reloaded_from == old.key and new.born > old.failed
    assert "reload of " + old.key in LayoutDrawing(m).vm_lines(new, None)


def test_lua_states_one_per_script_per_thread(lua_trace):
    m = LayoutModel.from_events(lua_trace)
    lua = [vm for vm in m.vms.values() if vm.runtime == "lua"]
    assert sorted(vm.thread for vm in lua) == ["main", "worker_0", "worker_1"]
    assert {vm.info.get("runtime") for vm in lua} == {"luajit"}
    assert m.vm_ids() == {}  # Lua states share nothing across threads
    assert "1 Lua state" in m.text()


def test_native_config_has_threads_but_no_vms(native_trace):
    m = LayoutModel.from_events(native_trace)
    assert m.threads == ["main", "worker_0", "worker_1"] and not m.vms
    assert "no Wasm VMs or Lua states" in m.text()


def test_drawings_name_every_entity(service_trace):
    m = LayoutModel.from_events(service_trace)
    d = LayoutDrawing(m)
    svg = d.builtin_svg()
    dot = d.dot()
    for vm_key, vid in d.vm_ids.items():
        assert f'id="{vid}"' in svg and f'"{vid}"' in dot
        for c in m.vms[vm_key].contexts.values():
            assert f'id="{vid}-ctx-{c.id}"' in svg
    assert 'id="wl-q-0"' in svg and "queue stats" in svg
    assert dot.count("subgraph cluster_t") == 3
    scene = d.scene()
    assert sorted(v["id"] for v in scene["vms"]) == sorted(d.vm_ids.values())
    # every lifecycle step names the box it changed, and that box is in the scene
    ids = {v["id"] for v in scene["vms"]} | {c["id"] for c in scene["ctxs"]} | {q["id"] for q in scene["queues"]}
    ids |= {f"{vid}-streams" for vid, _ in scene["streams"]}
    targets = d.mark_ids()
    assert len(targets) == len(m.marks) and set(targets) <= ids


def test_shared_values_read_as_numbers():
    assert value_display("hello") == "'hello'"
    assert value_display("\x05" + "\x00" * 7 + "\x9b") == "05 00 00 00 00 00 00 00 … (u64 5)"


def test_view_state_is_json_and_the_moment_can_be_chosen(wasm_trace):
    v = VMLayoutView(wasm_trace)
    json.dumps(v.get_state())
    assert v.step == -1 and v.at is None
    assert "destroyed" in v.text()  # the end of a closed proxy's trace
    v.step = next(i for i, lab in enumerate(v.marks["label"]) if "replica" in lab and "create" in lab)
    assert v.at == v.marks["seq"][v.step]
    assert "replica VM" in v.text()
    assert v.svg().startswith("<svg")


# ---- live -------------------------------------------------------------------------------------------
def test_live_layout_follows_streams_failures_and_reloads(proxy_factory):
    p = proxy_factory(plugin_yaml(TRAP_WASM, failure_policy="FAIL_RELOAD"), workers=1, clock="virtual")
    v = p.views.vm_layout()
    assert v.live
    (replica,) = v.model.summary()["worker_0"]
    assert replica["status"] == "running" and replica["streams_total"] == 0
    p.request("GET", "/ok")
    p.wait_idle()
    assert v.model.summary()["worker_0"][0]["streams_total"] == 1
    pictures = [v.picture]
    p.request("GET", "/trap")
    p.wait_idle()
    assert v.model.summary()["worker_0"][0]["status"] == "failed"
    assert v.picture != pictures[-1] and "✖ failed" in v.picture
    p.advance(2.0)
    p.request("GET", "/ok")
    p.wait_idle()
    vms = v.model.summary()["worker_0"]
    assert [vm["status"] for vm in vms] == ["failed", "running"]
    # the live model is exactly what a model built afterwards from the whole trace says
    assert v.model.summary() == LayoutModel.from_events(p.trace).summary()
    assert v.scene == VMLayoutView(p.trace).scene


def test_several_live_views_share_one_subscription(proxy_factory):
    p = proxy_factory(CONFIGS / "wasm" / "hello.yaml", workers=1)
    before = len(p.recorder._subscribers)
    a, b = p.views.vm_layout(), p.views.vm_layout()
    assert len(p.recorder._subscribers) == before + 1
    p.request("GET", "/hello")
    p.wait_idle()
    assert a.model.summary() == b.model.summary() == LayoutModel.from_events(p.trace).summary()
    snapshot = p.views.vm_layout(live=False)
    assert not snapshot.live


def test_live_updates_from_worker_threads_reach_the_view_on_its_own_thread(proxy_factory):
    """Requests run on 2 workers, driven by 6 client threads, while the owner's asyncio loop (the
    kernel's, in Jupyter) is running: every traitlet change happens on the owner thread, nothing is
    lost or applied twice."""
    p = proxy_factory(CONFIGS / "wasm" / "stats_service.yaml", workers=2, clock="virtual")
    owner = threading.get_ident()
    changed_on: set[int] = set()
    n = 120

    async def main() -> VMLayoutView:
        v = p.views.vm_layout(engine="builtin")  # created inside the loop: the feed wakes it
        p.views._feed._interval = 0.01
        v.observe(lambda change: changed_on.add(threading.get_ident()), names=["scene"])
        loop = asyncio.get_running_loop()

        def clients() -> None:
            reqs = [("GET", f"/r/{i}") for i in range(n)]
            chunks = [reqs[i::6] for i in range(6)]
            ts = [threading.Thread(target=p.request_many, args=(c,)) for c in chunks]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
            p.wait_idle()

        await loop.run_in_executor(None, clients)
        for _ in range(200):  # let the loop drain what the workers recorded
            await asyncio.sleep(0.01)
            if not p.views._feed._pending:
                break
        await asyncio.sleep(0.05)
        return v

    v = asyncio.run(main())
    assert changed_on == {owner}
    assert p.views._feed.delivered > 0
    m = v._model  # read without draining: the loop did all the work
    assert m.summary() == LayoutModel.from_events(p.trace).summary()
    q = m.queues[("stats_service", "stats")]
    assert q.enqueued == n
    assert sum(vm.streams.__len__() for vm in m.vms.values()) == n


def test_layout_and_queue_flow_still_know_the_vms_after_trace_clear():
    """Lessons clear the trace between sections; the VMs and the queue's registrant are state,
    not history, so the layout and the queue flow keep them."""
    with Proxy.from_yaml(CONFIGS / "wasm" / "stats_service.yaml", workers=2, clock="virtual") as p:
        before = p.views.vm_layout(live=False).model
        p.trace.clear()
        r = p.request("GET", "/r/1", worker=1)
        p.wait_idle()
        assert len(p.trace.filter(kind="vm")) == 0  # the trace itself is cleared
        after = p.views.vm_layout(live=False).model
        flow = p.views.queue_flow()
        tl = p.views.timeline(stream=r.stream_id)
    assert sorted(after.vms) == sorted(before.vms)
    assert flow.model.queues[0].registrant is not None
    assert {row.stream for row in tl.model.rows if row.stream is not None} == {r.stream_id}


def test_a_live_layout_stops_following_a_closed_proxy():
    p = Proxy.from_yaml(CONFIGS / "wasm" / "hello.yaml", workers=1)
    lay = p.views.vm_layout()
    assert lay.live
    p.close()
    assert not lay.live and "proxy closed" in lay.note


# ---- issue 15: order, no future, legend, grouping, the browser ----------------------------------------
def test_vms_keep_envoys_creation_order_inside_a_thread(service_trace):
    m = LayoutModel.from_events(service_trace)
    roles = [vm.role for vm in m.on_thread("main")]
    assert roles == ["base", "base", "canary", "canary", "main", "service"]
    d = LayoutDrawing(m)
    assert [v["role"] for v in d.scene()["vms"] if v["thread"] == "main"] == roles


def test_a_past_moment_shows_nothing_from_its_future(reload_trace):
    m = LayoutModel.from_events(reload_trace)
    old, new = m.on_thread("worker_0")
    d = LayoutDrawing(m)
    at = old.failed  # failed, not yet replaced
    assert at is not None and old.replaced_at is not None and at < old.replaced_at
    assert not any("replaced by" in s for s in d.vm_lines(old, at))
    assert f"replaced by {new.key}" in d.vm_lines(old, old.replaced_at)
    assert "replaced by" not in m.text(at) and new.key not in m.text(at)
    for picture in (d.builtin_svg(at), d.dot(at)):
        assert new.key not in picture and "replaced by" not in picture
    assert new.key in d.builtin_svg() and "replaced by" in d.dot()
    # the thread header counts only what exists at that moment
    assert "worker_0: 1 Wasm VM" in m.text(at)


def test_a_closed_proxy_keeps_each_vms_role_border(wasm_trace):
    """The legend says dotted = base, dashed = canary: a destroyed base VM stays dotted."""
    m = LayoutModel.from_events(wasm_trace)
    d = LayoutDrawing(m)
    svg = d.builtin_svg()
    dash = {}
    for vm in m.vms.values():
        assert vm.status() == "destroyed"
        g = svg[svg.index(f'id="{d.vm_ids[vm.key]}"') :]
        rect = g[: g.index("/>")]
        dash[vm.role] = rect.split('stroke-dasharray="')[1].split('"')[0] if "stroke-dasharray" in rect else None
    assert dash == {"base": "2,2", "canary": "6,3", "main": None, "replica": None}
    dot = d.dot()
    base = dot[dot.index(f'"{d.vm_ids[m.on_thread("main")[0].key]}" [') :].split("\n", 1)[0]
    assert "dotted" in base and "dashed" not in base


def test_on_queue_ready_goes_to_the_registrant_of_that_moment(service_trace):
    m = LayoutModel.from_events(service_trace)
    q = m.queues[("stats_service", "stats")]
    (canary_reg, canary), (service_reg, service) = q.registrants
    assert m.vms[canary].role == "canary" and m.vms[service].role == "service"
    d = LayoutDrawing(m)
    assert d.registrant_at(q, canary_reg) == canary and d.registrant_at(q, service_reg) == service
    qid = d.queue_ids[("stats_service", "stats")]

    def ready(at):
        return [(b, label) for a, b, cls, label in d._edges(at) if cls == "ready" and a == qid]

    assert ready(canary_reg) == [(d.vm_ids[canary], "on_queue_ready ×0")]
    assert ready(None) == [(d.vm_ids[service], "on_queue_ready ×4")]
    first_enqueue = min(s for s, _, what in q.log if what == "enqueue")
    assert not [e for e in d._edges(first_enqueue - 1) if e[2] == "enqueue"]
    assert len([e for e in d._edges(first_enqueue) if e[2] == "enqueue"]) == 1
    # the count is written in the registrant's own box, not floating near another VM
    assert "← on_queue_ready ×4 (queue stats)" in d.traffic_lines(m.vms[service], None)
    assert not any("on_queue_ready" in s for s in d.traffic_lines(m.vms[canary], None))


def test_vm_id_grouping_is_off_by_default(service_trace):
    m = LayoutModel.from_events(service_trace)
    plain, grouped = LayoutDrawing(m), LayoutDrawing(m, group=True)
    assert not [e for e in plain._edges() if e[2] == "member"] and "vm_id stats_filter\n" not in plain.dot()
    members = [e for e in grouped._edges() if e[2] == "member"]
    assert len(members) == len(m.vms)
    v = VMLayoutView(service_trace)
    assert v.group is False and 'class="group"' not in v.svg()
    v.group = True
    assert "group" in v.svg()


HARNESS = """<!doctype html><html><head><meta charset="utf-8"><style>{css}
body {{ margin: 0; }} #out {{ width: {width}px; }} .wl {{ font-size: 14px; }}</style></head>
<body><div id="out"></div><script>
const state = {state};
const handlers = {{}};
window.saved = [];
const model = {{
  get: (k) => state[k],
  set: (k, v) => {{ state[k] = v; (handlers["change:" + k] || []).forEach((f) => f()); }},
  on: (ev, f) => {{ (handlers[ev] = handlers[ev] || []).push(f); }},
  save_changes: () => {{ window.saved.push(JSON.stringify(state.cursor_seq)); }},
  send: () => {{}},
}};
window.model = model;
</script><script>{esm}
render({{ model, el: document.getElementById("out") }});
</script></body></html>"""

#: what lies right of the output area, the smallest text, and the highlighted elements
MEASURE = """() => {
  const out = document.getElementById("out").getBoundingClientRect();
  let right = 0, font = 99;
  for (const e of document.querySelectorAll(".wl *")) {
    const b = e.getBoundingClientRect();
    if (b.width && getComputedStyle(e).visibility !== "hidden") right = Math.max(right, b.right);
    if ([...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim()))
      font = Math.min(font, parseFloat(getComputedStyle(e).fontSize));
  }
  return { overflow: right - out.right, font,
           current: [...document.querySelectorAll(".wl-current")].map((e) => e.id || e.textContent.slice(0, 40)) };
}"""


def harness_page(view, width: int) -> str:
    """A standalone page running the view's real ESM against a fake anywidget model."""
    state = {k: v for k, v in view.get_state().items() if not k.startswith("_")}
    esm = view._esm.replace("export default { render };", "")
    return HARNESS.format(css=view._css, width=width, state=json.dumps(state), esm=esm)


def open_harness(chromium, tmp_path, view, width: int):
    """(playwright, browser, page) showing ``view`` in a ``width`` px wide output area."""
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": width + 40, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    html = tmp_path / f"view-{width}.html"
    html.write_text(harness_page(view, width))
    page.goto(html.as_uri())
    page.wait_for_selector(".wl[data-ready]")
    page.errors = errors  # type: ignore[attr-defined]
    return pw, browser, page


def test_layout_fits_650_px_steps_and_follows_the_shared_cursor(chromium, tmp_path, service_trace):
    v = VMLayoutView(service_trace)
    for width in (650, 900):
        pw, browser, page = open_harness(chromium, tmp_path, v, width)
        try:
            m = page.evaluate(MEASURE)
            assert m["overflow"] <= 0.5 and m["font"] >= 11, m
            assert m["current"] == []  # "now": no step is highlighted
            cols = page.eval_on_selector_all(
                ".wl-vl-col", "cs => cs.map(c => [c.dataset.thread || c.dataset.col, c.getBoundingClientRect().top])"
            )
            assert [c for c, _ in cols] == ["main", "shared", "worker_0", "worker_1"]
            if width == 900:  # main, the process-wide column and a worker side by side
                assert cols[0][1] == cols[1][1] == cols[2][1]
            targets = v.marks["target"]
            page.click('button[data-act="first"]')
            assert page.evaluate(MEASURE)["current"] == [targets[0]]
            # nothing from the future: one VM exists at the first lifecycle event
            assert page.locator(".wl-vl-box.vm").count() == 1
            k = next(i for i, t in enumerate(targets) if t != targets[0])
            for _ in range(k):
                page.click('button[data-act="step"]')
            assert page.evaluate(MEASURE)["current"] == [targets[k]]
            assert json.loads(page.evaluate("window.saved.at(-1)")) == v.marks["seq"][k]
            # another view moves the cursor past the traffic: the layout follows, arrows appear
            last_enqueue = max(ev.seq for ev in service_trace.filter(kind="queue", name="enqueue"))
            page.evaluate(f"model.set('cursor_seq', {last_enqueue})")
            assert page.locator(".wl-vl-edge.e").count() == 2 and page.locator(".wl-vl-edge.r").count() == 1
            assert "enqueue" in page.inner_text(".wl-vl-legend")
            assert page.errors == []
        finally:
            browser.close()
            pw.stop()
