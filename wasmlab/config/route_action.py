"""What a matched route does (Envoy ``RouteAction``, ``DirectResponseAction``,
``RedirectAction``): forward to a cluster with optional rewrites and a timeout, answer directly, or
redirect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..http import HeaderMap
from .data_source import parse_data_source
from .formatter import Formatter
from .header_parser import MUTATION_FIELDS, HeaderMutations, parse_mutations
from .local_reply import BodyFormat, parse_body_format
from .matchers import Regex, as_wire_text, compile_regex
from .uri_template import UriTemplate, parse_path_rewrite_policy
from .yaml_source import Node

if TYPE_CHECKING:
    from ..http.stream_info import StreamInfo


def _header_value(headers: HeaderMap | None, name: str) -> int | None:
    """Envoy's ``absl::SimpleAtoi`` on a header that has exactly one value: a decimal
    ``uint64`` (surrounding spaces and a ``+`` allowed), else None."""
    if headers is None:
        return None
    values = headers.get_all(name)
    if len(values) != 1:
        return None
    text = values[0].strip(" \t\n\v\f\r").removeprefix("+")
    if not text.isdigit() or not text.isascii():
        return None
    number = int(text)
    return number if number < 2**64 else None


@dataclass
class WeightedCluster:
    """One entry of ``weighted_clusters``: Envoy applies its header mutations before the
    route's, virtual host's and route configuration's."""

    name: str
    weight: int
    mutations: HeaderMutations | None = None


@dataclass
class RouteAction:
    """Forward to a cluster: named (``cluster``), read from a request header
    (``cluster_header``) or drawn by weight (``weighted_clusters``)."""

    cluster: str
    prefix_rewrite: str | None = None
    regex_rewrite: tuple[Regex, str] | None = None  # (compiled RE2 pattern, substitution)
    host_rewrite_literal: str | None = None
    #: seconds; 0 disables the timeout (Envoy default 15 s)
    timeout: float = 15.0
    #: the request header naming the cluster (``cluster_header``)
    cluster_header: str | None = None
    #: ``weighted_clusters``: the clusters and their weights
    weighted: list[WeightedCluster] | None = None
    #: status when the cluster does not exist (``cluster_not_found_response_code``)
    cluster_not_found_code: int = 503
    #: ``host_rewrite_header``: the request header whose value becomes ``:authority``
    host_rewrite_header: str | None = None
    #: ``host_rewrite_path_regex``: ``:authority`` from the path, rewritten by the pattern
    host_rewrite_path_regex: tuple[Regex, str] | None = None
    #: a host rewrite appends the old host to ``x-forwarded-host``
    append_x_forwarded_host: bool = False
    #: ``path_rewrite_policy``: (the route's path template, the rewrite template)
    path_template_rewrite: tuple[UriTemplate, str] | None = None
    #: ``path_rewrite``: the path (without its query) as a substitution format string
    path_rewrite: Formatter | None = None
    #: ``host_rewrite``: ``:authority`` as a substitution format string
    host_rewrite: Formatter | None = None
    #: ``weighted_clusters.header_name``: the request header whose number picks the cluster
    random_value_header: str | None = None

    @property
    def total_weight(self) -> int:
        return sum(c.weight for c in self.weighted or ())

    def pick(self, headers: HeaderMap, info: StreamInfo) -> tuple[str, HeaderMutations | None]:
        """The cluster this request goes to ("" when ``cluster_header`` is absent) and, for a
        weighted cluster, its own header mutations (:meth:`weighted_entry`)."""
        if self.cluster_header is not None:
            return headers.get(self.cluster_header) or "", None
        if self.weighted is not None:
            c = self.weighted_entry(headers, info)
            return c.name, c.mutations
        return self.cluster, None

    def weighted_entry(self, headers: HeaderMap | None, info: StreamInfo) -> WeightedCluster:
        """The ``weighted_clusters`` entry of this stream. Envoy picks it when the route is
        matched, so the route Envoy hands to every filter *is* the weighted cluster's entry:
        its ``response_headers_to_add`` apply to the upstream's response and to any local reply
        made after routing (no healthy upstream, timeout, a filter's reply), before the route's.
        The pick is ``value % total_weight`` over the entries in order, the value being the
        number in the ``header_name`` request header (one value, a decimal ``uint64``) or else
        the stream's random value (:meth:`StreamInfo.random_value`). wasmlab keeps the pick on
        the stream (``info.weighted_pick``) so the router and a later local reply agree."""
        assert self.weighted is not None
        kept = info.weighted_pick
        if kept is not None and kept[0] is self:
            return kept[1]
        value = _header_value(headers, self.random_value_header) if self.random_value_header else None
        draw = (info.random_value() if value is None else value) % self.total_weight
        chosen = self.weighted[-1]
        for c in self.weighted:
            if draw < c.weight:
                chosen = c
                break
            draw -= c.weight
        info.weighted_pick = (self, chosen)
        return chosen

    def clusters(self) -> list[str]:
        """The cluster names the config itself names (checked at load, as Envoy checks them)."""
        if self.weighted is not None:
            return [c.name for c in self.weighted]
        return [self.cluster] if self.cluster_header is None else []


@dataclass
class DirectResponse:
    status: int
    body: bytes = b""
    #: ``body_format``: the body as a substitution format string (``%LOCAL_REPLY_BODY%`` is
    #: ``body``), rendered before the status is recorded (``%RESPONSE_CODE%`` is 0 on Envoy 1.40)
    body_format: BodyFormat | None = None


@dataclass
class Redirect:
    response_code: int = 301
    scheme: str | None = None
    host: str | None = None
    port: int | None = None
    path: str | None = None
    prefix_rewrite: str | None = None
    regex_rewrite: tuple[Regex, str] | None = None
    strip_query: bool = False


#: RouteAction fields accepted and ignored: wasmlab models no retries, load balancing, upgrades
#: or stream limits
_ROUTE_ACTION_IGNORED = tuple(
    "idle_timeout retry_policy priority hash_policy max_stream_duration upgrade_configs metadata_match "
    "request_mirror_policies rate_limits include_vh_rate_limits cors max_grpc_timeout grpc_timeout_offset "
    "internal_redirect_policy max_internal_redirects hedge_policy "
    "early_data_policy inline_cluster_specifier_plugin cluster_specifier_plugin flush_timeout "
    "retry_policy_typed_config internal_redirect_action".split()
)

_NOT_FOUND_CODES = {"SERVICE_UNAVAILABLE": 503, "NOT_FOUND": 404, "INTERNAL_SERVER_ERROR": 500}


def _rewrite_spec(node: Node) -> tuple[Regex, str]:
    """``RegexMatchAndSubstitute``: ``{pattern, substitution}``."""
    node.check_fields("pattern substitution", required=("pattern",))
    sub = node.req("substitution").str() if node.has("substitution") else ""
    return compile_regex(node.req("pattern")), sub


#: how Envoy's validation names a RouteAction field (``_RA + "PrefixRewrite"``)
_RA = "RouteActionValidationError."


def parse_route_action(node: Node, template: UriTemplate | None = None) -> RouteAction:
    """A ``route:`` action; ``template`` is the route's ``path_match_policy`` (for a
    ``path_rewrite_policy``)."""
    node.check_fields(
        "cluster cluster_header weighted_clusters cluster_not_found_response_code prefix_rewrite regex_rewrite "
        "path_rewrite_policy path_rewrite host_rewrite "
        "host_rewrite_literal host_rewrite_header host_rewrite_path_regex auto_host_rewrite timeout "
        "append_x_forwarded_host",
        ignored=_ROUTE_ACTION_IGNORED,
    )
    specifiers = [k for k in ("cluster", "cluster_header", "weighted_clusters") if node.has(k)]
    plugin = next((k for k in ("inline_cluster_specifier_plugin", "cluster_specifier_plugin") if node.has(k)), None)
    if plugin is not None and not specifiers:
        raise node.error(
            f"{plugin} (a cluster specifier plugin, such as the Lua cluster specifier "
            "envoy.router.cluster_specifier_plugin.lua) is not supported by wasmlab: choose the cluster "
            "with cluster, cluster_header or weighted_clusters"
        )
    if len(specifiers) != 1:
        raise node.error("exactly one of cluster, cluster_header, weighted_clusters must be set")
    action = RouteAction(node.req("cluster").str(allow_empty=False) if node.has("cluster") else "")
    if node.has("cluster_header"):
        action.cluster_header = node.req("cluster_header").header_text(_RA + "ClusterHeader", False).lower()
    if node.has("weighted_clusters"):
        wc = node.req("weighted_clusters")
        action.weighted = _parse_weighted(wc)
        if wc.has("header_name"):
            action.random_value_header = wc.req("header_name").str().lower() or None
    if node.has("cluster_not_found_response_code"):
        code = node.req("cluster_not_found_response_code").enum(tuple(_NOT_FOUND_CODES))
        action.cluster_not_found_code = _NOT_FOUND_CODES[code]
    rewrites = [k for k in ("prefix_rewrite", "regex_rewrite", "path_rewrite_policy", "path_rewrite") if node.has(k)]
    if len(rewrites) > 1:
        raise node.error("Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy")
    if node.has("prefix_rewrite"):
        action.prefix_rewrite = as_wire_text(node.req("prefix_rewrite").header_text(_RA + "PrefixRewrite"))
    if node.has("regex_rewrite"):
        action.regex_rewrite = _rewrite_spec(node.req("regex_rewrite"))
    if node.has("path_rewrite"):
        action.path_rewrite = Formatter.compile(node.req("path_rewrite").str(), node.req("path_rewrite"))
    if node.has("path_rewrite_policy"):
        rewrite = parse_path_rewrite_policy(node.req("path_rewrite_policy"), template)
        assert template is not None
        action.path_template_rewrite = (template, rewrite)
    hosts = [
        k
        for k in (
            "host_rewrite_literal",
            "host_rewrite_header",
            "host_rewrite_path_regex",
            "auto_host_rewrite",
            "host_rewrite",
        )
        if node.has(k)
    ]
    if len(hosts) > 1:
        raise node.error(f"only one host rewrite may be set, got {', '.join(hosts)}")
    if node.has("host_rewrite_literal"):
        literal = node.req("host_rewrite_literal").header_text(_RA + "HostRewriteLiteral")
        action.host_rewrite_literal = as_wire_text(literal)
    if node.has("host_rewrite_header"):
        header = node.req("host_rewrite_header").header_text(_RA + "HostRewriteHeader", False)
        action.host_rewrite_header = header.lower()
    if node.has("host_rewrite_path_regex"):
        action.host_rewrite_path_regex = _rewrite_spec(node.req("host_rewrite_path_regex"))
    if node.has("host_rewrite"):
        action.host_rewrite = Formatter.compile(node.req("host_rewrite").str(), node.req("host_rewrite"))
    if node.has("auto_host_rewrite"):
        # Envoy rewrites to the chosen endpoint's hostname: a STATIC endpoint without a
        # ``hostname`` has none, so nothing changes (the only cluster kind wasmlab runs)
        node.req("auto_host_rewrite").bool_value()
    if node.has("append_x_forwarded_host"):
        action.append_x_forwarded_host = node.req("append_x_forwarded_host").bool()
    if node.has("timeout"):
        action.timeout = node.req("timeout").duration()
    return action


def _parse_weighted(node: Node) -> list[WeightedCluster]:
    """``weighted_clusters.clusters``: each entry's ``name``, ``weight`` and header mutations;
    its metadata, filter configs and host rewrite are accepted without effect (warned)."""
    node.check_fields(
        "clusters header_name",
        required=("clusters",),
        ignored=("total_weight", "runtime_key_prefix", "random_value_specifier", "use_hash_policy"),
    )
    out = []
    for c in node.req("clusters").list():
        c.check_fields(
            "name weight " + " ".join(MUTATION_FIELDS),
            required=("name",),
            ignored=("cluster_header", "metadata_match", "typed_per_filter_config", "host_rewrite_literal"),
        )
        weight = c.req("weight").uint32() if c.has("weight") else 0
        mutations = parse_mutations(c) if any(c.has(f) for f in MUTATION_FIELDS) else None
        out.append(WeightedCluster(c.req("name").str(allow_empty=False), weight, mutations))
    if not out:
        raise node.child("clusters").error("value must contain at least 1 item(s)")
    if sum(c.weight for c in out) == 0:
        raise node.error("Sum of weights in the weighted_cluster must be greater than 0.")
    return out


def parse_direct_response(node: Node) -> DirectResponse:
    node.check_fields("status body body_format", required=("status",))
    status = node.req("status").int(100, 599)
    body = parse_data_source(node.req("body")) if node.has("body") else b""
    fmt = parse_body_format(node.req("body_format")) if node.has("body_format") else None
    return DirectResponse(status, body, fmt)


_REDIRECT_CODES = {
    "MOVED_PERMANENTLY": 301,
    "FOUND": 302,
    "SEE_OTHER": 303,
    "TEMPORARY_REDIRECT": 307,
    "PERMANENT_REDIRECT": 308,
}


def parse_redirect(node: Node) -> Redirect:
    node.check_fields(
        "https_redirect scheme_redirect host_redirect port_redirect path_redirect prefix_rewrite "
        "regex_rewrite response_code strip_query"
    )
    paths = [k for k in ("path_redirect", "prefix_rewrite", "regex_rewrite") if node.has(k)]
    if len(paths) > 1:
        raise node.error(f"only one of path_redirect, prefix_rewrite, regex_rewrite may be set, got {', '.join(paths)}")
    if node.has("https_redirect") and node.has("scheme_redirect"):  # one protobuf oneof: Envoy cannot parse it
        raise node.error("only one of https_redirect, scheme_redirect may be set (they are one protobuf oneof)")
    r = Redirect()
    if node.has("https_redirect") and node.req("https_redirect").bool():
        r.scheme = "https"
    if node.has("scheme_redirect"):
        r.scheme = node.req("scheme_redirect").str()
    if node.has("host_redirect"):
        r.host = node.req("host_redirect").header_text("RedirectActionValidationError.HostRedirect")
    if node.has("port_redirect"):
        r.port = node.req("port_redirect").int(0, 65535)
    if node.has("path_redirect"):
        r.path = node.req("path_redirect").header_text("RedirectActionValidationError.PathRedirect")
    if node.has("prefix_rewrite"):
        r.prefix_rewrite = node.req("prefix_rewrite").header_text("RedirectActionValidationError.PrefixRewrite")
    if node.has("regex_rewrite"):
        r.regex_rewrite = _rewrite_spec(node.req("regex_rewrite"))
    if node.has("response_code"):
        r.response_code = _REDIRECT_CODES[node.req("response_code").enum(tuple(_REDIRECT_CODES))]
    if node.has("strip_query"):
        r.strip_query = node.req("strip_query").bool()
    return r
