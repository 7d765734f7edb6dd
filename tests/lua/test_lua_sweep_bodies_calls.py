"""A sweep of the Lua filter's bodies, trailers, httpCall and coroutines, edge cases first, against
real Envoy 1.40 (``lua_helpers.assert_both`` says what is compared and what scripts avoid).
"""

from __future__ import annotations

import pytest

from helpers import config, lua_filter, with_trailers
from lua_helpers import SIDE_CLUSTER, Req, assert_both, lua_config, tried
from wasmlab.http import HeaderMap, Response

pytestmark = pytest.mark.envoy


# ---- bodies --------------------------------------------------------------------------------------
def test_buffer_methods_edge_cases(envoy_bin):
    code = tried(r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      local b = h:body(p == "/wrap")
      if b == nil then h:logInfo("no body"); return end
      try(h, "length", function() return b:length() end)
      try(h, "0,0", function() return "[" .. b:getBytes(0, 0) .. "]" end)
      try(h, "len,0", function() return "[" .. b:getBytes(b:length(), 0) .. "]" end)
      try(h, "-1,1", function() return b:getBytes(-1, 1) end)
      try(h, "1,-1", function() return b:getBytes(1, -1) end)
      try(h, "float", function() return b:getBytes(0.9, 2.9) end)
      try(h, "string args", function() return b:getBytes("1", "2") end)
      try(h, "missing arg", function() return b:getBytes(0) end)
      try(h, "nil arg", function() return b:getBytes(nil, 1) end)
      try(h, "setBytes number", function() return b:setBytes(12345) end)
      try(h, "after number", function() return b:getBytes(0, b:length()) end)
      try(h, "setBytes nil", function() return b:setBytes(nil) end)
      try(h, "setBytes binary", function() return b:setBytes("a\0b") end)
      try(h, "binary back", function() return #b:getBytes(0, 3) end)
      try(h, "same object", function() return rawequal(b, h:body()) end)
      try(h, "content-length", function() return h:headers():get("content-length") end)
      if p == "/empty" then try(h, "setBytes empty", function() return b:setBytes("") end) end
      try(h, "body(1)", function() return h:body(1) end)
      try(h, "body(nil)", function() return h:body(nil) end)
    end
    """)
    reqs = [Req("POST", "/p", b"hello world"), Req("POST", "/empty", b"xyz"), Req("GET", "/wrap"), Req("GET", "/none")]
    assert_both(lua_config(code), reqs)


def test_response_body_and_chunks_on_local_and_direct_responses(envoy_bin):
    code = r"""
    function envoy_on_response(h)
      local p = h:headers():get("x-p") or "direct"
      if p == "chunks" then
        local n = 0
        for c in h:bodyChunks() do
          n = n + 1
          c:setBytes(c:getBytes(0, c:length()):upper())
        end
        h:logInfo("chunks " .. n)
      else
        local b = h:body(true)
        h:logInfo(p .. " body " .. b:length() .. " cl=" .. tostring(h:headers():get("content-length")))
        b:setBytes(b:getBytes(0, b:length()) .. "+lua")
      end
      local ok, e = pcall(function() return h:trailers() end)
      h:logInfo("trailers " .. tostring(ok) .. " " .. tostring(e))
    end
    """
    routes = """
              - match: {prefix: "/direct"}
                direct_response: {status: 200, body: {inline_string: "direct hello"}}
              - match: {prefix: "/nobody"}
                direct_response: {status: 204}
              - match: {prefix: "/notmodified"}
                direct_response: {status: 304}
              - match: {prefix: "/"}
                route: {cluster: backend}"""

    def app(req):
        tag = req.path.strip("/")
        body = b"" if tag == "empty" else b"upstream " + tag.encode()
        return Response(200, HeaderMap([("x-p", tag)]), body)

    paths = ("/direct", "/nobody", "/notmodified", "/chunks", "/body", "/empty", "/missing-route")
    reqs = [Req("GET", p) for p in paths]
    assert_both(lua_config(code, routes=routes), reqs, apps={"backend": app})


def test_trailers_without_trailers_and_before_the_body(envoy_bin):
    code = tried(r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      if p == "/first" then
        local t = h:trailers()
        h:logInfo("trailers first: " .. tostring(t and t:get("x-t")))
        try(h, "body after trailers", function() return h:body() end)
        try(h, "chunks after trailers", function() return h:bodyChunks() end)
      else
        local b = h:body()
        local t = h:trailers()
        h:logInfo(p .. " body " .. tostring(b and b:length()) .. " trailers " .. type(t))
        if t then
          t:add("x-lua", "1")
          t:replace("x-t", "changed")
          try(h, "trailers again same", function() return rawequal(t, h:trailers()) end)
          for k, v in pairs(t) do h:logInfo("trailer " .. k .. "=" .. v) end
        end
      end
    end
    """)
    reqs = [
        Req("POST", "/first", b"abc", trailers=[("x-t", "1")]),
        Req("POST", "/with", b"abc", trailers=[("x-t", "1"), ("x-u", "2")]),
        Req("POST", "/without", b"abc"),
        Req("GET", "/get"),
    ]
    assert_both(with_trailers(lua_config(code)), reqs)


# ---- httpCall ------------------------------------------------------------------------------------
def _side_app(req) -> Response:
    """The ``auth`` cluster: says what it got, in one header each (one key per table read)."""
    if req.path == "/empty":
        return Response(204, HeaderMap(), b"")
    if req.path == "/dup":
        return Response(200, HeaderMap([("x-d", "1"), ("x-d", "2"), ("x-d", "3")]), b"dup")
    got = f"{req.method} {req.path} cl={req.headers.get('content-length')} body={req.body.decode()}"
    hs = [("x-got", got), ("x-list", ",".join(v for k, v in req.headers if k == "x-list"))]
    hs.append(("x-xff", str(req.headers.get("x-forwarded-for"))))
    return Response(200, HeaderMap(hs), b"side:" + req.body)


def test_http_call_arguments_results_and_failures(envoy_bin):
    code = tried(r"""
    local function call(h, path, body, timeout, extra)
      -- (a POST without a body gets content-length: 0 from Envoy's HTTP/1 codec, not from wasmlab)
      local t = {[":method"] = body and "POST" or "GET", [":path"] = path, [":authority"] = "auth"}
      if extra then for k, v in pairs(extra) do t[k] = v end end
      return h:httpCall("auth", t, body, timeout)
    end
    function envoy_on_request(h)
      local hd, body = call(h, "/one", "payload", 1000)
      h:logInfo("one: " .. hd["x-got"] .. " | " .. body .. " | status type " .. type(hd[":status"]))
      hd, body = call(h, "/two", nil, "500")
      h:logInfo("string timeout: " .. hd["x-got"] .. " | " .. body)
      hd, body = call(h, "/num", 42, 500.9)
      h:logInfo("number body: " .. hd["x-got"])
      hd, body = call(h, "/list", "", 1000, {["x-list"] = {"a", "b"}})
      h:logInfo("list header: " .. hd["x-list"] .. " empty body: " .. hd["x-got"])
      hd, body = call(h, "/empty", nil, 1000)
      h:logInfo("empty answer: " .. hd[":status"] .. " body " .. tostring(body) .. " cl " .. tostring(hd["content-length"]))
      hd, body = call(h, "/dup", nil, 1000)
      h:logInfo("dup last: " .. hd["x-d"])
      hd, body = h:httpCall("auth", {[":method"] = "GET", [":path"] = "/dup", [":authority"] = "a"}, nil,
        {return_duplicate_headers = true})
      h:logInfo("dup all: " .. table.concat(hd["x-d"], "|") .. " status " .. hd[":status"])
      hd = h:httpCall("auth", {[":method"] = "GET", [":path"] = "/xff", [":authority"] = "a"}, nil, {send_xff = false})
      h:logInfo("send_xff false: " .. hd["x-xff"])
      hd = h:httpCall("auth", {[":method"] = "GET", [":path"] = "/xff", [":authority"] = "a"}, nil, {timeout_ms = 1000})
      h:logInfo("send_xff default: " .. hd["x-xff"])
      try(h, "timeout table", function() call(h, "/x", nil, {timeout_ms = "soon"}) end)
      try(h, "bool timeout", function() call(h, "/x", nil, true) end)
      try(h, "nil headers", function() h:httpCall("auth", nil, nil, 10) end)
      try(h, "body table", function() h:httpCall("auth", {}, {}, 10) end)
      try(h, "cluster nil", function() h:httpCall(nil, {}, nil, 10) end)
      try(h, "cluster number", function() h:httpCall(5, {}, nil, 10) end)
      try(h, "no authority", function() h:httpCall("auth", {[":method"] = "GET", [":path"] = "/"}, nil, 10) end)
      try(h, "header number value", function() call(h, "/n", nil, 1000, {["x-n"] = 7}) end)
      try(h, "header bool value", function() call(h, "/n", nil, 1000, {["x-n"] = true}) end)
      try(h, "async flag nil", function() return select("#", call(h, "/async-nil", nil, 1000, nil)) end)
      -- which check Envoy 1.40 makes first: the timeout, the cluster, the headers, then the body
      local H = {[":method"] = "GET", [":path"] = "/", [":authority"] = "a"}
      try(h, "body table, bad cluster", function() h:httpCall("nope", H, {}, 10) end)
      try(h, "body table, bad timeout", function() h:httpCall("auth", H, {}, -1) end)
      try(h, "body bool, good call", function() h:httpCall("auth", H, true, 10) end)
      try(h, "bad header value, bad cluster", function() h:httpCall("nope", {["x"] = true}, nil, 10) end)
      try(h, "bad header value, no timeout", function() h:httpCall("auth", {["x"] = true}, nil) end)
      try(h, "body table, bad option", function() h:httpCall("auth", H, {}, {foo = 10}) end)
    end
    """)
    assert_both(lua_config(code, clusters=SIDE_CLUSTER), [Req("GET", "/")], apps={"auth": _side_app})


def test_http_call_timeouts_and_dead_clusters_answer_503(envoy_bin):
    code = r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      local cluster = p == "/dead" and "dead" or "auth"
      local hd, body = h:httpCall(cluster, {[":method"] = "GET", [":path"] = p, [":authority"] = "a"}, nil,
        p == "/slow" and 50 or 0)
      h:logInfo(p .. ": " .. hd[":status"] .. " " .. tostring(body) .. " keys " .. (next(hd, next(hd)) == nil and 1 or 2))
      h:headers():add("x-call", hd[":status"])
    end
    function envoy_on_response(h)
      local hd, body = h:httpCall("auth", {[":method"] = "GET", [":path"] = "/resp", [":authority"] = "a"}, "b", 1000)
      h:headers():add("x-resp-call", body)
    end
    """
    import time

    def slow(req):
        if req.path == "/slow":
            time.sleep(0.4)
        return Response(200, HeaderMap(), b"ok " + req.path.encode())

    dead = """
  - name: dead
    type: STATIC
    load_assignment:
      cluster_name: dead
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8083}}}"""
    yaml = lua_config(code, clusters=SIDE_CLUSTER + dead)
    assert_both(
        yaml, [Req("GET", "/slow"), Req("GET", "/dead"), Req("GET", "/fast")], apps={"auth": slow, "dead": None}
    )


# ---- coroutines, HEAD, calls while streaming -------------------------------------------------------
def test_user_coroutines_inside_a_hook(envoy_bin):
    """A script's own coroutines are not Envoy's: yielding inside one is fine; only a yield out of
    the hook's own coroutine is ``script performed an unexpected yield``."""
    code = tried(r"""
    function envoy_on_request(h)
      local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
      h:logInfo("gen " .. gen() .. gen() .. gen())
      local co = coroutine.create(function(a) local b = coroutine.yield(a + 1) return b * 2 end)
      local _, x = coroutine.resume(co, 1)
      local _, y = coroutine.resume(co, 10)
      h:logInfo("co " .. x .. " " .. y .. " " .. coroutine.status(co))
      try(h, "headers inside a coroutine", function()
        return coroutine.wrap(function() return h:headers():get(":path") end)()
      end)
      try(h, "running", function() return select(2, coroutine.running()) end)
    end
    """)
    assert_both(lua_config(code), [Req("GET", "/co")])


def test_head_responses_and_response_trailers(envoy_bin):
    code = tried(r"""
    function envoy_on_response(h)
      local b = h:body()
      h:logInfo("body " .. tostring(b and b:length()))
      local t = h:trailers()
      if t then
        t:add("grpc-status", "0")
        t:add("grpc-status", "1")
        t:add("x-t", "1")
        t:add("x-t", "2")
        h:logInfo("trailers grpc-status#" .. t:getNumValues("grpc-status") .. "=" .. t:get("grpc-status")
          .. " x-t#" .. t:getNumValues("x-t"))
      else
        h:logInfo("no trailers")
      end
    end
    """)

    def app(req):
        trailers = HeaderMap([("grpc-message", "ok")]) if req.path == "/trailers" else None
        return Response(200, HeaderMap([("content-type", "text/plain")]), b"hello", trailers=trailers)

    reqs = [Req("HEAD", "/head"), Req("GET", "/trailers"), Req("GET", "/plain")]
    assert_both(with_trailers(lua_config(code)), reqs, apps={"backend": app})


def test_http_call_from_inside_a_body_chunk_loop(envoy_bin):
    code = r"""
    function envoy_on_request(h)
      for chunk in h:bodyChunks() do
        local hd, body = h:httpCall("auth", {[":method"] = "POST", [":path"] = "/chunk", [":authority"] = "a"},
          chunk:getBytes(0, chunk:length()), 1000)
        h:logInfo("call answered " .. hd[":status"] .. " " .. tostring(body))
      end
      h:logInfo("loop done")
    end
    function envoy_on_response(h)
      for chunk in h:bodyChunks() do
        local hd = h:httpCall("auth", {[":method"] = "GET", [":path"] = "/resp", [":authority"] = "a"}, nil, 1000)
        h:logInfo("response call " .. hd[":status"] .. " chunk " .. chunk:length())
      end
      h:logInfo("response loop done")
    end
    """

    def app(req):
        return Response(200, HeaderMap(), b"side " + req.body)

    reqs = [Req("POST", "/p", b"abc"), Req("GET", "/g")]
    assert_both(lua_config(code, clusters=SIDE_CLUSTER), reqs, apps={"auth": app})


def test_two_lua_filters_and_a_respond_in_either(envoy_bin):
    """A local reply from the first filter still runs the second filter's ``envoy_on_response``
    (Envoy encodes a local reply through the whole encoder chain)."""
    first = lua_filter(
        """
        function envoy_on_request(h)
          h:logInfo("first request")
          h:headers():add("x-order", "first")
          if h:headers():get(":path") == "/first" then h:respond({[":status"] = "401"}, "first says no") end
        end
        function envoy_on_response(h)
          h:logInfo("first response " .. h:headers():get(":status") .. " " .. tostring(h:headers():get("x-second")))
        end
        """,
        name="first.lua",
    )
    second = lua_filter(
        """
        function envoy_on_request(h)
          h:logInfo("second request " .. h:headers():get("x-order"))
          if h:headers():get(":path") == "/second" then h:respond({[":status"] = "402"}, "second says no") end
        end
        function envoy_on_response(h)
          h:headers():add("x-second", "seen")
          h:logInfo("second response " .. h:headers():get(":status"))
        end
        """,
        name="second.lua",
    )
    reqs = [Req("GET", p) for p in ("/first", "/second", "/through")]
    assert_both(config(first + second), reqs)


def test_an_asynchronous_http_call_outlives_its_stream(envoy_bin):
    """A fire-and-forget ``httpCall`` is not cancelled when the stream ends: the side cluster gets
    it even though the client's response went out first."""
    code = r"""
    function envoy_on_request(h)
      h:httpCall("auth", {[":method"] = "POST", [":path"] = "/audit", [":authority"] = "a"}, "event", 2000, true)
      h:respond({[":status"] = "202"}, "accepted")
    end
    """
    import time

    def slow(req):
        time.sleep(0.3)
        return Response(200, HeaderMap(), b"late")

    assert_both(lua_config(code, clusters=SIDE_CLUSTER), [Req("GET", "/")], apps={"auth": slow})
