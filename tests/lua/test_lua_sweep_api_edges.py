"""Edges of the Lua filter's API and of its LuaJIT state found by a later sweep against real Envoy
1.40 (``lua_helpers.assert_both`` says what is compared and what scripts avoid).
"""

from __future__ import annotations

import time

import pytest

from helpers import both, config, file_logs_of_both, lua_filter, static_cluster
from lua_helpers import SIDE_CLUSTER, Req, assert_both, load_errors, lua_config, tried
from wasmlab.http import HeaderMap, Response

pytestmark = pytest.mark.envoy


def test_set_bytes_empties_the_buffer_before_it_reads_its_argument(envoy_bin):
    # (the script answers itself: a body left shorter than its content-length stalls the upstream)
    code = tried(r"""
    function envoy_on_request(h)
      local b = h:body()
      try(h, "setBytes nil", function() return b:setBytes(nil) end)
      try(h, "setBytes table", function() return b:setBytes({}) end)
      h:respond({[":status"] = "200"}, "len " .. b:length() .. " cl " .. h:headers():get("content-length"))
    end
    """)
    assert_both(lua_config(code), [Req("POST", "/", b"hello world")])


def test_the_state_has_rawlen_and_no_python_module(envoy_bin):
    code = tried(r"""
    function envoy_on_request(h)
      try(h, "string", function() return rawlen("abcd") end)
      try(h, "number", function() return rawlen(5) end)
      try(h, "nothing", function() return rawlen() end)
      try(h, "handle", function() return rawlen(h) end)
      try(h, "__len not called", function() return rawlen(setmetatable({1, 2}, {__len = function() return 9 end})) end)
      try(h, "python", function() return tostring(python) .. " " .. tostring(package.loaded.python) end)
      local names = {}
      for k in pairs(_G) do names[#names + 1] = k end
      table.sort(names)
      h:logInfo(table.concat(names, ","))
      if h:headers():get(":path") == "/fail" then
        local n = rawlen(true)
      end
    end
    """)
    assert_both(lua_config(code), [Req("GET", "/"), Req("GET", "/fail")])


METADATA_KEYS = "int half tenth third big huge tiny e5 e-4 fixed tie neg yes no str empty struct list none missing"
METADATA_SCRIPT = r"""
function envoy_on_request(h)
  local dm = h:streamInfo():dynamicMetadata()
  dm:set("ns", "int", 5)
  dm:set("ns", "half", 1.5)
  dm:set("ns", "tenth", 0.1)
  dm:set("ns", "third", 1 / 3)
  dm:set("ns", "big", 2 ^ 60)
  dm:set("ns", "huge", 1e21)
  dm:set("ns", "tiny", 1e-7)
  dm:set("ns", "e5", 100000)
  dm:set("ns", "e-4", 0.0001)
  dm:set("ns", "fixed", 120000)
  dm:set("ns", "tie", 0.00012)
  dm:set("ns", "neg", -42)
  dm:set("ns", "yes", true)
  dm:set("ns", "no", false)
  dm:set("ns", "str", "text")
  dm:set("ns", "empty", "")
  dm:set("ns", "struct", {y = {2.5, "z", false}, x = 1})
  dm:set("ns", "list", {1, 2})
  dm:set("ns", "none", {})
end
"""


def _metadata_logs(path: str) -> str:
    keys = METADATA_KEYS.split()
    text = " ".join(f"{k}=[%DYNAMIC_METADATA(ns:{k})%]" for k in keys)
    fields = ", ".join(f'"{k}": "%DYNAMIC_METADATA(ns:{k})%"' for k in keys)
    logger = """          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {path}
              log_format: {fmt}
"""
    return "          access_log:\n" + "".join(
        logger.format(path=path, fmt=fmt)
        for fmt in ['{text_format: "' + text + '\\n"}', "{json_format: {" + fields + "}}"]
    )


def test_metadata_numbers_and_values_set_from_lua_log_as_envoy_writes_them(envoy_bin, tmp_path):
    routes = """
              - match: {prefix: "/"}
                route: {cluster: backend}
                response_headers_to_add:
                - header: {key: x-int, value: "%DYNAMIC_METADATA(ns:int)% %DYNAMIC_METADATA(ns:yes)% %DYNAMIC_METADATA(ns:struct)%"}"""
    cfg = lua_config(METADATA_SCRIPT, routes=routes)
    assert_both(cfg, [Req("GET", "/")])
    with_log = cfg.replace("          http_filters:", _metadata_logs("LOG_PATH") + "          http_filters:", 1)
    ours, theirs = file_logs_of_both(with_log, [{"method": "GET", "path": "/"}], tmp_path)
    assert ours.count(b"\n") == 2
    assert ours == theirs


def test_http_call_headers_the_async_clients_router_consumes(envoy_bin):
    # (one header besides the pseudo-headers per call: a Lua table's order is random per state)
    code = r"""
    local EXTRA = {
      ["/timeout"] = {"x-envoy-upstream-rq-timeout-ms", "500"},
      ["/timeout-no-option"] = {"x-envoy-upstream-rq-timeout-ms", " +700 "},
      ["/timeout-bad"] = {"x-envoy-upstream-rq-timeout-ms", "soon"},
      ["/per-try"] = {"x-envoy-upstream-rq-per-try-timeout-ms", "300"},
      ["/retry-on"] = {"x-envoy-retry-on", "5xx"},
      ["/max-retries"] = {"x-envoy-max-retries", "3"},
      ["/alt-stat"] = {"x-envoy-upstream-alt-stat-name", "foo"},
      ["/hedge"] = {"x-envoy-hedge-on-per-try-timeout", "true"},
      ["/codes"] = {"x-envoy-retriable-status-codes", "503"},
      ["/expected"] = {"x-envoy-expected-rq-timeout-ms", "77"},
      ["/internal"] = {"x-envoy-internal", "false"},
      ["/slow"] = {"x-envoy-upstream-rq-timeout-ms", "100"},
    }
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      local e = EXTRA[p]
      local headers = {[":method"] = "GET", [":path"] = p, [":authority"] = "auth.local"}
      if e then headers[e[1]] = e[2] end
      local timeout = 1001
      if p == "/timeout-no-option" then timeout = 0 end
      local hs, body = h:httpCall("auth", headers, "", timeout)
      h:logInfo(p .. " " .. hs[":status"] .. " " .. tostring(body))
    end
    """
    paths = "/plain /timeout /timeout-no-option /timeout-bad /per-try /retry-on /max-retries /alt-stat /hedge"
    paths += " /codes /expected /internal /slow"

    def auth(request):
        if request.path == "/slow":
            time.sleep(0.4)
        return Response(200, HeaderMap([("x-up", "1")]), b"ok")

    assert_both(config(lua_filter(code), clusters=SIDE_CLUSTER), [Req("GET", p) for p in paths.split()], {"auth": auth})


RECURSION = """
local function rec(n)
  return rec(n + 1) + 1
end
"""


def test_a_stack_overflow_names_the_script_line(envoy_bin):
    """LuaJIT's interpreter (wasmlab's guards run it) gives no position with "stack overflow";
    the compiled code Envoy runs names the line where the stack ran out."""
    code = (
        RECURSION
        + r"""
    function envoy_on_request(h)
      if h:headers():get(":path") == "/index" then
        local t = setmetatable({}, {__index = function(t, k) return t[k .. "x"] end})
        return t.a
      end
      rec(1)
    end
    """
    )
    assert_both(lua_config(code), [Req("GET", "/"), Req("GET", "/index")])


def test_a_stack_overflow_at_load_names_the_script_line(envoy_bin):
    ours, theirs = load_errors(lua_config(RECURSION + "rec(1)\n"))
    assert ":2: stack overflow" in theirs
    assert '[string "local function rec(n)..."]:2: stack overflow' in ours


def test_remote_address_from_trusted_hops_at_an_edge(envoy_bin):
    """With ``use_remote_address`` and ``xff_num_trusted_hops: 1``, the stream's client is the
    last ``x-forwarded-for`` entry (an IP address), port 0; the connection's peer stays direct."""
    code = r"""
    function envoy_on_request(h)
      local si = h:streamInfo()
      -- (the connection's port differs from run to run: shown as P)
      h:logInfo("remote " .. si:downstreamRemoteAddress():gsub(":[1-9]%d*$", ":P")
        .. " direct " .. si:downstreamDirectRemoteAddress():gsub(":%d+$", ":P"))
    end
    """
    cfg = lua_config(code).replace(
        "          stat_prefix: ingress", "          stat_prefix: ingress\n          use_remote_address: true\n"
        "          xff_num_trusted_hops: 1", 1
    )  # fmt: skip
    xffs = ["1.2.3.4, 5.6.7.8", "2001:db8::1", "not-an-ip", None]
    assert_both(cfg, [Req("GET", "/", headers=[("x-forwarded-for", x)] if x else None) for x in xffs])


def test_a_table_that_holds_itself_is_a_stack_overflow_in_dynamic_metadata(envoy_bin):
    """Envoy converts a table for ``dynamicMetadata():set`` recursively on the Lua stack: a
    table that holds itself ends in LuaJIT's "stack overflow" (no position: a C function
    raised it). wasmlab stops at 200 levels with the same error (before: a Python
    RecursionError as a "wasmlab internal error"); 150 levels go through and come back."""
    code = tried(r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      local dm = h:streamInfo():dynamicMetadata()
      if p == "/deep" then
        local t = {}
        local c = t
        for i = 1, 150 do c.x = {n = i} c = c.x end
        dm:set("ns", "k", t)
        local back, n = dm:get("ns").k, 0
        while back.x do back = back.x n = n + 1 end
        h:logInfo("deep " .. n .. " last " .. back.n)
      elseif p == "/caught" then
        local t = {}
        t.self = t
        try(h, "cycle", function() dm:set("ns", "k", t) end)
      else
        local t = {a = {}}
        t.a.b = t
        dm:set("ns", "k", t)
      end
    end
    """)
    assert_both(lua_config(code), [Req("GET", p) for p in ("/deep", "/caught", "/uncaught")])


def test_a_script_reads_a_regular_file_as_on_envoy(envoy_bin, tmp_path):
    """The classroom sandbox lets ``io.open``/``io.lines`` read a regular file (it refuses a FIFO,
    a device and writing): a script loading a list or a JSON document works as on Envoy."""
    data = tmp_path / "users.txt"
    data.write_text("alice\nbob\n")
    code = tried(f"""
    function envoy_on_request(h)
      local f = io.open("{data}")
      h:logInfo("first " .. f:read("*l"))
      f:close()
      local names = {{}}
      for line in io.lines("{data}", "*l") do names[#names + 1] = line end
      h:logInfo("lines " .. table.concat(names, ","))
      local f2 = io.open("{data}", "rb")
      h:logInfo("bytes " .. #f2:read("*a"))
      f2:close()
      try(h, "missing", function()
        local g, e, n = io.open("{tmp_path}/missing.txt")
        return tostring(g) .. " " .. e .. " " .. n
      end)
      try(h, "folder", function() return tostring(io.open("{tmp_path}"):read("*a")) end)
    end
    """)
    assert_both(lua_config(code), [Req("GET", "/")])


def test_a_respond_rewritten_by_local_reply_config_keeps_its_content_length_in_place(envoy_bin):
    """Envoy sets a local reply's ``content-length`` in place: ``respond()``'s own one stays
    before the headers a ``local_reply_config`` mapper adds (before: moved after them)."""
    code = r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      if p == "/deny" then h:respond({[":status"] = "403", ["x-own"] = "1"}, "denied by lua") end
      if p == "/json" then h:respond({[":status"] = "403", ["content-type"] = "application/json"}, "{}") end
      if p == "/empty" then h:respond({[":status"] = "401"}) end
    end
    function envoy_on_response(h)
      h:logInfo("response " .. h:headers():get(":status") .. " " .. h:headers():get("content-length"))
    end
    """
    mapper = """          local_reply_config:
            mappers:
            - filter: {status_code_filter: {comparison: {op: EQ, value: {default_value: 403, runtime_key: k}}}}
              status_code: 418
              body: {inline_string: "mapped body"}
              headers_to_add: [{header: {key: x-mapped, value: "yes"}}]
            body_format:
              text_format: "%LOCAL_REPLY_BODY% (%RESPONSE_CODE%)"
"""
    cfg = lua_config(code).replace("          http_filters:", mapper + "          http_filters:", 1)
    assert_both(cfg, [Req("GET", p) for p in ("/deny", "/json", "/empty")])


FILTER_STATE_SET = {
    "str": ("envoy.string", 'say \\"hi\\"\\tthere'),
    "hash": ("envoy.hashable_string", "h"),
    "host": ("envoy.upstream.dynamic_host", "h.example"),
    "idle": ("envoy.tcp_proxy.per_connection_idle_timeout_ms", "100"),
    "port": ("envoy.upstream.dynamic_port", "8080"),
    "hits": ("envoy.ratelimit.hits_addend", "3"),
    "tunnel": ("envoy.tcp_proxy.disable_tunneling", "true"),
    "sni": ("envoy.network.upstream_server_name", "example.com"),
    "cluster": ("envoy.tcp_proxy.cluster", "backend"),
    "ip": ("envoy.network.ip", "10.0.0.1"),
    "alpn": ("envoy.network.application_protocols", "h2"),
}


def test_filter_state_objects_log_their_proto_form_as_envoy_writes_it(envoy_bin, tmp_path):
    """``%FILTER_STATE(key)%`` (and ``:TYPED``) writes the JSON of the object's proto form: a
    string quoted, a port a number, a bool ``true``, ``-`` for an object without one;
    ``:PLAIN`` its string form (before: the string form everywhere)."""
    sets = "".join(f'      fs:set("k.{k}", "{f}", "{v}")\n' for k, (f, v) in FILTER_STATE_SET.items())
    code = "function envoy_on_request(h)\n      local fs = h:streamInfo():filterState()\n" + sets + "    end\n"
    text = " ".join(
        f"{k}=[%FILTER_STATE(k.{k})%|%FILTER_STATE(k.{k}:PLAIN)%|%FILTER_STATE(k.{k}:TYPED)%]" for k in FILTER_STATE_SET
    )
    fields = ", ".join(
        f'{k}: "%FILTER_STATE(k.{k})%", {k}_plain: "%FILTER_STATE(k.{k}:PLAIN)%"' for k in FILTER_STATE_SET
    )
    logger = """          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: LOG_PATH
              log_format: {fmt}
"""
    logs = "".join(logger.format(fmt=f) for f in ["{text_format: '" + text + "'}", "{json_format: {" + fields + "}}"])
    cfg = lua_config(code).replace(
        "          http_filters:", "          access_log:\n" + logs + "          http_filters:", 1
    )
    ours, theirs = file_logs_of_both(cfg, [{"method": "GET", "path": "/"}, {"method": "GET", "path": "/"}], tmp_path)
    assert ours.count(b'str=["say') == 2
    assert ours == theirs


def test_a_strict_upstream_override_host_the_cluster_has_not_finds_no_host(envoy_bin):
    """``setUpstreamOverrideHost(host, true)`` naming a host outside the cluster: its load
    balancer finds none, 503 ``no healthy upstream`` charged as the router charges a 503 (before:
    the override was recorded and ignored); not strict, the cluster's own host answers."""
    code = r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      if p == "/strict" then h:setUpstreamOverrideHost("127.0.0.1:1", true) end
      if p == "/loose" then h:setUpstreamOverrideHost("127.0.0.1:1", false) end
    end
    """
    names = ("upstream_cx_none_healthy", "upstream_rq_503", "upstream_rq_5xx", "upstream_rq_completed")
    stats = (*(f"cluster.backend.{n}" for n in names), "cluster.backend.external.upstream_rq_503")
    both(lua_config(code), [{"method": "GET", "path": p} for p in ("/strict", "/loose", "/strict")], stats=stats)


def test_no_healthy_upstream_is_charged_as_a_503(envoy_bin):
    """A cluster without endpoints, routed to or called by a script: the router (or the async
    client's) answers 503 ``no healthy upstream`` and charges it as any 503, ``external.`` or
    ``internal.`` (before: only ``upstream_cx_none_healthy``)."""
    clusters = (
        static_cluster("backend", 8081)
        + """
  - name: empty
    type: STATIC
    load_assignment: {cluster_name: empty}"""
    )
    code = r"""
    function envoy_on_request(h)
      if h:headers():get(":path") == "/call" then
        local hs, body = h:httpCall("empty", {[":method"] = "GET", [":path"] = "/", [":authority"] = "x"}, "", 1000)
        h:respond({[":status"] = hs[":status"]}, body)
      end
    end
    """
    routes = """
              - match: {prefix: "/call"}
                route: {cluster: backend}
              - match: {prefix: "/"}
                route: {cluster: empty}"""
    names = ("upstream_cx_none_healthy", "lb_healthy_panic", "upstream_rq_503", "upstream_rq_completed")
    stats = (*(f"cluster.empty.{n}" for n in names), "cluster.empty.external.upstream_rq_5xx")
    stats += ("cluster.empty.internal.upstream_rq_503",)
    reqs = [{"method": "GET", "path": p} for p in ("/", "/call")]
    both(config(lua_filter(code), routes=routes, clusters=clusters), reqs, stats=stats)


def test_a_head_request_sent_upstream_as_get_gives_the_filters_a_body(envoy_bin):
    """The upstream codec reads a response body unless the request it sent was a HEAD: a script
    turning the client's HEAD into a GET sees the body in ``envoy_on_response`` (the client's
    HEAD still gets none on the wire)."""
    code = r"""
    function envoy_on_request(h)
      if h:headers():get(":method") == "HEAD" then h:headers():replace(":method", "GET") end
    end
    function envoy_on_response(h)
      local b = h:body()
      h:logInfo("body " .. tostring(b and b:length()) .. " cl " .. h:headers():get("content-length"))
    end
    """
    assert_both(lua_config(code), [Req("HEAD", "/x"), Req("GET", "/y")])
