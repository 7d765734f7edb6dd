"""The Lua filter's shortcuts with tracing off give what the host's own path gives.

With tracing off a hook's first run answers ``handle:headers()`` in Lua, writes its
``headers:add`` calls down in Lua (handed over with the run's answer, or to the first call into
the host), and makes no Python handle unless a call into the host needs one. With tracing on
every call goes to the host. So each script here runs both ways and must give the same
upstream requests, responses, script log lines and Lua counters; the route-cache case also
runs against real Envoy.
"""

from __future__ import annotations

import pytest

from helpers import UpstreamLog, recorded_apps
from lua_helpers import Req, assert_both, lua_config, run_wasmlab, script_log_lines
from wasmlab import Proxy

# a route that reads a header, so an added x-go changes the route (Lua clears the route cache)
ROUTES = """
              - match: {prefix: "/", headers: [{name: x-go, string_match: {exact: "direct"}}]}
                direct_response: {status: 201, body: {inline_string: "by header\\n"}}
              - match: {prefix: "/direct"}
                direct_response: {status: 200, body: {inline_string: "direct hello\\n"}}
              - match: {prefix: "/"}
                route: {cluster: backend}"""

SCRIPTS = {
    "adds, then pairs() sees them": """
        function envoy_on_request(h)
          local hd = h:headers()
          hd:add("x-a", "1"); hd:add("X-B", "2")
          local n = 0
          for k, v in pairs(hd) do n = n + 1 end
          hd:add("x-n", tostring(n))
        end
        function envoy_on_response(h) h:headers():add("x-r", "r") h:logInfo("r=" .. h:headers():get("x-r")) end
    """,
    "an add while iterating fails": """
        function envoy_on_request(h)
          local hd = h:headers()
          hd:add("x-a", "1")
          for k, v in pairs(hd) do hd:add("x-bad", "1") end
        end
    """,
    "adds before an error are kept": """
        function envoy_on_request(h)
          h:headers():add("x-a", "1"); h:headers():add("x-b", "2")
          error("boom")
        end
    """,
    "adds before an unexpected yield are kept": """
        function envoy_on_request(h)
          h:headers():add("x-a", "1")
          coroutine.yield()
        end
    """,
    "numbers, bad arguments, bad self": """
        function envoy_on_request(h)
          local hd = h:headers()
          hd:add("x-a", 10 / 4); hd:add(5, "five")
          local ok, e = pcall(hd.add, hd, "x-b")
          hd:add("x-pcall", tostring(ok) .. " " .. tostring(e))
          ok, e = pcall(function() hd.add("x-c", "1") end)
          hd:add("x-self", tostring(e))
          ok, e = pcall(function() getmetatable(hd).add(h, "x-d", "1") end)
          hd:add("x-handle-self", tostring(e))
          hd:add("x-nil")
        end
    """,
    "many adds keep their order": """
        function envoy_on_request(h)
          local hd = h:headers()
          for i = 1, 150 do hd:add("x-i", tostring(i)) end
        end
    """,
    "adds around calls into the host": """
        function envoy_on_request(h)
          local hd = h:headers()
          hd:add("x-a", "1")
          h:logInfo("a=" .. hd:get("x-a"))
          hd:add("x-b", "2"); hd:remove("x-a"); hd:add("x-a", "3")
        end
    """,
    "the map kept past its run is dead": """
        local saved
        function envoy_on_request(h)
          saved = h:headers()
          saved:add("x-a", "1")
        end
        function envoy_on_response(h)
          local ok, e = pcall(function() saved:add("x-late", "1") end)
          h:logInfo("late: " .. tostring(ok) .. " " .. tostring(e))
        end
    """,
    "adds from the script's own coroutine": """
        function envoy_on_request(h)
          local co = coroutine.create(function()
            h:headers():add("x-co", "1"); coroutine.yield(); h:headers():add("x-co2", "2")
          end)
          coroutine.resume(co)
          h:headers():add("x-main", "m")
          coroutine.resume(co)
        end
    """,
    "adds before a local reply": """
        function envoy_on_request(h)
          h:headers():add("x-a", "1")
          h:respond({[":status"] = "403"}, "no")
        end
        function envoy_on_response(h) h:headers():add("x-resp", "1") end
    """,
    # (wasmlab runs the response hook inside respond(), where the request hook's objects are still
    # live; Envoy sends the local reply after the request hook yielded, so there they are dead:
    # these two only check that tracing off gives what tracing on gives)
    "the outer map seen from the hook run by its local reply": """
        local outer, outer_hd
        function envoy_on_request(h)
          outer, outer_hd = h, h:headers()
          outer_hd:add("x-a", "1")
          h:respond({[":status"] = "403"}, "no")
        end
        function envoy_on_response(h)
          local hd = h:headers()
          hd:add("x-same", tostring(outer:headers() == outer_hd) .. " " .. tostring(hd == outer_hd))
          hd:add("x-own", tostring(h:headers() == hd))
        end
    """,
    "the outer map first asked for from the hook run by its local reply": """
        local outer, inner_saw
        function envoy_on_request(h)
          outer = h
          h:respond({[":status"] = "403"}, "no")
          h:logInfo("after respond")
        end
        function envoy_on_response(h)
          inner_saw = outer:headers()
          h:headers():add("x-inner", tostring(inner_saw:get(":path")))
        end
    """,
    "an add picks the route": """
        function envoy_on_request(h) h:headers():add("x-go", "direct") end
    """,
}


def _echo(req):
    from wasmlab.http import HeaderMap, Response

    return Response(200, HeaderMap([("x-seen", ",".join(k for k, _ in req.headers))]), b"")


def _run(yaml: str, traced: bool) -> tuple[list, list, list, dict]:
    log = UpstreamLog()
    with Proxy.from_yaml(yaml, workers=1, trace=traced) as p:
        for name, app in recorded_apps(yaml, {"backend": _echo}, log).items():
            p.upstream(name, app)
        responses = []
        for path in ("/x", "/direct"):
            r = p.request("GET", path)
            headers = [(k, v) for k, v in r.headers if k not in ("date", "x-envoy-upstream-service-time")]
            responses.append((r.status, headers, r.body))
        p.wait_idle(5)
        stats = {k: v for k, v in p.stats().items() if ".lua." in k}
        return log.requests, responses, script_log_lines(p.logs), stats


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_tracing_off_gives_what_the_host_path_gives(name):
    yaml = lua_config(SCRIPTS[name], routes=ROUTES)
    assert _run(yaml, traced=False) == _run(yaml, traced=True)


def test_an_add_on_a_header_a_route_reads_picks_the_route_as_in_envoy(envoy_bin):
    code = 'function envoy_on_request(h) h:headers():add("x-go", "direct") end'
    outcome, _ = assert_both(lua_config(code, routes=ROUTES), [Req("GET", "/x")])
    assert outcome.responses[0].status == 201
    off = "\n              clear_route_cache: false"
    outcome, _ = assert_both(lua_config(code, off, routes=ROUTES), [Req("GET", "/direct")])
    assert outcome.responses[0].status == 200


def test_hooks_leave_no_handle_or_number_behind():
    from wasmlab.filters.lua.luaobject import OBJECTS, UNBORN

    code = """
        function envoy_on_request(h) h:headers():add("x-a", "1") end
        function envoy_on_response(h) h:logInfo("made") end
    """
    before = len(OBJECTS)
    out = run_wasmlab(lua_config(code), [Req("GET", "/direct")], trace=False)
    assert out.responses[0].status == 200
    assert out.script_logs[-1].endswith("script log: made")
    assert not UNBORN and len(OBJECTS) == before
