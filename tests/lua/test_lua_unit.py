"""The Lua filter in wasmlab alone: config parsing, states per worker, the coroutine driver and the
statuses it returns, death after scope, the trace."""

from __future__ import annotations

import pytest

from helpers import config
from lua_helpers import LUA_PER_ROUTE, lua_config
from wasmlab import Proxy
from wasmlab.errors import ConfigError


def _events(p: Proxy, kind: str, name: str | None = None) -> list:
    return [e for e in p.trace.events if e.kind == kind and (name is None or e.name == name)]


def _filter_exits(p: Proxy, callback: str) -> list:
    return [
        e.result for e in _events(p, "filter", callback) if e.data.get("phase") == "exit" and e.args["kind"] == "lua"
    ]


# ---- config ----------------------------------------------------------------------------------------
def test_syntax_error_names_the_yaml_path_in_envoys_words():
    with pytest.raises(ConfigError) as e:
        Proxy.from_yaml(lua_config("function envoy_on_request(h)\n  x = = 1\nend"), workers=1)
    msg = str(e.value)
    assert "<string>:" in msg
    assert "http_filters[0].typed_config.default_source_code: script load error: " in msg
    assert "[string \"function envoy_on_request(h)...\"]:2: unexpected symbol near '='" in msg


def test_chunk_name_for_code_starting_with_a_newline():
    yaml = lua_config("x = 1").replace(
        "              default_source_code:\n                inline_string: |\n                  x = 1\n",
        "              inline_code: \"\\n\\nerror('boom')\"\n",
    )
    with pytest.raises(ConfigError, match=r'inline_code: script load error: \[string "\.\.\."\]:3: boom'):
        Proxy.from_yaml(yaml, workers=1)


def test_per_route_disabled_must_be_true():
    routes = f"""
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  envoy.filters.http.lua: {{"@type": {LUA_PER_ROUTE}, disabled: false}}"""
    with pytest.raises(ConfigError, match="value must equal true"):
        Proxy.from_yaml(lua_config("x = 1", routes=routes), workers=1)


def test_a_filter_without_scripts_does_nothing(proxy_factory):
    yaml = lua_config("x = 1").replace(
        "              default_source_code:\n                inline_string: |\n                  x = 1\n", ""
    )
    p = proxy_factory(yaml, workers=1)
    assert p.request("GET", "/").status == 200


# ---- states --------------------------------------------------------------------------------------
def test_one_state_per_script_per_worker_and_on_main(proxy_factory):
    routes = f"""
              - match: {{prefix: "/route"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  envoy.filters.http.lua:
                    "@type": {LUA_PER_ROUTE}
                    source_code: {{inline_string: "function envoy_on_request(h) h:headers():add('x-s', 'route') end"}}
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}"""
    code = "count = 0\nfunction envoy_on_request(h) count = count + 1 h:headers():add('x-count', count) end"
    p = proxy_factory(lua_config(code, routes=routes), workers=2)
    creates = _events(p, "vm", "create")
    assert sorted((e.thread, e.args["script"]) for e in creates) == sorted(
        (t, s)
        for t in ("main", "worker_0", "worker_1")
        for s in ("default_source_code", "static_resources.listeners[0]"
                  ".filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0]"
                  ".typed_per_filter_config.envoy.filters.http.lua source_code")
    )  # fmt: skip
    assert p.stats()["lua.lua_vm_count"] == 6
    # globals are per worker: each worker counts its own requests
    counts = [p.request("GET", "/", worker=w).json()["headers"] for w in (0, 0, 1, 0)]
    seen = [dict((k, v) for k, v in h)["x-count"] for h in counts]
    assert seen == ["1", "2", "1", "3"]


def test_hooks_are_looked_up_once_at_load(proxy_factory):
    code = """
    function envoy_on_request(h)
      h:headers():add("x-version", "first")
      function envoy_on_request(h2) h2:headers():add("x-version", "redefined") end
    end
    """
    p = proxy_factory(lua_config(code), workers=1)
    for _ in range(2):
        assert ["x-version", "first"] in p.request("GET", "/").json()["headers"]


# ---- the coroutine driver ----------------------------------------------------------------------------
def test_yields_map_to_filter_statuses(proxy_factory):
    code = """
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      if p == "/body" then h:body()
      elseif p == "/chunks" then for c in h:bodyChunks() do end
      elseif p == "/trailers" then h:trailers()
      elseif p == "/respond" then h:respond({[":status"] = "200"}, "x")
      end
    end
    """
    p = proxy_factory(lua_config(code), workers=1)
    cases = {
        "/body": (["StopIteration"], ["StopIterationAndBuffer", "Continue"]),
        "/chunks": (["Continue"], ["Continue", "Continue"]),
        "/trailers": (["Continue"], ["Continue", "Continue"]),
        "/plain": (["Continue"], ["Continue", "Continue"]),
    }
    for path, (headers, data) in cases.items():
        p.recorder.clear()
        assert p.request("POST", path, body="abc").status == 200
        assert _filter_exits(p, "decode_headers") == headers, path
        assert _filter_exits(p, "decode_data") == data, path
    p.recorder.clear()
    r = p.request("GET", "/respond")
    assert (r.body, r.details) == (b"x", "lua_response")
    p.wait_idle()  # the reply reached us from inside the hook; let the worker finish its task
    resumes = [e for e in p.trace.events if e.kind == "lua" and e.name == "yield"]
    assert resumes and resumes[-1].args == {"waiting_for": "responded"}


def test_http_call_holds_the_headers_and_the_body_with_watermarks(proxy_factory):
    code = """
    function envoy_on_request(h)
      local hd = h:httpCall("backend", {[":method"] = "GET", [":path"] = "/side", [":authority"] = "x"}, nil, 1000)
      h:headers():add("x-side", hd[":status"])
    end
    """
    p = proxy_factory(lua_config(code), workers=1)
    r = p.request("POST", "/main", body="payload")
    p.wait_idle()
    assert ["x-side", "200"] in r.json()["headers"] and r.json()["body"] == "payload"
    assert _filter_exits(p, "decode_headers") == ["StopIteration"]
    assert _filter_exits(p, "decode_data")[0] == "StopIterationAndWatermark"
    names = [e.name for e in _events(p, "lua")]
    assert names.index("handle:httpCall") < names.index("yield") < names.index("resume")


def test_unexpected_yield_is_a_script_error(proxy_factory):
    p = proxy_factory(lua_config("function envoy_on_request(h) coroutine.yield() end"), workers=1)
    assert p.request("GET", "/").status == 200
    assert "[error][lua] script log: script performed an unexpected yield" in p.logs
    assert p.stats()["http.ingress.lua.errors"] == 1


def test_objects_die_at_yield_and_with_their_hook(proxy_factory):
    code = """
    saved = {}
    function envoy_on_request(h)
      if h:headers():get(":path") == "/save" then
        saved.headers = h:headers()
        saved.handle = h
        local it = pairs(h:headers())
        saved.iter = it
        return
      end
      local ok, e = pcall(function() saved.headers:get(":path") end)
      h:logInfo("saved headers: " .. e)
      ok, e = pcall(function() saved.handle:headers() end)
      h:logInfo("saved handle: " .. e)
      ok, e = pcall(saved.iter)
      h:logInfo("saved iterator: " .. e)
      local before = h:headers()
      h:body()
      ok, e = pcall(function() before:get(":path") end)
      h:logInfo("after body(): " .. e)
      h:logInfo("handle lives again: " .. h:headers():get(":path"))
    end
    """
    p = proxy_factory(lua_config(code), workers=1)
    p.request("GET", "/save")
    p.request("POST", "/use", body="x")
    p.wait_idle()
    lines = [ln.split("script log: ", 1)[1] for ln in p.logs if "script log:" in ln]
    assert lines[:3] == [
        'saved headers: [string "saved = {}..."]:10: object used outside of proper scope',
        'saved handle: [string "saved = {}..."]:12: object used outside of proper scope',
        "saved iterator: object used outside of proper scope",
    ]
    assert lines[3] == 'after body(): [string "saved = {}..."]:18: object used outside of proper scope'
    assert lines[4] == "handle lives again: /use"


def test_an_error_drops_the_waiting_coroutine_and_continues(proxy_factory):
    code = """
    function envoy_on_request(h)
      local b = h:body()
      h:headers():add("x-edit-before-error", "kept")
      error("boom after " .. b:length())
    end
    """
    p = proxy_factory(lua_config(code), workers=1)
    r = p.request("POST", "/", body="12345")
    p.wait_idle()
    assert r.status == 200 and ["x-edit-before-error", "kept"] in r.json()["headers"]
    assert '[error][lua] script log: [string "function envoy_on_request(h)..."]:4: boom after 5' in p.logs


# ---- the trace -------------------------------------------------------------------------------------
def test_trace_records_hooks_handle_calls_yields_and_resumes(proxy_factory):
    code = """
    function envoy_on_request(h)
      h:headers():add("x-a", "1")
      local b = h:body()
      h:logInfo(b:getBytes(0, 2))
    end
    """
    p = proxy_factory(lua_config(code), workers=1)
    p.request("POST", "/", body="hello")
    p.wait_idle()
    lua = _events(p, "lua")
    sid = lua[0].data["stream"]
    assert all(e.data["stream"] == sid and e.thread == "worker_0" for e in lua)
    steps = [(e.name, e.data.get("phase")) for e in lua]
    assert steps == [
        ("envoy_on_request", "enter"),
        ("handle:headers", None),
        ("headers:add", None),
        ("handle:body", None),
        ("yield", None),
        ("envoy_on_request", "exit"),
        ("resume", "enter"),
        ("buffer:getBytes", None),
        ("handle:logInfo", None),
        ("resume", "exit"),
    ]
    add = next(e for e in lua if e.name == "headers:add")
    assert add.args == ["x-a", "1"] and add.result is None
    get = next(e for e in lua if e.name == "buffer:getBytes")
    assert get.args == [0, 2] and get.result == "he"
    assert next(e for e in lua if e.name == "resume").args == {"reason": "body"}
    assert lua[5].result == "yield: wait_for_body" and lua[-1].result == "finished"


def test_print_goes_to_stdout(proxy_factory, capsys):
    p = proxy_factory(lua_config("function envoy_on_request(h) print('hello', 1, nil) end"), workers=1)
    p.request("GET", "/")
    assert "hello\t1\tnil\n" in capsys.readouterr().out


def test_os_exit_is_disabled(proxy_factory):
    p = proxy_factory(lua_config("function envoy_on_request(h) os.exit(1) end"), workers=1)
    assert p.request("GET", "/").status == 200
    p.wait_idle()
    assert any("os.exit() is disabled in wasmlab" in ln for ln in p.logs)


def test_component_log_level_lua_debug_shows_the_coroutine_lines():
    """``--component-log-level lua:debug`` (global level info) enables the Lua filter's own debug
    lines, as in Envoy; the bridge relies on the same lines from real Envoy."""
    script = "function envoy_on_request(h)\n  h:body()\nend"
    with Proxy.from_yaml(lua_config(script), workers=1, component_log_level="lua:debug") as p:
        p.request("POST", "/", body=b"x")
        logs = p.logs
    assert "[debug][lua] yielding for full body" in logs
    assert "[debug][lua] coroutine finished" in logs


def test_the_lua_cluster_specifier_is_refused_by_name():
    """The Lua cluster specifier (a route's ``inline_cluster_specifier_plugin``) is another Envoy
    extension than the Lua filter, and wasmlab has not got it: the refusal says so, where the
    route names no cluster."""
    route = """
              - match: {prefix: "/"}
                route:
                  inline_cluster_specifier_plugin:
                    extension:
                      name: envoy.router.cluster_specifier_plugin.lua
                      typed_config:
                        "@type": type.googleapis.com/envoy.extensions.router.cluster_specifiers.lua.v3.LuaConfig
                        source_code: {inline_string: "function envoy_on_route(h) return 'backend' end"}
                        default_cluster: backend"""
    with pytest.raises(ConfigError, match=r"inline_cluster_specifier_plugin .* is not supported by wasmlab"):
        Proxy.from_yaml(config(routes=route), workers=1)
