"""A sweep of the Lua filter's logging, errors, script load errors, Lua values of Envoy's objects and
stats(), edge cases first, against real Envoy 1.40 (``lua_helpers.assert_both`` says what is
compared and what scripts avoid).
"""

from __future__ import annotations

import pytest

from helpers import config, lua_filter
from lua_helpers import LUA_PER_ROUTE, Req, assert_both, load_errors, lua_config, tried

pytestmark = pytest.mark.envoy


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
    ours, theirs = load_errors(lua_config(code))
    assert _envoy_load_message(theirs) in ours


def test_a_missing_module_is_a_load_error(envoy_bin):
    """(The search paths listed after ``not found:`` differ: wasmlab's ``./`` is the YAML's folder.)"""
    ours, theirs = load_errors(lua_config("require('no_such_module_for_wasmlab')\n"))
    assert _envoy_load_message(theirs).split("not found:")[0] in ours


@pytest.mark.parametrize("code", ["error({code = 1})\n", "error()\n"], ids=["table", "nil"])
def test_a_load_error_without_a_message(envoy_bin, code):
    """Envoy 1.40 *crashes* on a top-level error whose value is not a string (it builds its
    exception from a null message); wasmlab refuses the config with Envoy's runtime wording."""
    ours, theirs = load_errors(lua_config(code))
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
    ours, theirs = load_errors(config(filt))
    assert _envoy_load_message(theirs) in ours
    assert "source_codes" in ours
    routes = f"""
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  envoy.filters.http.lua:
                    "@type": {LUA_PER_ROUTE}
                    source_code: {{inline_string: "error('route boom')"}}"""
    ours, theirs = load_errors(lua_config("function envoy_on_request(h) end", routes=routes))
    assert _envoy_load_message(theirs) in ours
    assert "source_code" in ours
