"""Local replies to gRPC requests, compared with real Envoy 1.40.

Envoy answers a gRPC request (``content-type: application/grpc`` or ``application/grpc+...``
on a request with a ``:path``) that it replies to itself -- no route, a direct response, a
filter's ``sendLocalReply`` (Lua ``respond``, Proxy-Wasm ``proxy_send_local_reply``), an
upstream that cannot be reached -- with a gRPC *trailers-only* response (``Utility::
prepareLocalReply``): ``:status: 200``, ``content-type: application/grpc``, ``grpc-status``
from the caller's gRPC status or else mapped from the HTTP status (``httpToGrpcStatus``), the
body as a percent-encoded ``grpc-message``, and no body.
"""

from __future__ import annotations

from typing import Any

import pytest

from helpers import UpstreamLog, both, config, lua_filter, static_cluster

pytestmark = pytest.mark.envoy

LUA = lua_filter("""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      if p == "/lua-deny" then
        h:respond({[":status"] = "403", ["x-why"] = "lua"}, "denied: 100% ~ caf\\195\\169\\n")
      elseif p == "/lua-empty" then
        h:respond({[":status"] = "429"}, "")
      elseif p == "/lua-own-status" then
        h:respond({[":status"] = "401", ["grpc-status"] = "9"}, "own")
      end
    end""")

ROUTES = """
              - match: {prefix: "/direct-503"}
                direct_response: {status: 503, body: {inline_string: "no such thing\\n"}}
              - match: {prefix: "/direct-empty"}
                direct_response: {status: 502}
              - match: {prefix: "/direct-200"}
                direct_response: {status: 200, body: {inline_string: "fine"}}
              - match: {prefix: "/down"}
                route: {cluster: down}
              - match: {prefix: "/lua"}
                route: {cluster: backend}"""

CLUSTERS = static_cluster("backend", 8081) + static_cluster("down", 8082)
DOWN: dict[str, Any] = {"down": None}  # nobody listens: the router's 503


def _req(path: str, content_type: str | None = "application/grpc", method: str = "POST") -> dict[str, Any]:
    headers = {"content-type": content_type} if content_type else {}
    return {"method": method, "path": path, "headers": headers}


REQUESTS = [
    _req("/nothing-routes-here"),  # 404 NR -> grpc-status 12 (unimplemented)
    _req("/direct-503"),  # 503 -> 14 (unavailable), the body as grpc-message
    _req("/direct-empty"),  # 502 -> 14, no grpc-message
    _req("/direct-200"),  # 200 -> 2 (unknown)
    _req("/down"),  # connection refused: 503 UF -> 14 and Envoy's reset text
    _req("/lua-deny"),  # 403 -> 7; '%', '~' and non-ASCII percent-encoded; x-why kept
    _req("/lua-empty"),  # 429 -> 14
    _req("/lua-own-status"),  # a grpc-status the filter set wins
    _req("/direct-503", "application/grpc+proto"),
    _req("/direct-503", "application/grpc-web"),  # not gRPC: a plain 503
    _req("/direct-503", "application/grpcx"),  # not gRPC either
    _req("/direct-503", None, "GET"),
]


def test_local_replies_to_grpc_requests_are_trailers_only_grpc_answers(envoy_bin):
    cfg = config(filters=LUA, routes=ROUTES, clusters=CLUSTERS)
    mine, env = both(cfg, REQUESTS, DOWN)
    grpc = [(r.status, r.headers.get("grpc-status"), r.headers.get("grpc-message"), r.body) for r in env]
    assert grpc[0] == (200, "12", None, b"")
    assert grpc[1] == (200, "14", "no such thing%0A", b"")  # Envoy 1.40 keeps the newline
    assert grpc[9][0] == 503 and grpc[9][1] is None
    assert grpc[4][:2] == (200, "14") and grpc[4][2].startswith("upstream connect error")


METHODS = ["GET", "HEAD", "DELETE", "TRACE", "POST", "PUT", "PATCH", "OPTIONS", "PROPFIND"]

HTTP_CALL = lua_filter("""
    function envoy_on_request(h)
      local m = h:headers():get("x-call")
      if m then
        h:httpCall("backend", {[":method"] = m, [":path"] = "/call", [":authority"] = "b"}, nil, 1000)
      end
    end""")


def test_a_headers_only_request_upstream_gets_content_length_0_unless_its_method_has_no_body(envoy_bin):
    """Envoy's HTTP/1 codec writes ``content-length: 0`` on a headers-only request upstream
    (the router's and a Lua ``httpCall``'s) except for GET, HEAD, DELETE and TRACE."""
    cfg = config(filters=HTTP_CALL)
    reqs = [{"method": m, "path": "/r"} for m in METHODS]
    reqs += [{"method": "GET", "path": "/c", "headers": {"x-call": m}} for m in ("POST", "DELETE")]
    theirs = UpstreamLog()
    both(cfg, reqs, envoy_upstreams=theirs)
    framed = {(m, path) for _c, m, path, headers, _b in theirs.requests if ("content-length", "0") in headers}
    assert framed == {(m, "/r") for m in ("POST", "PUT", "PATCH", "OPTIONS", "PROPFIND")} | {("POST", "/call")}


def test_a_method_envoys_http1_parser_does_not_know_gets_its_400(envoy_bin):
    """Envoy's HTTP/1 parser accepts the classic http-parser methods only (upper case): ``FOO``,
    ``get``, ``UPDATE`` or ``M-SEARCH`` get the codec's 400 ``Bad Request`` before any filter,
    and never reach the upstream; ``PURGE`` or ``NOTIFY`` go through."""
    cfg = config()
    reqs = [{"method": m, "path": "/m"} for m in ("FOO", "get", "UPDATE", "M-SEARCH", "PURGE", "NOTIFY", "MKCOL")]
    mine, env = both(cfg, reqs)
    assert [r.status for r in env] == [400, 400, 400, 400, 200, 200, 200]


REWRITES = """
          path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT
          local_reply_config:
            mappers:
            - filter: {status_code_filter: {comparison: {op: EQ, value: {default_value: 404, runtime_key: k1}}}}
              headers_to_add: [{header: {key: content-type, value: text/html}}]
            - filter: {status_code_filter: {comparison: {op: EQ, value: {default_value: 403, runtime_key: k2}}}}
              body: {inline_string: "changed"}
              headers_to_add: [{header: {key: content-type, value: text/html}}]
            - filter: {status_code_filter: {comparison: {op: EQ, value: {default_value: 409, runtime_key: k3}}}}
              body_format_override: {json_format: {m: "%LOCAL_REPLY_BODY%"}}"""
REWRITE_ROUTES = """
              - match: {prefix: "/nf"}
                direct_response: {status: 404, body: {inline_string: "not here"}}
              - match: {prefix: "/forbid"}
                direct_response: {status: 403, body: {inline_string: "forbidden"}}
              - match: {prefix: "/conflict"}
                direct_response: {status: 409, body: {inline_string: "conflict"}}
              - match: {prefix: "/"}
                route: {cluster: backend}"""


def test_local_reply_rewrites_content_types_and_grpc_like_envoy(envoy_bin):
    """A ``local_reply_config`` mapper's own ``content-type`` stays (Envoy keeps it when the
    rewrite changed the header, body changed or not); a JSON body format's newline is not part of
    a gRPC ``grpc-message``; a gRPC request whose path would be redirected
    (``UNESCAPE_AND_REDIRECT``) is rejected instead (400: ``grpc-status`` 13)."""
    cfg = config(routes=REWRITE_ROUTES).replace(
        "          stat_prefix: ingress", "          stat_prefix: ingress" + REWRITES
    )
    grpc = {"content-type": "application/grpc"}
    reqs = [
        {"method": "POST", "path": "/a%2Fb", "headers": grpc},
        {"method": "GET", "path": "/a%2Fb"},
        {"method": "GET", "path": "/nf"},
        {"method": "GET", "path": "/forbid"},
        {"method": "GET", "path": "/conflict"},
        {"method": "POST", "path": "/conflict", "headers": grpc},
    ]
    _, env = both(cfg, reqs)
    assert env[0].headers.get("grpc-status") == "13" and env[1].status == 307
    assert env[2].headers.get("content-type") == env[3].headers.get("content-type") == "text/html"
    assert env[5].headers.get("grpc-message") == '{"m":"conflict"}'
