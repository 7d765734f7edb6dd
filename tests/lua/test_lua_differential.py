"""The Lua filter against real Envoy 1.40: the same YAML, the same script, the same requests and
upstream apps on both sides, one worker. Each test compares status, headers, body and trailers
(``assert_same``), the ``[lua] script log:`` lines, and the Lua counters with Envoy's ``/stats``.

Scripts avoid what is random in *both* Envoy and wasmlab: LuaJIT seeds its string hash per
state, so the order of a Lua table with several string keys (a ``respond()`` header table, an
``httpCall`` header table, ``pairs()`` over a table) differs from run to run — tests sort, or use
one key.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import config, with_trailers
from lua_helpers import LUA_PER_ROUTE, SIDE_CLUSTER, Req, assert_both, lua_config, lua_filter
from wasmlab import Proxy
from wasmlab.errors import ConfigError, EnvoyFailed
from wasmlab.http import HeaderMap, Response

pytestmark = pytest.mark.envoy

CONFIGS = Path(__file__).resolve().parents[2] / "notebooks" / "configs" / "lua"


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
    assert_both(str(CONFIGS / "add_header.yaml"), [Req("GET", "/hello"), Req("GET", "/direct")])


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
    assert_both(str(CONFIGS / "body_rewrite.yaml"), reqs, apps={"backend": app})


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


# ---- httpCall ------------------------------------------------------------------------------------
def _auth_app(req) -> Response:
    ok = req.headers.get("authorization") == "Bearer good"
    headers = HeaderMap([("x-user", "ann" if ok else "nobody"), ("x-dup", "1"), ("x-dup", "2")])
    return Response(
        200 if ok else 401, headers, json.dumps({"path": req.path, "headers": req.headers.to_list()}).encode()
    )


def test_auth_httpcall_example(envoy_bin):
    reqs = [
        Req("GET", "/a", headers={"authorization": "Bearer good"}),
        Req("GET", "/b", headers={"authorization": "bad"}),
        Req("GET", "/public"),
    ]
    assert_both(str(CONFIGS / "auth_httpcall.yaml"), reqs, apps={"auth": _auth_app})


def test_http_call_sync_async_and_options(envoy_bin):
    code = r"""
    local function sorted(t)
      local keys = {}
      for k, v in pairs(t) do
        if k == "x-envoy-upstream-service-time" then v = "<ms>" end  -- a timing
        keys[#keys + 1] = k .. "=" .. (type(v) == "table" and table.concat(v, "|") or v)
      end
      table.sort(keys)
      return table.concat(keys, " ")
    end
    function envoy_on_request(h)
      local hd, body = h:httpCall("auth", {[":method"] = "POST", [":path"] = "/check", [":authority"] = "auth"},
                                  "payload", 5000)
      h:logInfo("sync: " .. sorted(hd) .. " body=" .. body)
      hd, body = h:httpCall("auth", {[":method"] = "GET", [":path"] = "/dup", [":authority"] = "auth"}, nil,
                            {timeout_ms = 0, return_duplicate_headers = true, send_xff = false})
      h:logInfo("options: " .. sorted(hd) .. " body=" .. body)
      h:logInfo("async returns " .. select("#", h:httpCall("auth", {[":method"] = "GET", [":path"] = "/async", [":authority"] = "auth"}, nil, 0, true)))
      h:httpCall("auth", {[":method"] = "GET", [":path"] = "/async2", [":authority"] = "auth"}, nil, {asynchronous = true})
      h:headers():add("x-after-calls", "1")
    end
    function envoy_on_response(h)
      local hd = h:httpCall("auth", {[":method"] = "GET", [":path"] = "/from-response", [":authority"] = "auth"}, nil, 1000)
      h:headers():add("x-call-status", hd[":status"])
    end
    """
    calls: list[str] = []

    def auth(req):
        calls.append(req.path)
        return _auth_app(req)

    assert_both(
        lua_config(code, clusters=SIDE_CLUSTER), [Req("GET", "/", headers={"authorization": "x"})], {"auth": auth}
    )


def test_http_call_failures_and_errors(envoy_bin):
    code = r"""
    local function try(h, what, f)
      local ok, e = pcall(f)
      h:logInfo(what .. ": " .. tostring(e))
    end
    local H = {[":method"] = "GET", [":path"] = "/", [":authority"] = "x"}
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      if p == "/errors" then
        try(h, "cluster", function() h:httpCall("nope", H, nil, 10) end)
        try(h, "headers", function() h:httpCall("auth", {[":path"] = "/"}, nil, 10) end)
        try(h, "timeout", function() h:httpCall("auth", H, nil, -1) end)
        try(h, "no timeout", function() h:httpCall("auth", H, nil) end)
        try(h, "async flag", function() h:httpCall("auth", H, nil, 10, "yes") end)
        try(h, "option key", function() h:httpCall("auth", H, nil, {foo = 1}) end)
        try(h, "option timeout", function() h:httpCall("auth", H, nil, {timeout_ms = -5}) end)
        return
      end
      local hd, body = h:httpCall(p == "/dead" and "backend" or "auth", H, nil, p == "/slow" and 100 or 2000)
      h:logInfo(p .. ": " .. hd[":status"] .. " " .. tostring(hd["content-type"]) .. " " .. tostring(body))
    end
    """
    import time

    def slow(req):
        time.sleep(0.6)
        return Response(200, HeaderMap(), b"late")

    reqs = [Req("GET", "/errors"), Req("GET", "/slow")]
    assert_both(lua_config(code, clusters=SIDE_CLUSTER), reqs, apps={"auth": slow})
    yaml = lua_config(
        code,
        clusters=SIDE_CLUSTER,
        routes='\n              - match: {prefix: "/"}\n                direct_response: {status: 200}',
    )
    assert_both(yaml, [Req("GET", "/dead")], apps={"backend": None})


# ---- metadata, routes ------------------------------------------------------------------------------
def test_dynamic_metadata_round_trip(envoy_bin):
    code = r"""
    function envoy_on_request(h)
      local dm = h:streamInfo():dynamicMetadata()
      dm:set("wasmlab.test", "user", "ann")
      dm:set("wasmlab.test", "n", 42)
      dm:set("wasmlab.test", "list", {1, "two", nil, true})
      dm:set("wasmlab.test", "nested", {a = {b = "c"}})
      dm:set("wasmlab.test", "gone", nil)
      local ok, e = pcall(function() dm:set("wasmlab.test", "f", function() end) end)
      h:logInfo("function: " .. e)
      ok, e = pcall(function() dm:set("wasmlab.test", "mixed", {1, x = 2}) end)
      h:logInfo("mixed: " .. e)
      local copy = dm:get("wasmlab.test")
      copy.user = "changed-in-the-copy-only"
      h:logInfo("missing namespace: " .. select("#", dm:get("nope")))
    end
    function envoy_on_response(h)
      local md = h:streamInfo():dynamicMetadata():get("wasmlab.test")
      h:logInfo("user=" .. md.user .. " n=" .. md.n .. " list=" .. #md.list .. ":" .. md.list[2] .. ":"
        .. tostring(md.list[3]) .. ":" .. tostring(md.list[4]) .. " nested=" .. md.nested.a.b .. " gone=" .. tostring(md.gone))
      for ns, t in pairs(h:streamInfo():dynamicMetadata()) do h:logInfo("namespace " .. ns .. " user " .. t.user) end
      h:headers():add("x-user", md.user)
    end
    """
    assert_both(lua_config(code), [Req("GET", "/")])


def _per_route_yaml() -> str:
    filt = """
          - name: my.lua
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
              filter_context: {who: filter-level}
              default_source_code:
                inline_string: |
                  function envoy_on_request(h)
                    h:headers():add("x-script", "default")
                    h:logInfo("default: md=" .. tostring(h:metadata():get("k")) .. " route=" .. tostring(h:route():metadata():get("k"))
                      .. " vh=" .. tostring(h:virtualHost():metadata():get("v")) .. " ctx=" .. h:filterContext():get("who"))
                  end
                  function envoy_on_response(h) h:headers():add("x-response-script", "default") end
              source_codes:
                named:
                  inline_string: |
                    function envoy_on_request(h)
                      h:headers():add("x-script", "named")
                      h:logInfo("named: ctx=" .. h:filterContext():get("who") .. " n=" .. h:filterContext():get("n"))
                    end"""
    routes = f"""
              - match: {{prefix: "/named"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  my.lua:
                    "@type": {LUA_PER_ROUTE}
                    name: named
                    filter_context: {{who: route, n: 5}}
              - match: {{prefix: "/nosuch"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  my.lua: {{"@type": {LUA_PER_ROUTE}, name: nosuch}}
              - match: {{prefix: "/off"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  my.lua: {{"@type": {LUA_PER_ROUTE}, disabled: true}}
              - match: {{prefix: "/inline"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  my.lua:
                    "@type": {LUA_PER_ROUTE}
                    source_code:
                      inline_string: |
                        function envoy_on_request(h) h:headers():add("x-script", "route-inline") end
                        function envoy_on_response(h) h:headers():add("x-response-script", "route-inline") end
              - match: {{prefix: "/meta"}}
                name: meta-route
                route: {{cluster: backend}}
                metadata:
                  filter_metadata:
                    my.lua: {{k: route-md}}
              - match: {{prefix: "/fallback"}}
                route: {{cluster: backend}}
                metadata:
                  filter_metadata:
                    envoy.filters.http.lua: {{k: fallback-md}}
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}"""
    y = config(filt, routes=routes)
    return y.replace(
        '            - name: vh\n              domains: ["*"]',
        '            - name: vh\n              domains: ["*"]\n              metadata:\n                filter_metadata:\n'
        "                  my.lua: {v: vh-md}",
    )


def test_per_route_scripts_disabled_and_metadata(envoy_bin):
    paths = ["/named", "/nosuch", "/off", "/inline", "/meta", "/fallback", "/other"]
    assert_both(_per_route_yaml(), [Req("GET", p) for p in paths])


def test_header_edits_clear_the_route_cache(envoy_bin):
    routes = """
              - match: {prefix: "/new"}
                direct_response: {status: 200, body: {inline_string: "rerouted\\n"}}
              - match: {prefix: "/"}
                route: {cluster: backend}"""
    code = r"""
    function envoy_on_request(h)
      if h:headers():get(":path") == "/old" then h:headers():replace(":path", "/new") end
      if h:headers():get(":path") == "/clear" then h:headers():replace(":path", "/new") h:clearRouteCache() end
    end
    """
    assert_both(lua_config(code, routes=routes), [Req("GET", "/old"), Req("GET", "/x")])
    off = "\n              clear_route_cache: false"
    assert_both(lua_config(code, off, routes=routes), [Req("GET", "/old"), Req("GET", "/clear")])


# ---- errors ----------------------------------------------------------------------------------------
def test_runtime_errors_fail_open_and_count(envoy_bin):
    code = r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      if p == "/err" then
        h:headers():add("x-before-error", "kept")
        local t = nil
        t.x = 1
      elseif p == "/after-body" then
        local b = h:body()
        h:headers():add("x-body", b:length())
        error("after the body")
      elseif p == "/table" then
        error({code = 1})
      elseif p == "/number" then
        error(42)
      end
    end
    function envoy_on_response(h)
      h:headers():add("x-response-hook", "ran")
      if h:headers():get(":status") == "200" and h:headers():get("x-fail-response") then error("response side") end
    end
    """
    app = lambda req: Response(200, HeaderMap([("x-fail-response", "1")] if req.path == "/resp" else []), b"ok")  # noqa: E731
    reqs = [
        Req("GET", "/err"),
        Req("POST", "/after-body", b"12345"),
        Req("GET", "/table"),
        Req("GET", "/number"),
        Req("GET", "/resp"),
    ]
    ours, theirs = assert_both(lua_config(code, "\n              stat_prefix: mine"), reqs, apps={"backend": app})
    assert ours.stats["http.ingress.lua.mine.errors"] == theirs.stats["http.ingress.lua.mine.errors"] == 5


def test_unexpected_yield_and_stale_objects(envoy_bin):
    code = r"""
    stash = nil
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      if p == "/yield" then
        coroutine.yield()
      elseif p == "/stale" then
        local hd = h:headers()
        local si = h:streamInfo()
        local b = h:body()
        local ok, e = pcall(function() hd:add("x", "y") end)
        h:logInfo("headers after body(): " .. e)
        ok, e = pcall(function() return si:protocol() end)
        h:logInfo("streamInfo after body(): " .. e)
        h:headers():add("x-fresh", "works")
      elseif p == "/stash" then
        stash = h
      elseif p == "/use" then
        stash:logInfo("a handle from an earlier request")
      elseif p == "/pcall-yield" then
        local ok, n = pcall(function() return h:body():length() end)
        h:logInfo("pcall across a yield: " .. tostring(ok) .. " " .. tostring(n))
      end
    end
    """
    reqs = [
        Req("GET", "/yield"),
        Req("POST", "/stale", b"abc"),
        Req("GET", "/stash"),
        Req("GET", "/use"),
        Req("POST", "/pcall-yield", b"12"),
    ]
    assert_both(lua_config(code), reqs)


def _load_error(yaml: str) -> tuple[str, str]:
    with pytest.raises(ConfigError) as ours:
        Proxy.from_yaml(yaml, workers=1)
    from wasmlab.envoy import run

    with pytest.raises(EnvoyFailed) as theirs:
        run(yaml, workers=1)
    return str(ours.value), str(theirs.value)


@pytest.mark.parametrize(
    "code",
    [
        "function envoy_on_request(h)\n  local x = = 1\nend\n",
        "\nfunction envoy_on_request(h)\nend\nerror('top level boom')\n",
        "function envoy_on_request(h)\n  h:logInfo('x'\nend\n",
    ],
    ids=["syntax", "top-level-error", "unclosed-call"],
)
def test_script_load_errors_reject_the_config(envoy_bin, code):
    ours, theirs = _load_error(lua_config(code))
    msg = re.search(r"script load error: .*?(?=`| initializing|$)", theirs)
    assert msg is not None, theirs
    assert msg.group(0).strip() in ours
    assert "default_source_code" in ours  # wasmlab also names the YAML path


def test_inline_code_and_default_source_code_together(envoy_bin):
    ours, theirs = _load_error(lua_config("x = 1", "\n              inline_code: 'y = 2'"))
    text = "Only one of `inline_code` or `default_source_code` can be set for the Lua filter."
    assert text in theirs and text in ours


# ---- the rest of the handle API ------------------------------------------------------------------
def test_logging_levels_and_objects_that_log(envoy_bin):
    code = r"""
    function envoy_on_request(h)
      h:logTrace("trace") h:logDebug("debug") h:logInfo("info") h:logWarn("warn") h:logErr("err") h:logCritical("critical")
      h:logInfo(42)
      h:headers():logInfo("from the header map")
      h:streamInfo():logWarn("from stream info")
      local ok, e = pcall(function() h:logInfo(nil) end)
      h:logInfo(e)
    end
    """
    assert_both(lua_config(code), [Req("GET", "/")])


def test_stream_info_connection_and_filter_state(envoy_bin):
    code = r"""
    function envoy_on_request(h)
      local si = h:streamInfo()
      h:logInfo("protocol " .. si:protocol() .. " route [" .. si:routeName() .. "] vc [" .. si:virtualClusterName()
        .. "] sni [" .. si:requestedServerName() .. "]")
      local ip = "^127%.0%.0%.1:%d+$"
      h:logInfo("addresses " .. tostring(si:downstreamLocalAddress():match(ip) ~= nil) .. " "
        .. tostring(si:downstreamRemoteAddress():match(ip) ~= nil) .. " "
        .. tostring(si:downstreamDirectRemoteAddress() == si:downstreamRemoteAddress()) .. " "
        .. tostring(si:downstreamDirectLocalAddress() == si:downstreamLocalAddress()))
      h:logInfo("ssl " .. tostring(h:connection():ssl()) .. " " .. tostring(si:downstreamSslConnection()))
      h:logInfo("typed " .. tostring(si:dynamicTypedMetadata("x")) .. " " .. tostring(h:connectionStreamInfo():dynamicTypedMetadata("x")))
      local n = 0
      for _ in pairs(h:connectionStreamInfo():dynamicMetadata()) do n = n + 1 end
      h:logInfo("connection metadata entries " .. n)
      local fs = si:filterState()
      h:logInfo("filter state missing " .. select("#", fs:get("wasmlab.key")))
      fs:set("wasmlab.key", "envoy.string", "value")
      h:logInfo("filter state " .. fs:get("wasmlab.key"))
      if h:headers():get(":path") == "/drain" then si:drainConnectionUponCompletion() end
      local ok, e = pcall(function() h:setUpstreamOverrideHost("not-an-ip") end)
      h:logInfo(e)
      h:setUpstreamOverrideHost("127.0.0.1")
    end
    """
    routes = '\n              - match: {prefix: "/"}\n                name: the-route\n                route: {cluster: backend}'
    assert_both(lua_config(code, routes=routes), [Req("GET", "/"), Req("GET", "/drain")])


def test_stats_from_lua(envoy_bin):
    code = r"""
    function envoy_on_request(h)
      local c = h:stats():counter("requests_seen")
      c:inc()
      c:add(2)
      local g = h:stats():gauge("level")
      g:set(10) g:inc() g:dec() g:add(5) g:sub(2)
      h:stats():histogram("sizes"):recordValue(12)
      h:logInfo("counter " .. c:value() .. " gauge " .. g:value())
    end
    """
    ours, theirs = assert_both(lua_config(code, "\n              stat_prefix: s"), [Req("GET", "/"), Req("GET", "/")])
    for name in ("http.ingress.lua.s.requests_seen", "http.ingress.lua.s.level"):
        assert ours.stats[name] == theirs.stats[name]


def test_utilities_and_crypto(envoy_bin):
    key = (
        "30819f300d06092a864886f70d010101050003818d0030818902818100cdb89fba3960fe199abb622ff809ed5adeb903ab9b5ca370815ea6"
        "0e847fe4f0650f4040df0f5dca43cf42168a16d2e6d82fd4245d5787217a7937f56a1019fde7b71cebff2ffa8e4b849be514aae37b358003"
        "491175006b04a0fbd09e72d994df24020af939c0dfbdca50896bce44d503f2ac0c08eae2e995a6ea8df7de02010203010001"
    )
    sig = (
        "194a9c54ec94c656efb6ed5600af1852b8153493a9226d1d7aea4056f59500a66b46a875b20544d02dbcdc6e1000a8d67ca092abfbbe3ce5"
        "739ab9b1340ee2eb12a56e64d221a8c8ae8a16e48aa458fa2574896608f915e3695fb0bba992984fc07b60656261025217de970455100e0d"
        "24d30b894a795a624d63f1dc0d6a2b1d"
    )
    code = rf"""
    local function unhex(s) return (s:gsub("..", function(c) return string.char(tonumber(c, 16)) end)) end
    function envoy_on_request(h)
      h:logInfo("b64 " .. h:base64Escape("wasmlab\0\255") .. " " .. h:base64Decode("d2FzbWxhYg==") .. " "
        .. h:base64Decode("d2FzbWxhYg") .. " " .. tostring(h:base64Decode("!!")))
      h:logInfo("timestamps " .. type(h:timestamp()) .. " " .. #h:timestampString() .. " "
        .. #h:timestampString(EnvoyTimestampResolution.MICROSECOND) .. " " .. EnvoyTimestampResolution.MILLISECOND)
      local ok, e = pcall(function() h:timestampString(7) end)
      h:logInfo(e)
      local der = unhex("{key}")
      local key = h:importPublicKey(der, #der):get()
      local msg = "wasmlab signed message"
      local s = unhex("{sig}")
      local good, err = h:verifySignature("sha256", key, s, #s, msg, #msg)
      local bad, err2 = h:verifySignature("sha256", key, s, #s, msg .. "!", #msg + 1)
      local odd, err3 = h:verifySignature("md5", key, s, #s, msg, #msg)
      h:logInfo("verify " .. tostring(good) .. " " .. tostring(err) .. " / " .. tostring(bad) .. " " .. err2 .. " / " .. err3)
      -- Envoy keeps the first imported key of a run: a second import returns it again
      h:logInfo("second import " .. tostring(h:importPublicKey("junk", 4):get() == key))
    end
    """
    assert_both(lua_config(code), [Req("GET", "/")])


def test_lua52_compat_and_luajit_semantics(envoy_bin):
    code = r"""
    local T = setmetatable({}, {__pairs = function(t)
      return function(_, k) if not k then return "only", 1 end end, t, nil
    end})
    function envoy_on_request(h)
      for k, v in pairs(T) do h:logInfo("__pairs " .. k .. "=" .. v) end
      local packed = table.pack(1, nil, 3)
      h:logInfo("pack n=" .. packed.n .. " unpack " .. select("#", table.unpack({1, 2, 3})))
      h:logInfo("numbers " .. tostring(10 / 2) .. " " .. tostring(1e15) .. " " .. tostring(2^53) .. " " .. 0.1)
    end
    function envoy_on_response(h)
      for i = 1, 3 do
        if i == 2 then goto continue end
        h:logInfo("goto " .. i)
        ::continue::
      end
      h:logInfo(string.format("%q", "a\nb") .. " " .. type(jit) .. " " .. type(bit) .. " " .. tostring(math.huge))
    end
    """
    assert_both(lua_config(code), [Req("GET", "/")])


def test_error_prefix_for_code_starting_on_line_one(envoy_bin):
    code = "function envoy_on_request(h)\n  local x = nil\n  x.y = 1\nend\n"
    yaml = config(lua_filter(code))
    assert_both(yaml, [Req("GET", "/")])


def test_require_resolves_against_the_yaml_folder(envoy_bin, tmp_path):
    (tmp_path / "helper.lua").write_text('local M = {}\nfunction M.tag() return "from-module" end\nreturn M\n')
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "extra.lua").write_text('return {name = "extra"}\n')
    code = r"""
    local helper = require("helper")
    local extra = require("extra")
    function envoy_on_request(h) h:headers():add("x-module", helper.tag() .. "+" .. extra.name) end
    """
    path = tmp_path / "envoy.yaml"
    path.write_text(lua_config(code, "\n              package_paths: ['lib/?.lua']"))
    assert_both(str(path), [Req("GET", "/")])


def test_rate_limiter_example_is_per_worker(envoy_bin):
    reqs = [Req("GET", "/") for _ in range(5)]
    ours, _ = assert_both(str(CONFIGS / "rate_limit_per_worker.yaml"), reqs)
    assert [r.status for r in ours.responses] == [200, 200, 200, 429, 429]


def test_debug_lines_and_yield_resume_events_match(envoy_bin):
    """At debug level both sides log the Lua filter's own lines (yielding..., resuming...), and the
    bridge reads Envoy's back into the same ``lua`` trace events wasmlab records."""
    from wasmlab.envoy import run
    from wasmlab.envoy.logparse import LUA_EVENTS

    code = r"""
    function envoy_on_request(h)
      local b = h:body()
      local t = h:trailers()
      h:headers():add("x-n", tostring(b and b:length()))
    end
    function envoy_on_response(h)
      for chunk in h:bodyChunks() do end
    end
    """
    yaml = lua_config(code)
    known = set(LUA_EVENTS) | {"end stream. no body", "end stream. no trailers", "body complete. no more body chunks"}

    def lua_lines(lines):
        return [ln for ln in lines if ln.startswith("[debug][lua] ") and ln.split("] ", 2)[-1] in known]

    def steps(events):
        out = []
        for e in events:
            if e.kind == "lua" and e.name == "yield":
                out.append(("yield", e.args["waiting_for"]))
            elif e.kind == "lua" and e.name == "resume" and (e.data or {}).get("phase", "enter") == "enter":
                out.append(("resume", e.args["reason"]))
        return out

    reqs = [("POST", "/", b"hello"), ("GET", "/", b"")]
    with Proxy.from_yaml(yaml, workers=1, log_level="debug") as p:
        for m, path, body in reqs:
            p.request(m, path, body=body)
        p.wait_idle()
        ours_lines, ours_steps = lua_lines(p.logs), steps(p.trace.events)
    with run(yaml, workers=1, log_level="debug", component_log_level="lua:trace") as e:
        for m, path, body in reqs:
            e.request(m, path, body=body)
        import time

        time.sleep(0.5)
        theirs_lines, theirs_steps = lua_lines(e.logs), steps(e.trace.events)
    assert ours_lines == theirs_lines
    assert ours_steps == theirs_steps and ("yield", "wait_for_body") in ours_steps


def test_response_status_edits_and_bodyless_responses(envoy_bin):
    code = r"""
    function envoy_on_response(h)
      local status = h:headers():get(":status")
      local b = h:body(true)
      h:logInfo("status " .. status .. " body " .. b:length())
      if status == "200" then h:headers():replace(":status", "201") end
      if b:length() == 30 then h:headers():remove(":status") end
      if status == "204" then b:setBytes("dropped on the wire") end
      h:headers():setHttp1ReasonPhrase("Custom Reason")
    end
    """

    def app(req):
        if req.path == "/204":
            return Response(204, HeaderMap(), b"")
        return Response(
            200, HeaderMap([("content-type", "text/plain")]), b"abc" * 10 if req.path == "/big" else b"body"
        )

    reqs = [Req("GET", "/204"), Req("HEAD", "/x"), Req("GET", "/big"), Req("GET", "/x"), Req("POST", "/x", b"zz")]
    assert_both(lua_config(code), reqs, apps={"backend": app})


def test_every_object_exports_envoys_methods(envoy_bin):
    """The method tables (what ``getmetatable(obj)`` lists) match Envoy 1.40's, object by object."""
    code = r"""
    local function methods(o)
      local t = {}
      for k in pairs(getmetatable(o)) do if k ~= "__gc" then t[#t + 1] = k end end
      table.sort(t)
      return table.concat(t, ",")
    end
    function envoy_on_request(h)
      local si = h:streamInfo()
      local st = h:stats()
      local objects = {
        handle = h, headers = h:headers(), requestHeaders = h:requestHeaders(), streamInfo = si,
        dynamicMetadata = si:dynamicMetadata(), filterState = si:filterState(), connection = h:connection(),
        connectionStreamInfo = h:connectionStreamInfo(), connectionDynamicMetadata = h:connectionStreamInfo():dynamicMetadata(),
        metadata = h:metadata(), route = h:route(), virtualHost = h:virtualHost(), filterContext = h:filterContext(),
        stats = st, counter = st:counter("c"), gauge = st:gauge("g"), histogram = st:histogram("h"),
        publicKey = h:importPublicKey("x", 1),
      }
      local names = {}
      for name in pairs(objects) do names[#names + 1] = name end
      table.sort(names)
      for _, name in ipairs(names) do h:logInfo(name .. ": " .. methods(objects[name])) end
      h:logInfo("body: " .. methods(h:body(true)))
      h:logInfo("iterator: " .. type(pairs(h:headers())))
    end
    function envoy_on_response(h)
      h:logInfo("response handle: " .. methods(h))
    end
    """
    assert_both(lua_config(code), [Req("GET", "/")])
