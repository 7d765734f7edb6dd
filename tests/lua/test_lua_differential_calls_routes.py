"""The Lua filter's httpCall, dynamic metadata and per-route scripts against real Envoy 1.40, the same
YAML, script, requests and upstream apps on both sides (``lua_helpers.assert_both`` says what is
compared and what scripts avoid).
"""

from __future__ import annotations

import json

import pytest

from helpers import config
from lua_helpers import LUA_EXAMPLES, LUA_PER_ROUTE, SIDE_CLUSTER, Req, assert_both, lua_config
from wasmlab.http import HeaderMap, Response

pytestmark = pytest.mark.envoy


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
    assert_both(str(LUA_EXAMPLES / "auth_httpcall.yaml"), reqs, apps={"auth": _auth_app})


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
