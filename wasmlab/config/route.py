"""Route configuration: virtual hosts and routes, and how a request finds its route (Envoy's RDS
model).

Envoy picks a virtual host by the request's ``:authority`` (exact domain, then the longest
``*.suffix`` wildcard, then the longest ``prefix.*`` wildcard, then ``*``), then the first route of
that virtual host whose match fits (``prefix``, ``path``, ``safe_regex``, ``path_separated_prefix``
plus ``headers`` and ``query_parameters`` matchers). The route's action forwards to a cluster (with
``prefix_rewrite``/``regex_rewrite``/``host_rewrite_literal`` and a ``timeout``), answers directly
(``direct_response``) or redirects. ``*_headers_to_add`` exist at route, virtual host and route
configuration level; Envoy applies them route first, then virtual host, then route configuration,
so with the default append action all three are appended in that order.

The pieces a route is made of have their own modules: :mod:`.matchers` (string, header and query
matchers), :mod:`.route_action` (forward, direct response, redirect), :mod:`.header_parser`
(``*_headers_to_add``/``_remove``) and :mod:`.data_source`; their names are re-exported here.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..http import HeaderMap
from .data_source import parse_data_source
from .header_parser import (
    APPEND_ACTIONS,
    MUTATION_FIELDS,
    HeaderMutations,
    HeaderValueOption,
    apply_header_options,
    parse_header_value_option,
    parse_mutations,
)
from .matchers import (
    HeaderMatcher,
    QueryParameterMatcher,
    Regex,
    StringMatcher,
    as_wire_text,
    ascii_lower,
    compile_regex,
    parse_header_matcher,
    parse_query,
    parse_query_matcher,
    parse_string_matcher,
    split_path,
)
from .route_action import (
    DirectResponse,
    Redirect,
    RouteAction,
    parse_direct_response,
    parse_redirect,
    parse_route_action,
)
from .struct_value import struct_value
from .uri_template import UriTemplate, parse_path_match_policy
from .yaml_source import Node

if TYPE_CHECKING:
    from ..http.stream_info import StreamInfo

_PATH_SPECIFIERS = ("prefix", "path", "safe_regex", "path_separated_prefix", "path_match_policy")

__all__ = [
    "APPEND_ACTIONS",
    "DirectResponse",
    "HeaderMatcher",
    "HeaderMutations",
    "HeaderValueOption",
    "QueryParameterMatcher",
    "Redirect",
    "Route",
    "RouteAction",
    "RouteConfiguration",
    "RouteMatch",
    "StringMatcher",
    "VirtualHost",
    "apply_header_options",
    "compile_regex",
    "parse_data_source",
    "parse_direct_response",
    "parse_header_matcher",
    "parse_header_value_option",
    "parse_mutations",
    "parse_query",
    "parse_query_matcher",
    "parse_redirect",
    "parse_route",
    "parse_route_action",
    "parse_route_configuration",
    "parse_string_matcher",
    "parse_virtual_host",
    "split_path",
]


@dataclass
class RouteMatch:
    kind: str  # prefix path safe_regex path_separated_prefix path_match_policy
    value: str
    regex: Regex | None = None
    case_sensitive: bool = True
    headers: list[HeaderMatcher] = field(default_factory=list)
    query: list[QueryParameterMatcher] = field(default_factory=list)
    template: UriTemplate | None = None  # path_match_policy
    #: ``runtime_fraction.default_value`` as (numerator, denominator); there is no runtime, so
    #: the default always applies
    fraction: tuple[int, int] | None = None

    def matches(self, headers: HeaderMap, path: str, info: StreamInfo | None = None) -> bool:
        if self.fraction is not None:
            # Envoy's featureEnabled(key, default, random_value): the stream's one random value
            # (StreamInfo.random_value), so every runtime_fraction route of a stream sees the same
            num, den = self.fraction
            value = info.random_value() if info is not None else random.getrandbits(64)
            if value % den >= num:
                return False
        # Envoy's PathMatcher: every kind matches the path without its query and fragment
        bare, query = split_path(path)
        kind = self.kind
        if kind == "safe_regex":
            assert self.regex is not None
            ok = self.regex.fullmatch(bare)
        elif kind == "path_match_policy":
            assert self.template is not None
            ok = self.template.matches(bare)
        else:
            p = bare if self.case_sensitive else ascii_lower(bare)
            v = self.value if self.case_sensitive else ascii_lower(self.value)
            if kind == "prefix":
                ok = p.startswith(v)
            elif kind == "path":
                ok = p == v
            else:  # path_separated_prefix
                ok = p == v or p.startswith(v + "/")
        if not ok:
            return False
        for hm in self.headers:
            if not hm.matches(headers):
                return False
        if self.query:
            params = parse_query(query)
            return all(qm.matches(params) for qm in self.query)
        return True


@dataclass
class Route:
    name: str
    match: RouteMatch
    action: RouteAction | DirectResponse | Redirect
    mutations: HeaderMutations = field(default_factory=HeaderMutations)
    per_filter_config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    virtual_host: VirtualHost | None = field(default=None, repr=False)


#: the request headers every route match reads (virtual host, path, no route without a scheme);
#: ``RouteConfiguration.reads_headers`` says whether some route reads others
ROUTING_HEADERS = frozenset((":authority", ":path", "x-forwarded-proto"))


@dataclass
class VirtualHost:
    name: str
    domains: list[str]
    routes: list[Route]
    mutations: HeaderMutations = field(default_factory=HeaderMutations)
    per_filter_config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    route_config: RouteConfiguration | None = field(default=None, repr=False)
    #: ``include_request_attempt_count`` / ``include_attempt_count_in_response``: the router sends
    #: ``x-envoy-attempt-count`` (always 1: wasmlab makes no retries) upstream / to the client
    attempt_count_in_request: bool = False
    attempt_count_in_response: bool = False


@dataclass
class RouteConfiguration:
    name: str
    virtual_hosts: list[VirtualHost]
    mutations: HeaderMutations = field(default_factory=HeaderMutations)
    #: ``internal_only_headers``: removed from external requests (``conn_manager_utility``)
    internal_only_headers: tuple[str, ...] = ()
    #: ``typed_per_filter_config`` at this level: used when neither the route nor its virtual
    #: host configures the filter
    per_filter_config: dict[str, Any] = field(default_factory=dict)
    #: ``vhost_header``: the request header a virtual host is chosen by, instead of ``:authority``
    vhost_header: str = ""
    #: ``ignore_port_in_host_matching``: the host's port is left out when choosing a virtual host
    ignore_port_in_host_matching: bool = False
    #: ``ignore_path_parameters_in_path_matching``: routes match the path without its ``;params``
    ignore_path_parameters: bool = False

    def __post_init__(self) -> None:
        self._exact: dict[str, VirtualHost] = {}
        self._suffix: list[tuple[str, VirtualHost]] = []
        self._prefix: list[tuple[str, VirtualHost]] = []
        self._default: VirtualHost | None = None
        for vh in self.virtual_hosts:
            for d in vh.domains:
                d = d.lower()
                if d == "*":
                    self._default = self._default or vh
                elif d.startswith("*"):
                    self._suffix.append((d[1:], vh))
                elif d.endswith("*"):
                    self._prefix.append((d[:-1], vh))
                else:
                    self._exact.setdefault(d, vh)
        self._suffix.sort(key=lambda x: -len(x[0]))
        self._prefix.sort(key=lambda x: -len(x[0]))
        #: some route reads request headers other than ``:authority`` and ``:path`` (``headers``),
        #: or the virtual host is chosen by another header (``vhost_header``)
        self.reads_headers = bool(self.vhost_header) or any(
            r.match.headers for vh in self.virtual_hosts for r in vh.routes
        )

    def find_virtual_host(self, authority: str) -> VirtualHost | None:
        host = authority.lower()
        vh = self._exact.get(host)
        if vh is not None:
            return vh
        for suffix, vh in self._suffix:
            if host.endswith(suffix) and len(host) > len(suffix):
                return vh
        for prefix, vh in self._prefix:
            if host.startswith(prefix) and len(host) > len(prefix):
                return vh
        return self._default

    def _virtual_host_for(self, headers: HeaderMap, authority: str) -> VirtualHost | None:
        """The virtual host of a request (Envoy ``RouteMatcher::findVirtualHost``): a
        configuration whose only virtual host is ``*`` answers it at once; otherwise the host is
        the ``vhost_header`` (no such header: no virtual host, 404) or ``:authority``, without its
        port under ``ignore_port_in_host_matching`` (measured on Envoy 1.40)."""
        if self._default is not None and not (self._exact or self._suffix or self._prefix):
            return self._default
        host = authority
        if self.vhost_header:
            value = headers.get(self.vhost_header)
            if value is None:
                return None
            host = value
        if self.ignore_port_in_host_matching:
            host = _without_port(host)
        return self.find_virtual_host(host)

    def route(self, headers: HeaderMap, info: StreamInfo | None = None) -> Route | None:
        """The route for a request, or None (Envoy then answers 404 ``route_not_found``)."""
        authority, path = headers.get(":authority") or "", headers.get(":path") or ""
        return self.route_for(headers, authority, path, headers.get("x-forwarded-proto"), info)

    def route_for(
        self, headers: HeaderMap, authority: str, path: str, forwarded_proto: str | None, info: StreamInfo | None = None
    ) -> Route | None:
        """:meth:`route` with the request's ``:authority``, ``:path`` and ``x-forwarded-proto``
        already read. Like
        Envoy's ``VirtualHostImpl::getRouteFromEntries``, a request without a (non-empty)
        ``x-forwarded-proto`` has no route: the HCM always sets one, so this happens when the
        client sent an empty one, or a filter removed it and cleared the route cache (Lua does
        on every header edit) -- measured: 404 ``route_not_found`` on Envoy 1.40. ``info``
        gives the stream's random value to ``runtime_fraction`` routes."""
        if self.vhost_header or self.ignore_port_in_host_matching:
            vh = self._virtual_host_for(headers, authority)
        else:  # (the common case, without a call)
            vh = self.find_virtual_host(authority)
        if vh is None or not forwarded_proto:
            return None
        if self.ignore_path_parameters:
            path = _without_path_parameters(path)
        for r in vh.routes:
            if r.match.matches(headers, path, info):
                return r
        return None

    def header_levels(self, route: Route | None, info: StreamInfo | None = None) -> list[HeaderMutations]:
        """Mutation levels in Envoy's evaluation order: route, virtual host, route config; with
        ``info``, a ``weighted_clusters`` route's picked entry comes first (its mutations apply
        to local replies too: :meth:`RouteAction.weighted_entry`)."""
        levels = []
        if route is not None:
            action = route.action
            if info is not None and isinstance(action, RouteAction) and action.weighted is not None:
                picked = action.weighted_entry(info.request_headers, info)
                if picked.mutations is not None:
                    levels.append(picked.mutations)
            levels.append(route.mutations)
            if route.virtual_host is not None:
                levels.append(route.virtual_host.mutations)
        levels.append(self.mutations)
        return levels


def parse_metadata(node: Node | None) -> dict[str, Any]:
    if node is None:
        return {}
    node.check_fields("filter_metadata typed_filter_metadata")
    fm = node.get("filter_metadata")
    return dict(struct_value(fm.mapping().value)) if fm is not None else {}


def parse_route_match(node: Node) -> RouteMatch:
    node.check_fields(
        "prefix path safe_regex path_separated_prefix path_match_policy case_sensitive headers query_parameters grpc "
        "runtime_fraction",
        ignored=("dynamic_metadata", "filter_state", "tls_context"),
    )
    kinds = [k for k in _PATH_SPECIFIERS if k in node.value]
    if len(kinds) != 1:
        raise node.error("exactly one of prefix, path, safe_regex, path_separated_prefix must be set")
    kind = kinds[0]
    regex = None
    template = None
    value = ""
    if kind == "safe_regex":
        regex = compile_regex(node.req("safe_regex"))
    elif kind == "path_match_policy":
        template = parse_path_match_policy(node.req(kind))
    else:
        value = as_wire_text(node.req(kind).str())
        # (Envoy 1.40 takes a ``path`` without its leading '/' too: a route no request path matches)
        if kind == "path_separated_prefix" and not re.fullmatch(r"[^?#]+[^?#/]", value):
            raise node.child(kind).error(
                "Proto constraint validation failed (RouteMatchValidationError.PathSeparatedPrefix: value does not "
                'match regex pattern "^[^?#]+[^?#/]$")'
            )
    cs = node.req("case_sensitive").bool_value() if node.has("case_sensitive") else True
    headers = [parse_header_matcher(h) for h in node.req("headers").list()] if node.has("headers") else []
    if node.has("grpc"):
        headers.append(HeaderMatcher("content-type", StringMatcher("prefix", "application/grpc")))
    query = (
        [parse_query_matcher(q) for q in node.req("query_parameters").list()] if node.has("query_parameters") else []
    )
    fraction = _runtime_fraction(node.get("runtime_fraction"))
    return RouteMatch(kind, value, regex, cs, headers, query, template, fraction)


def _runtime_fraction(node: Node | None) -> tuple[int, int] | None:
    """``runtime_fraction: {default_value: {numerator, denominator}, runtime_key}``: (numerator,
    denominator); a numerator above the denominator always matches, as in Envoy."""
    if node is None:
        return None
    node.check_fields("default_value runtime_key", required=("default_value",))
    dv = node.req("default_value").check_fields("numerator denominator")
    num = dv.req("numerator").uint32() if dv.has("numerator") else 0
    den = dv.req("denominator").enum(("HUNDRED", "TEN_THOUSAND", "MILLION")) if dv.has("denominator") else "HUNDRED"
    return num, {"HUNDRED": 100, "TEN_THOUSAND": 10_000, "MILLION": 1_000_000}[den]


#: VirtualHost fields accepted with a warning: wasmlab models no retries, hedging, mirroring, rate
#: limit actions, TLS or per-route body limits
_VIRTUAL_HOST_IGNORED = tuple(
    "require_tls virtual_clusters cors retry_policy retry_policy_typed_config hedge_policy rate_limits "
    "include_is_timeout_retry_header "
    "per_request_buffer_limit_bytes request_body_buffer_limit request_mirror_policies".split()
)
#: RouteConfiguration fields accepted with a warning (cluster specifier plugins and mirroring
#: are not modelled; the configuration's metadata is read by no filter wasmlab runs)
_ROUTE_CONFIGURATION_IGNORED = tuple(
    "validate_clusters most_specific_header_mutations_wins cluster_specifier_plugins request_mirror_policies "
    "metadata".split()
)


def per_route_config(route: Route | None, name: str) -> Any:
    """The most specific ``typed_per_filter_config`` for filter ``name``: the route's, else its
    virtual host's, else the route configuration's (Envoy's ``mostSpecificPerFilterConfig``)."""
    if route is None:
        return None
    if name in route.per_filter_config:
        return route.per_filter_config[name]
    vh = route.virtual_host
    if vh is not None:
        if name in vh.per_filter_config:
            return vh.per_filter_config[name]
        rc = vh.route_config
        if rc is not None and name in rc.per_filter_config:
            return rc.per_filter_config[name]
    return None


def _without_port(host: str) -> str:
    """``host:port`` without ``:port`` (an IPv6 literal keeps its brackets: ``[::1]:80`` is
    ``[::1]``); a host without a numeric port is left as it is."""
    i = host.rfind(":")
    if i > 0 and "]" not in host[i:] and host[i + 1 :].isdigit() and (host.count(":") == 1 or host[i - 1] == "]"):
        return host[:i]
    return host


def _without_path_parameters(path: str) -> str:
    """The path with each segment's ``;parameters`` left out (``/a;x=1/b;c?q`` is ``/a/b?q``), as
    Envoy matches routes under ``ignore_path_parameters_in_path_matching``; the request keeps its
    path as sent."""
    bare, sep, query = path.partition("?")
    if ";" not in bare:
        return path
    return "/".join(segment.split(";", 1)[0] for segment in bare.split("/")) + sep + query


def parse_route(node: Node, index: int, per_filter: Any) -> Route:
    node.check_fields(
        "name match route direct_response redirect metadata typed_per_filter_config " + " ".join(MUTATION_FIELDS),
        required=("match",),
        ignored=("decorator", "per_request_buffer_limit_bytes", "request_body_buffer_limit", "tracing", "stat_prefix"),
    )
    match = parse_route_match(node.req("match"))
    actions = [k for k in ("route", "direct_response", "redirect") if node.has(k)]
    if len(actions) != 1:
        raise node.error("exactly one of route, direct_response, redirect must be set")
    kind = actions[0]
    action: RouteAction | DirectResponse | Redirect
    if kind == "route":
        action = parse_route_action(node.req("route"), match.template)
    elif kind == "direct_response":
        action = parse_direct_response(node.req("direct_response"))
    else:
        action = parse_redirect(node.req("redirect"))
    name = node.req("name").str() if node.has("name") else ""
    return Route(
        name,
        match,
        action,
        parse_mutations(node),
        per_filter(node.get("typed_per_filter_config")),
        parse_metadata(node.get("metadata")),
    )


def parse_virtual_host(node: Node, per_filter: Any) -> VirtualHost:
    node.check_fields(
        "name domains routes metadata typed_per_filter_config include_request_attempt_count "
        "include_attempt_count_in_response " + " ".join(MUTATION_FIELDS),
        required=("name", "domains"),
        ignored=_VIRTUAL_HOST_IGNORED,
    )
    domains_node = node.req("domains")
    domains = [d.str(allow_empty=False) for d in domains_node.list("a list of domains")]
    if not domains:
        raise domains_node.error("at least one domain is required")
    routes = (
        [parse_route(r, i, per_filter) for i, r in enumerate(node.req("routes").list())] if node.has("routes") else []
    )
    vh = VirtualHost(
        node.req("name").str(allow_empty=False),
        domains,
        routes,
        parse_mutations(node),
        per_filter(node.get("typed_per_filter_config")),
        parse_metadata(node.get("metadata")),
    )
    for key, attr in (
        ("include_request_attempt_count", "attempt_count_in_request"),
        ("include_attempt_count_in_response", "attempt_count_in_response"),
    ):
        if node.has(key):
            setattr(vh, attr, node.req(key).bool())
    for r in routes:
        r.virtual_host = vh
    return vh


def parse_route_configuration(node: Node, per_filter: Any) -> RouteConfiguration:
    node.check_fields(
        "name virtual_hosts max_direct_response_body_size_bytes internal_only_headers typed_per_filter_config "
        "vhost_header ignore_port_in_host_matching ignore_path_parameters_in_path_matching "
        + " ".join(MUTATION_FIELDS),
        ignored=_ROUTE_CONFIGURATION_IGNORED,
    )
    vhs = (
        [parse_virtual_host(v, per_filter) for v in node.req("virtual_hosts").list()]
        if node.has("virtual_hosts")
        else []
    )
    seen: dict[str, Node] = {}
    for v, vn in zip(vhs, node.req("virtual_hosts").list() if node.has("virtual_hosts") else [], strict=False):
        for d in v.domains:
            if d.lower() in seen:
                raise vn.child("domains").error(
                    f"only unique values for domains are permitted. Duplicate entry of domain {d.lower()}"
                )
            seen[d.lower()] = vn
    _check_direct_bodies(node, vhs)
    name = node.req("name").str() if node.has("name") else ""
    rc = RouteConfiguration(
        name,
        vhs,
        parse_mutations(node),
        per_filter_config=per_filter(node.get("typed_per_filter_config")),
        vhost_header=node.req("vhost_header").str().lower() if node.has("vhost_header") else "",
        ignore_port_in_host_matching=bool(node.has("ignore_port_in_host_matching"))
        and node.req("ignore_port_in_host_matching").bool(),
        ignore_path_parameters=bool(node.has("ignore_path_parameters_in_path_matching"))
        and node.req("ignore_path_parameters_in_path_matching").bool(),
    )
    for vh in vhs:
        vh.route_config = rc
    if node.has("internal_only_headers"):
        names = node.req("internal_only_headers").list()
        rc.internal_only_headers = tuple(
            h.header_text(f"RouteConfigurationValidationError.InternalOnlyHeaders[{i}]", False).lower()
            for i, h in enumerate(names)
        )
    return rc


def _check_direct_bodies(node: Node, vhs: list[VirtualHost]) -> None:
    """Envoy refuses a ``direct_response`` body larger than the route configuration's
    ``max_direct_response_body_size_bytes`` (default 4096)."""
    limit_node = node.get("max_direct_response_body_size_bytes")
    limit = limit_node.uint32() if limit_node is not None else 4096
    vh_nodes = node.req("virtual_hosts").list() if node.has("virtual_hosts") else []
    for vh, vn in zip(vhs, vh_nodes, strict=True):
        r_nodes = vn.req("routes").list() if vn.has("routes") else []
        for r, rn in zip(vh.routes, r_nodes, strict=True):
            if isinstance(r.action, DirectResponse) and len(r.action.body) > limit:
                body = rn.child("direct_response").child("body")
                raise body.error(f"response body size is {len(r.action.body)} bytes; maximum is {limit}")
