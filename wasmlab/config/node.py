"""The bootstrap's ``node`` (who this Envoy is) and the HCM's client-address options.

Envoy's ``LocalInfo`` carries the bootstrap's ``node`` (``id``, ``cluster``, ``metadata``...);
Proxy-Wasm modules read it as the ``xds.node.*`` properties (Istio's plugins do). The HCM's
``use_remote_address``, ``xff_num_trusted_hops``, ``skip_xff_append``, ``via`` and the request-id
options decide what Envoy's
``ConnectionManagerUtility::mutateRequestHeaders`` does to ``x-forwarded-for`` and
``x-envoy-external-address``. :func:`http1_trailers` reads ``enable_trailers`` from the HCM's and
a cluster's HTTP/1 protocol options (Envoy's HTTP/1 codec drops trailers without it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from .struct_value import struct_value
from .yaml_source import Node

IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Node fields Envoy accepts that wasmlab keeps for ``xds.node.*`` but otherwise does not use
_NODE_FIELDS = "id cluster metadata locality user_agent_name user_agent_version"
_NODE_IGNORED = (
    "extensions",
    "client_features",
    "dynamic_parameters",
    "listening_addresses",
    "user_agent_build_version",
)


@dataclass
class NodeInfo:
    """The bootstrap's ``node`` as ``xds.node`` properties see it (protobuf field names)."""

    id: str = ""
    cluster: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_property(self) -> dict[str, Any]:
        """The ``xds.node`` message as a dict (empty fields left out, as protobuf does)."""
        out: dict[str, Any] = {}
        if self.id:
            out["id"] = self.id
        if self.cluster:
            out["cluster"] = self.cluster
        if self.metadata:
            out["metadata"] = self.metadata
        out.update(self.extra)
        return out


def parse_node(node: Node | None) -> NodeInfo:
    if node is None:
        return NodeInfo()
    node.check_fields(
        _NODE_FIELDS,
        ignored=_NODE_IGNORED,
    )
    info = NodeInfo()
    if node.has("id"):
        info.id = node.req("id").str()
    if node.has("cluster"):
        info.cluster = node.req("cluster").str()
    if node.has("metadata"):
        info.metadata = dict(struct_value(node.req("metadata").mapping().value))
    for key in ("user_agent_name", "user_agent_version"):
        if node.has(key):
            info.extra[key] = node.req(key).str()
    if node.has("locality"):
        info.extra["locality"] = dict(node.req("locality").mapping().value)
    return info


@dataclass
class HcmHeaderOptions:
    """The HCM fields that decide the client-address, ``via`` and ``x-request-id`` headers
    (defaults: Envoy's)."""

    use_remote_address: bool = False
    xff_num_trusted_hops: int = 0
    skip_xff_append: bool = False
    #: appended to ``via`` on requests and responses (empty: none)
    via: str = ""
    preserve_external_request_id: bool = False
    always_set_request_id_in_response: bool = False
    #: ``add_user_agent``: ``x-envoy-downstream-service-cluster`` and a missing ``user-agent``
    #: are set to the node's cluster
    add_user_agent: bool = False
    #: ``strip_matching_host_port`` / ``strip_any_host_port``: "matching", "any" or ""
    strip_host_port: str = ""
    #: ``strip_trailing_host_dot``: ``example.com.`` is ``example.com`` (before the port is stripped)
    strip_trailing_host_dot: bool = False
    #: ``append_x_forwarded_port``: ``x-forwarded-port`` is the listener's port unless the client
    #: sent one
    append_x_forwarded_port: bool = False
    #: the path options (``normalize_path``, ``merge_slashes``, ``path_with_escaped_slashes_action``)
    normalize_path: bool = False
    merge_slashes: bool = False
    escaped_slashes_action: str = "KEEP_UNCHANGED"
    #: ``internal_address_config.cidr_ranges``: the addresses of internal clients (none without
    #: the block: Envoy 1.40 then treats no address as internal; the block without ranges means
    #: Envoy's private addresses, ``PRIVATE_RANGES``)
    internal_ranges: tuple[IPNetwork, ...] = ()
    #: ``forward_client_cert_details`` (``SANITIZE`` by default)
    forward_client_cert: str = "SANITIZE"
    #: the route configuration's ``internal_only_headers``: removed from external requests
    internal_only_headers: tuple[str, ...] = ()


_ESCAPED_SLASHES_ACTIONS = (
    "IMPLEMENTATION_SPECIFIC_DEFAULT",
    "KEEP_UNCHANGED",
    "REJECT_REQUEST",
    "UNESCAPE_AND_REDIRECT",
    "UNESCAPE_AND_FORWARD",
)


def parse_hcm_header_options(node: Node) -> HcmHeaderOptions:
    opts = HcmHeaderOptions()
    for key in ("add_user_agent", "normalize_path"):
        if node.has(key):
            setattr(opts, key, node.req(key).bool_value())
    for key in ("merge_slashes", "strip_trailing_host_dot", "append_x_forwarded_port"):
        if node.has(key):
            setattr(opts, key, node.req(key).bool())
    if node.has("path_with_escaped_slashes_action"):
        action = node.req("path_with_escaped_slashes_action").enum(_ESCAPED_SLASHES_ACTIONS)
        # Envoy's implementation-specific default is to keep the path unchanged
        opts.escaped_slashes_action = "KEEP_UNCHANGED" if action == _ESCAPED_SLASHES_ACTIONS[0] else action
    strip = [k for k in ("strip_matching_host_port", "strip_any_host_port") if node.has(k) and node.req(k).bool()]
    if len(strip) == 2:
        raise node.error("only one of strip_matching_host_port and strip_any_host_port may be set")
    if strip:
        opts.strip_host_port = "matching" if strip[0] == "strip_matching_host_port" else "any"
    if node.has("use_remote_address"):
        opts.use_remote_address = node.req("use_remote_address").bool_value()
    if node.has("xff_num_trusted_hops"):
        opts.xff_num_trusted_hops = node.req("xff_num_trusted_hops").int(0)
    if node.has("skip_xff_append"):
        opts.skip_xff_append = node.req("skip_xff_append").bool()
    if node.has("via"):
        opts.via = node.req("via").header_text("HttpConnectionManagerValidationError.Via")
    for key in ("preserve_external_request_id", "always_set_request_id_in_response"):
        if node.has(key):
            setattr(opts, key, node.req(key).bool())
    if node.has("forward_client_cert_details"):
        opts.forward_client_cert = node.req("forward_client_cert_details").enum(_FORWARD_CLIENT_CERT)
    if node.has("internal_address_config"):
        opts.internal_ranges = _internal_ranges(node.req("internal_address_config"))
    return opts


_FORWARD_CLIENT_CERT = ("SANITIZE", "FORWARD_ONLY", "APPEND_FORWARD", "SANITIZE_SET", "ALWAYS_FORWARD_ONLY")


#: Envoy's ``Network::Utility::isInternalAddress``: the RFC 1918 ranges, 127.0.0.1, fd00::/8 and ::1
PRIVATE_RANGES: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.1/32", "fd00::/8", "::1/128")
)


def _internal_ranges(node: Node) -> tuple[IPNetwork, ...]:
    """``internal_address_config``: its ``cidr_ranges`` (``address_prefix``/``prefix_len``, the
    host bits ignored as Envoy's ``CidrRange`` does); ``unix_sockets`` has nothing to match here
    (wasmlab clients are TCP)."""
    node.check_fields("cidr_ranges unix_sockets")
    if not (node.has("cidr_ranges") and node.req("cidr_ranges").list()):
        return PRIVATE_RANGES  # measured on Envoy 1.40: a 10.x client is then internal
    out = []
    for r in node.req("cidr_ranges").list() if node.has("cidr_ranges") else []:
        r.check_fields("address_prefix prefix_len", required=("address_prefix",))
        prefix = r.req("address_prefix").str()
        length = r.req("prefix_len").uint32() if r.has("prefix_len") else 0
        try:
            address = ipaddress.ip_address(prefix)
        except ValueError:
            raise r.error(f"invalid ip/mask combo '{prefix}/{length}' (format is <ip>/<# mask bits>)") from None
        # a longer prefix than the address has counts as the whole address (measured on Envoy 1.40)
        out.append(ipaddress.ip_network((address, min(length, address.max_prefixlen)), strict=False))
    return tuple(out)


#: the ``HttpProtocolOptions`` choices whose ``http_protocol_options`` configure an HTTP/1 upstream
_UPSTREAM_HTTP_CONFIGS = ("explicit_http_config", "auto_config", "use_downstream_protocol_config")
UPSTREAM_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def http1_trailers(node: Node | None) -> bool:
    """``http_protocol_options.enable_trailers`` of an HCM (``node`` is the HCM) or of a cluster
    (``node`` is the cluster: read from its ``typed_extension_protocol_options``). Envoy's HTTP/1
    codec drops trailers unless this is true: decoding, it skips the trailer lines and ends the
    body with an empty end-of-stream data frame; encoding, it ends the chunked body without them."""
    if node is None:
        return False
    if node.has("typed_extension_protocol_options"):
        upstream = node.req("typed_extension_protocol_options").get(UPSTREAM_HTTP_OPTIONS)
        for choice in _UPSTREAM_HTTP_CONFIGS:
            chosen = upstream.get(choice) if upstream is not None else None
            if chosen is not None:
                return http1_trailers(chosen)
        return False
    opts = node.get("http_protocol_options")
    flag = opts.get("enable_trailers") if opts is not None else None
    return flag.bool() if flag is not None else False


#: Envoy's defaults: ``max_request_headers_kb`` 60, ``common_http_protocol_options.max_headers_count`` 100
DEFAULT_MAX_REQUEST_HEADERS_KB = 60
DEFAULT_MAX_HEADERS_COUNT = 100


def request_header_limits(hcm: Node) -> tuple[int, int]:
    """(bytes, count) the downstream HTTP/1 codec allows in a request's head: Envoy answers 431
    past either (``host/hcm.py``). The range of ``max_request_headers_kb`` is checked with the
    HCM's other fields; a ``max_headers_count`` of 0 is refused in Envoy's words."""
    kb = hcm.get("max_request_headers_kb")
    common = hcm.get("common_http_protocol_options")
    count = common.get("max_headers_count") if common is not None and isinstance(common.value, dict) else None
    # its one field holds: no "has no effect" warning for it
    only_count = common is not None and count is not None and set(common.value) == {"max_headers_count"}
    if only_count and common is not None and common.path in hcm.source.ignored:
        hcm.source.ignored.remove(common.path)
    if count is not None and count.uint32() == 0:
        raise count.error(
            "Proto constraint validation failed (HttpConnectionManagerValidationError.CommonHttpProtocolOptions: "
            "embedded message failed validation | caused by HttpProtocolOptionsValidationError.MaxHeadersCount: "
            "value must be greater than or equal to 1)"
        )
    return (
        (kb.uint32() if kb is not None else DEFAULT_MAX_REQUEST_HEADERS_KB) * 1024,
        count.uint32() if count is not None else DEFAULT_MAX_HEADERS_COUNT,
    )
