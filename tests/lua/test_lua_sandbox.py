"""The classroom sandbox and guard protection (issue 14): a script cannot kill the kernel (C
stack, ffi, loadlib, os.exit), block a worker for good (os.execute, io.read, a backtracking
pattern in C) or switch the guards off (debug.sethook, jit.on). Crash reproductions run in their
own process with a time limit."""

from __future__ import annotations

import time

import pytest

from lua_helpers import lua_config
from safety_helpers import run_isolated
from wasmlab import Proxy

CASES = {
    "ffi": 'local ffi = require("ffi"); ffi.cast("int*", 0)[0] = 1',
    "loadlib": 'package.loadlib("libc.so.6", "exit")()',
    "exit": "os.exit(3)",
    "execute": 'os.execute("sleep 100")',
    "popen": 'io.popen("sleep 100")',
    "ioread": "io.read()",
    "ioopen": 'io.open("/dev/zero"):read("*a")',
    "iowrite": 'io.open("/tmp/wasmlab-sandbox-test.txt", "w"):write("x")',
    "sethook": "debug.sethook(); while true do end",
    "jit": "jit.on(); local i = 0; while true do i = i + 1 end",
    "find": 'local s = string.rep("a", 30); local r = s:find(string.rep("a*", 15) .. "b"); while true do end',
    "gmatch": 'for x in string.rep("a", 30):gmatch(string.rep("a-", 15) .. "b") do end',
    "gc": 'collectgarbage("stop")',
    "upvalue": "debug.setupvalue(print, 1, nil)",
    "registry": "debug.getregistry()",
    "cmodule": 'require("socket.core")',
    "finalizer": "local u = newproxy(true); getmetatable(u).__gc = function() while true do end end",
    "classgc": "getmetatable(h:headers()).__gc = function() while true do end end",
    "rawsetgc": "rawset(getmetatable(h:headers()), '__gc', print)",
    "unguard": "setmetatable(getmetatable(h:headers()), nil)",
    "bytecode": "assert(loadstring(string.dump(function() end)))",
    "stdin": "dofile()",
}

EXPECT = {
    "ffi": "module 'ffi' not found",
    "loadlib": "package.loadlib() is disabled in wasmlab",
    "exit": "os.exit() is disabled in wasmlab: it would stop the whole process",
    "execute": "os.execute() is disabled in wasmlab",
    "popen": "io.popen() is disabled in wasmlab",
    "ioread": "io.read() is disabled in wasmlab",
    "ioopen": "io.open() is disabled in wasmlab: reading a FIFO, a device or a socket blocks the worker",
    "iowrite": "io.open() is disabled in wasmlab: writing can overwrite files",
    "sethook": "debug.sethook() is disabled in wasmlab",
    "jit": "jit.on() is disabled in wasmlab",
    "find": "string.find: pattern",
    "gmatch": "string.gmatch: pattern",
    "gc": 'collectgarbage("stop") is disabled in wasmlab',
    "upvalue": "debug.setupvalue() is disabled in wasmlab",
    "registry": "debug.getregistry() is disabled in wasmlab",
    "cmodule": "module 'socket.core' not found",
    "finalizer": "setting __gc is disabled in wasmlab",
    "classgc": "setting __gc is disabled in wasmlab",
    "rawsetgc": "setting __gc is disabled in wasmlab",
    "unguard": "cannot change a protected metatable",
    "bytecode": "attempt to load chunk with wrong mode",
    "stdin": "reading a chunk from stdin is disabled",
}


def _script(cases: dict[str, str]) -> str:
    body = "\n".join(f'  ["/{k}"] = function(h) {v} end,' for k, v in cases.items())
    return f"""
local T = {{
{body}
}}
function envoy_on_request(h)
  local f = T[h:headers():get(":path")]
  if f then f(h) end
  h:headers():add("x-served", "yes")
end
"""


def _run_each(p: Proxy, names: list[str]) -> dict[str, tuple[int, float, str]]:
    out = {}
    for name in names:
        n0 = len(p.logs)
        t0 = time.monotonic()
        r = p.request("GET", "/" + name, timeout=20)
        logs = [ln for ln in p.logs[n0:] if "script log" in ln]
        out[name] = (r.status, time.monotonic() - t0, logs[-1] if logs else "")
    return out


def test_sandbox_refuses_what_would_kill_block_or_unguard(proxy_factory):
    p = proxy_factory(lua_config(_script(CASES)), workers=1)
    results = _run_each(p, list(CASES))
    for name, (status, took, log) in results.items():
        assert status == 200, name  # Envoy's error rule: logged, the request goes on
        assert took < 2.0, f"{name} took {took:.2f}s"
        assert EXPECT[name] in log, f"{name}: {log}"
    assert "lua_sandbox=False" in results["exit"][2]
    assert p.request("GET", "/fine").status == 200


def test_guards_hold_with_the_sandbox_lifted(proxy_factory):
    names = ["sethook", "jit", "find"]
    p = proxy_factory(lua_config(_script({n: CASES[n] for n in names})), workers=1, options={"lua_sandbox": False})
    for name, (status, took, log) in _run_each(p, names).items():
        assert status == 200 and took < 2.0, (name, took)
        assert "lua_instruction_limit=0" in log, f"{name}: {log}"


def test_lifted_sandbox_is_what_envoy_allows(proxy_factory):
    code = """
function envoy_on_request(h)
  local ffi = require("ffi")
  local ok = type(ffi.cast) == "function" and type(package.loadlib) == "function"
    and type(debug.getregistry()) == "table" and collectgarbage("isrunning") ~= nil
  h:headers():add("x-envoy-allows", tostring(ok))
end
"""
    p = proxy_factory(lua_config(code), workers=1, options={"lua_sandbox": False})
    p.upstream("backend", lambda req: (200, {}, req.headers.get("x-envoy-allows") or "missing"))
    assert p.request("GET", "/").body == b"true"


def test_ordinary_patterns_and_debug_helpers_still_work(proxy_factory):
    code = """
function envoy_on_request(h)
  local body = string.rep("word ", 20000)
  local trimmed = body:match("^%s*(.-)%s*$")
  local pairs_seen = 0
  for a, b in body:gmatch("(%w+) (%w+)") do pairs_seen = pairs_seen + 1 end
  local replaced, n = body:gsub("w(o)rd", "%1")
  assert(type(debug.traceback()) == "string" and jit.version and debug.getinfo(1))
  assert(collectgarbage("count") > 0)
  h:headers():add("x-result", #trimmed .. "," .. pairs_seen .. "," .. n)
end
"""
    p = proxy_factory(lua_config(code), workers=1)
    p.upstream("backend", lambda req: (200, {}, req.headers.get("x-result") or "missing"))
    r = p.request("GET", "/")
    assert r.body == b"99999,10000,20000", r.body


def test_option_must_be_a_bool():
    with pytest.raises(ValueError, match="lua_sandbox must be True or False"):
        Proxy.from_yaml(lua_config(_script({})), options={"lua_sandbox": "no"})


_CRASH = """
import sys
from lua_helpers import lua_config
from wasmlab import Proxy
code = '''
local function g(s) return (string.gsub(s, ".", g)) end
function envoy_on_request(h)
  if h:headers():get(":path") == "/crash" then %s end
  h:headers():add("x-served", "yes")
end
'''
with Proxy.from_yaml(lua_config(code), workers=1) as p:
    r = p.request("GET", "/crash", timeout=30)
    print("status", r.status)
    print("\\n".join(ln for ln in p.logs if "script log" in ln))
    print("after", p.request("GET", "/fine", timeout=30).status)
"""


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        ('g("ab")', '..."]:1: stack overflow'),  # C recursion on a worker's stack: segfault before
        ('require("ffi").cast("int*", 0)[0] = 1', "module 'ffi' not found"),  # null write: segfault
        ('package.loadlib("libc.so.6", "exit")()', "package.loadlib() is disabled"),  # libc exit
    ],
)
def test_scripts_that_killed_the_kernel_are_lua_errors(body, expect):
    out = run_isolated(_CRASH.replace("%s", body), timeout=90)
    assert out.returncode == 0, out.explain()
    assert "status 200" in out.stdout and "after 200" in out.stdout, out.explain()
    assert expect in out.stdout, out.stdout


def test_http_call_with_a_timeout_of_centuries_keeps_the_worker_alive():
    # 10^13 ms is a valid lua_Integer (Envoy accepts it); the timer it armed overflowed the
    # dispatcher's sleep (OverflowError), the worker thread ended and every later request on it
    # timed out. Run apart: a dead worker would leave pytest waiting.
    code = """
function envoy_on_request(h)
  local hd = h:httpCall("backend", {[":method"] = "GET", [":path"] = "/side", [":authority"] = "x"}, nil, 10000000000000)
  h:headers():add("x-side", hd[":status"])
end
"""
    out = run_isolated(
        f"""
        from lua_helpers import lua_config
        from wasmlab import Proxy
        with Proxy.from_yaml(lua_config({code!r}), workers=1) as p:
            p.upstream("backend", lambda req: (200, {{}}, req.headers.get("x-side") or "side"))
            for i in range(3):
                print("status", p.request("GET", "/", timeout=10).status)
            print("unhandled", sum("unhandled" in ln for ln in p.logs))
        """,
        timeout=90,
    )
    assert out.returncode == 0, out.explain()
    assert out.stdout.count("status 200") == 3 and "unhandled 0" in out.stdout, out.explain()
