"""The Lua filter's errors, load errors and the rest of the handle API against real Envoy 1.40, the
same YAML, script, requests and upstream apps on both sides (``lua_helpers.assert_both`` says what
is compared and what scripts avoid).
"""

from __future__ import annotations

import re

import pytest

from helpers import config, lua_filter
from lua_helpers import LUA_EXAMPLES, Req, assert_both, load_errors, lua_config
from wasmlab import Proxy
from wasmlab.http import HeaderMap, Response

pytestmark = pytest.mark.envoy


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
    ours, theirs = load_errors(lua_config(code))
    msg = re.search(r"script load error: .*?(?=`| initializing|$)", theirs)
    assert msg is not None, theirs
    assert msg.group(0).strip() in ours
    assert "default_source_code" in ours  # wasmlab also names the YAML path


def test_inline_code_and_default_source_code_together(envoy_bin):
    ours, theirs = load_errors(lua_config("x = 1", "\n              inline_code: 'y = 2'"))
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
    ours, _ = assert_both(str(LUA_EXAMPLES / "rate_limit_per_worker.yaml"), reqs)
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
