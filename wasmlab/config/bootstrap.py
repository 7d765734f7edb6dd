"""The Envoy v3 bootstrap subset wasmlab reads, parsed into plain typed objects.

Supported: ``static_resources.listeners[]`` whose single filter chain is an
``envoy.filters.network.http_connection_manager`` (HCM) — or a network filter chain (issue: L4
filters) — ``static_resources.clusters[]`` with STATIC/STRICT_DNS/LOGICAL_DNS endpoints (served by
in-process upstream apps), ``bootstrap_extensions`` and ``admin`` (accepted, unused). Anything
else is rejected with one line naming the YAML path and what is supported, the way Envoy rejects
unknown fields. Fields that change nothing observable in process (``codec_type``,
``connect_timeout``...) are accepted and ignored.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import ConfigError
from .anytype import any_type, typed_struct, unwrap_value  # noqa: F401  (re-exported)
from .cluster import ClusterConfig, SocketAddress, parse_cluster, parse_socket_address
from .formatter import DEFAULT_ACCESS_LOG_FORMAT, Formatter, LogFormat, compile_json, parse_log_format
from .local_reply import LocalReplyConfig, parse_local_reply_config
from .log_filter import parse_log_filter
from .node import (
    HcmHeaderOptions,
    NodeInfo,
    http1_trailers,
    parse_hcm_header_options,
    parse_node,
    request_header_limits,
)
from .route import RouteConfiguration, parse_route_configuration
from .yaml_source import Node, Source

HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
FILTER_CONFIG_TYPE = "type.googleapis.com/envoy.config.route.v3.FilterConfig"
STDOUT_LOG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
STDERR_LOG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
FILE_LOG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
WASM_LOG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.wasm.v3.WasmAccessLog"
WASM_SERVICE_TYPE = "type.googleapis.com/envoy.extensions.wasm.v3.WasmService"
#: the type wasmlab gives ``name: wasmlab.native.<name>`` filters (Envoy has no type for them)
NATIVE_TYPE_URL = "wasmlab.native"
DEFAULT_BUFFER_LIMIT = 1024 * 1024


class Extensions(Protocol):
    """Turns an extension's ``typed_config`` into its factory (Envoy: the extension registry).

    Config is data: this package parses and checks the bootstrap's own fields and hands every
    ``typed_config`` of an extension to this object (the host's registry,
    :class:`wasmlab.host.extensions.HostExtensions`), which returns the parsed factory or
    ``None`` when no extension is registered for the type URL.
    """

    def http_filter(
        self, name: str, type_url: str, config: Node, source: Source, stat_prefix: str, clusters: set[str]
    ) -> Any: ...

    def supported_http_filters(self) -> list[str]: ...

    def per_route(self, type_url: str, factory: Any) -> Callable[[Node], Any] | None: ...

    def network_filter(self, name: str, tc: Node, type_url: str, source: Source, clusters: set[str]) -> Any: ...

    def access_logger(self, type_url: str, tc: Node) -> Any: ...

    def bootstrap_extension(self, type_url: str, tc: Node) -> Any: ...


@dataclass
class AccessLogConfig:
    name: str
    sink: str  # stdout stderr file wasm
    path: str | None = None
    format: LogFormat | None = None
    #: for envoy.access_loggers.wasm: the parsed plugin config (Proxy-Wasm part 2)
    plugin: Any = None
    #: the log's ``filter`` (log_filter.LogFilter): only streams it passes are logged
    filter: Any = None


@dataclass
class HttpFilterConfig:
    name: str
    type_url: str
    #: the factory the extension registry built from ``typed_config`` (an ``HttpFilterFactory``)
    factory: Any
    disabled: bool = False


@dataclass
class HcmConfig:
    stat_prefix: str
    route_config: RouteConfiguration
    http_filters: list[HttpFilterConfig]
    access_logs: list[AccessLogConfig]
    server_name: str = "envoy"
    server_header_transformation: str = "OVERWRITE"
    generate_request_id: bool = True
    buffer_limit: int = DEFAULT_BUFFER_LIMIT
    header_options: HcmHeaderOptions = field(default_factory=HcmHeaderOptions)
    #: ``http_protocol_options.enable_trailers``: the downstream HTTP/1 codec passes trailers
    http1_trailers: bool = False
    #: ``local_reply_config``: how local replies are rewritten (None: sent as they are)
    local_reply: LocalReplyConfig | None = None
    #: what the downstream HTTP/1 codec allows in a request's head (bytes, header count)
    header_limits: tuple[int, int] = (60 * 1024, 100)


@dataclass
class NetworkFilterConfig:
    name: str
    type_url: str
    config: Any


@dataclass
class ListenerConfig:
    name: str
    address: SocketAddress
    hcm: HcmConfig | None
    network_filters: list[NetworkFilterConfig]
    buffer_limit: int = DEFAULT_BUFFER_LIMIT
    #: ``traffic_direction`` (the ``xds.listener_direction`` property: 0 unspecified, 1 in, 2 out)
    direction: int = 0


@dataclass
class BootstrapExtensionConfig:
    name: str
    type_url: str
    node: Node
    config: Any = None


@dataclass
class Bootstrap:
    source: Source
    listeners: list[ListenerConfig]
    clusters: dict[str, ClusterConfig]
    bootstrap_extensions: list[BootstrapExtensionConfig]
    admin_address: SocketAddress | None = None
    node: NodeInfo = field(default_factory=NodeInfo)

    @property
    def http_listeners(self) -> list[ListenerConfig]:
        return [lst for lst in self.listeners if lst.hcm is not None]


# ---- helpers -----------------------------------------------------------------------------------
# ---- access logs -------------------------------------------------------------------------------
def parse_access_log(node: Node, ext: Extensions) -> AccessLogConfig:
    log = _parse_access_log_sink(node, ext)
    if node.has("filter"):
        log.filter = parse_log_filter(node.req("filter"))
    return log


def _check_log_path(node: Node, path: str) -> None:
    """Envoy opens an access log file when it loads the config and refuses one it cannot open,
    in these words (wasmlab checks without creating the file)."""
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise node.error(f"unable to open file '{path}': Is a directory")
    if not p.parent.is_dir():
        raise node.error(f"unable to open file '{path}': No such file or directory")


def _parse_access_log_sink(node: Node, ext: Extensions) -> AccessLogConfig:
    node.check_fields("name typed_config filter", required=("name",))
    name = node.req("name").str(allow_empty=False)
    tc = node.req("typed_config")
    t = any_type(tc)
    default = LogFormat(Formatter.compile(DEFAULT_ACCESS_LOG_FORMAT))
    if t in (STDOUT_LOG_TYPE, STDERR_LOG_TYPE):
        tc.check_fields("@type log_format")
        fmt = parse_log_format(tc.req("log_format")) if tc.has("log_format") else default
        return AccessLogConfig(name, "stdout" if t == STDOUT_LOG_TYPE else "stderr", None, fmt)
    if t == FILE_LOG_TYPE:
        tc.check_fields("@type path log_format format json_format typed_json_format", required=("path",))
        if tc.has("log_format"):
            fmt = parse_log_format(tc.req("log_format"))
        elif tc.has("format"):
            fmt = LogFormat(Formatter.compile(tc.req("format").str(), tc.child("format")))
        elif tc.has("json_format") or tc.has("typed_json_format"):
            key = "json_format" if tc.has("json_format") else "typed_json_format"
            fmt = LogFormat(None, compile_json(tc.req(key)))
        else:
            fmt = default
        path = tc.req("path").str(allow_empty=False)
        if path != "/dev/stdout" and path != "/dev/stderr":
            path = str(tc.source.resolve(path))
            _check_log_path(tc.child("path"), path)
        return AccessLogConfig(name, "file", path, fmt)
    if t == WASM_LOG_TYPE:
        return AccessLogConfig(name, "wasm", plugin=ext.access_logger(t, tc))
    raise tc.child("@type").error(
        f"unsupported access logger {t!r} (wasmlab supports stdout, stderr, file and wasm access loggers)"
    )


# ---- HTTP connection manager --------------------------------------------------------------------
_HCM_IGNORED = (
    "codec_type",
    "common_http_protocol_options",
    "http_protocol_options",
    "http2_protocol_options",
    "stream_idle_timeout",
    "request_timeout",
    "request_headers_timeout",
    "drain_timeout",
    "delayed_close_timeout",
    "upgrade_configs",
    "set_current_client_cert_details",
    "tracing",
    "proxy_100_continue",
    "access_log_options",
    "http1_safe_max_connection_duration",
    "http3_protocol_options",
    "stream_flush_timeout",
    "access_log_flush_interval",
    "flush_access_log_on_new_request",
    "original_ip_detection_extensions",
    "early_header_mutation_extensions",
    "forward_client_cert_matcher",
    "represent_ipv4_remote_address_as_ipv4_mapped_ipv6",
    "request_id_extension",
    "stream_error_on_invalid_http_message",
    "path_normalization_options",
    "proxy_status_config",
    "append_local_overload",
    "add_proxy_protocol_connection_state",
    "scheme_header_transformation",
)


def _per_filter_parser(filters: dict[str, HttpFilterConfig], ext: Extensions) -> Any:
    def parse(node: Node | None) -> dict[str, Any]:
        if node is None:
            return {}
        out: dict[str, Any] = {}
        for key, child in node.items():
            t = any_type(child)
            disabled = False
            inner = child
            if t == FILTER_CONFIG_TYPE:
                child.check_fields("@type config disabled is_optional")
                disabled = child.req("disabled").bool() if child.has("disabled") else False
                if not child.has("config"):
                    out[key] = PerRouteDisabled() if disabled else None
                    continue
                inner = child.req("config")
                t = any_type(inner)
            f = filters.get(key)
            parse_per_route = ext.per_route(t, f.factory if f is not None else None)
            if parse_per_route is None:
                raise child.error(
                    f"Didn't find a registered implementation for '{key}' with type URL: '{t.split('/', 1)[-1]}'"
                )
            parsed = parse_per_route(inner)
            out[key] = PerRouteDisabled() if disabled else parsed
        return out

    return parse


class PerRouteDisabled:
    """``typed_per_filter_config`` said ``disabled: true`` for this filter on this route."""

    def __repr__(self) -> str:
        return "PerRouteDisabled()"


def parse_http_filter(
    node: Node, ext: Extensions, source: Source, stat_prefix: str, clusters: set[str]
) -> HttpFilterConfig:
    node.check_fields("name typed_config disabled is_optional", required=("name",))
    name = node.req("name").str(allow_empty=False)
    disabled = node.req("disabled").bool() if node.has("disabled") else False
    if name.startswith("wasmlab.native."):
        t = NATIVE_TYPE_URL
        tc = node.get("typed_config")
        cfg = tc if tc is not None else node
    else:
        if not node.has("typed_config"):
            raise node.error(
                f"missing required field 'typed_config' (Envoy selects the filter by its \"@type\"; "
                f"supported: {', '.join(u.rsplit('/', 1)[-1] for u in ext.supported_http_filters())})"
            )
        cfg = typed_struct(node.req("typed_config"))
        t = any_type(cfg)
    factory = ext.http_filter(name, t, cfg, source, stat_prefix, clusters)
    if factory is None:
        known = ", ".join(u.rsplit("/", 1)[-1] for u in ext.supported_http_filters() if u.startswith("type."))
        raise cfg.child("@type").error(
            f"Didn't find a registered implementation for '{name}' with type URL: "
            f"'{t.split('/', 1)[-1]}' (wasmlab supports: {known}; custom Python filters use "
            "name: wasmlab.native.<name>)"
        )
    return HttpFilterConfig(name, t, factory, disabled)


def parse_hcm(
    node: Node, source: Source, clusters: dict[str, ClusterConfig], buffer_limit: int, ext: Extensions
) -> HcmConfig:
    node.check_fields(
        "@type stat_prefix route_config http_filters access_log server_name server_header_transformation "
        "generate_request_id use_remote_address xff_num_trusted_hops skip_xff_append via "
        "preserve_external_request_id always_set_request_id_in_response local_reply_config add_user_agent "
        "normalize_path merge_slashes path_with_escaped_slashes_action strip_matching_host_port strip_any_host_port "
        "max_request_headers_kb internal_address_config forward_client_cert_details strip_trailing_host_dot "
        "append_x_forwarded_port",
        required=("stat_prefix",),
        ignored=_HCM_IGNORED,
        message="rds and scoped_routes (dynamic routes) are not supported",
    )
    kb = node.get("max_request_headers_kb")
    if kb is not None and not 0 < kb.uint32() <= 8192:
        raise kb.error(
            "Proto constraint validation failed (HttpConnectionManagerValidationError.MaxRequestHeadersKb: "
            "value must be inside range (0, 8192])"
        )
    stat_prefix = node.req("stat_prefix").str()
    if not stat_prefix:
        raise node.child("stat_prefix").error(
            "Proto constraint validation failed (HttpConnectionManagerValidationError.StatPrefix: value length "
            "must be at least 1 characters)"
        )
    filters_node = node.req("http_filters") if node.has("http_filters") else None
    filters: list[HttpFilterConfig] = []
    for fn in filters_node.list() if filters_node is not None else []:
        filters.append(parse_http_filter(fn, ext, source, stat_prefix, set(clusters)))
    # Envoy: the terminal filter must be last, and the last filter must be terminal
    for i, (f, fn) in enumerate(zip(filters, filters_node.list() if filters_node else [], strict=True)):
        last = i == len(filters) - 1
        kind = f.type_url.split("/", 1)[-1]
        if f.factory.terminal and not last:
            raise fn.error(
                f"terminal filter named {f.name} of type {kind} must be the last filter in a http filter chain."
            )
        if last and not f.factory.terminal:
            raise fn.error(
                f"non-terminal filter named {f.name} of type {kind} is the last filter in a http filter chain."
            )
        if last and f.disabled:
            raise fn.child("disabled").error(
                f"Error: the last (terminal) filter ({f.name}) in the chain cannot be disabled by default."
            )
    if not filters:
        raise node.error("http_filters is empty: add envoy.filters.http.router as the last filter")
    by_name: dict[str, HttpFilterConfig] = {}
    for f in filters:
        by_name.setdefault(f.name, f)
    if not node.has("route_config"):
        raise node.error("missing required field 'route_config' (rds is not supported)")
    rc_node = node.req("route_config")
    route_config = parse_route_configuration(rc_node, _per_filter_parser(by_name, ext))
    _check_route_clusters(rc_node, route_config, clusters)
    logs = [parse_access_log(a, ext) for a in node.req("access_log").list()] if node.has("access_log") else []
    server_name = node.req("server_name").str() if node.has("server_name") else "envoy"
    if any(c in server_name for c in "\0\n\r"):
        raise node.child("server_name").error(
            "Proto constraint validation failed (HttpConnectionManagerValidationError.ServerName: value does not "
            'match regex pattern "^[^\\x00\\n\\r]*$")'
        )
    sht = "OVERWRITE"
    if node.has("server_header_transformation"):
        sht = node.req("server_header_transformation").enum(("OVERWRITE", "APPEND_IF_ABSENT", "PASS_THROUGH"))
    gen = node.req("generate_request_id").bool_value() if node.has("generate_request_id") else True
    xff = parse_hcm_header_options(node)
    xff.internal_only_headers = route_config.internal_only_headers
    local_reply = parse_local_reply_config(node.req("local_reply_config")) if node.has("local_reply_config") else None
    codec = (http1_trailers(node), local_reply, request_header_limits(node))
    return HcmConfig(stat_prefix, route_config, filters, logs, server_name, sht, gen, buffer_limit, xff, *codec)


def _check_route_clusters(rc_node: Node, rc: RouteConfiguration, clusters: dict[str, ClusterConfig]) -> None:
    from .route import RouteAction

    vh_nodes = rc_node.req("virtual_hosts").list() if rc_node.has("virtual_hosts") else []
    for vh, vn in zip(rc.virtual_hosts, vh_nodes, strict=True):
        r_nodes = vn.req("routes").list() if vn.has("routes") else []
        for r, rn in zip(vh.routes, r_nodes, strict=True):
            if not isinstance(r.action, RouteAction):
                continue
            for name in r.action.clusters():
                if name not in clusters:
                    if r.action.weighted is None:
                        raise rn.child("route").child("cluster").error(f"route: unknown cluster '{name}'")
                    raise (
                        rn.child("route").child("weighted_clusters").error(f"route: unknown weighted cluster '{name}'")
                    )


# ---- listeners -------------------------------------------------------------------------------------
#: Listener fields accepted with a warning: a listener here is reached by name, in process, so
#: socket, accept and drain options, extra addresses and a second (default) chain do nothing
_LISTENER_IGNORED = tuple(
    "additional_addresses use_original_dst default_filter_chain metadata drain_type "
    "continue_on_listener_filters_timeout transparent freebind tcp_fast_open_queue_length udp_listener_config "
    "reuse_port max_connections_to_accept_per_socket_event bind_to_port enable_mptcp ignore_global_conn_limit "
    "bypass_overload_manager deprecated_v1".split()
)
#: Bootstrap fields accepted with a warning: process-wide settings of a real Envoy (DNS, stats
#: flushing, tracing, the watchdog, allocators, xDS sources) with nothing to act on in process
_BOOTSTRAP_IGNORED = tuple(
    "node_context_params hds_config flags_path deferred_stat_options stats_flush_on_admin "
    "stats_eviction_interval watchdog tracing enable_dispatcher_stats header_prefix stats_server_version_override "
    "use_tcp_for_dns_lookups dns_resolution_config typed_dns_resolver_config fatal_actions config_sources "
    "default_config_source default_socket_interface certificate_provider_instances inline_headers "
    "perf_tracing_file_path default_regex_engine xds_delegate_extension xds_config_tracker_extension "
    "listener_manager application_log_config grpc_async_client_manager_config memory_allocator_manager".split()
)


def parse_listener(
    node: Node, source: Source, clusters: dict[str, ClusterConfig], index: int, ext: Extensions
) -> ListenerConfig:
    node.check_fields(
        "name address filter_chains per_connection_buffer_limit_bytes traffic_direction",
        required=("address", "filter_chains"),
        ignored=(
            "listener_filters",
            "stat_prefix",
            "access_log",
            "enable_reuse_port",
            "socket_options",
            "listener_filters_timeout",
            "connection_balance_config",
            "tcp_backlog_size",
            *_LISTENER_IGNORED,
        ),
    )
    name = node.req("name").str() if node.has("name") else f"listener_{index}"
    address = parse_socket_address(node.req("address"))
    limit = DEFAULT_BUFFER_LIMIT
    if node.has("per_connection_buffer_limit_bytes"):
        node.req("per_connection_buffer_limit_bytes").uint32()  # Envoy: a UInt32Value
        raw = node.req("per_connection_buffer_limit_bytes").value
        raw = raw.get("value") if isinstance(raw, dict) else raw  # a UInt32Value or a bare number
        # 0: no limit (Envoy 1.40 then buffers a 2 MB body its default 1 MiB refuses)
        limit = Node(raw, node.child("per_connection_buffer_limit_bytes").path, source, node.line).int(0)
    chains = node.req("filter_chains").list()
    if not chains:
        raise node.child("filter_chains").error("at least one filter chain is required")
    if len(chains) > 1:
        raise node.child("filter_chains").error("wasmlab supports one filter chain per listener")
    chain = chains[0].check_fields(
        "filters",
        ignored=("name", "filter_chain_match", "metadata", "transport_socket_connect_timeout", "use_proxy_proto"),
        message="transport_socket (TLS) is not supported",
    )
    filters = chain.req("filters").list() if chain.has("filters") else []
    if not filters:
        # Envoy 1.40 accepts it; each connection it accepts finds no filter to create and is
        # closed at once (active_tcp_listener.cc, "closing connection ...: no filters")
        chain.notice(
            f"listener '{name}' has no network filters: Envoy accepts it and closes every connection to it at once"
        )
    hcm: HcmConfig | None = None
    network: list[NetworkFilterConfig] = []
    for fn in filters:
        fn.check_fields("name typed_config", required=("name", "typed_config"))
        tc = typed_struct(fn.req("typed_config"))
        t = any_type(tc)
        if t == HCM_TYPE:
            if len(filters) != 1 or hcm is not None:
                raise fn.error("the http_connection_manager must be the only network filter of its chain")
            hcm = parse_hcm(tc, source, clusters, limit, ext)
        else:
            nf = ext.network_filter(fn.req("name").str(), tc, t, source, set(clusters))
            if nf is None:
                raise tc.child("@type").error(
                    f"unsupported network filter {t!r} (wasmlab supports http_connection_manager, "
                    "envoy.filters.network.wasm and envoy.filters.network.tcp_proxy)"
                )
            network.append(nf)
    for i, (nf, fn) in enumerate(zip(network, filters, strict=False)):
        terminal = getattr(nf.config, "terminal", False)
        last = i == len(network) - 1
        kind = nf.type_url.split("/", 1)[-1]
        if terminal and not last:
            raise fn.error(
                f"terminal filter named {nf.name} of type {kind} must be the last filter in a network filter chain."
            )
        if last and not terminal:
            raise fn.error(
                f"non-terminal filter named {nf.name} of type {kind} is the last filter in a network filter chain."
            )
    direction = 0
    if node.has("traffic_direction"):
        direction = ("UNSPECIFIED", "INBOUND", "OUTBOUND").index(
            node.req("traffic_direction").enum(("UNSPECIFIED", "INBOUND", "OUTBOUND"))
        )
    return ListenerConfig(name, address, hcm, network, limit, direction)


# ---- bootstrap ---------------------------------------------------------------------------------------
def parse_bootstrap(source: Source, ext: Extensions) -> Bootstrap:
    root = source.load()
    root.check_fields(
        "static_resources admin bootstrap_extensions node",
        ignored=(
            "layered_runtime",
            "stats_config",
            "stats_flush_interval",
            "overload_manager",
            "watchdogs",
            "cluster_manager",
            "stats_sinks",
            *_BOOTSTRAP_IGNORED,
        ),
        message="dynamic_resources (xDS) is not supported",
    )
    admin = None
    if root.has("admin"):
        a = root.req("admin").check_fields(
            "address",
            ignored=(
                "access_log",
                "access_log_path",
                "profile_path",
                "socket_options",
                "ignore_global_conn_limit",
                "allow_paths",
            ),
        )
        if a.has("address"):
            admin = parse_socket_address(a.req("address"))
    sr = root.req("static_resources").check_fields("listeners clusters", ignored=("secrets",))
    clusters: dict[str, ClusterConfig] = {}
    for cn in sr.req("clusters").list() if sr.has("clusters") else []:
        c = parse_cluster(cn)
        if c.name in clusters:
            raise cn.child("name").error(f"cluster manager: duplicate cluster '{c.name}'")
        clusters[c.name] = c
    extensions = []
    for en in root.req("bootstrap_extensions").list() if root.has("bootstrap_extensions") else []:
        en.check_fields("name typed_config", required=("name", "typed_config"))
        tc = en.req("typed_config")
        extensions.append(_parse_bootstrap_extension(en.req("name").str(), tc, any_type(tc), ext))
    listeners: list[ListenerConfig] = []
    names: set[str] = set()
    addresses: set[tuple[str, int]] = set()
    listener_nodes = sr.req("listeners").list() if sr.has("listeners") else []
    named = {str(ln.value["name"]) for ln in listener_nodes if isinstance(ln.value, dict) and ln.value.get("name")}
    for i, ln in enumerate(listener_nodes):
        given = ln.value.get("name") if isinstance(ln.value, dict) else None
        if given and str(given) in names:
            # Envoy 1.40 keeps the static listener it added first and ignores this one, unbuilt
            # (so nothing in it is checked past protobuf); it says so only in its debug log
            # ("duplicate/locked listener"). (An LDS update with a name twice: host/update.py.)
            ln.child("name").notice(
                f"a listener named '{given}' is defined above: Envoy keeps the first one and ignores this one"
            )
            continue
        lst = parse_listener(ln, source, clusters, i, ext)
        if not given:  # Envoy names it with a UUID: never one another listener has
            n = 1
            while lst.name in named or lst.name in names:
                lst.name, n = f"listener_{i}_{n}", n + 1
        where = (lst.address.address, lst.address.port)
        if where in addresses and lst.address.port != 0:
            raise ln.child("address").error(
                f"Error adding listener: '{lst.name}' has duplicate address '{where[0]}:{where[1]}' as existing "
                "listener, to check if the listener has duplicated addresses with other listeners or "
                "'enable_reuse_port' is set to 'false' for the listener"
            )
        names.add(lst.name)
        addresses.add(where)
        listeners.append(lst)
    if not listeners and not extensions:
        raise sr.error("no listeners: add static_resources.listeners with an http_connection_manager")
    return Bootstrap(source, listeners, clusters, extensions, admin, parse_node(root.get("node")))


def _parse_bootstrap_extension(name: str, tc: Node, t: str, ext: Extensions) -> BootstrapExtensionConfig:
    if t != WASM_SERVICE_TYPE:
        raise tc.child("@type").error(
            f"unsupported bootstrap extension {t!r} (wasmlab supports envoy.extensions.wasm.v3.WasmService)"
        )
    return BootstrapExtensionConfig(name, t, tc, ext.bootstrap_extension(t, tc))


def load_config(source: str | os.PathLike[str], ext: Extensions) -> Bootstrap:
    """Parse an Envoy bootstrap (path or YAML text) with ``ext`` building the extensions;
    raises ``ConfigError`` with a YAML path. ``wasmlab.load_config`` passes the host's registry."""
    try:
        return parse_bootstrap(Source.from_arg(source), ext)
    except ConfigError:
        raise
    except RecursionError:
        raise ConfigError("config is nested too deeply") from None
