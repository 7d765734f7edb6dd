"""Fidelity pass 4, compared with real Envoy 1.40: the Cluster fields Envoy accepts, and what the
stream names as its upstream cluster before the router has run.

Clusters: wasmlab refused 24 fields Envoy 1.40's validate accepts (``alt_stat_name``, the load
balancer configs, ``max_requests_per_connection``, DNS timing, ``track_cluster_stats``...); it
now accepts each with a warning that it has no effect in process, and models the deprecated
cluster-level ``http_protocol_options`` (its ``enable_trailers`` carries HTTP/1 trailers).

The upstream cluster: Envoy sets it when the route is matched (the HCM's cached route: the
route entry's cluster, if the cluster exists), so a filter that answers locally, or reads
``xds.cluster_name`` in its request callback, sees the route's cluster; for ``weighted_clusters``
the entry picked at that match, for ``cluster_header`` the header's value then. wasmlab set it
only in the router before this pass: ``-`` in the access log, and an empty ``xds.cluster_name``
on a weighted route."""

from __future__ import annotations

import pytest
import wasmtime
import yaml
from wasm_probe import probe_wat, prop

from helpers import accepted_with_a_warning, config, file_logs_of_both, get, lua_filter
from wasm_diff import assert_same_run, plugin_yaml, run_both

pytestmark = pytest.mark.envoy

ROUTES = """
              - match: {prefix: "/direct"}
                direct_response: {status: 200, body: {inline_string: "direct hello\\n"}}
              - match: {prefix: "/w"}
                route:
                  weighted_clusters:
                    clusters: [{name: backend, weight: 1}]
              - match: {prefix: "/h"}
                route: {cluster_header: x-cluster}
              - match: {prefix: "/"}
                route: {cluster: backend}"""
REPLY = """
function envoy_on_request(handle)
  if handle:headers():get("x-reply") then
    handle:respond({[":status"] = "403"}, "no")
  end
end
"""
LOG = """
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: LOG_PATH
              log_format:
                text_format_source:
                  inline_string: "%REQ(:PATH)% %RESPONSE_CODE% %UPSTREAM_CLUSTER% %RESPONSE_CODE_DETAILS%\\n\""""


def test_a_local_reply_before_the_router_logs_the_routes_cluster(envoy_bin, tmp_path):
    template = config(filters=lua_filter(REPLY), routes=ROUTES).replace(
        "          stat_prefix: ingress", "          stat_prefix: ingress" + LOG.rstrip()
    )
    reqs = [
        get("/up", **{"x-reply": "1"}),
        get("/w", **{"x-reply": "1"}),
        get("/h", **{"x-reply": "1", "x-cluster": "backend"}),
        get("/h2", **{"x-reply": "1", "x-cluster": "nosuch"}),
        get("/h3", **{"x-reply": "1"}),
        get("/direct", **{"x-reply": "1"}),
        get("/w/up"),
        get("/h/up", **{"x-cluster": "backend"}),
        get("/h/none", **{"x-cluster": "nosuch"}),
    ]
    ours, theirs = file_logs_of_both(template, reqs, tmp_path)
    assert ours == theirs
    assert b"/up 403 backend lua_response" in ours


def test_xds_cluster_name_in_the_request_callback_names_the_picked_cluster(envoy_bin, tmp_path):
    ops = [prop("xds.cluster_name", label="cluster")]
    wasm = tmp_path / "probe.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(probe_wat({"proxy_on_request_headers": ops, "proxy_on_log": ops})))
    data = yaml.safe_load(plugin_yaml(wasm))
    hcm = data["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["route_config"]["virtual_hosts"][0]["routes"] = yaml.safe_load(ROUTES.replace("\n" + " " * 14, "\n"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(data))
    reqs = [
        {"method": "GET", "path": "/w", "timeout": 5},
        {"method": "GET", "path": "/h", "headers": [("x-cluster", "backend")], "timeout": 5},
        {"method": "GET", "path": "/h", "headers": [("x-cluster", "nosuch")], "timeout": 5},
        {"method": "GET", "path": "/up", "timeout": 5},
        {"method": "GET", "path": "/direct", "timeout": 5},
    ]
    ours, theirs, lines = run_both(cfg, reqs)
    assert_same_run(ours, theirs, lines)
    mine = [ln for ln in lines["worker_0"][0] if "cluster" in ln and ln.startswith("wasm log")]
    assert any("len=7" in ln for ln in mine), mine  # "backend", in the request callback too


WEIGHTED_BY_HEADER = """
              - match: {prefix: "/"}
                route:
                  weighted_clusters:
                    header_name: x-w
                    clusters: [{name: a, weight: 1}, {name: b, weight: 1}]"""
SET_W = """
function envoy_on_request(handle)
  local to = handle:headers():get("x-set-w")
  if to then
    handle:headers():replace("x-w", to)
  end
end
"""


def test_a_weighted_pick_by_header_follows_a_filters_edit(envoy_bin, tmp_path):
    """The pick is made again when the route is matched again: a filter that changes the
    ``header_name`` header sends the request to the cluster the new value picks (a pick kept from
    the first match sent it to the old one)."""
    from helpers import static_cluster

    clusters = static_cluster("a", 8081) + static_cluster("b", 8082)
    template = config(filters=lua_filter(SET_W), routes=WEIGHTED_BY_HEADER, clusters=clusters).replace(
        "          stat_prefix: ingress", "          stat_prefix: ingress" + LOG.rstrip()
    )
    reqs = [
        get("/1", **{"x-w": "0"}),
        get("/2", **{"x-w": "1"}),
        get("/3", **{"x-w": "0", "x-set-w": "1"}),
        get("/4", **{"x-w": "1", "x-set-w": "0"}),
        get("/5", **{"x-w": "0", "x-set-w": "3"}),
    ]
    ours, theirs = file_logs_of_both(template, reqs, tmp_path)
    assert ours == theirs
    assert b"/3 200 b via_upstream" in ours and b"/4 200 a via_upstream" in ours


#: a value of each Cluster field wasmlab accepts without modelling it (Envoy's validate accepts each)
CLUSTER_FIELDS = {
    "alt_stat_name": "alt-backend",
    "max_requests_per_connection": 100,
    "track_cluster_stats": {"timeout_budgets": True, "request_response_sizes": True},
    "track_timeout_budgets": True,
    "round_robin_lb_config": {"slow_start_config": {"slow_start_window": "10s"}},
    "least_request_lb_config": {"choice_count": 3},
    "ring_hash_lb_config": {"minimum_ring_size": 1024},
    "maglev_lb_config": {"table_size": 65537},
    "original_dst_lb_config": {"use_http_header": True},
    "lb_subset_config": {"fallback_policy": "ANY_ENDPOINT"},
    "load_balancing_policy": {
        "policies": [
            {
                "typed_extension_config": {
                    "name": "envoy.load_balancing_policies.round_robin",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.load_balancing_policies"
                        ".round_robin.v3.RoundRobin"
                    },
                }
            }
        ]
    },
    "close_connections_on_host_health_failure": True,
    "wait_for_warm_on_init": True,
    "cleanup_interval": "5s",
    "dns_failure_refresh_rate": {"base_interval": "1s"},
    "dns_jitter": "1s",
    "use_tcp_for_dns_lookups": False,
    "dns_resolution_config": {"resolvers": [{"socket_address": {"address": "127.0.0.1", "port_value": 53}}]},
    "preconnect_policy": {"per_upstream_preconnect_ratio": 1.5},
    "connection_pool_per_downstream_connection": False,
    "upstream_bind_config": {"source_address": {"address": "127.0.0.1", "port_value": 0}},
    "upstream_http_protocol_options": {"auto_sni": False},
    "transport_socket_matches": [],
    "filters": [],
}
#: the lb_policy a field's config belongs with
LB_POLICY = {
    "ring_hash_lb_config": "RING_HASH",
    "maglev_lb_config": "MAGLEV",
    "least_request_lb_config": "LEAST_REQUEST",
}


@pytest.mark.parametrize("field", list(CLUSTER_FIELDS))
def test_a_cluster_field_envoy_accepts_is_accepted_with_a_warning(envoy_bin, tmp_path, field):
    data = yaml.safe_load(config())
    cluster = data["static_resources"]["clusters"][0]
    cluster[field] = CLUSTER_FIELDS[field]
    if field in LB_POLICY:
        cluster["lb_policy"] = LB_POLICY[field]
    accepted_with_a_warning(data, f"clusters[0].{field}", tmp_path)


def test_a_clusters_deprecated_http_protocol_options_carry_trailers(envoy_bin):
    """``http_protocol_options: {enable_trailers: true}`` on the cluster itself (Envoy's deprecated
    form of the upstream HTTP/1 options) keeps the upstream's trailers, as the typed form does."""
    from helpers import both

    cfg = config().replace(
        "          stat_prefix: ingress",
        "          stat_prefix: ingress\n          http_protocol_options: {enable_trailers: true}",
    )
    cfg = cfg.replace(
        "  - name: backend\n    type: STATIC",
        "  - name: backend\n    type: STATIC\n    http_protocol_options: {enable_trailers: true}",
    )
    from wasmlab import Response
    from wasmlab.http import HeaderMap

    def app(req):  # an upstream that answers with trailers
        return Response(200, HeaderMap(), b"answer", HeaderMap([("x-up", "t1")]))

    ours, theirs = both(cfg, [{"method": "GET", "path": "/up"}], apps={"backend": app})
    assert [r.trailers for r in ours] == [r.trailers for r in theirs]
    assert list(ours[0].trailers) == [("x-up", "t1")]
