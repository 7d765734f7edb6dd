"""A sweep of the Lua filter's API by class, edge cases first, against real Envoy 1.40 (the same
YAML, script and requests on both sides; see ``lua_helpers.assert_both``).

Scripts avoid what is random in both Envoy and wasmlab (LuaJIT's string hash seed: the order of
``pairs()`` over a Lua table with several string keys), ports of the client side and timings.
"""

from __future__ import annotations

import textwrap

import pytest

from helpers import config, with_trailers
from lua_helpers import LUA_PER_ROUTE, SIDE_CLUSTER, Req, assert_both, lua_config, lua_filter
from wasmlab.http import HeaderMap, Response

pytestmark = pytest.mark.envoy

TRY = r"""
local function try(h, what, f)
  local ok, e = pcall(f)
  h:logInfo(what .. ": " .. tostring(ok) .. " " .. tostring(e))
end
"""


def tried(code: str) -> str:
    """``code`` with ``try(h, what, f)``: logs ``what: <ok> <result or error>``."""
    return TRY + code


# ---- headers ---------------------------------------------------------------------------------------
def test_header_reads_multi_values_case_and_index_arguments(envoy_bin):
    code = tried(r"""
    function envoy_on_request(h)
      local hd = h:headers()
      try(h, "get joined", function() return hd:get("X-Multi") end)
      try(h, "num", function() return hd:getNumValues("X-MULTI") end)
      try(h, "num missing", function() return hd:getNumValues("nope") end)
      try(h, "num pseudo", function() return hd:getNumValues(":path") end)
      try(h, "idx 0", function() return hd:getAtIndex("x-multi", 0) end)
      try(h, "idx 2", function() return hd:getAtIndex("x-multi", 2) end)
      try(h, "idx 3", function() return hd:getAtIndex("x-multi", 3) end)
      try(h, "idx -1", function() return hd:getAtIndex("x-multi", -1) end)
      try(h, "idx string", function() return hd:getAtIndex("x-multi", "1") end)
      try(h, "idx float", function() return hd:getAtIndex("x-multi", 1.7) end)
      try(h, "idx bad string", function() return hd:getAtIndex("x-multi", "one") end)
      try(h, "idx missing name", function() return hd:getAtIndex("nope", 0) end)
      try(h, "empty value", function() return "[" .. hd:get("x-empty") .. "]" end)
      try(h, "empty num", function() return hd:getNumValues("x-empty") end)
      try(h, "get number key", function() return hd:get(123) end)
      try(h, "get table key", function() return hd:get({}) end)
      try(h, "authority", function() return hd:get(":authority") end)
      try(h, "host", function() return hd:get("host") end)
      try(h, "method", function() return hd:get(":method") end)
      try(h, "scheme", function() return hd:get(":scheme") end)
      try(h, "index syntax", function() return hd["x-multi"] end)
      try(h, "length op", function() return #hd end)
    end
    """)
    hs = [("x-multi", "a"), ("X-Multi", "b"), ("x-multi", "c,d"), ("x-empty", "")]
    assert_both(lua_config(code), [Req("GET", "/r?q=1", headers=hs)])


def test_header_writes_on_request_pseudo_headers_and_empty_values(envoy_bin):
    code = tried(r"""
    function envoy_on_request(h)
      local hd = h:headers()
      hd:add("x-empty", "")
      hd:add("X-Mixed-Case", "V")
      hd:add(42, 4.5)
      hd:add("x-multi", "third")
      try(h, "replace multi", function() hd:replace("x-multi", "only") end)
      try(h, "remove missing", function() hd:remove("x-nothing") end)
      try(h, "remove number", function() hd:remove(42) end)
      try(h, "add nil value", function() hd:add("x", nil) end)
      try(h, "replace table", function() hd:replace("x", {}) end)
      try(h, "remove nil", function() hd:remove(nil) end)
      hd:replace(":method", "DELETE")  -- (POST would make Envoy's codec add content-length: 0)
      hd:replace("x-replaced-new", "fresh")
      hd:replace(":authority", "other.example")
      local out = {}
      for k, v in pairs(hd) do
        if k ~= "x-request-id" and k ~= "x-forwarded-proto" then out[#out + 1] = k .. "=" .. v end
      end
      h:logInfo(table.concat(out, " | "))
    end
    """)
    hs = [("x-multi", "a"), ("x-multi", "b")]
    assert_both(lua_config(code), [Req("GET", "/w", headers=hs)])


def test_response_header_writes_status_and_iteration(envoy_bin):
    code = tried(r"""
    function envoy_on_response(h)
      local hd = h:headers()
      local p = hd:get("x-path")
      try(h, "status", function() return hd:get(":status") end)
      if p == "/num" then hd:replace(":status", 418)
      elseif p == "/bad" then hd:replace(":status", "abc")
      elseif p == "/sp" then hd:replace(":status", " 404 ")
      elseif p == "/add" then hd:add(":status", "201")
      elseif p == "/cl" then hd:remove("content-length")
      end
      hd:add("x-set-cookie", "a=1")
      hd:add("x-set-cookie", "b=2")
      local out = {}
      for k, v in pairs(hd) do
        if k ~= "date" and k ~= "x-envoy-upstream-service-time" and k ~= "content-length" then
          out[#out + 1] = k .. "=" .. v
        end
      end
      h:logInfo(p .. ": " .. table.concat(out, " | "))
    end
    """)

    def app(req):
        return Response(200, HeaderMap([("x-path", req.path), ("content-type", "text/plain")]), b"hello")

    reqs = [Req("GET", p) for p in ("/num", "/add", "/bad", "/sp", "/cl", "/plain")]
    assert_both(lua_config(code), reqs, apps={"backend": app})


def test_header_iteration_break_and_mutation(envoy_bin):
    code = tried(r"""
    function envoy_on_request(h)
      local hd = h:headers()
      for k, v in pairs(hd) do
        if k == ":path" then break end
      end
      try(h, "add after break", function() hd:add("x-a", "1") end)
      try(h, "second pairs after break", function() return pairs(hd) end)
      try(h, "get while open", function() return hd:get(":path") end)
      try(h, "num while open", function() return hd:getNumValues(":path") end)
      try(h, "remove while open", function() hd:remove("x-b") end)
      try(h, "trailers handle ok", function() return h:streamInfo():protocol() end)
    end
    function envoy_on_response(h)
      local hd = h:headers()
      local n = 0
      for k, v in pairs(hd) do n = n + 1 end
      try(h, "add after full loop", function() hd:add("x-done", tostring(n > 0)) end)
      for k, v in pairs(hd) do end
      try(h, "third loop ok", function() return select("#", pairs(hd)) end)
    end
    """)
    assert_both(lua_config(code), [Req("GET", "/it")])


def test_adding_to_an_inline_header_appends_to_its_value(envoy_bin):
    """Envoy keeps some names in fixed slots (``content-type``, ``user-agent``, ``:authority``/``host``,
    ``x-forwarded-for``, ...): ``add`` on one that is present appends ``,value`` instead of adding an
    entry; ``host`` is ``:authority`` in a request map. Other names (``cookie``, ``x-custom``,
    ``set-cookie``) get entries."""
    code = r"""
    local NAMES = {"host", "content-type", "user-agent", "cookie", "x-custom", "accept", "x-forwarded-for", "via"}
    local function dump(h, hd, what)
      local out = {}
      for _, k in ipairs(NAMES) do out[#out + 1] = k .. "#" .. hd:getNumValues(k) .. "=" .. tostring(hd:get(k)) end
      h:logInfo(what .. " " .. table.concat(out, " "))
    end
    function envoy_on_request(h)
      local hd = h:headers()
      for _, k in ipairs(NAMES) do hd:add(k, "added") end
      hd:add("content-type", "")
      hd:add("x-envoy-original-path", "first")
      hd:add("x-envoy-original-path", "second")
      h:logInfo("new inline: " .. hd:getNumValues("x-envoy-original-path") .. " " .. hd:get("x-envoy-original-path"))
      h:logInfo("index: " .. hd:getAtIndex("host", 0) .. " " .. tostring(hd:getAtIndex("host", 1)))
      dump(h, hd, "request")
      if hd:get(":path") == "/remove-host" then hd:remove("host") end
    end
    function envoy_on_response(h)
      local hd = h:headers()
      hd:add("content-type", "more")
      hd:add("server", "lua")
      hd:add("set-cookie", "a=1")
      hd:add("set-cookie", "b=2")
      hd:add("cache-control", "no-store")
      h:logInfo("response ct#" .. hd:getNumValues("content-type") .. " sc#" .. hd:getNumValues("set-cookie")
        .. " host=" .. tostring(hd:get("host")))
    end
    """
    hs = [("content-type", "text/a"), ("user-agent", "ua"), ("cookie", "c=1"), ("x-custom", "c"), ("accept", "a")]
    assert_both(lua_config(code), [Req("POST", "/p", b"body", headers=hs), Req("GET", "/remove-host")])


def test_inline_adds_through_the_untraced_first_run(envoy_bin):
    """Adds a hook's first run writes down (tracing off, prelude.lua) are replayed with the same rule."""
    code = r"""
    function envoy_on_request(h)
      h:headers():add("user-agent", "lua")
      h:headers():add("x-forwarded-for", "10.0.0.1")
      h:headers():add("x-plain", "1")
    end
    function envoy_on_response(h)
      h:headers():add("content-type", "lua")
      h:headers():add("x-plain", "1")
    end
    """
    assert_both(lua_config(code), [Req("GET", "/", headers=[("user-agent", "curl")])])


# ---- respond() -----------------------------------------------------------------------------------
def test_the_response_hook_of_a_respond_finds_the_request_handle_dead(envoy_bin):
    """Envoy's filter manager sends a local reply asked for inside a decoder callback only once the
    callback returned, after the Lua filter marked the request handle dead: the
    ``envoy_on_response`` it runs cannot use a request handle (or its headers) kept in a global.
    (From a synchronous ``httpCall``'s answer the reply goes out at once and Envoy's handle is still
    live, with its objects pushed on the wrong coroutine: not probed.)"""
    code = tried(r"""
    saved, saved_headers = nil, nil
    function envoy_on_request(h)
      saved = h
      local p = h:headers():get(":path")
      if p == "/body" then h:body() end
      if p == "/trailers" then h:body(); h:trailers() end
      saved_headers = h:headers()
      h:respond({[":status"] = "403", ["x-from"] = p}, "no")
    end
    function envoy_on_response(h)
      try(h, "handle", function() return saved:headers():get(":path") end)
      try(h, "headers (tail call)", function() return saved_headers:get(":path") end)
      try(h, "headers", function() local v = saved_headers:get(":path") return v end)
      try(h, "add", function() saved:headers():add("x-late", "1") end)
      try(h, "respond again", function() saved:respond({[":status"] = "500"}) end)
      try(h, "stream info", function() return saved:streamInfo():protocol() end)
      h:headers():add("x-response-hook", h:headers():get(":status"))
    end
    """)
    reqs = [Req("GET", "/r"), Req("POST", "/body", b"abc"), Req("POST", "/trailers", b"abc", trailers=[("x-t", "1")])]
    assert_both(with_trailers(lua_config(code)), reqs)


def test_respond_status_and_header_values_edge_cases(envoy_bin):
    code = tried(r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      local statuses = {["/sp"] = " 404 ", ["/plus"] = "+404", ["/float"] = 404.0, ["/frac"] = 404.5,
        ["/hex"] = "0x194", ["/600"] = "600", ["/200"] = 200, ["/599"] = "599", ["/lead0"] = "0404"}
      local s = statuses[p]
      if s ~= nil then
        try(h, "status " .. tostring(s), function() h:respond({[":status"] = s}, "body " .. p) end)
        return
      end
      -- (one name besides :status per table: LuaJIT's string hash seed orders several at random)
      if p == "/upper" then h:respond({[":status"] = "200", ["CONTENT-TYPE"] = "a/b"}, "u") end
      if p == "/number" then h:respond({[":status"] = "200", ["x-n"] = 1.5}, 12345) end
      if p == "/list" then h:respond({[":status"] = "200", ["x-list"] = {1, "two", 3}}, "l") end
      if p == "/empty-list" then h:respond({[":status"] = "200", ["x-none"] = {}}, "e") end
      if p == "/cl" then h:respond({[":status"] = "200", ["content-length"] = "99"}, "five!") end
      if p == "/cl-nobody" then h:respond({[":status"] = "200", ["content-length"] = "3"}) end
      if p == "/304" then h:respond({[":status"] = "304"}, "not modified body") end
      if p == "/204" then h:respond({[":status"] = "204"}, "no content body") end
      if p == "/location" then h:respond({[":status"] = "302", ["location"] = "/elsewhere"}) end
      if p == "/server" then h:respond({[":status"] = "200", ["server"] = "lua"}, "s") end
      if p == "/date" then h:respond({[":status"] = "200", ["date"] = "then"}, "d") end
    end
    """)
    paths = ["/sp", "/plus", "/float", "/frac", "/hex", "/600", "/200", "/599", "/lead0", "/upper", "/number", "/list",
             "/empty-list", "/cl", "/cl-nobody", "/304", "/204", "/location", "/server", "/date"]  # fmt: skip
    assert_both(lua_config(code), [Req("GET", p) for p in paths])


def test_respond_with_a_body_still_coming_and_response_hook_edits(envoy_bin):
    code = r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      if p == "/early" then h:respond({[":status"] = "401"}, "early") end
      if p == "/chunks" then
        for c in h:bodyChunks() do h:logInfo("chunk " .. c:length()) end
        h:logInfo("after chunks")
      end
      if p == "/body-respond" then
        local b = h:body()
        h:respond({[":status"] = "200", ["x-len"] = b:length()}, b:getBytes(0, b:length()):upper())
      end
    end
    function envoy_on_response(h)
      local b = h:body()
      h:logInfo("response " .. h:headers():get(":status") .. " body " .. tostring(b and b:getBytes(0, b:length())))
      if b then b:setBytes("[" .. b:getBytes(0, b:length()) .. "]") end
      h:headers():replace(":status", "202")
    end
    """

    def app(req):
        return Response(200, HeaderMap([("content-type", "text/plain")]), b"upstream got " + req.body)

    reqs = [Req("POST", "/early", b"x" * 1000), Req("POST", "/body-respond", b"hello"), Req("POST", "/chunks", b"abc")]
    assert_both(lua_config(code), reqs, apps={"backend": app})


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


# ---- streamInfo, metadata, connection --------------------------------------------------------------
def test_stream_info_fields_and_dynamic_metadata_edge_cases(envoy_bin):
    code = tried(r"""
    function envoy_on_request(h)
      local si = h:streamInfo()
      h:logInfo("protocol " .. si:protocol())
      -- (ports differ: the harness gives Envoy its own listener port)
      h:logInfo("local " .. si:downstreamLocalAddress():match("^[^:]+") .. " direct local "
        .. si:downstreamDirectLocalAddress():match("^[^:]+"))
      h:logInfo("remote ip " .. si:downstreamRemoteAddress():match("^[^:]+")
        .. " direct " .. si:downstreamDirectRemoteAddress():match("^[^:]+"))
      h:logInfo("sni [" .. si:requestedServerName() .. "] route [" .. si:routeName() .. "] vcluster ["
        .. si:virtualClusterName() .. "]")
      try(h, "ssl", function() return si:downstreamSslConnection() end)
      try(h, "connection ssl", function() return h:connection():ssl() end)
      try(h, "ssl == nil", function() return h:connection():ssl() == nil end)
      local dm = si:dynamicMetadata()
      try(h, "get missing", function() return dm:get("nope") end)
      try(h, "get number", function() return dm:get(5) end)
      try(h, "set number ns", function() dm:set(5, "k", "v") end)
      try(h, "set number key", function() dm:set("ns", 5, "v") end)
      try(h, "set missing value", function() dm:set("ns", "k") end)
      dm:set("ns", "float", 1.5)
      dm:set("ns", "int", 3)
      dm:set("ns", "neg", -0.25)
      dm:set("ns", "big", 2^53)
      dm:set("ns", "bool", false)
      dm:set("ns", "empty", {})
      dm:set("ns", "sparse", {[1] = "a", [3] = "c"})
      dm:set("ns", "str", "s")
      dm:set("ns", "str", "replaced")
      dm:set("other", "x", {y = {z = {1, 2}}})
      try(h, "set nested bad key", function() dm:set("ns", "bad", {[true] = 1}) end)
      try(h, "set nested function", function() dm:set("ns", "bad", {f = print}) end)
      local ns = dm:get("ns")
      h:logInfo("float " .. ns.float .. " int " .. ns.int .. " " .. tostring(ns.int == math.floor(ns.int)) .. " neg " .. ns.neg
        .. " big " .. string.format("%.0f", ns.big) .. " bool " .. tostring(ns.bool) .. " empty " .. type(ns.empty)
        .. " sparse " .. #ns.sparse .. ":" .. tostring(ns.sparse[2]) .. ":" .. ns.sparse[3] .. " str " .. ns.str)
      h:logInfo("other " .. dm:get("other").x.y.z[2])
      local n = 0
      for k, v in pairs(dm) do n = n + 1 end
      h:logInfo("namespaces " .. n)
      for k, v in pairs(dm) do
        try(h, "set while iterating", function() dm:set("ns", "late", 1) end)
        break
      end
    end
    function envoy_on_response(h)
      local ns = h:streamInfo():dynamicMetadata():get("ns")
      h:logInfo("response sees str=" .. ns.str .. " int=" .. ns.int)
      h:logInfo("response route [" .. h:streamInfo():routeName() .. "]")
    end
    """)
    routes = """
              - match: {prefix: "/"}
                name: the-route
                route: {cluster: backend}"""
    assert_both(lua_config(code, routes=routes), [Req("GET", "/si")])


def test_route_metadata_values_and_missing_route(envoy_bin):
    code = tried(r"""
    function envoy_on_request(h)
      local md = h:metadata()
      try(h, "str", function() return md:get("str") end)
      try(h, "num", function() return md:get("num") end)
      try(h, "bool", function() return md:get("flag") end)
      try(h, "null", function() return md:get("nothing") end)
      try(h, "missing", function() return md:get("missing") end)
      try(h, "list", function() local l = md:get("list") return #l .. ":" .. l[1] .. ":" .. l[2].k end)
      try(h, "nested", function() return md:get("nested").a.b end)
      try(h, "number key", function() return md:get(1) end)
      local keys = {}
      for k, v in pairs(md) do keys[#keys + 1] = k .. "=" .. type(v) end
      table.sort(keys)
      h:logInfo("pairs " .. table.concat(keys, " "))
      try(h, "route md", function() return h:route():metadata():get("str") end)
      try(h, "vh md", function() return h:virtualHost():metadata():get("str") end)
    end
    """)
    routes = """
              - match: {prefix: "/md"}
                route: {cluster: backend}
                metadata:
                  filter_metadata:
                    envoy.filters.http.lua:
                      str: text
                      num: 2.5
                      flag: true
                      nothing: null
                      list: [one, {k: v}]
                      nested: {a: {b: deep}}
              - match: {prefix: "/plain"}
                route: {cluster: backend}"""
    assert_both(lua_config(code, routes=routes), [Req("GET", "/md"), Req("GET", "/plain"), Req("GET", "/none")])


def test_yaml_numbers_in_metadata_and_filter_context_are_envoys_struct_values(envoy_bin):
    """Envoy 1.40 keeps a YAML integer as a number only in the int32 range and a YAML float as a
    string (``2.50`` is ``"2.5"``); a list with a null keeps its slots (``#`` counts them)."""
    code = r"""
    local KEYS = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o"}
    function envoy_on_request(h)
      for _, pair in ipairs({{"metadata", h:metadata()}, {"context", h:filterContext()}}) do
        local what, md = pair[1], pair[2]
        local out = {}
        for _, k in ipairs(KEYS) do
          local v = md:get(k)
          out[#out + 1] = k .. "=" .. type(v) .. ":" .. tostring(v)
        end
        h:logInfo(what .. " " .. table.concat(out, " "))
        local p = md:get("p")
        h:logInfo(what .. " list " .. #p .. " " .. type(p[1]) .. " " .. type(p[2]) .. " " .. tostring(p[3]) .. " " .. p[4])
      end
    end
    """
    values = """
                      a: 3000000000
                      b: -5
                      c: 2147483647
                      d: 2147483648
                      e: 007
                      f: +5
                      g: 1.0
                      h: 2.50
                      i: yes
                      j: 0x10
                      k: 1e3
                      l: .inf
                      m: -0
                      n: 1_000
                      o: "12"
                      p: [1, 1.5, null, last]"""
    script = textwrap.indent(textwrap.dedent(code).strip() + "\n", " " * 24)
    routes = f"""
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  envoy.filters.http.lua:
                    "@type": {LUA_PER_ROUTE}
                    source_code:
                      inline_string: |
{script}                    filter_context:{values}
                metadata:
                  filter_metadata:
                    envoy.filters.http.lua:{values}"""
    assert_both(lua_config("-- the route's script runs", routes=routes), [Req("GET", "/")])


# ---- logging and errors ------------------------------------------------------------------------------
def test_log_arguments_and_every_level(envoy_bin):
    code = tried(r"""
    function envoy_on_request(h)
      h:logTrace("trace line")
      h:logDebug("debug line")
      h:logInfo("info line")
      h:logWarn("warn line")
      h:logErr("err line")
      h:logCritical("critical line")
      try(h, "number", function() h:logInfo(12.5) end)
      try(h, "nil", function() h:logInfo(nil) end)
      try(h, "bool", function() h:logInfo(true) end)
      try(h, "none", function() h:logInfo() end)
      try(h, "extra args", function() h:logInfo("a", "b") end)
      h:logInfo("")
      h:logInfo("tab\there")
      h:logInfo("utf8 \u{e9}t\u{e9}")
      h:headers():logWarn("from the headers object")
      h:streamInfo():dynamicMetadata():logErr("from dynamic metadata")
    end
    """)
    assert_both(lua_config(code), [Req("GET", "/")])


def test_error_values_and_where_the_script_fails(envoy_bin):
    code = r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      h:headers():add("x-before-error", "kept")
      if p == "/table" then error({code = 1}) end
      if p == "/nil" then error() end
      if p == "/number" then error(42) end
      if p == "/level0" then error("no position", 0) end
      if p == "/level2" then local function f() error("caller's line", 2) end f() end
      if p == "/tostring" then error(setmetatable({}, {__tostring = function() return "custom" end})) end
      if p == "/after-body" then h:body(); h:headers():add("x-late", "no"); error("after body") end
      if p == "/in-chunks" then for c in h:bodyChunks() do error("in chunk " .. c:length()) end end
      if p == "/pcall" then
        local ok, e = pcall(error, {code = 2})
        h:logInfo("caught " .. type(e) .. " " .. tostring(e.code))
        ok, e = pcall(error)
        h:logInfo("caught nil " .. tostring(e))
      end
      if p == "/assert" then assert(false, "assert message") end
      if p == "/assert-plain" then assert(nil) end
      if p == "/nil-call" then local t = nil; t.x = 1 end
      if p == "/string-arith" then local x = "a" + 1 end
    end
    function envoy_on_response(h)
      h:headers():add("x-response-hook", "ran")
      if h:headers():get("x-fail-response") then error("response failed") end
    end
    """
    paths = ["/table", "/nil", "/number", "/level0", "/level2", "/tostring", "/pcall", "/assert", "/assert-plain",
             "/nil-call", "/string-arith"]  # fmt: skip
    reqs = [Req("GET", p) for p in paths]
    reqs += [Req("POST", "/after-body", b"abc"), Req("POST", "/in-chunks", b"abc")]
    assert_both(lua_config(code), reqs)


def test_hooks_that_are_not_functions_and_scripts_with_one_hook(envoy_bin):
    code = r"""
    envoy_on_request = "not a function"
    function envoy_on_response(h) h:headers():add("x-response-only", "1") end
    """
    assert_both(lua_config(code), [Req("GET", "/")])
    code = r"""
    function envoy_on_request(h) h:headers():add("x-request-only", "1") end
    envoy_on_response = {}
    """
    assert_both(lua_config(code), [Req("GET", "/"), Req("GET", "/direct")])
    assert_both(lua_config("local x = 1 -- no hooks"), [Req("GET", "/")])


def test_a_hook_replaced_at_runtime_is_not_seen(envoy_bin):
    """Envoy looks the hooks up once, after the chunk ran: a script that redefines its global hook
    during a request still gets the first one."""
    code = r"""
    n = 0
    function envoy_on_request(h)
      n = n + 1
      h:logInfo("first hook " .. n)
      envoy_on_request = function(h2) h2:logInfo("second hook") end
      envoy_on_response = function(h2) h2:logInfo("late response hook") end
    end
    """
    assert_both(lua_config(code), [Req("GET", "/"), Req("GET", "/")])


# ---- per-route configuration -----------------------------------------------------------------------
def test_per_route_most_specific_config_wins_and_stat_prefix(envoy_bin):
    filt = lua_filter(
        """
        function envoy_on_request(h) h:headers():add("x-script", "default") end
        function envoy_on_response(h) h:headers():add("x-resp", "default") end
        """,
        extra="""
              stat_prefix: mine
              source_codes:
                resp_only:
                  inline_string: |
                    function envoy_on_response(h) h:headers():add("x-resp", "named") end
                failing:
                  inline_string: |
                    function envoy_on_request(h) error("named script fails") end""",
    )
    routes = f"""
              - match: {{prefix: "/on"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  envoy.filters.http.lua: {{"@type": {LUA_PER_ROUTE}, name: resp_only}}
              - match: {{prefix: "/fail"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  envoy.filters.http.lua: {{"@type": {LUA_PER_ROUTE}, name: failing}}
              - match: {{prefix: "/direct"}}
                direct_response: {{status: 200, body: {{inline_string: "direct"}}}}
                typed_per_filter_config:
                  envoy.filters.http.lua: {{"@type": {LUA_PER_ROUTE}, name: resp_only}}
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}"""
    yaml = config(filt, routes=routes).replace(
        '            - name: vh\n              domains: ["*"]',
        '            - name: vh\n              domains: ["*"]\n              typed_per_filter_config:\n'
        f'                envoy.filters.http.lua: {{"@type": {LUA_PER_ROUTE}, disabled: true}}',
    )
    reqs = [Req("GET", p) for p in ("/on", "/fail", "/direct", "/vh-disabled", "/no-route-matches")]
    assert_both(yaml, reqs)


# ---- routing helpers and the rest of stream info ------------------------------------------------------
def test_upstream_override_host_route_cache_and_drain(envoy_bin):
    """(A *strict* override to a host the cluster lacks is Envoy's 503 ``no healthy upstream``;
    wasmlab's router does not read the override: not probed here.)"""
    code = tried(r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      try(h, "not an ip", function() h:setUpstreamOverrideHost("example.com") end)
      try(h, "ip:port", function() h:setUpstreamOverrideHost("127.0.0.1:8081") end)
      try(h, "strict string", function() h:setUpstreamOverrideHost("127.0.0.1", "yes") end)
      try(h, "nil host", function() h:setUpstreamOverrideHost(nil) end)
      try(h, "ipv6", function() h:setUpstreamOverrideHost("[::1]") end)
      if p == "/loose-other" then h:setUpstreamOverrideHost("127.0.0.9", false) end
      if p == "/reroute" then
        h:headers():replace(":path", "/direct-target")
        h:logInfo("route before clear: " .. h:streamInfo():routeName())
      end
      try(h, "clearRouteCache", function() return h:clearRouteCache() end)
      if p == "/drain" then h:streamInfo():drainConnectionUponCompletion() end
    end
    function envoy_on_response(h)
      h:logInfo("response route " .. h:streamInfo():routeName())
      try(h, "clear on response", function() return h:clearRouteCache() end)
      try(h, "override on response", function() return h:setUpstreamOverrideHost("127.0.0.1") end)
    end
    """)
    routes = """
              - match: {prefix: "/direct-target"}
                name: target
                direct_response: {status: 200, body: {inline_string: "target"}}
              - match: {prefix: "/"}
                name: default
                route: {cluster: backend}"""
    paths = ("/loose-other", "/reroute", "/drain")
    assert_both(lua_config(code, routes=routes), [Req("GET", p) for p in paths])


def test_filter_state_timestamps_and_typed_metadata(envoy_bin):
    code = tried(r"""
    function envoy_on_request(h)
      local fs = h:streamInfo():filterState()
      try(h, "missing", function() return fs:get("nope") end)
      try(h, "set string", function() fs:set("lua.key", "envoy.string", "value") end)
      try(h, "get back", function() return fs:get("lua.key") end)
      try(h, "get field", function() return fs:get("lua.key", "field") end)
      try(h, "set number value", function() fs:set("lua.n", "envoy.string", 5) end)
      try(h, "get n", function() return fs:get("lua.n") end)
      try(h, "timestamp type", function() return type(h:timestamp()) end)
      try(h, "timestamp ms", function() return type(h:timestamp(EnvoyTimestampResolution.MILLISECOND)) end)
      try(h, "timestamp us", function() return h:timestamp(EnvoyTimestampResolution.MICROSECOND) end)
      try(h, "timestampString us", function() return #h:timestampString(EnvoyTimestampResolution.MICROSECOND) end)
      try(h, "timestampString bad", function() return h:timestampString(7) end)
      try(h, "timestampString str", function() return #h:timestampString("0") end)
      try(h, "typed md missing", function() return h:streamInfo():dynamicTypedMetadata("nope") end)
      try(h, "conn dm", function() return h:connectionStreamInfo():dynamicMetadata():get("nope") end)
      try(h, "conn dm set", function() return h:connectionStreamInfo():dynamicMetadata():set("a", "b", "c") end)
      try(h, "base64Decode bad", function() return h:base64Decode("!!!") end)
      try(h, "base64Escape number", function() return h:base64Escape(123) end)
    end
    function envoy_on_response(h)
      try(h, "response sees filter state", function() return h:streamInfo():filterState():get("lua.key") end)
    end
    """)
    assert_both(lua_config(code), [Req("GET", "/")])


def test_filter_state_set_reads_the_value_with_envoys_object_factories(envoy_bin):
    """``filterState():set(key, factory, value)``: a factory Envoy does not have is an error, and
    each factory reads the value its own way (a port, an IP, ``ip:port``, ``true``), failing with
    ``failed to create an object``; ``application_protocols`` objects have no string form."""
    factories = [
        "envoy.string", "envoy.upstream.dynamic_port", "envoy.tcp_proxy.per_connection_idle_timeout_ms",
        "envoy.ratelimit.hits_addend", "envoy.network.ip", "envoy.network.transport_socket.original_dst_address",
        "envoy.filters.listener.original_dst.local_ip", "envoy.network.application_protocols",
        "envoy.tcp_proxy.disable_tunneling", "envoy.network.upstream_subject_alt_names", "no.such.factory",
    ]  # fmt: skip
    values = ["8080", "abc", "-1", "70000", " 80", "1.2.3.4", "::1", "[::1]:80", "1.2.3.4:80", "true", ""]
    lists = "local F = {" + ",".join(f'"{f}"' for f in factories) + "}\n"
    lists += "local V = {" + ",".join(f'"{v}"' for v in values) + "}\n"
    code = (
        lists
        + r"""
    function envoy_on_request(h)
      local fs = h:streamInfo():filterState()
      local i = 0
      for _, f in ipairs(F) do
        local out = {}
        for _, v in ipairs(V) do
          i = i + 1
          local ok, e = pcall(function() fs:set("k" .. i, f, v) end)
          local n = select("#", fs:get("k" .. i))
          out[#out + 1] = "[" .. v .. "]" .. (ok and (n == 1 and ("=" .. fs:get("k" .. i)) or "=none") or e)
        end
        h:logInfo(f .. " " .. table.concat(out, " "))
      end
    end
    """
    )
    assert_both(lua_config(code), [Req("GET", "/")])


def test_strings_with_a_nul_byte_end_there_where_envoy_reads_a_c_string(envoy_bin):
    """Envoy 1.40 reads names and values for ``add``/``replace``/``remove``, ``respond`` and
    ``httpCall`` header tables, the cluster name and dynamic metadata strings as C strings (up to
    the first NUL); ``get``, bodies and ``base64Escape`` keep every byte."""
    code = tried(r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      local hd = h:headers()
      if p == "/a" then
        hd:add("x-v", "a\0b")
        hd:add("x-k\0junk", "v")
        hd:replace("x-r\0x", "r\0r")
        try(h, "get with a NUL", function() return hd:get("x-k\0zzz") end)
        try(h, "get", function() return hd:get("x-v") end)
        try(h, "num", function() return hd:getNumValues("x-k") end)
        hd:add("x-rm", "1")
        hd:remove("x-rm\0tail")
        try(h, "removed", function() return hd:getNumValues("x-rm") end)
        h:streamInfo():dynamicMetadata():set("n\0s", "k\0k", {["i\0j"] = "v\0v", list = {"l\0l"}})
        for k, v in pairs(h:streamInfo():dynamicMetadata()) do
          for k2, v2 in pairs(v) do h:logInfo("dm " .. #k .. " " .. #k2 .. " " .. #v2["i"] .. " " .. #v2.list[1]) end
        end
        try(h, "base64", function() return h:base64Escape("a\0b") end)
        local hh = h:httpCall("auth\0x", {[":method"] = "POST", [":path"] = "/c\0x", [":authority"] = "a",
          ["x-h"] = "h\0h"}, "b\0b", 1000)
        h:logInfo("call " .. hh["x-got"])
      end
      if p == "/respond" then h:respond({[":status"] = "200", ["x-r"] = "r\0r"}, "b\0b") end
    end
    """)

    def app(req):
        return Response(200, HeaderMap([("x-got", f"{req.path} {req.headers.get('x-h')!r} {req.body!r}")]), b"")

    assert_both(lua_config(code, clusters=SIDE_CLUSTER), [Req("GET", "/a"), Req("GET", "/respond")], {"auth": app})


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


# ---- objects as Lua values, and numbers as C++ reads them ---------------------------------------------
def test_objects_as_lua_values_and_number_arguments(envoy_bin):
    """Userdata semantics (equality, no fields, no ipairs), and numbers cast the C++ way:
    ``getAtIndex`` casts a double to ``int`` (NaN, infinities -> INT_MIN: nothing found),
    ``getBytes`` uses ``luaL_checkint`` (int64 truncation, low 32 bits: 2^32 + 1 is 1, NaN is 0)."""
    code = tried(r"""
    function envoy_on_request(h)
      local hd = h:headers()
      try(h, "same object", function() return hd == h:headers() end)
      try(h, "rawequal", function() return rawequal(hd, h:headers()) end)
      try(h, "ipairs", function() for i, v in ipairs(hd) do end return "ok" end)
      try(h, "newindex", function() hd.x = 1 end)
      try(h, "handle newindex", function() h.x = 1 end)
      try(h, "missing method", function() return h.nope end)
      try(h, "call missing", function() h:nope() end)
      try(h, "dot call", function() return h.headers(h):get(":path") end)
      try(h, "type", function() return type(hd) end)
      try(h, "mt type", function() return type(getmetatable(hd)) end)
      try(h, "concat", function() return "x" .. hd end)
      try(h, "arith", function() return hd + 1 end)
      try(h, "compare", function() return hd < hd end)
      try(h, "call object", function() return hd() end)
      try(h, "status on request", function() return hd:get(":status") end)
      try(h, "huge index", function() return hd:getAtIndex(":path", 2^40) end)
      try(h, "nan index", function() return hd:getAtIndex(":path", 0/0) end)
      try(h, "inf index", function() return hd:getAtIndex(":path", 1/0) end)
      try(h, "neg zero", function() return hd:getAtIndex(":path", -0.5) end)
      try(h, "select#", function() return select("#", hd:get("nope")) end)
      try(h, "next on ud", function() return next(hd) end)
      local b = h:body(true)
      b:setBytes("abcdef")
      try(h, "getBytes nan", function() return b:getBytes(0/0, 1) end)
      try(h, "getBytes inf len", function() return b:getBytes(0, 1/0) end)
      try(h, "getBytes -inf", function() return b:getBytes(-1/0, 1) end)
      try(h, "getBytes 2^32", function() return b:getBytes(2^32, 1) end)
      try(h, "getBytes 2^32+1", function() return b:getBytes(2^32 + 1, 1) end)
      try(h, "getBytes 1.9", function() return b:getBytes(1.9, 1.9) end)
      try(h, "getBytes -0.9", function() return b:getBytes(-0.9, 1) end)
      try(h, "timeout nan", function() return h:httpCall("nope", {}, nil, 0/0) end)
      try(h, "timeout 2^40", function() return h:httpCall("nope", {}, nil, 2^40) end)
      try(h, "tostring type", function() return (tostring(hd):gsub("0x%x+", "ADDR")) end)
      try(h, "handle tostring", function() return (tostring(h):gsub("0x%x+", "ADDR")) end)
    end
    """)
    assert_both(lua_config(code), [Req("GET", "/")])


# ---- stats() -------------------------------------------------------------------------------------------
def test_stats_arguments_and_uint64_gauges(envoy_bin):
    """A negative (or NaN) amount is an error (``counter add amount must be non-negative``, and the
    same for gauge add/sub/set and histogram values); gauges are uint64 (``dec()`` at 0 wraps);
    a histogram unit must be one Envoy knows."""
    code = tried(r"""
    function envoy_on_request(h)
      local s = h:stats()
      try(h, "empty name", function() return s:counter(""):value() end)
      try(h, "number name", function() return s:counter(5):value() end)
      try(h, "dots", function() local c = s:counter("a.b.c") c:inc() return c:value() end)
      try(h, "add neg", function() local c = s:counter("c1") c:add(-1) return c:value() end)
      try(h, "add frac", function() local c = s:counter("c2") c:add(1.7) return c:value() end)
      try(h, "add nan", function() local c = s:counter("c3") c:add(0/0) return c:value() end)
      try(h, "add string", function() local c = s:counter("c4") c:add("3") return c:value() end)
      try(h, "add nothing", function() local c = s:counter("c5") c:add() return c:value() end)
      try(h, "gauge sub", function() local g = s:gauge("g1") g:sub(5) return g:value() end)
      try(h, "gauge set neg", function() local g = s:gauge("g2") g:set(-3) return g:value() end)
      try(h, "gauge set frac", function() local g = s:gauge("g3") g:set(2.9) return g:value() end)
      try(h, "gauge dec", function() local g = s:gauge("g4") g:dec() return g:value() end)
      try(h, "hist bad unit", function() return s:histogram("h1", "bogus") end)
      try(h, "hist ms", function() local x = s:histogram("h2", "ms") x:recordValue(5) return "ok" end)
      try(h, "hist neg", function() local x = s:histogram("h3") x:recordValue(-5) return "ok" end)
      try(h, "same counter", function() return rawequal(s:counter("same"), s:counter("same")) end)
      try(h, "counter upper", function() local c = s:counter("UP.Case") c:inc() return c:value() end)
      try(h, "weird chars", function() local c = s:counter("a:b=c d") c:inc() return c:value() end)
    end
    """)
    assert_both(lua_config(code), [Req("GET", "/")])


# ---- load errors --------------------------------------------------------------------------------------
def _load_error(yaml: str) -> tuple[str, str]:
    """(wasmlab's ConfigError text, Envoy's refusal text) for a config both must refuse."""
    from wasmlab import Proxy
    from wasmlab.envoy import run
    from wasmlab.errors import ConfigError, EnvoyFailed

    with pytest.raises(ConfigError) as ours:
        Proxy.from_yaml(yaml, workers=1)
    with pytest.raises(EnvoyFailed) as theirs:
        run(yaml, workers=1)
    return str(ours.value), str(theirs.value)


def _envoy_load_message(theirs: str) -> str:
    import re

    msg = re.search(r"script load error: .*?(?=`| initializing|$)", theirs)
    assert msg is not None, theirs
    return msg.group(0).strip()


@pytest.mark.parametrize(
    "code",
    [
        "error('no position', 0)\n",
        "local t = nil\nreturn t.x\n",
        "function envoy_on_request(h) h:logInfo('x') end\nenvoy_on_request()\n",
        "coroutine.yield()\n",
        "local function f()\n  coroutine.yield(1)\nend\nf()\n",
        "local s = 'unfinished\n",
        "goto nowhere\n",
    ],
    ids=["level0", "index-nil", "hook-without-handle", "yield", "nested-yield", "unfinished", "goto"],
)
def test_more_script_load_errors(envoy_bin, code):
    ours, theirs = _load_error(lua_config(code))
    assert _envoy_load_message(theirs) in ours


def test_a_missing_module_is_a_load_error(envoy_bin):
    """(The search paths listed after ``not found:`` differ: wasmlab's ``./`` is the YAML's folder.)"""
    ours, theirs = _load_error(lua_config("require('no_such_module_for_wasmlab')\n"))
    assert _envoy_load_message(theirs).split("not found:")[0] in ours


@pytest.mark.parametrize("code", ["error({code = 1})\n", "error()\n"], ids=["table", "nil"])
def test_a_load_error_without_a_message(envoy_bin, code):
    """Envoy 1.40 *crashes* on a top-level error whose value is not a string (it builds its
    exception from a null message); wasmlab refuses the config with Envoy's runtime wording."""
    ours, theirs = _load_error(lua_config(code))
    assert "script load error: unspecified lua error" in ours
    assert "script load error" not in theirs  # (a backtrace, not a refusal)


def test_load_errors_in_named_and_route_scripts_name_their_yaml_path(envoy_bin):
    filt = lua_filter(
        "function envoy_on_request(h) end",
        extra="""
              source_codes:
                broken:
                  inline_string: "error('named boom')\"""",
    )
    ours, theirs = _load_error(config(filt))
    assert _envoy_load_message(theirs) in ours
    assert "source_codes" in ours
    routes = f"""
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  envoy.filters.http.lua:
                    "@type": {LUA_PER_ROUTE}
                    source_code: {{inline_string: "error('route boom')"}}"""
    ours, theirs = _load_error(lua_config("function envoy_on_request(h) end", routes=routes))
    assert _envoy_load_message(theirs) in ours
    assert "source_code" in ours


def test_respond_and_http_call_header_tables_join_inline_names(envoy_bin):
    """A ``respond``/``httpCall`` header table builds an Envoy header map: a list for an inline
    name is one ``a,b`` entry (``:status`` too, so ``{"200", "201"}`` is not a status), and in an
    ``httpCall`` table ``host`` is ``:authority``."""
    code = tried(r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      if p == "/status-list" then try(h, "status list", function() h:respond({[":status"] = {"200", "201"}}, "x") end) end
      if p == "/ct-list" then h:respond({[":status"] = "200", ["content-type"] = {"a/b", "c/d"}}, "x") end
      if p == "/cache-list" then h:respond({[":status"] = "200", ["cache-control"] = {"a", "b"}}, "x") end
      if p == "/call-host" then
        try(h, "host instead of authority", function()
          local hd = h:httpCall("auth", {[":method"] = "GET", [":path"] = "/x", host = "via-host"}, nil, 1000)
          return hd["x-host"]
        end)
        try(h, "ua list", function()
          local hd = h:httpCall("auth", {[":method"] = "GET", [":path"] = "/x", [":authority"] = "a", ["user-agent"] = {"u1", "u2"}}, nil, 1000)
          return hd["x-ua"]
        end)
      end
    end
    """)

    def app(req):
        ua = "|".join(v for k, v in req.headers if k == "user-agent")
        return Response(200, HeaderMap([("x-host", str(req.headers.get("host"))), ("x-ua", ua)]), b"")

    reqs = [Req("GET", p) for p in ("/status-list", "/ct-list", "/cache-list", "/call-host")]
    assert_both(lua_config(code, clusters=SIDE_CLUSTER), reqs, apps={"auth": app})


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


def test_replacing_host_picks_another_virtual_host(envoy_bin):
    """``host`` is ``:authority`` in a request map: replacing it re-routes (the route cache is cleared)."""
    code = r"""
    function envoy_on_request(h)
      if h:headers():get(":path") == "/move" then h:headers():replace("host", "b.example") end
      h:logInfo("authority " .. h:headers():get(":authority") .. " host#" .. h:headers():getNumValues("host"))
    end
    """
    yaml = lua_config(code).replace(
        '            - name: vh\n              domains: ["*"]',
        "            - name: b\n"
        '              domains: ["b.example"]\n'
        "              routes:\n"
        '              - match: {prefix: "/"}\n'
        '                direct_response: {status: 200, body: {inline_string: "vhost b"}}\n'
        '            - name: vh\n              domains: ["*"]',
    )
    assert_both(yaml, [Req("GET", "/move"), Req("GET", "/stay")])
