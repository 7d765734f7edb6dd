"""What Envoy's HTTP/1 codec does to a request a filter changed on its way upstream, compared
with real Envoy 1.40: a removed ``:method``, a header name that is not a token or a value with
CR/LF makes the router answer 503 with the codec's message (the upstream gets nothing); a removed
``:authority`` leaves no ``host`` line; the upstream reads values without surrounding spaces."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import both, config, lua_filter
from wasmlab import Response
from wasmlab.http import HeaderMap

pytestmark = pytest.mark.envoy

LUA = lua_filter("""
    function envoy_on_request(h)
      local p = h:headers():get("x-do")
      if p == "nomethod" then h:headers():remove(":method")
      elseif p == "space" then h:headers():add("bad name", "v")
      elseif p == "crlf" then h:headers():add("x-v", "a\\r\\nb")
      elseif p == "noauth" then h:headers():remove(":authority")
      elseif p == "trim" then h:headers():add("x-t", "  a b\\t ")
      end
    end""")

CASES = ["nomethod", "space", "crlf", "noauth", "trim", "none"]
STATS = (
    "cluster.backend.upstream_rq_total",
    "cluster.backend.upstream_rq_completed",
    "http.ingress.downstream_rq_5xx",
    "http.ingress.downstream_rq_2xx",
)


def test_requests_a_filter_broke_are_refused_by_the_upstream_codec_like_envoy(envoy_bin):
    cfg = config(filters=LUA)
    reqs = [{"method": "GET", "path": "/x", "headers": {"x-do": d}} for d in CASES]
    mine, env = both(cfg, reqs, stats=STATS)
    assert [r.status for r in env] == [503, 503, 503, 200, 200, 200]
    assert env[0].body == b"missing required header: :method"


CHARS = lua_filter("""
    function envoy_on_request(h)
      local c = h:headers():get("x-c")
      local n = h:headers():get("x-n")
      if c then h:headers():add("x-v", "a" .. string.char(tonumber(c)) .. "b") end
      if n == "empty" then h:headers():add("", "v") end
      if n == "tab" then h:headers():add("x\\ty", "v") end
      local call = h:headers():get("x-call")
      if call then
        local hs, body = h:httpCall("backend", {[":method"] = "GET", [":path"] = "/call",
          [":authority"] = "b", ["x-w"] = call == "bad" and "a\\127b" or "  a b \\t"}, nil, 1000)
        h:respond({[":status"] = "200", ["x-call-status"] = hs[":status"]}, body)
      end
    end""")


def test_header_characters_the_upstream_codec_refuses_like_envoy(envoy_bin):
    """Values: every control character but tab is refused (1, 8, 11, 31, 127), tab and bytes
    from 128 up go through; an empty name is written as it is, a tab in a name is refused (the
    message escapes it: ``x\\ty``). A Lua ``httpCall`` is held to the same codec: a bad value
    gets the router's 503 with the message, spaces around a value are gone upstream."""
    cfg = config(filters=CHARS)
    reqs = [{"method": "GET", "path": "/x", "headers": {"x-c": str(c)}} for c in (1, 8, 9, 11, 31, 127, 128, 255)]
    reqs += [{"method": "GET", "path": "/x", "headers": {"x-n": n}} for n in ("empty", "tab")]
    reqs += [{"method": "GET", "path": "/x", "headers": {"x-call": c}} for c in ("bad", "spaces")]
    mine, env = both(cfg, reqs)
    assert [r.status for r in env[:8]] == [503, 503, 200, 503, 503, 503, 200, 200]
    assert env[9].body == b"invalid header name: x\\ty"
    assert env[10].headers.get("x-call-status") == "503" and env[10].body == b"invalid header value for: x-w"


HOP_LUA = lua_filter("""
    function envoy_on_response(h)
      for _, n in ipairs({"connection", "keep-alive", "proxy-connection", "upgrade"}) do
        h:headers():add("x-seen-" .. n, h:headers():get(n) or "none")
      end
      h:headers():add("proxy-connection", "added")
      h:headers():add("keep-alive", "timeout=9")
    end""")


def _hop_app(request: Any) -> Response:
    hop = [("connection", "keep-alive"), ("keep-alive", "timeout=5"), ("proxy-connection", "x"), ("upgrade", "h2c")]
    return Response(200, HeaderMap([("content-type", "text/plain"), *hop, ("x-ok", "1")]), b"hi")


def test_hop_by_hop_response_headers_like_envoy(envoy_bin):
    """An upstream's ``keep-alive`` is consumed by the HTTP/1 codec (filters never see it); its
    ``connection``, ``proxy-connection`` and ``upgrade`` reach the filters but not the client,
    nor do a filter's own (``mutateResponseHeaders``); a filter's ``keep-alive`` goes through."""
    mine, env = both(config(filters=HOP_LUA), [{"method": "GET", "path": "/x"}], apps={"backend": _hop_app})
    names = [k for k, _ in env[0].headers]
    assert "connection" not in names and "upgrade" not in names and "proxy-connection" not in names
    assert env[0].headers.get("x-seen-keep-alive") == "none" and env[0].headers.get("keep-alive") == "timeout=9"
