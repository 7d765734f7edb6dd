"""``proxy.update(yaml)`` against real Envoy applying the same listeners as an LDS update.

Envoy reads its listeners from a watched file (``run(..., dynamic=True)``); ``EnvoyRun.update``
replaces the file by an atomic rename and waits until Envoy counted the update. Both sides then
get the same requests; the responses, the update's outcome (and Envoy's rejection reason) and the
``wasm:trace`` lines per thread — VMs reused or created, new root contexts, the old roots'
``proxy_on_done``/``proxy_on_delete`` after the drain — must be the same.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import assert_same
from wasm_diff import assert_same_run, envoy_lines, wasmlab_lines
from wasmlab import Proxy
from wasmlab import envoy as real
from wasmlab.http import Response

MODULES = Path(__file__).resolve().parents[1] / "modules"

TEMPLATE = """
static_resources:
  listeners:
  - name: main
    address: {{socket_address: {{address: 127.0.0.1, port_value: 10000}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: {cluster}}}
          http_filters:
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {name}
                root_id: {root_id}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{configuration}'
                vm_config:
                  runtime: envoy.wasm.runtime.v8
                  code: {{local: {{filename: {module}}}}}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: backend
    type: STATIC
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 10001}}}}}}
  - name: other
    type: STATIC
    load_assignment:
      cluster_name: other
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 10002}}}}}}
"""


def config(
    module: str = "hello.wasm",
    configuration: str = "",
    cluster: str = "backend",
    name: str = "plugin",
    root_id: str = "r1",
) -> str:
    return TEMPLATE.format(
        module=MODULES / module, configuration=configuration, cluster=cluster, name=name, root_id=root_id
    )


def other_app(request: Any) -> Response:
    return Response(200, [("content-type", "text/plain"), ("x-cluster", "other")], b"other\n")


APPS = {"other": other_app}
#: Envoy drains a replaced listener for --drain-time-s (1 s here) before the old roots go
DRAIN_S = 1


def run_update(first: str, second: str, apps: dict[str, Any] | None = None) -> dict[str, Any]:
    """The same start, update and requests on both sides; what each side did."""
    apps = dict(APPS, **(apps or {}))
    p = Proxy.from_yaml(first, workers=1, upstreams=apps, component_log_level="wasm:trace")
    e = real.run(first, workers=1, apps=apps, dynamic=True, drain_time_s=DRAIN_S, component_log_level="wasm:trace")
    try:
        before = (p.request("GET", "/before"), e.request("GET", "/before"))
        outcome = (p.update(second, drain_time_s=DRAIN_S), e.update(second))
        after = (p.request("GET", "/after"), e.request("GET", "/after"))
        p.wait_idle()
        e.wait_for_log(lambda ln: "draining filter chains from listener main complete" in ln.message, DRAIN_S + 5)
        time.sleep(0.3)  # the workers' on_done/on_delete follow the main thread's
        lines = {t: (wasmlab_lines(p, t), envoy_lines(e, t)) for t in ("main", "worker_0")}
        errors = [ln for ln in e.logs if ln.startswith(("[error][wasm]", "[critical][wasm]"))]
    finally:
        p.close()
        e.close()
    e.__exit__(None, None, None)
    return {
        "before": before,
        "outcome": outcome,
        "after": after,
        "lines": lines,
        "proxy": p,
        "envoy_wasm_errors": errors,
    }


def assert_same_update(out: dict[str, Any]) -> None:
    ours, theirs = out["outcome"]
    assert (ours.accepted, ours.reason) == (theirs.accepted, theirs.reason)
    assert_same_run([out["before"][0], out["after"][0]], [out["before"][1], out["after"][1]], out["lines"])


def callbacks(lines: list[str], name: str) -> list[str]:
    return [ln for ln in lines if ln.startswith(f"[host->vm] {name}(")]


pytestmark = pytest.mark.envoy


def test_plugin_change_same_code_reuses_the_vms(envoy_bin):
    """A new plugin (another root_id) on the same code: new root contexts on the running VMs."""
    out = run_update(config(), config(root_id="r2"))
    assert_same_update(out)
    worker, _ = out["lines"]["worker_0"]
    # one VM on the worker: the new root is context 3 of the same VM (1 = old root, 2 = a stream)
    assert callbacks(worker, "proxy_on_context_create")[:3] == [
        "[host->vm] proxy_on_context_create(1, 0)",
        "[host->vm] proxy_on_context_create(2, 1)",
        "[host->vm] proxy_on_context_create(3, 0)",
    ]
    assert "[host->vm] proxy_on_done(1)" in worker  # the old root, once drained
    creates = [e for e in out["proxy"].trace if e.kind == "vm" and e.name == "create" and e.thread == "worker_0"]
    assert len(creates) == 1


def test_configuration_change_same_code(envoy_bin):
    """Only the plugin configuration changes: on_configure on the same VMs, the new value serves."""
    first = config("add_header.wasm", '{"response_headers": {"x-gen": "1"}}')
    out = run_update(first, config("add_header.wasm", '{"response_headers": {"x-gen": "2"}}'))
    assert_same_update(out)
    assert out["before"][0].headers.get("x-gen") == "1"
    assert out["after"][0].headers.get("x-gen") == "2"
    worker, _ = out["lines"]["worker_0"]
    assert callbacks(worker, "proxy_on_configure") == [
        "[host->vm] proxy_on_configure(1, 36)",
        "[host->vm] proxy_on_configure(3, 36)",
    ]


def test_module_change_gets_new_vms(envoy_bin):
    out = run_update(config(), config("hello_wat.wasm"))
    assert_same_update(out)
    worker, _ = out["lines"]["worker_0"]
    # a new VM on the worker: context ids start again at 1
    assert callbacks(worker, "proxy_on_context_create").count("[host->vm] proxy_on_context_create(1, 0)") == 2
    destroyed = [e for e in out["proxy"].trace if e.kind == "vm" and e.name == "destroy" and e.thread == "worker_0"]
    assert destroyed and destroyed[0].args["role"] == "replica"  # the old VM went after the drain


def test_route_change_keeps_the_plugin(envoy_bin):
    out = run_update(config(), config(cluster="other"))
    assert_same_update(out)
    assert out["after"][0].headers.get("x-cluster") == "other"
    main, _ = out["lines"]["main"]
    # the canary and the main VM at start-up; nothing new for the update (same plugin)
    assert callbacks(main, "proxy_on_configure") == ["[host->vm] proxy_on_configure(1, 0)"] * 2


def test_rejected_update_keeps_the_old_config(envoy_bin):
    first = config("add_header.wasm", '{"response_headers": {"x-gen": "1"}}')
    out = run_update(first, config("add_header.wasm", "not json"))
    ours, theirs = out["outcome"]
    assert not ours.accepted
    assert ours.reason == theirs.reason == "Error adding/updating listener(s) main: Unable to create Wasm plugin plugin"
    assert_same(out["after"][0], out["after"][1], "after a rejected update")
    assert out["after"][0].headers.get("x-gen") == "1"
    assert "[warning][upstream] lds: listener 'main' config rejected: Unable to create Wasm plugin plugin" in (
        out["proxy"].logs
    )
    # the same lines (Envoy's per-thread "fail closed" line is posted to the workers from the
    # canary's failure and does not always make it before the listener is rejected: not counted)
    wasm_lines = {ln for ln in out["proxy"].logs if ln.startswith(("[error][wasm]", "[critical][wasm]"))}
    assert wasm_lines == set(out["envoy_wasm_errors"])
    assert "[critical][wasm] Plugin plugin failed to load" in wasm_lines


def test_stream_in_flight_finishes_on_its_filters(envoy_bin):
    """A request waiting on its upstream during the update is answered by the old plugin; the
    old root contexts go only after it ended."""
    gate = {"ours": threading.Event(), "theirs": threading.Event()}
    entered = {"ours": threading.Event(), "theirs": threading.Event()}

    def slow(side: str) -> Any:
        def app(request: Any) -> Response:
            if request.path == "/slow":
                entered[side].set()
                gate[side].wait(10)
            return Response(200, [("content-type", "text/plain")], b"ok\n")

        return app

    first = config("add_header.wasm", '{"response_headers": {"x-gen": "1"}}')
    second = config("add_header.wasm", '{"response_headers": {"x-gen": "2"}}')
    p = Proxy.from_yaml(first, workers=1, upstreams={"backend": slow("ours")}, component_log_level="wasm:trace")
    e = real.run(
        first,
        workers=1,
        apps={"backend": slow("theirs")},
        dynamic=True,
        drain_time_s=DRAIN_S,
        component_log_level="wasm:trace",
    )
    try:
        results: dict[str, Any] = {}
        threads = [
            threading.Thread(target=lambda: results.__setitem__("ours", p.request("GET", "/slow"))),
            threading.Thread(target=lambda: results.__setitem__("theirs", e.request("GET", "/slow"))),
        ]
        for t in threads:
            t.start()
        assert entered["ours"].wait(10) and entered["theirs"].wait(10)
        assert p.update(second, drain_time_s=DRAIN_S).accepted and e.update(second).accepted
        fresh = (p.request("GET", "/fresh"), e.request("GET", "/fresh"))
        # the old root is still there while its stream runs
        assert not [ev for ev in p.trace if ev.kind == "config" and ev.name == "drained"]
        gate["ours"].set()
        gate["theirs"].set()
        for t in threads:
            t.join(10)
        time.sleep(DRAIN_S + 0.5)
        p.wait_idle()
    finally:
        p.close()
        e.close()
    e.__exit__(None, None, None)
    assert_same(fresh[0], fresh[1], "new stream after the update")
    assert fresh[0].headers.get("x-gen") == "2"
    # the old stream ran on the old root (context 2 of root 1) until its end; the module keeps
    # one configuration per VM, so on both sides it already answers with the new one
    assert_same(results["ours"], results["theirs"], "stream in flight")
    assert_same_run([], [], {"worker_0": (wasmlab_lines(p, "worker_0"), envoy_lines(e, "worker_0"))})
    drained = [ev for ev in p.trace if ev.kind == "config" and ev.name == "drained"]
    assert len(drained) == 1


def test_update_view_shows_generations():
    """The VM layout before and after an update: generation 1's root contexts are retired,
    generation 2's run on the same VMs (same code) — read from the trace."""
    from wasmlab.views.layout import generations

    with Proxy.from_yaml(config(), workers=1) as p:
        p.request("GET", "/")
        before = generations(list(p.trace))
        text_before = p.views.vm_layout().text()
        assert p.update(config(root_id="r2")).accepted
        p.request("GET", "/")
        p.wait_idle()
        time.sleep(0.1)
        after = generations(list(p.trace))
        view = p.views.vm_layout()
        text_after, scene, picture = view.text(), view.scene, view.picture
    assert "generation" not in text_before
    assert "config generation 2 (update at #" in text_after and "config generation 1: retired" in text_after
    assert "root context 3  plugin plugin  generation 2" in text_after  # worker_0's new root, same VM
    assert {c["gen"] for c in scene["ctxs"] if c["kind"] == "root"} == {1, 2}
    assert "generation 2" in picture  # the static picture (SVG) labels the new roots too
    assert [g[0] for g in scene["gens"]] == [1, 2] and scene["gens"][0][3] is not None  # gen 1 retired
    assert [g["number"] for g in before] == [1]
    assert [g["number"] for g in after] == [1, 2]
    old, new = after
    assert old["retired"] and not new["retired"]
    assert {r["thread"] for r in new["roots"]} == {"main", "worker_0"}
    # same code: the new roots live in the VMs generation 1 created
    assert {r["vm"] for r in new["roots"]} <= {r["vm"] for r in old["roots"]}
