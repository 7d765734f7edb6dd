"""Classroom guards (a wasmlab addition): a looping or memory-hungry script fails its own hook
quickly, by Envoy's error rule (logged, counted, the request goes on), and never the worker,
the other workers or the kernel."""

from __future__ import annotations

import threading
import time

import pytest

from lua_helpers import lua_config
from wasmlab import Proxy

LOOP = """
function envoy_on_request(h)
  local p = h:headers():get(":path")
  if p == "/loop" then
    while true do end
  elseif p == "/pcall-loop" then
    while true do pcall(function() while true do end end) end
  elseif p == "/count" then
    local i = 0
    while true do i = i + 1 end
  end
  h:headers():add("x-served", "yes")
end
"""

BOMB = """
function envoy_on_request(h)
  local p = h:headers():get(":path")
  if p == "/bomb" then
    local t = {}
    while true do t[#t + 1] = string.rep("x", 100000) .. #t end
  elseif p == "/huge" then
    local s = string.rep("x", 2 ^ 30)
  elseif p == "/keep" then
    kept = {}
    while true do kept[#kept + 1] = string.rep("y", 100000) .. #kept end
  end
  h:headers():add("x-served", "yes")
end
"""


def _errors(p: Proxy) -> int:
    return p.stats().get("http.ingress.lua.errors", 0)


def test_infinite_loop_fails_its_hook_within_a_second(proxy_factory):
    p = proxy_factory(lua_config(LOOP), workers=1)
    for path in ("/loop", "/count", "/pcall-loop"):
        t0 = time.monotonic()
        r = p.request("GET", path, timeout=10)
        took = time.monotonic() - t0
        assert took < 1.0, f"{path} took {took:.2f}s"
        assert r.status == 200  # fail open: the request continues, without the script's edits
        assert b"x-served" not in r.body
    assert _errors(p) == 3
    assert any("instruction limit exceeded (wasmlab classroom guard" in ln for ln in p.logs)
    assert p.request("GET", "/fine").body.count(b"x-served") == 1  # the same state serves on


def test_a_looping_worker_does_not_stop_the_other_worker(proxy_factory):
    # a budget of ~2 s of looping on worker 0, while worker 1 serves
    p = proxy_factory(lua_config(LOOP), workers=2, options={"lua_instruction_limit": 3_000_000_000})
    done = threading.Event()
    result: list = []

    def busy() -> None:
        result.append(p.request("GET", "/loop", worker=0, timeout=30))
        done.set()

    threading.Thread(target=busy, daemon=True).start()
    time.sleep(0.1)
    served = []
    t0 = time.monotonic()
    while not done.is_set() and time.monotonic() - t0 < 20:
        r = p.request("GET", "/other", worker=1, timeout=5)
        served.append(r.status)
    assert done.wait(30)
    assert len(served) >= 5 and set(served) == {200}, served
    assert result[0].status == 200


@pytest.mark.parametrize("trace", [True, False])
def test_memory_bomb_fails_its_hook_within_a_second(proxy_factory, trace):
    p = proxy_factory(lua_config(BOMB), workers=1, trace=trace, options={"lua_memory_limit_mb": 32})
    for path in ("/bomb", "/huge"):
        t0 = time.monotonic()
        r = p.request("GET", path, timeout=10)
        took = time.monotonic() - t0
        assert took < 1.0, f"{path} took {took:.2f}s"
        assert r.status == 200
    logs = "\n".join(p.logs)
    assert "(wasmlab classroom guard: 32 MB per Lua state)" in logs
    assert _errors(p) == 2
    # the garbage was only the failed hook's: collected, the state serves on
    assert not any("is replaced by a fresh state" in ln for ln in p.logs)
    assert b"x-served" in p.request("GET", "/fine").body


def test_a_state_kept_full_by_a_global_is_replaced(proxy_factory):
    p = proxy_factory(lua_config(BOMB), workers=1, options={"lua_memory_limit_mb": 32})
    r = p.request("GET", "/keep", timeout=10)
    assert r.status == 200
    assert any("is replaced by a fresh state" in ln for ln in p.logs)
    assert b"x-served" in p.request("GET", "/fine").body
    creates = [e for e in p.trace.events if e.kind == "vm" and e.name == "create" and e.thread == "worker_0"]
    assert len(creates) == 2


def test_guards_can_be_turned_off(proxy_factory):
    code = 'function envoy_on_request(h) h:headers():add("x-jit", tostring(jit.status())) end'
    on = proxy_factory(lua_config(code), workers=1)
    assert b'"x-jit", "false"' in on.request("GET", "/").body  # guarded: interpreter only
    off = proxy_factory(lua_config(code), workers=1, options={"lua_instruction_limit": 0, "lua_memory_limit_mb": 0})
    assert b'"x-jit", "true"' in off.request("GET", "/").body


def test_a_bad_guard_option_is_refused_with_the_other_options():
    import pytest

    # checked with every proxy option (host/options.py), before any filter is built
    with pytest.raises(ValueError, match="proxy option lua_instruction_limit must be a number >= 0, got -1"):
        Proxy.from_yaml(lua_config("x = 1"), workers=1, options={"lua_instruction_limit": -1})


def test_a_top_level_loop_rejects_the_config():
    import pytest

    from wasmlab.errors import ConfigError

    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"script load error: .*instruction limit exceeded"):
        Proxy.from_yaml(lua_config("while true do end"), workers=1)
    assert time.monotonic() - t0 < 2.0


_ADDS_THEN_LOG = """
function envoy_on_request(h)
  local hd = h:headers()
  for i = 1, 60 do hd:add("x-i", tostring(i)) end
  h:logInfo("after")
end
"""


@pytest.mark.parametrize("trace", [False, True])
def test_a_budget_that_runs_out_among_header_adds_adds_each_at_most_once(trace):
    """With tracing off the adds are gathered in Lua and handed over at the first host call
    (here logInfo); a budget that runs out while they are handed over ends the run there, and
    its answer must not hand the same pairs over again. The error names the script's line."""
    from lua_helpers import script_log_lines

    for limit in range(1500, 3000, 100):
        opts = {"lua_instruction_limit": limit, "lua_hook_every": 100}
        with Proxy.from_yaml(lua_config(_ADDS_THEN_LOG), workers=1, trace=trace, options=opts) as p:
            r = p.request("GET", "/x")
            values = [v for k, v in r.json()["headers"] if k == "x-i"]
            logs = script_log_lines(p.logs)
        assert values == [str(i) for i in range(1, len(values) + 1)], f"limit {limit}: {values}"
        assert logs, f"limit {limit}"
        if "instruction limit exceeded" in logs[0]:
            assert '[string "function envoy_on_request(h)..."]:' in logs[0], logs[0]


SLOW = """
function envoy_on_request(h)
  local n = tonumber(h:headers():get("x-n"))
  local s = ""
  for i = 1, n do s = s .. "x" end  -- each step copies all of s: few instructions, much work
  h:headers():add("x-len", tostring(#s))
end
"""


def test_slow_instructions_meet_the_time_limit(proxy_factory):
    """250,000 concatenations are ~1M Lua instructions (1% of the budget) but copy ~31 GB: the
    instruction budget alone would let them run for minutes. The guard's hook also reads the
    clock, so the run fails by Envoy's error rule once it is over ``lua_time_limit_s``."""
    p = proxy_factory(lua_config(SLOW), workers=1, options={"lua_time_limit_s": 0.5})
    r = p.request("GET", "/", headers={"x-n": "250000"}, timeout=60)
    assert r.status == 200 and b"x-len" not in r.body  # failed open, without the script's edit (echoed)
    assert _errors(p) == 1
    assert any("time limit exceeded (wasmlab classroom guard: 0.5 s per run)" in ln for ln in p.logs)
    # a short run never meets it, and the same state serves the next request
    r = p.request("GET", "/", headers={"x-n": "1000"}, timeout=60)
    assert b"x-len" in r.body and _errors(p) == 1


def test_the_time_limit_is_an_option_checked_like_the_others(proxy_factory):
    with pytest.raises(ValueError, match="lua_time_limit_s must be a number >= 0"):
        Proxy.from_yaml(lua_config(SLOW), options={"lua_time_limit_s": -1})
