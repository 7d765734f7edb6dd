"""Helpers for the Lua filter tests: configs with a Lua filter, and running one YAML on both sides.

``lua_filter`` lives in tests/helpers.py (tests outside tests/lua use it too) and is still
importable from here."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import UpstreamLog, assert_same, assert_same_upstreams, config, lua_filter, recorded_apps
from wasmlab import Proxy
from wasmlab.errors import ConfigError, EnvoyFailed

#: The example configs of the Lua notebooks (notebooks/configs/lua).
LUA_EXAMPLES = Path(__file__).resolve().parents[2] / "notebooks" / "configs" / "lua"

LUA_PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute"

SIDE_CLUSTER = """
  - name: backend
    type: STATIC
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8081}}}
  - name: auth
    type: STATIC
    load_assignment:
      cluster_name: auth
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8082}}}"""


def lua_config(code: str, extra: str = "", **kw: Any) -> str:
    return config(lua_filter(code, extra), **kw)


TRY = r"""
local function try(h, what, f)
  local ok, e = pcall(f)
  h:logInfo(what .. ": " .. tostring(ok) .. " " .. tostring(e))
end
"""


def tried(code: str) -> str:
    """``code`` with ``try(h, what, f)``: logs ``what: <ok> <result or error>``."""
    return TRY + code


def load_errors(yaml: str) -> tuple[str, str]:
    """(wasmlab's ConfigError text, Envoy's refusal text) for a config both must refuse."""
    from wasmlab.envoy import run

    with pytest.raises(ConfigError) as ours:
        Proxy.from_yaml(yaml, workers=1)
    with pytest.raises(EnvoyFailed) as theirs:
        run(yaml, workers=1)
    return str(ours.value), str(theirs.value)


def script_log_lines(lines: list[str]) -> list[str]:
    """The ``[level][lua] script log: ...`` lines of a log."""
    return [ln for ln in lines if "][lua] script log: " in ln]


@dataclass
class Req:
    method: str = "GET"
    path: str = "/"
    body: bytes = b""
    headers: Any = None
    trailers: Any = None

    def kw(self) -> dict[str, Any]:
        return {"headers": self.headers, "body": self.body, "trailers": self.trailers}


@dataclass
class Outcome:
    responses: list[Any]
    script_logs: list[str]
    stats: dict[str, int] = field(default_factory=dict)


def run_wasmlab(yaml: str, requests: list[Req], apps: dict[str, Any] | None = None, trace: bool = True) -> Outcome:
    with Proxy.from_yaml(yaml, workers=1, trace=trace) as p:
        for name, app in (apps or {}).items():
            p.upstream(name, app)
        responses = [p.request(r.method, r.path, **r.kw()) for r in requests]
        p.wait_idle(5)
        return Outcome(responses, script_log_lines(p.logs), p.stats())


def run_envoy(yaml: str, requests: list[Req], apps: dict[str, Any] | None = None) -> Outcome:
    from wasmlab.envoy import run

    with run(yaml, workers=1, apps=apps) as e:
        responses = [e.request(r.method, r.path, **r.kw()) for r in requests]
        expected = len(script_log_lines(e.logs))
        # Envoy writes its log asynchronously: wait until the count stops growing
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            time.sleep(0.1)
            n = len(script_log_lines(e.logs))
            if n == expected:
                break
            expected = n
        return Outcome(responses, script_log_lines(e.logs), e.stats())


def lua_stats(stats: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in stats.items() if ".lua." in k}


def assert_both(
    yaml: str, requests: list[Req], apps: dict[str, Any] | None = None, stats: bool = True
) -> tuple[Outcome, Outcome]:
    """Run ``yaml`` on wasmlab and on real Envoy (one worker each): same responses (status,
    headers, body, trailers), the same ``[lua] script log:`` lines, the same Lua counters.
    wasmlab runs twice, tracing on and off: with tracing off the Lua filter takes its shortcuts
    (see ``filter.LuaFilter._do_headers``), which must give the same.

    Scripts must avoid what is random in *both* Envoy and wasmlab: LuaJIT seeds its string hash
    per state, so the order of a Lua table with several string keys (a ``respond()`` or
    ``httpCall`` header table, ``pairs()`` over a table) differs from run to run (tests sort, or
    use one key); so do the client's ports and timings."""
    their_log = UpstreamLog()
    theirs = run_envoy(yaml, requests, recorded_apps(yaml, apps, their_log))
    for trace in (False, True):
        our_log = UpstreamLog()
        ours = run_wasmlab(yaml, requests, recorded_apps(yaml, apps, our_log), trace=trace)
        _assert_same_outcome(ours, theirs, our_log, their_log, requests, stats)
    return ours, theirs


def _assert_same_outcome(
    ours: Outcome, theirs: Outcome, our_log: UpstreamLog, their_log: UpstreamLog, requests: list[Req], stats: bool
) -> None:
    assert_same_upstreams(our_log, their_log)
    for i, (a, b) in enumerate(zip(ours.responses, theirs.responses, strict=True)):
        what = f"request {i} ({requests[i].method} {requests[i].path})"
        assert_same(a, b, what)
        ta = list(a.trailers) if a.trailers else None
        tb = list(b.trailers) if b.trailers else None
        assert ta == tb, f"{what}: trailers differ: wasmlab {ta} envoy {tb}"
    assert ours.script_logs == theirs.script_logs, (
        "script log lines differ:\n  wasmlab " + "\n          ".join(ours.script_logs)
        + "\n  envoy   " + "\n          ".join(theirs.script_logs)
    )  # fmt: skip
    if stats:
        assert lua_stats(ours.stats) == {k: v for k, v in lua_stats(theirs.stats).items() if k in lua_stats(ours.stats)}
        for k in ("errors", "executions"):
            mine = {n: v for n, v in lua_stats(ours.stats).items() if n.endswith("." + k)}
            env = {n: v for n, v in lua_stats(theirs.stats).items() if n.endswith("." + k)}
            assert mine == env, f"{k} counters differ: wasmlab {mine} envoy {env}"
