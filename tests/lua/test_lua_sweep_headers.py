"""A sweep of the Lua filter's header API and respond(), edge cases first, against real Envoy 1.40
(``lua_helpers.assert_both`` says what is compared and what scripts avoid).
"""

from __future__ import annotations

import pytest

from helpers import with_trailers
from lua_helpers import SIDE_CLUSTER, Req, assert_both, lua_config, tried
from wasmlab.http import HeaderMap, Response

pytestmark = pytest.mark.envoy


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
