"""The Lua filter's headers, respond() and bodies against real Envoy 1.40, the same YAML, script,
requests and upstream apps on both sides (``lua_helpers.assert_both`` says what is compared and
what scripts avoid).
"""

from __future__ import annotations

import json

import pytest

from helpers import with_trailers
from lua_helpers import LUA_EXAMPLES, Req, assert_both, lua_config
from wasmlab.http import HeaderMap, Response

pytestmark = pytest.mark.envoy


def _echo_json(req) -> Response:
    return Response(
        200,
        HeaderMap([("content-type", "application/json")]),
        json.dumps(
            {
                "path": req.path,
                "headers": req.headers.to_list(),
                "body": req.body.decode("latin-1"),
                "trailers": req.trailers.to_list() if req.trailers else None,
            }
        ).encode(),
    )


# ---- headers ---------------------------------------------------------------------------------------
def test_add_header_example(envoy_bin):
    assert_both(str(LUA_EXAMPLES / "add_header.yaml"), [Req("GET", "/hello"), Req("GET", "/direct")])


def test_header_map_api(envoy_bin):
    code = r"""
    function envoy_on_request(h)
      local hd = h:headers()
      h:logInfo("x-multi=" .. hd:get("x-multi") .. " n=" .. hd:getNumValues("x-multi")
        .. " [1]=" .. hd:getAtIndex("x-multi", 1) .. " [5]=" .. tostring(hd:getAtIndex("x-multi", 5))
        .. " missing=" .. tostring(hd:get("nope")) .. " case=" .. hd:get("X-Single"))
      hd:add("x-num", 10 / 4)
      hd:add("X-Upper", "v")
      hd:replace("x-multi", "one")
      hd:remove("x-single")
      hd:replace(":path", hd:get(":path") .. "?added=1")
      for k, v in pairs(hd) do
        if k ~= "x-request-id" then h:logInfo("entry " .. k .. "=" .. v) end
      end
      local it = pairs(hd)
      local ok, e = pcall(function() hd:add("x", "y") end)
      h:logInfo("while iterating: " .. e)
      ok, e = pcall(function() return pairs(hd) end)
      h:logInfo("second iterator: " .. e)
      for _ in it do end
      hd:add("x-after-iteration", "ok")
    end
    function envoy_on_response(h)
      h:headers():add("x-resp", h:headers():get(":status"))
      h:headers():replace("content-type", "text/x-lua")
    end
    """
    assert_both(lua_config(code), [Req("GET", "/h", headers=[("x-multi", "a"), ("x-multi", "b"), ("x-single", "s")])])


def test_header_argument_errors_carry_luajit_wording(envoy_bin):
    code = r"""
    local function try(h, what, f)
      local ok, e = pcall(f)
      h:logInfo(what .. ": " .. tostring(e))
    end
    function envoy_on_request(h)
      local hd = h:headers()
      try(h, "add nil", function() hd:add(nil, "x") end)
      try(h, "add missing", function() hd:add("k") end)
      try(h, "add bool", function() hd:add("k", true) end)
      try(h, "get missing", function() local v = hd:get() return v end)
      try(h, "getAtIndex", function() local v = hd:getAtIndex("k") return v end)
      try(h, "tostring(no value)", function() return tostring(hd:get("nope")) end)
      try(h, "tail call", function() return hd:replace("x") end)
      try(h, "bad self", function() local v = hd.get("x") return v end)
      try(h, "wrong object", function() local v = hd.add(h, "a", "b") return v end)
    end
    """
    assert_both(lua_config(code), [Req("GET", "/")])


# ---- respond() -----------------------------------------------------------------------------------
def test_respond_on_the_request_path_goes_through_the_encoders(envoy_bin):
    code = r"""
    function envoy_on_request(h)
      if h:headers():get(":path") == "/deny" then
        h:respond({[":status"] = "403", ["x-reason"] = "denied"}, "nope\n")
        error("never reached: respond() ends the script")
      end
    end
    function envoy_on_response(h)
      h:headers():add("x-seen-by-response-hook", h:headers():get(":status"))
      h:logInfo("response " .. h:headers():get(":status"))
    end
    """
    assert_both(lua_config(code), [Req("GET", "/deny"), Req("GET", "/ok"), Req("GET", "/direct")])


def test_respond_variants(envoy_bin):
    code = r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      if p == "/nobody" then h:respond({[":status"] = "204"})
      elseif p == "/empty" then h:respond({[":status"] = "200", ["content-type"] = "text/html"}, "")
      elseif p == "/number" then h:respond({[":status"] = 418}, "teapot")
      elseif p == "/list" then h:respond({[":status"] = "200", ["set-cookie"] = {"a=1", "b=2"}}, "list")
      elseif p == "/ct" then h:respond({[":status"] = "200", ["Content-Type"] = "application/json"}, "{}")
      elseif p == "/post" then h:respond({[":status"] = "201"}, "got it")
      elseif p == "/head" then h:respond({[":status"] = "200"}, "head body")
      end
    end
    """
    reqs = [Req("GET", p) for p in ("/nobody", "/empty", "/number", "/list", "/ct")]
    assert_both(lua_config(code), [*reqs, Req("POST", "/post", b"ignored body"), Req("HEAD", "/head")])


def test_respond_errors(envoy_bin):
    code = r"""
    local function try(h, what, f)
      local ok, e = pcall(f)
      h:logInfo(what .. ": " .. tostring(e))
    end
    function envoy_on_request(h)
      try(h, "status 99", function() h:respond({[":status"] = "99"}) end)
      try(h, "no status", function() h:respond({["x"] = "y"}) end)
      try(h, "not a table", function() h:respond("x") end)
      try(h, "body table", function() h:respond({[":status"] = "200"}, {}) end)
      try(h, "bool value", function() h:respond({[":status"] = true}) end)
      try(h, "number key", function() h:respond({[1] = "x"}) end)
      for _ in h:bodyChunks() do end
      try(h, "after streaming", function() h:respond({[":status"] = "200"}) end)
    end
    function envoy_on_response(h)
      try(h, "response path", function() h:respond({[":status"] = "200"}) end)
    end
    """
    assert_both(lua_config(code), [Req("POST", "/", b"abc")])


# ---- bodies --------------------------------------------------------------------------------------
def test_body_buffering_and_set_bytes(envoy_bin):
    code = r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      if p == "/wrap" then
        local b = h:body(true)
        h:logInfo("wrapped length " .. b:length())
        b:setBytes("created")
      else
        local b = h:body()
        h:logInfo("body " .. tostring(b and b:length()))
        if b then
          h:logInfo("bytes " .. b:getBytes(1, 3) .. " set " .. b:setBytes("[" .. b:getBytes(0, b:length()) .. "]"))
          local ok, e = pcall(function() return b:getBytes(0, 100) end)
          h:logInfo("range: " .. e)
        end
        h:headers():add("x-after-body", "still held")
      end
    end
    function envoy_on_response(h)
      local b = h:body()
      h:logInfo("response body " .. b:length())
      b:setBytes((b:getBytes(0, b:length()):gsub("x%-forwarded%-proto", "X-FP")))
    end
    """
    reqs = [Req("POST", "/p", b"hello"), Req("GET", "/nobody"), Req("GET", "/wrap")]
    assert_both(lua_config(code), reqs)


def test_body_chunks(envoy_bin):
    code = r"""
    function envoy_on_request(h)
      local n = 0
      for chunk in h:bodyChunks() do
        n = n + 1
        h:logInfo("chunk " .. n .. " length " .. chunk:length())
        if chunk:length() > 0 then
          chunk:setBytes(string.upper(chunk:getBytes(0, chunk:length())))
        end
      end
      local ok, e = pcall(function() h:headers():add("x-late", "1") end)
      h:logInfo("after chunks: " .. e)
      ok, e = pcall(function() return h:body() end)
      h:logInfo("body(): " .. e)
    end
    function envoy_on_response(h)
      for chunk in h:bodyChunks() do h:logInfo("response chunk " .. chunk:length()) end
    end
    """
    assert_both(lua_config(code), [Req("POST", "/c", b"hello chunks"), Req("GET", "/direct")])


def test_body_rewrite_example(envoy_bin):
    app = lambda req: Response(200, HeaderMap([("content-type", "text/plain")]), b"hello " + req.body)  # noqa: E731
    reqs = [Req("POST", "/login", b"user=ann&password=secret"), Req("GET", "/")]
    assert_both(str(LUA_EXAMPLES / "body_rewrite.yaml"), reqs, apps={"backend": app})


def test_buffer_limits_answer_413_and_500(envoy_bin):
    code = r"""
    function envoy_on_request(h)
      if h:headers():get(":path") == "/req" then h:logInfo("request body " .. h:body():length()) end
    end
    function envoy_on_response(h)
      if h:headers():get("x-big") then h:logInfo("response body " .. h:body():length()) end
    end
    """
    yaml = lua_config(code, listener_extra="\n    per_connection_buffer_limit_bytes: 1024")

    def app(req):
        if req.path == "/resp":
            return Response(200, HeaderMap([("x-big", "1")]), b"x" * 3000)
        return Response(200, HeaderMap(), b"ok")

    reqs = [Req("POST", "/req", b"y" * 3000), Req("POST", "/req", b"y" * 100), Req("GET", "/resp")]
    assert_both(yaml, reqs, apps={"backend": app})


def test_trailers_both_directions(envoy_bin):
    code = r"""
    function envoy_on_request(h)
      local b = h:body()
      local t = h:trailers()
      h:logInfo("body " .. tostring(b and b:length()) .. " trailers " .. tostring(t ~= nil))
      if t then
        for k, v in pairs(t) do h:logInfo("trailer " .. k .. "=" .. v) end
        t:add("x-added", "by-lua")
        t:replace("x-trailer", "changed")
      end
    end
    function envoy_on_response(h)
      for chunk in h:bodyChunks() do h:logInfo("response chunk " .. chunk:length()) end
      local t = h:trailers()
      h:logInfo("response trailers " .. tostring(t ~= nil))
      if t then t:add("x-response-trailer", "by-lua") end
    end
    """

    def app(req):
        r = _echo_json(req)
        if req.path == "/rt":
            r.trailers = HeaderMap([("x-upstream-trailer", "t1")])
        return r

    reqs = [Req("POST", "/t", b"hello", trailers=[("x-trailer", "tv")]), Req("POST", "/nt", b"x"), Req("GET", "/rt")]
    assert_both(with_trailers(lua_config(code)), reqs, apps={"backend": app})
