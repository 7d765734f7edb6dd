"""Small helpers shared by tests: YAML snippets and the wasmlab-vs-Envoy comparison."""

from __future__ import annotations

import textwrap
from typing import Any

from wasmlab.envoy.compare import differences

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = """
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"""


def config(filters: str = "", routes: str | None = None, clusters: str | None = None, listener_extra: str = "") -> str:
    """A bootstrap with one HCM; ``filters`` is YAML for http_filters entries before the router
    (indented 10 spaces), ``routes`` YAML for the routes list (indented 14 spaces)."""
    routes = (
        routes
        or """
              - match: {prefix: "/direct"}
                direct_response: {status: 200, body: {inline_string: "direct hello\\n"}}
              - match: {prefix: "/"}
                route: {cluster: backend}"""
    )
    clusters = (
        clusters
        or """
  - name: backend
    type: STATIC
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8081}}}"""
    )
    return (
        textwrap.dedent(
            f"""\
static_resources:
  listeners:
  - name: l0
    address: {{socket_address: {{address: 127.0.0.1, port_value: 10000}}}}{listener_extra}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:"""
        )
        + routes
        + "\n          http_filters:"
        + filters
        + ROUTER
        + "\n  clusters:"
        + clusters
        + "\n"
    )


def assert_same(wasmlab_resp: Any, envoy_resp: Any, what: str = "") -> None:
    diff = differences(wasmlab_resp, envoy_resp)
    assert not diff, f"{what}: wasmlab and Envoy differ:\n" + "\n".join(diff)
