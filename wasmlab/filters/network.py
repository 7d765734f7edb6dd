"""Network (L4) filter configs: ``envoy.filters.network.wasm`` and ``envoy.filters.network.tcp_proxy``.

A listener without an HTTP connection manager carries a chain of network filters; the last must
be the terminal ``tcp_proxy``, as Envoy requires.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config.bootstrap import NetworkFilterConfig
from ..host.extensions import NETWORK_FILTERS

if TYPE_CHECKING:
    from ..config.yaml_source import Node, Source

WASM_NETWORK = "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm"
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


class TcpProxyConfig:
    terminal = True

    def __init__(self, cluster: str, stat_prefix: str) -> None:
        self.cluster = cluster
        self.stat_prefix = stat_prefix

    def create_filter(self, conn: Any) -> Any:
        from ..host.tcp import TcpProxyFilter

        return TcpProxyFilter(self.cluster, self.stat_prefix)


def parse_network_filter(name: str, tc: Node, t: str, source: Source, cluster_names: set[str]) -> NetworkFilterConfig:
    if t == TCP_PROXY:
        tc.check_fields(
            "@type stat_prefix cluster",
            required=("stat_prefix", "cluster"),
            ignored=(
                "idle_timeout",
                "access_log",
                "max_connect_attempts",
                "downstream_idle_timeout",
                "upstream_idle_timeout",
                "max_downstream_connection_duration",
                "hash_policy",
                "on_demand",
                "metadata_match",
                "max_downstream_connection_duration_jitter_percentage",
                "access_log_flush_interval",
                "flush_access_log_on_connected",
                "access_log_options",
                "proxy_protocol_tlvs",
                "max_early_data_bytes",
                "backoff_options",
            ),
            message="weighted_clusters and tunneling_config are not supported",
        )
        return NetworkFilterConfig(
            name, t, TcpProxyConfig(tc.req("cluster").str(allow_empty=False), tc.req("stat_prefix").str())
        )
    if t == WASM_NETWORK:
        from .wasm.network import WasmNetworkFilterFactory

        tc.check_fields("@type config", required=("config",))
        from ..proxywasm.plugin import parse_plugin_config

        return NetworkFilterConfig(name, t, WasmNetworkFilterFactory(parse_plugin_config(tc.req("config"))))
    raise tc.child("@type").error(
        f"unsupported network filter {t!r} (wasmlab supports http_connection_manager, "
        "envoy.filters.network.wasm and envoy.filters.network.tcp_proxy)"
    )


NETWORK_FILTERS[TCP_PROXY] = parse_network_filter
NETWORK_FILTERS[WASM_NETWORK] = parse_network_filter
