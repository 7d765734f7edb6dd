"""The oracle's hand-written module (m.wat) on wasmlab and on real Envoy 1.40: the same responses
and the same wasm:trace lines — every callback, host call, argument and result — per thread."""

from __future__ import annotations

import pytest
import wasmtime

from conftest import FIXTURES
from wasm_diff import assert_same_run, run_both

pytestmark = pytest.mark.envoy

CONFIG = """
static_resources:
  listeners:
  - name: l0
    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: {prefix: "/direct"}
                direct_response: {status: 200, body: {inline_string: "direct hello\\n"}}
              - match: {prefix: "/"}
                route: {cluster: upstream}
          http_filters:
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: plugin1
                root_id: r1
                vm_config:
                  vm_id: vm1
                  runtime: envoy.wasm.runtime.v8
                  code: {local: {filename: m.wasm}}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    type: STATIC
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8081}}}
"""


@pytest.fixture
def oracle_config(tmp_path):
    (tmp_path / "m.wasm").write_bytes(wasmtime.wat2wasm((FIXTURES / "oracle" / "m.wat").read_text()))
    path = tmp_path / "m.yaml"
    path.write_text(CONFIG)
    return path


REQUESTS = [
    {"method": "GET", "path": "/hello", "headers": [("user-agent", "curl"), ("accept", "*/*")]},
    {"method": "GET", "path": "/direct"},
    {"method": "POST", "path": "/post", "body": "hello body"},
    {"method": "HEAD", "path": "/hello"},
]


def test_same_responses_and_trace_as_envoy(envoy_bin, oracle_config):
    ours, theirs, lines = run_both(oracle_config, REQUESTS)
    assert_same_run(ours, theirs, lines)
    main_ours, _ = lines["main"]
    # canary and main-thread VM both ran create / vm_start / configure with root id 1
    assert main_ours.count("[host->vm] proxy_on_context_create(1, 0)") == 2
    worker_ours, _ = lines["worker_0"]
    assert "[host->vm] proxy_on_request_headers(2, 8, 1)" in worker_ours
    # shutdown: the worker's root context gets on_done then on_delete
    assert (
        worker_ours[-5:]
        == [
            "[host->vm] proxy_on_delete(1)",
            "[vm->host] env.proxy_log(2, 1024, 21)",
            "wasm log r1 vm1: proxy_on_delete ctx=1",
            "[vm<-host] env.proxy_log return: 0",
            "[host<-vm] proxy_on_delete return: void",
        ][-5:]
    )


def test_two_workers_each_get_their_own_replica(envoy_bin, oracle_config):
    ours, theirs, lines = run_both(
        oracle_config, [REQUESTS[1]], workers=2, compare_threads=("main", "worker_0", "worker_1")
    )
    # which worker serves the request differs between runs; start-up and shutdown do not
    starts = {t: [ln for ln in mine if "ctx=1" in ln or "(1" in ln] for t, (mine, _) in lines.items()}
    starts_envoy = {t: [ln for ln in env if "ctx=1" in ln or "(1" in ln] for t, (_, env) in lines.items()}
    assert starts == starts_envoy
    assert all(starts[t] for t in ("worker_0", "worker_1"))
