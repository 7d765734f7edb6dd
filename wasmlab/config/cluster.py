"""Envoy's ``Cluster`` message as wasmlab reads it (``static_resources.clusters[]``).

wasmlab serves every cluster with an in-process app (``host/upstream.py``), so of a cluster it
models the name, the type, the endpoints' addresses, the connect timeout and the upstream HTTP
protocol (HTTP/2, HTTP/1 trailers). Every other field Envoy 1.40 accepts is accepted and warned
about as having no effect here (load balancing, health checks, DNS, circuit breakers, stats
names...); TLS transport sockets and cluster discovery (EDS, CDS) are refused with an error.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .node import UPSTREAM_HTTP_OPTIONS, http1_trailers
from .yaml_source import Node


@dataclass
class SocketAddress:
    address: str
    port: int

    def __str__(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


@dataclass
class ClusterConfig:
    name: str
    type: str
    endpoints: list[SocketAddress]
    connect_timeout: float = 5.0
    http2: bool = False
    node: Node | None = field(default=None, repr=False)
    #: HTTP/1 ``enable_trailers`` (HTTP/2 always carries trailers): see :attr:`keeps_trailers`
    http1_trailers: bool = False

    @property
    def keeps_trailers(self) -> bool:
        """Whether the upstream codec carries trailers both ways (Envoy's HTTP/1 drops them)."""
        return self.http2 or self.http1_trailers


def parse_socket_address(node: Node, resolved: bool = False, hint: str = "") -> SocketAddress:
    """A ``SocketAddress``. Unless the address is ``resolved`` by DNS (a STRICT_DNS or
    LOGICAL_DNS cluster's endpoint) or a ``resolver_name`` is given, Envoy needs an IP address
    and refuses anything else at load, in these words (``hint`` is what it adds)."""
    node.check_fields("socket_address pipe", message="only socket_address is supported")
    sa = node.req("socket_address").check_fields(
        "address port_value protocol",
        required=("address",),
        ignored=("ipv4_compat", "resolver_name", "network_namespace_filepath"),
    )
    port = sa.req("port_value").int(0, 65535) if sa.has("port_value") else 0
    address = sa.req("address").str(allow_empty=False)
    if not resolved and not sa.has("resolver_name"):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise sa.child("address").error(f"malformed IP address: {address}{hint}") from None
    return SocketAddress(address, port)


# ---- clusters --------------------------------------------------------------------------------
#: the Cluster fields wasmlab models (``http_protocol_options``, deprecated in Envoy but accepted:
#: its ``enable_trailers``); the ones below it accepts and ignores, as Envoy 1.40 accepts them
_CLUSTER_FIELDS = (
    "name type load_assignment http2_protocol_options http_protocol_options typed_extension_protocol_options"
    " transport_socket"
)
_CLUSTER_IGNORED = (
    "connect_timeout",
    "lb_policy",
    "dns_lookup_family",
    "dns_refresh_rate",
    "respect_dns_ttl",
    "circuit_breakers",
    "common_lb_config",
    "health_checks",
    "outlier_detection",
    "per_connection_buffer_limit_bytes",
    "upstream_connection_options",
    "common_http_protocol_options",
    "ignore_health_on_host_removal",
    "dns_resolvers",
    "typed_dns_resolver_config",
    "protocol_selection",
    "metadata",
    # no effect in process either (each accepted by Envoy 1.40's validate: tests/test_fidelity_pass4.py)
    "alt_stat_name",  # Envoy names the cluster's stats and %UPSTREAM_CLUSTER% with it; wasmlab does not
    "max_requests_per_connection",
    "track_cluster_stats",
    "track_timeout_budgets",
    "round_robin_lb_config",
    "least_request_lb_config",
    "ring_hash_lb_config",
    "maglev_lb_config",
    "original_dst_lb_config",
    "lb_subset_config",
    "load_balancing_policy",
    "close_connections_on_host_health_failure",
    "wait_for_warm_on_init",
    "cleanup_interval",
    "dns_failure_refresh_rate",
    "dns_jitter",
    "use_tcp_for_dns_lookups",
    "dns_resolution_config",
    "preconnect_policy",
    "connection_pool_per_downstream_connection",
    "upstream_bind_config",
    "upstream_http_protocol_options",
    "transport_socket_matches",
    "filters",
)


_LB_POLICIES = (
    "ROUND_ROBIN",
    "LEAST_REQUEST",
    "RING_HASH",
    "RANDOM",
    "MAGLEV",
    "CLUSTER_PROVIDED",
    "LOAD_BALANCING_POLICY_CONFIG",
)


def _check_unmodelled_values(node: Node) -> None:
    """Fields wasmlab does not model are still refused where Envoy refuses their value: an
    unknown ``lb_policy``, a ``connect_timeout`` that is not positive."""
    if node.has("lb_policy") and node.req("lb_policy").enum(_LB_POLICIES) == "CLUSTER_PROVIDED":
        # none of the cluster types wasmlab has (STATIC, STRICT_DNS, LOGICAL_DNS) provides one
        name = node.req("name").str() if node.has("name") else ""
        raise node.child("lb_policy").error(
            f"cluster manager: cluster provided LB specified but cluster '{name}' did not provide one. "
            "Check cluster documentation."
        )
    if node.has("connect_timeout") and node.req("connect_timeout").duration() <= 0:
        raise node.child("connect_timeout").error(
            "Proto constraint validation failed (ClusterValidationError.ConnectTimeout: value must be greater than 0s)"
        )


def _check_weight(node: Node, message: str) -> None:
    """A ``load_balancing_weight`` (locality or endpoint) is at least 1, as Envoy requires."""
    if node.has("load_balancing_weight") and node.req("load_balancing_weight").uint32() < 1:
        raise node.child("load_balancing_weight").error(
            f"Proto constraint validation failed ({message}ValidationError.LoadBalancingWeight: value must be "
            "greater than or equal to 1)"
        )


def parse_cluster(node: Node) -> ClusterConfig:
    node.check_fields(
        _CLUSTER_FIELDS, required=("name",), ignored=_CLUSTER_IGNORED, message="EDS/cluster discovery is not supported"
    )
    name = node.req("name").str(allow_empty=False)
    _check_unmodelled_values(node)
    ctype = "STATIC"
    if node.has("type"):
        ctype = node.req("type").enum(("STATIC", "STRICT_DNS", "LOGICAL_DNS"))
    if node.has("transport_socket"):
        ts = node.req("transport_socket")
        raise ts.error("TLS transport sockets are not supported (upstreams are in-process apps)")
    endpoints: list[SocketAddress] = []
    if node.has("load_assignment"):
        la = node.req("load_assignment").check_fields("cluster_name endpoints policy", ignored=("named_endpoints",))
        for ep_group in la.req("endpoints").list() if la.has("endpoints") else []:
            _check_weight(ep_group, "LocalityLbEndpoints")
            ep_group.check_fields(
                "lb_endpoints locality priority load_balancing_weight",
                ignored=("metadata", "load_balancer_endpoints", "proximity"),
            )
            for lb in ep_group.req("lb_endpoints").list() if ep_group.has("lb_endpoints") else []:
                _check_weight(lb, "LbEndpoint")
                lb.check_fields(
                    "endpoint", required=("endpoint",), ignored=("load_balancing_weight", "health_status", "metadata")
                )
                ep = lb.req("endpoint").check_fields(
                    "address",
                    required=("address",),
                    ignored=("hostname", "health_check_config", "additional_addresses"),
                )
                endpoints.append(
                    parse_socket_address(
                        ep.req("address"),
                        resolved=ctype != "STATIC",
                        hint=". Consider setting resolver_name or setting cluster type to 'STRICT_DNS' or "
                        "'LOGICAL_DNS'",
                    )
                )
    http2 = node.has("http2_protocol_options")
    if node.has("typed_extension_protocol_options"):
        opts_node = node.req("typed_extension_protocol_options")
        http2 = http2 or "http2_protocol_options" in str(opts_node.mapping().value)
        upstream = opts_node.get(UPSTREAM_HTTP_OPTIONS)
        if upstream is not None and upstream.has("http_filters"):  # upstream HTTP filters: warned, not run
            node.source.ignored.append(f"{upstream.path}.http_filters")
    timeout = node.req("connect_timeout").duration() if node.has("connect_timeout") else 5.0
    return ClusterConfig(name, ctype, endpoints, timeout, http2, node, http1_trailers(node))
