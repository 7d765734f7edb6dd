"""Envoy's inline (O(1)) headers on every path that adds to a header map, against real Envoy 1.40.

Envoy keeps some names in one slot per map (``wasmlab.http.inline_headers``): adding one that is
present appends ``,value`` to it. Each path is probed with the same inputs on both proxies: a
client sending a header twice (what the upstream receives, what a Lua script and a Wasm module
read), an upstream answering with a header twice (what the client, Lua and Wasm see), a Wasm
module adding to a present header or setting all pairs, and ``*_headers_to_add`` with
``APPEND_IF_EXISTS_OR_ADD``. Before these tests wasmlab joined only in Lua's ``headers:add`` and
for pseudo-headers in ``proxy_add_header_map_value``; everywhere else it made a second entry.
"""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import wasmtime
from lua.lua_helpers import SIDE_CLUSTER, Req, assert_both
from wasm_probe import PAUSE, Saved, call, hadd, hdr, hpairs, hremove, hreplace, hset, http_call, local, probe_wat

from helpers import config, lua_filter, with_trailers
from wasm_diff import assert_same_run, plugin_yaml, run_both
from wasmlab.http import HeaderMap, Response
from wasmlab.http.inline_headers import (
    NO_INLINE,
    REQUEST_HEADERS_INLINE,
    RESPONSE_HEADERS_INLINE,
    RESPONSE_TRAILERS_INLINE,
)

#: sent twice by the client: inline in a request map, inline only in a response map, not inline
REQUEST_TWICE = [
    ("accept", "text/html"),
    ("accept", "*/*"),
    ("user-agent", "a"),
    ("user-agent", "b"),
    ("cache-control", "no-cache"),
    ("cache-control", "max-age=0"),
    ("x-forwarded-for", "10.0.0.1"),
    ("x-forwarded-for", "10.0.0.2"),
    ("via", "1.1 a"),
    ("via", "1.1 b"),
    ("authorization", "x"),
    ("authorization", "y"),
    ("referer", "r1"),
    ("referer", ""),
    ("origin", ""),
    ("origin", "o2"),
    ("date", "d1"),
    ("date", "d2"),
    ("cookie", "a=1"),
    ("cookie", "b=2"),
    ("x-custom", "1"),
    ("x-custom", "2"),
    ("grpc-timeout", "1S"),
    ("grpc-timeout", "2S"),
]
NAMES = sorted({k for k, _ in REQUEST_TWICE} | {"host", ":authority", "etag", "vary", "set-cookie", "server"})

#: what the upstream answers twice
RESPONSE_TWICE = [
    ("cache-control", "no-store"),
    ("cache-control", "private"),
    ("vary", "accept"),
    ("vary", "origin"),
    ("etag", '"1"'),
    ("etag", '"2"'),
    ("set-cookie", "a=1"),
    ("set-cookie", "b=2"),
    ("accept", "x"),
    ("accept", "y"),
    ("via", "u1"),
    ("via", "u2"),
    ("x-custom", "1"),
    ("x-custom", "2"),
    ("content-type", "text/plain"),
    ("content-type", "text/html"),
]


def twice_app(request: Any) -> Response:
    return Response(200, HeaderMap(RESPONSE_TWICE), b"hello")


def _lua_counts(hook: str, var: str) -> str:
    """Lua that logs, for every name in NAMES, getNumValues and get, then every pair in order."""
    names = ", ".join(f'"{n}"' for n in NAMES)
    return textwrap.dedent(f"""\
        function {hook}(h)
          local m = h:{var}()
          for _, n in ipairs({{{names}}}) do
            h:logInfo(n .. " " .. m:getNumValues(n) .. " " .. tostring(m:get(n)))
          end
          for k, v in pairs(m) do h:logInfo("pair " .. k .. "=" .. v) end
        end
        """)


def test_the_sets_per_kind_of_map():
    """The names differ by kind of map; ``host`` only means ``:authority`` in a request map."""
    assert {"accept", "user-agent", "authorization", "host"} <= REQUEST_HEADERS_INLINE - RESPONSE_HEADERS_INLINE
    assert {"date", "etag", "location", "server", ":status"} <= RESPONSE_HEADERS_INLINE - REQUEST_HEADERS_INLINE
    assert {"grpc-status", "grpc-message"} == RESPONSE_TRAILERS_INLINE and not NO_INLINE
    assert "cookie" not in REQUEST_HEADERS_INLINE and "set-cookie" not in RESPONSE_HEADERS_INLINE


def test_header_map_joins_inline_names_only_with_a_set():
    h = HeaderMap([("accept", "a"), ("accept", ""), ("accept", "b")], inline=REQUEST_HEADERS_INLINE)
    h.add("x", "1")
    h.add("x", "2")
    h.add("host", "h1")  # a request map's host is its :authority
    h.add("host", "h2")
    h.add("referer", "")
    h.add("referer", "r")  # no delimiter after an empty old value
    assert list(h) == [(":authority", "h1,h2"), ("accept", "a,b"), ("x", "1"), ("x", "2"), ("referer", "r")]
    h.set("host", "h3")
    assert h.get_all(":authority") == ["h3"] and h.copy().inline is REQUEST_HEADERS_INLINE
    plain = HeaderMap([("accept", "a"), ("accept", "b")])
    assert list(plain) == [("accept", "a"), ("accept", "b")]


# ---- the codec: a client's repeated headers ------------------------------------------------------------
@pytest.mark.envoy
def test_client_repeated_headers_reach_lua_and_the_upstream_joined_like_envoy(envoy_bin):
    """wasmlab kept two ``accept`` (``user-agent``, ``via``...) entries from the client: the
    upstream got two lines and Lua counted 2 where Envoy's codec joins them into one."""
    yaml = config(lua_filter(_lua_counts("envoy_on_request", "headers")))
    assert_both(yaml, [Req(headers=REQUEST_TWICE), Req(path="/direct", headers=REQUEST_TWICE)])


@pytest.mark.envoy
def test_upstream_repeated_headers_reach_lua_and_the_client_joined_like_envoy(envoy_bin):
    """An upstream's two ``cache-control`` (``vary``, ``etag``, ``content-type``...) lines are one
    entry in Envoy's response map; ``set-cookie``, ``accept`` (not inline in a response map)
    stay two. wasmlab kept every line."""
    yaml = config(lua_filter(_lua_counts("envoy_on_response", "headers")))
    assert_both(yaml, [Req()], apps={"backend": twice_app})


@pytest.mark.envoy
def test_lua_respond_and_add_on_both_maps_like_envoy(envoy_bin):
    """Lua's own adds on a map that already holds joined values (the codec's and the script's
    joins compose)."""
    code = """
        function envoy_on_request(h)
          h:headers():add("accept", "c")
          h:headers():add("x-custom", "3")
          h:headers():add("host", "extra")
        end
        function envoy_on_response(h)
          h:headers():add("cache-control", "public")
          h:headers():add("accept", "z")
          h:logInfo(h:headers():get("cache-control") .. " " .. h:headers():getNumValues("accept"))
        end
        """
    assert_both(config(lua_filter(code)), [Req(headers=REQUEST_TWICE)], apps={"backend": twice_app})


# ---- Proxy-Wasm --------------------------------------------------------------------------------------
def _wasm_config(tmp_path: Any, callbacks: dict[str, list[Any]], **kw: Any) -> str:
    wasm = tmp_path / "probe.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(probe_wat(callbacks)))
    return plugin_yaml(wasm, **kw)


def _wasm_reads(m: int) -> list[Any]:
    return [hpairs(m), *(hdr(m, n) for n in NAMES)]


REQUEST_WASM_ADDS = [
    hadd(0, "accept", "c"),
    hadd(0, "content-type", "t1"),
    hadd(0, "content-type", "t2"),
    hadd(0, "x-custom", "3"),
    hadd(0, "x-forwarded-for", ""),
    hadd(0, "host", "extra"),
    hadd(0, "date", "d3"),
    *_wasm_reads(0),
    hreplace(0, "host", "replaced"),
    hdr(0, ":authority"),
    hremove(0, "via"),
    hremove(0, "host"),
    hdr(0, ":authority"),
    hadd(0, "host", "again"),
    hdr(0, "host"),
]
RESPONSE_WASM_ADDS = [
    hremove(2, "x-envoy-upstream-service-time"),  # (milliseconds: differs from run to run)
    hadd(2, "cache-control", "public"),
    hadd(2, "server", "s2"),
    hadd(2, "location", "/a"),
    hadd(2, "location", "/b"),
    hadd(2, "accept", "z"),
    hadd(2, "host", "h"),
    *_wasm_reads(2),
]


@pytest.mark.envoy
def test_wasm_reads_and_adds_inline_headers_like_envoy(envoy_bin, tmp_path):
    """``proxy_get_header_map_pairs`` saw a client's two ``accept`` lines as two pairs, and
    ``proxy_add_header_map_value`` made a second ``content-type`` (``cache-control`` on a
    response...) entry, where Envoy joins; ``host`` in the request map is Envoy's
    ``:authority`` for get, add, replace and remove (wasmlab: a separate ``host`` header)."""
    callbacks = {"proxy_on_request_headers": REQUEST_WASM_ADDS, "proxy_on_response_headers": RESPONSE_WASM_ADDS}
    get = {"method": "GET", "path": "/up", "headers": [*REQUEST_TWICE, ("x-request-id", "r1")], "timeout": 5}
    ours, theirs, lines = run_both(_wasm_config(tmp_path, callbacks), [get], apps={"backend": twice_app})
    assert_same_run(ours, theirs, lines)


#: (``x-forwarded-proto`` kept: without it Envoy's route matcher finds no route)
PAIRS = [
    ("x-forwarded-proto", "http"),
    ("accept", "a"),
    ("accept", "b"),
    ("x-custom", "1"),
    ("x-custom", "2"),
    ("user-agent", "u"),
    ("via", ""),
]


@pytest.mark.envoy
def test_wasm_set_header_map_pairs_joins_inline_names_like_envoy(envoy_bin, tmp_path):
    """``proxy_set_header_map_pairs`` adds every pair as ``addCopy`` does: repeated inline names
    join (request and response maps have different names)."""
    callbacks = {
        "proxy_on_request_headers": [
            hset(0, [(":method", "GET"), (":path", "/s"), (":authority", "localhost"), (":scheme", "http"), *PAIRS]),
            hpairs(0),
        ],
        "proxy_on_response_headers": [hset(2, [(":status", "200"), *PAIRS, ("etag", "1"), ("etag", "2")]), hpairs(2)],
    }
    ours, theirs, lines = run_both(_wasm_config(tmp_path, callbacks), [{"method": "GET", "path": "/", "timeout": 5}])
    assert_same_run(ours, theirs, lines)


# ---- route configuration: headers_to_add --------------------------------------------------------------
HEADERS_TO_ADD = """
              - match: {prefix: "/direct"}
                direct_response: {status: 200, body: {inline_string: "direct hello\\n"}}
                response_headers_to_add:
                - header: {key: cache-control, value: r-direct}
                  append_action: APPEND_IF_EXISTS_OR_ADD
                - header: {key: x-custom, value: r1}
                  append_action: APPEND_IF_EXISTS_OR_ADD
                - header: {key: x-custom, value: r2}
                  append_action: APPEND_IF_EXISTS_OR_ADD
              - match: {prefix: "/"}
                route: {cluster: backend}
                request_headers_to_add:
                - header: {key: accept, value: route-accept}
                  append_action: APPEND_IF_EXISTS_OR_ADD
                - header: {key: user-agent, value: route-ua}
                  append_action: APPEND_IF_EXISTS_OR_ADD
                - header: {key: x-custom, value: route}
                  append_action: APPEND_IF_EXISTS_OR_ADD
                - header: {key: x-forwarded-for, value: 10.9.9.9}
                  append_action: APPEND_IF_EXISTS_OR_ADD
                response_headers_to_add:
                - header: {key: cache-control, value: route-cc}
                  append_action: APPEND_IF_EXISTS_OR_ADD
                - header: {key: vary, value: route-vary}
                  append_action: APPEND_IF_EXISTS_OR_ADD
                - header: {key: etag, value: route-etag}
                  append_action: APPEND_IF_EXISTS_OR_ADD
                - header: {key: set-cookie, value: c=3}
                  append_action: APPEND_IF_EXISTS_OR_ADD
                - header: {key: accept, value: route-accept}
                  append_action: APPEND_IF_EXISTS_OR_ADD"""
VHOST_ADDS = """
              request_headers_to_add:
              - header: {key: accept, value: vhost-accept}
                append_action: APPEND_IF_EXISTS_OR_ADD
              response_headers_to_add:
              - header: {key: cache-control, value: vhost-cc}
                append_action: APPEND_IF_EXISTS_OR_ADD"""


@pytest.mark.envoy
def test_headers_to_add_append_joins_inline_names_like_envoy(envoy_bin):
    """``APPEND_IF_EXISTS_OR_ADD`` is ``addReferenceKey``: on a present inline name (``accept`` in
    the request, ``cache-control``/``vary``/``etag`` in the response) it joins; wasmlab added a
    second entry."""
    assert_both(
        _with_vhost_adds(),
        [Req(headers=REQUEST_TWICE), Req(path="/direct", headers=REQUEST_TWICE)],
        apps={"backend": twice_app},
    )


def _with_vhost_adds() -> str:
    """``config`` with HEADERS_TO_ADD as routes and VHOST_ADDS on the virtual host."""
    yaml = config(routes=HEADERS_TO_ADD)
    return yaml.replace('              domains: ["*"]\n', '              domains: ["*"]' + VHOST_ADDS + "\n", 1)


# ---- trailers, local replies, callout answers ----------------------------------------------------------
def trailers_app(request: Any) -> Response:
    trailers = HeaderMap(
        [("grpc-status", "0"), ("grpc-status", "1"), ("grpc-message", "a"), ("x-t", "1"), ("x-t", "2")]
    )
    return Response(200, HeaderMap([("content-type", "application/grpc")]), b"data", trailers=HeaderMap(trailers))


@pytest.mark.envoy
def test_upstream_repeated_trailers_join_like_envoy(envoy_bin):
    """A response-trailer map has two inline names, ``grpc-status`` and ``grpc-message``: an
    upstream's two ``grpc-status`` trailer lines are one entry (a ``x-t`` stays two); Lua adds
    to the trailers the same way."""
    code = """
        function envoy_on_response(h)
          local t = h:trailers()
          t:add("grpc-message", "b")
          t:add("x-t", "3")
          for _, n in ipairs({"grpc-status", "grpc-message", "x-t"}) do
            h:logInfo(n .. " " .. t:getNumValues(n) .. " " .. tostring(t:get(n)))
          end
        end
        """
    assert_both(with_trailers(config(lua_filter(code))), [Req()], apps={"backend": trailers_app})


@pytest.mark.envoy
def test_wasm_local_reply_headers_join_like_envoy(envoy_bin, tmp_path):
    """``proxy_send_local_response``'s header pairs are ``addCopy``'d onto the reply's response
    map: a repeated ``cache-control`` is one entry, a repeated ``x-custom`` two."""
    reply = [("cache-control", "a"), ("cache-control", "b"), ("x-custom", "1"), ("x-custom", "2"), ("vary", "v")]
    callbacks = {
        "proxy_on_request_headers": [local(403, "denied", "no", reply)],
        "proxy_on_response_headers": [hremove(2, "date"), hpairs(2)],
    }
    ours, theirs, lines = run_both(_wasm_config(tmp_path, callbacks), [{"method": "GET", "path": "/", "timeout": 5}])
    assert_same_run(ours, theirs, lines)


@pytest.mark.envoy
def test_lua_http_call_answer_with_repeated_headers_like_envoy(envoy_bin):
    """A callout's answer is a response map too: the upstream's two ``cache-control`` lines are
    one ``a,b`` header, two ``set-cookie`` lines stay two (``return_duplicate_headers`` shows
    them)."""
    code = """
        function envoy_on_request(h)
          local hd = h:httpCall("auth", {[":method"] = "GET", [":path"] = "/", [":authority"] = "a"}, nil,
            {return_duplicate_headers = true})
          for _, n in ipairs({"cache-control", "vary", "set-cookie", "accept", "x-custom"}) do
            local v = hd[n]
            h:logInfo(n .. " " .. (type(v) == "table" and table.concat(v, "|") or tostring(v)))
          end
        end
        """
    assert_both(config(lua_filter(code), clusters=SIDE_CLUSTER), [Req()], apps={"auth": twice_app})


#: a callout's request is a request map: ``host`` is its ``:authority``, ``accept`` joins
CALLOUT_HEADERS = [
    (":method", "GET"),
    (":path", "/cb"),
    (":authority", "cb"),
    ("host", "h2"),
    ("accept", "a"),
    ("accept", "b"),
    ("x-custom", "1"),
    ("x-custom", "2"),
]
WASM_CALLOUT_AND_TRAILERS = {
    "proxy_on_request_headers": [
        "(i32.store (i32.const 132) (local.get $a))",  # Saved(1): this stream's context id
        http_call("backend", CALLOUT_HEADERS),
        PAUSE,
    ],
    "proxy_on_http_call_response": [
        *(hdr(6, n) for n in ("cache-control", "vary", "etag", "set-cookie", "content-type", "x-custom")),
        hpairs(7),
        call("proxy_set_effective_context", Saved(1)),
        call("proxy_continue_stream", 0),
    ],
    "proxy_on_response_trailers": [
        hpairs(3),
        hadd(3, "grpc-status", "2"),
        hadd(3, "grpc-message", ""),
        hadd(3, "x-t", "3"),
        hpairs(3),
    ],
}


@pytest.mark.envoy
def test_wasm_callout_answer_and_response_trailers_join_like_envoy(envoy_bin, tmp_path):
    """A callout's answer (map 6) is a response map and the response trailers (map 3) a
    response-trailer map: repeated inline names are one entry there, for what the upstream sent
    and for ``proxy_add_header_map_value``."""

    def app(request: Any) -> Response:
        return twice_app(request) if request.path == "/cb" else trailers_app(request)

    config_yaml = _wasm_config(tmp_path, WASM_CALLOUT_AND_TRAILERS, trailers=True)
    get = {"method": "GET", "path": "/", "timeout": 5}
    ours, theirs, lines = run_both(config_yaml, [get], apps={"backend": app})
    assert_same_run(ours, theirs, lines)


@pytest.mark.envoy
def test_edge_envoy_appends_to_the_joined_forwarded_for_like_envoy(envoy_bin):
    """With ``use_remote_address`` the HCM appends the client address to ``x-forwarded-for``:
    a client's two lines were joined first, so the upstream gets one ``a,b, client`` line."""
    yaml = config(lua_filter(_lua_counts("envoy_on_request", "headers"))).replace(
        "          stat_prefix: ingress", "          stat_prefix: ingress\n          use_remote_address: true"
    )
    assert_both(yaml, [Req(headers=REQUEST_TWICE)])


def envoy_headers_app(request: Any) -> Response:
    twice = [("x-envoy-upstream-service-time", "999"), ("x-envoy-upstream-service-time", "998")]
    more = [("server", "s1"), ("server", "s2"), ("date", "d1"), ("date", "d2"), ("x-request-id", "r1")]
    return Response(200, HeaderMap([*twice, *more, ("x-request-id", "r2")]), b"hello")


@pytest.mark.envoy
def test_router_sets_the_upstream_service_time_in_place_like_envoy(envoy_bin):
    """The router's ``x-envoy-upstream-service-time`` is an inline setter
    (``setEnvoyUpstreamServiceTime``): it replaces what the upstream sent, in its place. wasmlab
    added another entry (the old code) or, once the codec joined the upstream's two lines,
    appended to them."""
    code = """
        function envoy_on_response(h)
          local m = h:headers()
          h:logInfo("service time " .. m:getNumValues("x-envoy-upstream-service-time"))
          for _, n in ipairs({"server", "date", "x-request-id"}) do
            h:logInfo(n .. " " .. m:getNumValues(n) .. " " .. tostring(m:get(n)))
          end
        end
        """
    assert_both(config(lua_filter(code)), [Req()], apps={"backend": envoy_headers_app})


def via_app(request: Any) -> Response:
    return Response(200, HeaderMap([("via", "u1"), ("via", "u2"), ("content-length", "2")]), b"hi")


@pytest.mark.envoy
def test_hcm_via_appends_to_the_joined_via_like_envoy(envoy_bin):
    """The HCM's ``via`` is appended after ``, `` to the one ``via`` entry, which holds both of a
    client's (or an upstream's) lines; wasmlab kept only the first line's value."""
    yaml = config().replace("          stat_prefix: ingress", "          stat_prefix: ingress\n          via: envoyvia")
    assert_both(yaml, [Req(headers=[("via", "c1"), ("x-a", "1"), ("via", "c2")])], apps={"backend": via_app})


#: names the HCM acts on once they are in a map (framing, hop-by-hop, request id, forced trace)
ACTED_ON = "host content-length transfer-encoding connection upgrade keep-alive proxy-connection x-request-id"
#: every name of the sets but the pseudo-headers and ACTED_ON, and some that are in none
ALL_NAMES = sorted(
    n
    for n in REQUEST_HEADERS_INLINE | RESPONSE_HEADERS_INLINE | {"cookie", "set-cookie", "x-custom", "trailer"}
    if n[0] != ":" and n not in (*ACTED_ON.split(), "x-envoy-force-trace")
)


def _add_twice(var: str) -> str:
    """Lua adding every name of ALL_NAMES twice to ``h:<var>()`` and logging the inline ones."""
    names = ", ".join(f'"{n}"' for n in ALL_NAMES)
    return f"""
          local m = h:{var}()
          local one = {{}}
          for _, n in ipairs({{{names}}}) do
            m:add(n, "1")
            m:add(n, "2")
            if m:getNumValues(n) == 1 then one[#one + 1] = n end
          end
          h:logInfo("{var} inline: " .. table.concat(one, " "))"""


def _hooks(var: str, respond: bool) -> str:
    reply = 'h:respond({[":status"] = "200"}, "")' if respond else ""
    return f"""
        function envoy_on_request(h)
          {_add_twice(var)}
          {reply}
        end
        function envoy_on_response(h)
          {_add_twice(var)}
        end
        """


def _inline_line(var: str, inline: frozenset[str]) -> str:
    return f"[info][lua] script log: {var} inline: " + " ".join(n for n in ALL_NAMES if n in inline)


@pytest.mark.envoy
def test_the_inline_sets_are_envoys(envoy_bin):
    """Each name added twice from Lua to each kind of map: ``getNumValues`` 1 means an inline
    slot. wasmlab's answer comes from the sets in ``wasmlab.http.inline_headers``, Envoy's from
    its maps: request headers, response headers (of a local reply), request trailers, response
    trailers."""
    ours, _ = assert_both(with_trailers(config(lua_filter(_hooks("headers", respond=True)))), [Req()])
    assert ours.script_logs == [
        _inline_line("headers", REQUEST_HEADERS_INLINE),
        _inline_line("headers", RESPONSE_HEADERS_INLINE),
    ]
    post = Req("POST", "/", body=b"x", trailers=[("x-rt", "1")])
    yaml = with_trailers(config(lua_filter(_hooks("trailers", respond=False))))
    ours, _ = assert_both(yaml, [post], apps={"backend": trailers_app})
    assert ours.script_logs == [_inline_line("trailers", NO_INLINE), _inline_line("trailers", RESPONSE_TRAILERS_INLINE)]
