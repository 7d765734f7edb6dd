"""Route configuration: virtual hosts, routes, matching and header mutations (Envoy's RDS model).

Envoy picks a virtual host by the request's ``:authority`` (exact domain, then the longest
``*.suffix`` wildcard, then the longest ``prefix.*`` wildcard, then ``*``), then the first route of
that virtual host whose match fits (``prefix``, ``path``, ``safe_regex``, ``path_separated_prefix``
plus ``headers`` and ``query_parameters`` matchers). The route's action forwards to a cluster (with
``prefix_rewrite``/``regex_rewrite``/``host_rewrite_literal`` and a ``timeout``), answers directly
(``direct_response``) or redirects. ``*_headers_to_add`` exist at route, virtual host and route
configuration level; Envoy applies them route first, then virtual host, then route configuration,
so with the default append action all three are appended in that order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..http import HeaderMap
from .formatter import Formatter
from .yaml_source import Node

if TYPE_CHECKING:
    from ..http.stream_info import StreamInfo

APPEND_ACTIONS = (
    "APPEND_IF_EXISTS_OR_ADD",
    "ADD_IF_ABSENT",
    "OVERWRITE_IF_EXISTS_OR_ADD",
    "OVERWRITE_IF_EXISTS",
)


# ---- header mutations -------------------------------------------------------------------------
@dataclass
class HeaderValueOption:
    key: str
    value: Formatter
    append_action: str = "APPEND_IF_EXISTS_OR_ADD"
    keep_empty_value: bool = False

    def apply(self, headers: HeaderMap, info: StreamInfo | None) -> None:
        """Apply this one option on its own (header_mutation applies its list one by one)."""
        apply_header_options([self], headers, info)


def apply_header_options(options: list[HeaderValueOption], headers: HeaderMap, info: StreamInfo | None) -> None:
    """Envoy's ``HeaderParser::evaluateHeaders``: every value is computed against the headers as
    they were, then all overwrites are applied, then all appends (so an overwrite listed after an
    append still lands first)."""
    to_overwrite: list[tuple[str, str]] = []
    to_add: list[tuple[str, str]] = []
    for opt in options:
        value = opt.value.format(info) if info is not None else opt.value.literal()
        if not value and not opt.keep_empty_value:
            continue
        action = opt.append_action
        if action == "APPEND_IF_EXISTS_OR_ADD":
            to_add.append((opt.key, value))
        elif action == "ADD_IF_ABSENT":
            if opt.key not in headers:
                to_add.append((opt.key, value))
        elif action == "OVERWRITE_IF_EXISTS_OR_ADD" or opt.key in headers:
            to_overwrite.append((opt.key, value))
    for k, v in to_overwrite:
        headers.set(k, v)
    for k, v in to_add:
        headers.add(k, v)


@dataclass
class HeaderMutations:
    """One level's ``*_headers_to_add`` and ``*_headers_to_remove``."""

    request_add: list[HeaderValueOption] = field(default_factory=list)
    request_remove: list[str] = field(default_factory=list)
    response_add: list[HeaderValueOption] = field(default_factory=list)
    response_remove: list[str] = field(default_factory=list)

    def apply_request(self, headers: HeaderMap, info: StreamInfo | None) -> None:
        for name in self.request_remove:
            headers.remove(name)
        apply_header_options(self.request_add, headers, info)

    def apply_response(self, headers: HeaderMap, info: StreamInfo | None) -> None:
        for name in self.response_remove:
            headers.remove(name)
        apply_header_options(self.response_add, headers, info)


def parse_header_value_option(node: Node) -> HeaderValueOption:
    node.check_fields("header append append_action keep_empty_value", required=("header",))
    h = node.req("header").check_fields("key value raw_value", required=("key",))
    key = h.req("key").str(allow_empty=False)
    if key.lower() != key and key.startswith(":"):
        raise h.error("header names must be lower case")
    value = h.get("value")
    text = value.str() if value is not None else ""
    if h.has("raw_value"):
        text = h.req("raw_value").str()
    action = "APPEND_IF_EXISTS_OR_ADD"
    if node.has("append") and node.has("append_action"):
        raise node.error("'append' and 'append_action' are mutually exclusive")
    if node.has("append"):
        action = "APPEND_IF_EXISTS_OR_ADD" if node.req("append").bool_value() else "OVERWRITE_IF_EXISTS_OR_ADD"
    if node.has("append_action"):
        action = node.req("append_action").enum(APPEND_ACTIONS)
    keep = node.req("keep_empty_value").bool() if node.has("keep_empty_value") else False
    fmt = Formatter.compile(text, h.child("value") if h.has("value") else h)
    return HeaderValueOption(key.lower(), fmt, action, keep)


def parse_mutations(node: Node) -> HeaderMutations:
    m = HeaderMutations()
    if (n := node.get("request_headers_to_add")) is not None:
        m.request_add = [parse_header_value_option(x) for x in n.list()]
    if (n := node.get("response_headers_to_add")) is not None:
        m.response_add = [parse_header_value_option(x) for x in n.list()]
    if (n := node.get("request_headers_to_remove")) is not None:
        m.request_remove = [x.str(allow_empty=False).lower() for x in n.list()]
    if (n := node.get("response_headers_to_remove")) is not None:
        m.response_remove = [x.str(allow_empty=False).lower() for x in n.list()]
    return m


_MUTATION_FIELDS = (
    "request_headers_to_add",
    "request_headers_to_remove",
    "response_headers_to_add",
    "response_headers_to_remove",
)


# ---- string matchers -----------------------------------------------------------------------------
@dataclass
class StringMatcher:
    kind: str  # exact prefix suffix contains regex
    value: str
    ignore_case: bool = False
    regex: re.Pattern[str] | None = None

    def matches(self, s: str) -> bool:
        if self.kind == "regex":
            assert self.regex is not None
            return self.regex.fullmatch(s) is not None
        if self.ignore_case:
            s = s.lower()
            v = self.value.lower()
        else:
            v = self.value
        if self.kind == "exact":
            return s == v
        if self.kind == "prefix":
            return s.startswith(v)
        if self.kind == "suffix":
            return s.endswith(v)
        return v in s


def compile_regex(node: Node) -> re.Pattern[str]:
    """``envoy.type.matcher.v3.RegexMatcher``: ``{regex, google_re2: {}}``."""
    node.check_fields("regex google_re2", required=("regex",))
    pattern = node.req("regex").str()
    try:
        return re.compile(pattern)
    except re.error as e:
        raise node.child("regex").error(f"invalid regex {pattern!r}: {e}") from None


def parse_string_matcher(node: Node) -> StringMatcher:
    node.check_fields("exact prefix suffix contains safe_regex ignore_case")
    ignore = node.req("ignore_case").bool() if node.has("ignore_case") else False
    kinds = [k for k in ("exact", "prefix", "suffix", "contains", "safe_regex") if k in node.value]
    if len(kinds) != 1:
        raise node.error("exactly one of exact, prefix, suffix, contains, safe_regex must be set")
    kind = kinds[0]
    if kind == "safe_regex":
        return StringMatcher("regex", "", ignore, compile_regex(node.req("safe_regex")))
    return StringMatcher(kind, node.req(kind).str(), ignore)


@dataclass
class HeaderMatcher:
    name: str
    matcher: StringMatcher | None  # None: present_match
    present: bool = True
    invert: bool = False
    treat_missing_as_empty: bool = False

    def matches(self, headers: HeaderMap) -> bool:
        values = headers.get_all(self.name)
        if not values:
            if self.treat_missing_as_empty and self.matcher is not None:
                result = self.matcher.matches("")
            else:
                result = self.matcher is None and not self.present
        elif self.matcher is None:
            result = self.present
        else:
            result = self.matcher.matches(",".join(values))
        return result != self.invert


def parse_header_matcher(node: Node) -> HeaderMatcher:
    node.check_fields(
        "name string_match present_match invert_match exact_match prefix_match suffix_match "
        "contains_match safe_regex_match treat_missing_header_as_empty",
        required=("name",),
    )
    name = node.req("name").str(allow_empty=False).lower()
    invert = node.req("invert_match").bool() if node.has("invert_match") else False
    missing_empty = (
        node.req("treat_missing_header_as_empty").bool() if node.has("treat_missing_header_as_empty") else False
    )
    legacy = {
        "exact_match": "exact",
        "prefix_match": "prefix",
        "suffix_match": "suffix",
        "contains_match": "contains",
    }
    if node.has("string_match"):
        return HeaderMatcher(name, parse_string_matcher(node.req("string_match")), True, invert, missing_empty)
    for key, kind in legacy.items():
        if node.has(key):
            return HeaderMatcher(name, StringMatcher(kind, node.req(key).str()), True, invert, missing_empty)
    if node.has("safe_regex_match"):
        m = StringMatcher("regex", "", False, compile_regex(node.req("safe_regex_match")))
        return HeaderMatcher(name, m, True, invert, missing_empty)
    present = node.req("present_match").bool() if node.has("present_match") else True
    return HeaderMatcher(name, None, present, invert, missing_empty)


@dataclass
class QueryParameterMatcher:
    name: str
    matcher: StringMatcher | None
    present: bool = True

    def matches(self, query: dict[str, str]) -> bool:
        if self.name not in query:
            return False
        if self.matcher is None:
            return self.present
        return self.matcher.matches(query[self.name])


def parse_query_matcher(node: Node) -> QueryParameterMatcher:
    node.check_fields("name string_match present_match", required=("name",))
    name = node.req("name").str(allow_empty=False)
    if node.has("string_match"):
        return QueryParameterMatcher(name, parse_string_matcher(node.req("string_match")))
    present = node.req("present_match").bool() if node.has("present_match") else True
    return QueryParameterMatcher(name, None, present)


def split_path(path: str) -> tuple[str, str]:
    """``/a/b?x=1#f`` -> (``/a/b``, ``x=1``)."""
    path = path.split("#", 1)[0]
    if "?" in path:
        p, q = path.split("?", 1)
        return p, q
    return path, ""


def parse_query(q: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in q.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        out.setdefault(k, v)
    return out


# ---- routes --------------------------------------------------------------------------------------
@dataclass
class RouteMatch:
    kind: str  # prefix path safe_regex path_separated_prefix
    value: str
    regex: re.Pattern[str] | None = None
    case_sensitive: bool = True
    headers: list[HeaderMatcher] = field(default_factory=list)
    query: list[QueryParameterMatcher] = field(default_factory=list)

    def matches(self, headers: HeaderMap, path: str) -> bool:
        bare, query = split_path(path)
        kind = self.kind
        if kind == "prefix":
            ok = path.startswith(self.value) if self.case_sensitive else path.lower().startswith(self.value.lower())
        elif kind == "path":
            ok = bare == self.value if self.case_sensitive else bare.lower() == self.value.lower()
        elif kind == "safe_regex":
            assert self.regex is not None
            ok = self.regex.fullmatch(bare) is not None
        else:  # path_separated_prefix
            p = bare if self.case_sensitive else bare.lower()
            v = self.value if self.case_sensitive else self.value.lower()
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
class RouteAction:
    cluster: str
    prefix_rewrite: str | None = None
    regex_rewrite: tuple[re.Pattern[str], str] | None = None
    host_rewrite_literal: str | None = None
    #: seconds; 0 disables the timeout (Envoy default 15 s)
    timeout: float = 15.0


@dataclass
class DirectResponse:
    status: int
    body: bytes = b""


@dataclass
class Redirect:
    response_code: int = 301
    scheme: str | None = None
    host: str | None = None
    port: int | None = None
    path: str | None = None
    prefix_rewrite: str | None = None
    strip_query: bool = False


@dataclass
class Route:
    name: str
    match: RouteMatch
    action: RouteAction | DirectResponse | Redirect
    mutations: HeaderMutations = field(default_factory=HeaderMutations)
    per_filter_config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    virtual_host: VirtualHost | None = field(default=None, repr=False)


@dataclass
class VirtualHost:
    name: str
    domains: list[str]
    routes: list[Route]
    mutations: HeaderMutations = field(default_factory=HeaderMutations)
    per_filter_config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class RouteConfiguration:
    name: str
    virtual_hosts: list[VirtualHost]
    mutations: HeaderMutations = field(default_factory=HeaderMutations)

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

    def route(self, headers: HeaderMap) -> Route | None:
        """The route for a request, or None (Envoy then answers 404 ``route_not_found``)."""
        vh = self.find_virtual_host(headers.get(":authority") or "")
        if vh is None:
            return None
        path = headers.get(":path") or ""
        for r in vh.routes:
            if r.match.matches(headers, path):
                return r
        return None

    def header_levels(self, route: Route | None) -> list[HeaderMutations]:
        """Mutation levels in Envoy's evaluation order: route, virtual host, route config."""
        levels = []
        if route is not None:
            levels.append(route.mutations)
            if route.virtual_host is not None:
                levels.append(route.virtual_host.mutations)
        levels.append(self.mutations)
        return levels


# ---- parsing -------------------------------------------------------------------------------------
def parse_metadata(node: Node | None) -> dict[str, Any]:
    if node is None:
        return {}
    node.check_fields("filter_metadata typed_filter_metadata")
    fm = node.get("filter_metadata")
    return dict(fm.mapping().value) if fm is not None else {}


def parse_route_match(node: Node) -> RouteMatch:
    node.check_fields(
        "prefix path safe_regex path_separated_prefix case_sensitive headers query_parameters grpc",
        ignored=("runtime_fraction",),
    )
    kinds = [k for k in ("prefix", "path", "safe_regex", "path_separated_prefix") if k in node.value]
    if len(kinds) != 1:
        raise node.error("exactly one of prefix, path, safe_regex, path_separated_prefix must be set")
    kind = kinds[0]
    regex = None
    value = ""
    if kind == "safe_regex":
        regex = compile_regex(node.req("safe_regex"))
    else:
        value = node.req(kind).str()
        if kind != "prefix" and not value.startswith("/"):
            raise node.child(kind).error(f"{kind} must start with '/'")
    cs = node.req("case_sensitive").bool_value() if node.has("case_sensitive") else True
    headers = [parse_header_matcher(h) for h in node.req("headers").list()] if node.has("headers") else []
    if node.has("grpc"):
        headers.append(HeaderMatcher("content-type", StringMatcher("prefix", "application/grpc")))
    query = (
        [parse_query_matcher(q) for q in node.req("query_parameters").list()] if node.has("query_parameters") else []
    )
    return RouteMatch(kind, value, regex, cs, headers, query)


_ROUTE_ACTION_IGNORED = (
    "idle_timeout",
    "retry_policy",
    "cluster_not_found_response_code",
    "priority",
    "hash_policy",
    "auto_host_rewrite",
    "max_stream_duration",
    "upgrade_configs",
    "metadata_match",
)


def parse_route_action(node: Node) -> RouteAction:
    node.check_fields(
        "cluster prefix_rewrite regex_rewrite host_rewrite_literal timeout",
        required=("cluster",),
        ignored=_ROUTE_ACTION_IGNORED,
        message="weighted_clusters and cluster_header are not supported",
    )
    action = RouteAction(node.req("cluster").str(allow_empty=False))
    if node.has("prefix_rewrite"):
        action.prefix_rewrite = node.req("prefix_rewrite").str()
    if node.has("regex_rewrite"):
        rr = node.req("regex_rewrite").check_fields("pattern substitution", required=("pattern",))
        sub = rr.req("substitution").str() if rr.has("substitution") else ""
        # RE2 substitutions use \1; Python accepts the same
        action.regex_rewrite = (compile_regex(rr.req("pattern")), sub)
    if node.has("prefix_rewrite") and node.has("regex_rewrite"):
        raise node.error("only one of prefix_rewrite and regex_rewrite may be set")
    if node.has("host_rewrite_literal"):
        action.host_rewrite_literal = node.req("host_rewrite_literal").str()
    if node.has("timeout"):
        action.timeout = node.req("timeout").duration()
    return action


def parse_data_source(node: Node) -> bytes:
    """``envoy.config.core.v3.DataSource``: inline_string / inline_bytes / filename."""
    import base64

    node.check_fields("inline_string inline_bytes filename environment_variable")
    kinds = [k for k in ("inline_string", "inline_bytes", "filename", "environment_variable") if k in node.value]
    if len(kinds) != 1:
        raise node.error("exactly one of inline_string, inline_bytes, filename must be set")
    kind = kinds[0]
    if kind == "inline_string":
        return node.req(kind).str().encode()
    if kind == "inline_bytes":
        try:
            return base64.b64decode(node.req(kind).str(), validate=True)
        except ValueError:
            raise node.child(kind).error("inline_bytes must be base64") from None
    if kind == "environment_variable":
        import os

        name = node.req(kind).str()
        if name not in os.environ:
            raise node.child(kind).error(f"environment variable {name!r} is not set")
        return os.environ[name].encode()
    path = node.source.resolve(node.req("filename").str(allow_empty=False))
    try:
        return path.read_bytes()
    except OSError as e:
        raise node.child("filename").error(f"cannot read {path}: {e.strerror}") from None


def parse_direct_response(node: Node) -> DirectResponse:
    node.check_fields("status body", required=("status",))
    status = node.req("status").int(100, 599)
    body = parse_data_source(node.req("body")) if node.has("body") else b""
    return DirectResponse(status, body)


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
        "response_code strip_query"
    )
    r = Redirect()
    if node.has("https_redirect") and node.req("https_redirect").bool():
        r.scheme = "https"
    if node.has("scheme_redirect"):
        r.scheme = node.req("scheme_redirect").str()
    if node.has("host_redirect"):
        r.host = node.req("host_redirect").str()
    if node.has("port_redirect"):
        r.port = node.req("port_redirect").int(0, 65535)
    if node.has("path_redirect"):
        r.path = node.req("path_redirect").str()
    if node.has("prefix_rewrite"):
        r.prefix_rewrite = node.req("prefix_rewrite").str()
    if node.has("response_code"):
        r.response_code = _REDIRECT_CODES[node.req("response_code").enum(tuple(_REDIRECT_CODES))]
    if node.has("strip_query"):
        r.strip_query = node.req("strip_query").bool()
    return r


def parse_route(node: Node, index: int, per_filter: Any) -> Route:
    node.check_fields(
        "name match route direct_response redirect metadata typed_per_filter_config " + " ".join(_MUTATION_FIELDS),
        required=("match",),
        ignored=("decorator", "per_request_buffer_limit_bytes", "tracing", "stat_prefix"),
    )
    match = parse_route_match(node.req("match"))
    actions = [k for k in ("route", "direct_response", "redirect") if node.has(k)]
    if len(actions) != 1:
        raise node.error("exactly one of route, direct_response, redirect must be set")
    kind = actions[0]
    action: RouteAction | DirectResponse | Redirect
    if kind == "route":
        action = parse_route_action(node.req("route"))
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
        "name domains routes metadata typed_per_filter_config " + " ".join(_MUTATION_FIELDS),
        required=("name", "domains"),
        ignored=("require_tls", "virtual_clusters", "cors", "retry_policy", "include_request_attempt_count"),
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
    for r in routes:
        r.virtual_host = vh
    return vh


def parse_route_configuration(node: Node, per_filter: Any) -> RouteConfiguration:
    node.check_fields(
        "name virtual_hosts " + " ".join(_MUTATION_FIELDS),
        ignored=("validate_clusters", "most_specific_header_mutations_wins", "max_direct_response_body_size_bytes"),
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
    name = node.req("name").str() if node.has("name") else ""
    return RouteConfiguration(name, vhs, parse_mutations(node))
