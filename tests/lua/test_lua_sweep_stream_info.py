"""A sweep of the Lua filter's streamInfo, metadata, filter state, per-route configuration and routing
helpers, edge cases first, against real Envoy 1.40 (``lua_helpers.assert_both`` says what is
compared and what scripts avoid).
"""

from __future__ import annotations

import textwrap

import pytest

from helpers import config, lua_filter
from lua_helpers import LUA_PER_ROUTE, SIDE_CLUSTER, Req, assert_both, lua_config, tried
from wasmlab.http import HeaderMap, Response

pytestmark = pytest.mark.envoy


# ---- streamInfo, metadata, connection --------------------------------------------------------------
def test_stream_info_fields_and_dynamic_metadata_edge_cases(envoy_bin):
    code = tried(r"""
    function envoy_on_request(h)
      local si = h:streamInfo()
      h:logInfo("protocol " .. si:protocol())
      -- (ports differ: the harness gives Envoy its own listener port)
      h:logInfo("local " .. si:downstreamLocalAddress():match("^[^:]+") .. " direct local "
        .. si:downstreamDirectLocalAddress():match("^[^:]+"))
      h:logInfo("remote ip " .. si:downstreamRemoteAddress():match("^[^:]+")
        .. " direct " .. si:downstreamDirectRemoteAddress():match("^[^:]+"))
      h:logInfo("sni [" .. si:requestedServerName() .. "] route [" .. si:routeName() .. "] vcluster ["
        .. si:virtualClusterName() .. "]")
      try(h, "ssl", function() return si:downstreamSslConnection() end)
      try(h, "connection ssl", function() return h:connection():ssl() end)
      try(h, "ssl == nil", function() return h:connection():ssl() == nil end)
      local dm = si:dynamicMetadata()
      try(h, "get missing", function() return dm:get("nope") end)
      try(h, "get number", function() return dm:get(5) end)
      try(h, "set number ns", function() dm:set(5, "k", "v") end)
      try(h, "set number key", function() dm:set("ns", 5, "v") end)
      try(h, "set missing value", function() dm:set("ns", "k") end)
      dm:set("ns", "float", 1.5)
      dm:set("ns", "int", 3)
      dm:set("ns", "neg", -0.25)
      dm:set("ns", "big", 2^53)
      dm:set("ns", "bool", false)
      dm:set("ns", "empty", {})
      dm:set("ns", "sparse", {[1] = "a", [3] = "c"})
      dm:set("ns", "str", "s")
      dm:set("ns", "str", "replaced")
      dm:set("other", "x", {y = {z = {1, 2}}})
      try(h, "set nested bad key", function() dm:set("ns", "bad", {[true] = 1}) end)
      try(h, "set nested function", function() dm:set("ns", "bad", {f = print}) end)
      local ns = dm:get("ns")
      h:logInfo("float " .. ns.float .. " int " .. ns.int .. " " .. tostring(ns.int == math.floor(ns.int)) .. " neg " .. ns.neg
        .. " big " .. string.format("%.0f", ns.big) .. " bool " .. tostring(ns.bool) .. " empty " .. type(ns.empty)
        .. " sparse " .. #ns.sparse .. ":" .. tostring(ns.sparse[2]) .. ":" .. ns.sparse[3] .. " str " .. ns.str)
      h:logInfo("other " .. dm:get("other").x.y.z[2])
      local n = 0
      for k, v in pairs(dm) do n = n + 1 end
      h:logInfo("namespaces " .. n)
      for k, v in pairs(dm) do
        try(h, "set while iterating", function() dm:set("ns", "late", 1) end)
        break
      end
    end
    function envoy_on_response(h)
      local ns = h:streamInfo():dynamicMetadata():get("ns")
      h:logInfo("response sees str=" .. ns.str .. " int=" .. ns.int)
      h:logInfo("response route [" .. h:streamInfo():routeName() .. "]")
    end
    """)
    routes = """
              - match: {prefix: "/"}
                name: the-route
                route: {cluster: backend}"""
    assert_both(lua_config(code, routes=routes), [Req("GET", "/si")])


def test_route_metadata_values_and_missing_route(envoy_bin):
    code = tried(r"""
    function envoy_on_request(h)
      local md = h:metadata()
      try(h, "str", function() return md:get("str") end)
      try(h, "num", function() return md:get("num") end)
      try(h, "bool", function() return md:get("flag") end)
      try(h, "null", function() return md:get("nothing") end)
      try(h, "missing", function() return md:get("missing") end)
      try(h, "list", function() local l = md:get("list") return #l .. ":" .. l[1] .. ":" .. l[2].k end)
      try(h, "nested", function() return md:get("nested").a.b end)
      try(h, "number key", function() return md:get(1) end)
      local keys = {}
      for k, v in pairs(md) do keys[#keys + 1] = k .. "=" .. type(v) end
      table.sort(keys)
      h:logInfo("pairs " .. table.concat(keys, " "))
      try(h, "route md", function() return h:route():metadata():get("str") end)
      try(h, "vh md", function() return h:virtualHost():metadata():get("str") end)
    end
    """)
    routes = """
              - match: {prefix: "/md"}
                route: {cluster: backend}
                metadata:
                  filter_metadata:
                    envoy.filters.http.lua:
                      str: text
                      num: 2.5
                      flag: true
                      nothing: null
                      list: [one, {k: v}]
                      nested: {a: {b: deep}}
              - match: {prefix: "/plain"}
                route: {cluster: backend}"""
    assert_both(lua_config(code, routes=routes), [Req("GET", "/md"), Req("GET", "/plain"), Req("GET", "/none")])


def test_yaml_numbers_in_metadata_and_filter_context_are_envoys_struct_values(envoy_bin):
    """Envoy 1.40 keeps a YAML integer as a number only in the int32 range and a YAML float as a
    string as written (``2.50`` is ``"2.50"``: the bridge no longer respells it before Envoy reads
    it); a list with a null keeps its slots (``#`` counts them)."""
    code = r"""
    local KEYS = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o"}
    function envoy_on_request(h)
      for _, pair in ipairs({{"metadata", h:metadata()}, {"context", h:filterContext()}}) do
        local what, md = pair[1], pair[2]
        local out = {}
        for _, k in ipairs(KEYS) do
          local v = md:get(k)
          out[#out + 1] = k .. "=" .. type(v) .. ":" .. tostring(v)
        end
        h:logInfo(what .. " " .. table.concat(out, " "))
        local p = md:get("p")
        h:logInfo(what .. " list " .. #p .. " " .. type(p[1]) .. " " .. type(p[2]) .. " " .. tostring(p[3]) .. " " .. p[4])
      end
    end
    """
    values = """
                      a: 3000000000
                      b: -5
                      c: 2147483647
                      d: 2147483648
                      e: 007
                      f: +5
                      g: 1.0
                      h: 2.50
                      i: yes
                      j: 0x10
                      k: 1e3
                      l: .inf
                      m: -0
                      n: 1_000
                      o: "12"
                      p: [1, 1.5, null, last]"""
    script = textwrap.indent(textwrap.dedent(code).strip() + "\n", " " * 24)
    routes = f"""
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  envoy.filters.http.lua:
                    "@type": {LUA_PER_ROUTE}
                    source_code:
                      inline_string: |
{script}                    filter_context:{values}
                metadata:
                  filter_metadata:
                    envoy.filters.http.lua:{values}"""
    assert_both(lua_config("-- the route's script runs", routes=routes), [Req("GET", "/")])


# ---- per-route configuration -----------------------------------------------------------------------
def test_per_route_most_specific_config_wins_and_stat_prefix(envoy_bin):
    filt = lua_filter(
        """
        function envoy_on_request(h) h:headers():add("x-script", "default") end
        function envoy_on_response(h) h:headers():add("x-resp", "default") end
        """,
        extra="""
              stat_prefix: mine
              source_codes:
                resp_only:
                  inline_string: |
                    function envoy_on_response(h) h:headers():add("x-resp", "named") end
                failing:
                  inline_string: |
                    function envoy_on_request(h) error("named script fails") end""",
    )
    routes = f"""
              - match: {{prefix: "/on"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  envoy.filters.http.lua: {{"@type": {LUA_PER_ROUTE}, name: resp_only}}
              - match: {{prefix: "/fail"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  envoy.filters.http.lua: {{"@type": {LUA_PER_ROUTE}, name: failing}}
              - match: {{prefix: "/direct"}}
                direct_response: {{status: 200, body: {{inline_string: "direct"}}}}
                typed_per_filter_config:
                  envoy.filters.http.lua: {{"@type": {LUA_PER_ROUTE}, name: resp_only}}
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}"""
    yaml = config(filt, routes=routes).replace(
        '            - name: vh\n              domains: ["*"]',
        '            - name: vh\n              domains: ["*"]\n              typed_per_filter_config:\n'
        f'                envoy.filters.http.lua: {{"@type": {LUA_PER_ROUTE}, disabled: true}}',
    )
    reqs = [Req("GET", p) for p in ("/on", "/fail", "/direct", "/vh-disabled", "/no-route-matches")]
    assert_both(yaml, reqs)


# ---- routing helpers and the rest of stream info ------------------------------------------------------
def test_upstream_override_host_route_cache_and_drain(envoy_bin):
    """(A *strict* override to a host the cluster lacks is Envoy's 503 ``no healthy upstream``;
    wasmlab's router does not read the override: not probed here.)"""
    code = tried(r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      try(h, "not an ip", function() h:setUpstreamOverrideHost("example.com") end)
      try(h, "ip:port", function() h:setUpstreamOverrideHost("127.0.0.1:8081") end)
      try(h, "strict string", function() h:setUpstreamOverrideHost("127.0.0.1", "yes") end)
      try(h, "nil host", function() h:setUpstreamOverrideHost(nil) end)
      try(h, "ipv6", function() h:setUpstreamOverrideHost("[::1]") end)
      if p == "/loose-other" then h:setUpstreamOverrideHost("127.0.0.9", false) end
      if p == "/reroute" then
        h:headers():replace(":path", "/direct-target")
        h:logInfo("route before clear: " .. h:streamInfo():routeName())
      end
      try(h, "clearRouteCache", function() return h:clearRouteCache() end)
      if p == "/drain" then h:streamInfo():drainConnectionUponCompletion() end
    end
    function envoy_on_response(h)
      h:logInfo("response route " .. h:streamInfo():routeName())
      try(h, "clear on response", function() return h:clearRouteCache() end)
      try(h, "override on response", function() return h:setUpstreamOverrideHost("127.0.0.1") end)
    end
    """)
    routes = """
              - match: {prefix: "/direct-target"}
                name: target
                direct_response: {status: 200, body: {inline_string: "target"}}
              - match: {prefix: "/"}
                name: default
                route: {cluster: backend}"""
    paths = ("/loose-other", "/reroute", "/drain")
    assert_both(lua_config(code, routes=routes), [Req("GET", p) for p in paths])


def test_filter_state_timestamps_and_typed_metadata(envoy_bin):
    code = tried(r"""
    function envoy_on_request(h)
      local fs = h:streamInfo():filterState()
      try(h, "missing", function() return fs:get("nope") end)
      try(h, "set string", function() fs:set("lua.key", "envoy.string", "value") end)
      try(h, "get back", function() return fs:get("lua.key") end)
      try(h, "get field", function() return fs:get("lua.key", "field") end)
      try(h, "set number value", function() fs:set("lua.n", "envoy.string", 5) end)
      try(h, "get n", function() return fs:get("lua.n") end)
      try(h, "timestamp type", function() return type(h:timestamp()) end)
      try(h, "timestamp ms", function() return type(h:timestamp(EnvoyTimestampResolution.MILLISECOND)) end)
      try(h, "timestamp us", function() return h:timestamp(EnvoyTimestampResolution.MICROSECOND) end)
      try(h, "timestampString us", function() return #h:timestampString(EnvoyTimestampResolution.MICROSECOND) end)
      try(h, "timestampString bad", function() return h:timestampString(7) end)
      try(h, "timestampString str", function() return #h:timestampString("0") end)
      try(h, "typed md missing", function() return h:streamInfo():dynamicTypedMetadata("nope") end)
      try(h, "conn dm", function() return h:connectionStreamInfo():dynamicMetadata():get("nope") end)
      try(h, "conn dm set", function() return h:connectionStreamInfo():dynamicMetadata():set("a", "b", "c") end)
      try(h, "base64Decode bad", function() return h:base64Decode("!!!") end)
      try(h, "base64Escape number", function() return h:base64Escape(123) end)
    end
    function envoy_on_response(h)
      try(h, "response sees filter state", function() return h:streamInfo():filterState():get("lua.key") end)
    end
    """)
    assert_both(lua_config(code), [Req("GET", "/")])


def test_filter_state_set_reads_the_value_with_envoys_object_factories(envoy_bin):
    """``filterState():set(key, factory, value)``: a factory Envoy does not have is an error, and
    each factory reads the value its own way (a port, an IP, ``ip:port``, ``true``), failing with
    ``failed to create an object``; ``application_protocols`` objects have no string form."""
    factories = [
        "envoy.string", "envoy.upstream.dynamic_port", "envoy.tcp_proxy.per_connection_idle_timeout_ms",
        "envoy.ratelimit.hits_addend", "envoy.network.ip", "envoy.network.transport_socket.original_dst_address",
        "envoy.filters.listener.original_dst.local_ip", "envoy.network.application_protocols",
        "envoy.tcp_proxy.disable_tunneling", "envoy.network.upstream_subject_alt_names", "no.such.factory",
    ]  # fmt: skip
    values = ["8080", "abc", "-1", "70000", " 80", "1.2.3.4", "::1", "[::1]:80", "1.2.3.4:80", "true", ""]
    lists = "local F = {" + ",".join(f'"{f}"' for f in factories) + "}\n"
    lists += "local V = {" + ",".join(f'"{v}"' for v in values) + "}\n"
    code = (
        lists
        + r"""
    function envoy_on_request(h)
      local fs = h:streamInfo():filterState()
      local i = 0
      for _, f in ipairs(F) do
        local out = {}
        for _, v in ipairs(V) do
          i = i + 1
          local ok, e = pcall(function() fs:set("k" .. i, f, v) end)
          local n = select("#", fs:get("k" .. i))
          out[#out + 1] = "[" .. v .. "]" .. (ok and (n == 1 and ("=" .. fs:get("k" .. i)) or "=none") or e)
        end
        h:logInfo(f .. " " .. table.concat(out, " "))
      end
    end
    """
    )
    assert_both(lua_config(code), [Req("GET", "/")])


def test_strings_with_a_nul_byte_end_there_where_envoy_reads_a_c_string(envoy_bin):
    """Envoy 1.40 reads names and values for ``add``/``replace``/``remove``, ``respond`` and
    ``httpCall`` header tables, the cluster name and dynamic metadata strings as C strings (up to
    the first NUL); ``get``, bodies and ``base64Escape`` keep every byte."""
    code = tried(r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      local hd = h:headers()
      if p == "/a" then
        hd:add("x-v", "a\0b")
        hd:add("x-k\0junk", "v")
        hd:replace("x-r\0x", "r\0r")
        try(h, "get with a NUL", function() return hd:get("x-k\0zzz") end)
        try(h, "get", function() return hd:get("x-v") end)
        try(h, "num", function() return hd:getNumValues("x-k") end)
        hd:add("x-rm", "1")
        hd:remove("x-rm\0tail")
        try(h, "removed", function() return hd:getNumValues("x-rm") end)
        h:streamInfo():dynamicMetadata():set("n\0s", "k\0k", {["i\0j"] = "v\0v", list = {"l\0l"}})
        for k, v in pairs(h:streamInfo():dynamicMetadata()) do
          for k2, v2 in pairs(v) do h:logInfo("dm " .. #k .. " " .. #k2 .. " " .. #v2["i"] .. " " .. #v2.list[1]) end
        end
        try(h, "base64", function() return h:base64Escape("a\0b") end)
        local hh = h:httpCall("auth\0x", {[":method"] = "POST", [":path"] = "/c\0x", [":authority"] = "a",
          ["x-h"] = "h\0h"}, "b\0b", 1000)
        h:logInfo("call " .. hh["x-got"])
      end
      if p == "/respond" then h:respond({[":status"] = "200", ["x-r"] = "r\0r"}, "b\0b") end
    end
    """)

    def app(req):
        return Response(200, HeaderMap([("x-got", f"{req.path} {req.headers.get('x-h')!r} {req.body!r}")]), b"")

    assert_both(lua_config(code, clusters=SIDE_CLUSTER), [Req("GET", "/a"), Req("GET", "/respond")], {"auth": app})


def test_replacing_host_picks_another_virtual_host(envoy_bin):
    """``host`` is ``:authority`` in a request map: replacing it re-routes (the route cache is cleared)."""
    code = r"""
    function envoy_on_request(h)
      if h:headers():get(":path") == "/move" then h:headers():replace("host", "b.example") end
      h:logInfo("authority " .. h:headers():get(":authority") .. " host#" .. h:headers():getNumValues("host"))
    end
    """
    yaml = lua_config(code).replace(
        '            - name: vh\n              domains: ["*"]',
        "            - name: b\n"
        '              domains: ["b.example"]\n'
        "              routes:\n"
        '              - match: {prefix: "/"}\n'
        '                direct_response: {status: 200, body: {inline_string: "vhost b"}}\n'
        '            - name: vh\n              domains: ["*"]',
    )
    assert_both(yaml, [Req("GET", "/move"), Req("GET", "/stay")])
