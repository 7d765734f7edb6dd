"""What a matched route does (Envoy ``RouteAction``, ``DirectResponseAction``,
``RedirectAction``): forward to a cluster with optional rewrites and a timeout, answer directly, or
redirect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .data_source import parse_data_source
from .matchers import compile_regex
from .yaml_source import Node


@dataclass
class RouteAction:
    cluster: str
    prefix_rewrite: str | None = None
    regex_rewrite: tuple[Any, str] | None = None  # (compiled RE2 pattern, substitution)
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


#: RouteAction fields accepted and ignored: wasmlab models no retries, load balancing, upgrades
#: or stream limits
_ROUTE_ACTION_IGNORED = tuple(
    "idle_timeout retry_policy cluster_not_found_response_code priority hash_policy auto_host_rewrite "
    "max_stream_duration upgrade_configs metadata_match".split()
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
