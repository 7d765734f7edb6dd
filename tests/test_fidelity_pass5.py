"""Fidelity pass 5, compared with real Envoy 1.40: the fields of the route configuration, the
HTTP connection manager, the listener and the bootstrap that Envoy accepts and wasmlab refused.

A probe set each field of those messages (and of the router, the admin and the direct response)
that wasmlab did not know, one at a time, in a working config, and ran Envoy's ``--mode validate``
on it: 87 fields Envoy accepts were refused (``dynamic_resources`` still is: xDS is out of scope,
and the error says so). Most
tune what a real process does with sockets, xDS, stats, retries or tracing; wasmlab now accepts
each with the warning that it has no effect in process. The ones that change what a request
sees are implemented, each checked here against Envoy:

* ``RouteAction.path_rewrite`` / ``host_rewrite`` (substitution format strings);
* ``RouteConfiguration.vhost_header``, ``ignore_port_in_host_matching``,
  ``ignore_path_parameters_in_path_matching`` and ``typed_per_filter_config``;
* ``HttpConnectionManager.strip_trailing_host_dot`` and ``append_x_forwarded_port``;
* ``DirectResponseAction.body_format``;
* ``VirtualHost.include_request_attempt_count`` (accepted but ignored before) and
  ``include_attempt_count_in_response``."""

from __future__ import annotations

import pytest
import yaml

from helpers import (
    UpstreamLog,
    accepted_with_a_warning,
    assert_refused_in_envoys_words,
    both,
    config,
    file_log,
    file_logs_of_both,
    get,
    hcm_option,
    lua_filter,
    recorded_apps,
)
from wasmlab import envoy as real

pytestmark = pytest.mark.envoy

#: per message, fields Envoy 1.40 accepts (with these values) that have no effect in process
NO_EFFECT: dict[str, dict[str, object]] = {
    "route_action": {
        "flush_timeout": "1s",
        "retry_policy_typed_config": {},
        "internal_redirect_action": "HANDLE_INTERNAL_REDIRECT",
    },
    "route": {"request_body_buffer_limit": 1},
    "virtual_host": {
        "rate_limits": [],
        "retry_policy_typed_config": {},
        "hedge_policy": {},
        "include_is_timeout_retry_header": True,
        "per_request_buffer_limit_bytes": 1,
        "request_body_buffer_limit": 1,
        "request_mirror_policies": [{"cluster": "backend"}],
    },
    "route_config": {"cluster_specifier_plugins": [], "request_mirror_policies": [], "metadata": {}},
    "hcm": {
        "http1_safe_max_connection_duration": True,
        "http3_protocol_options": {},
        "scheme_header_transformation": {},
        "stream_flush_timeout": "1s",
        "access_log_flush_interval": "1s",
        "flush_access_log_on_new_request": True,
        "original_ip_detection_extensions": [],
        "early_header_mutation_extensions": [],
        "forward_client_cert_matcher": {},
        "represent_ipv4_remote_address_as_ipv4_mapped_ipv6": True,
        "request_id_extension": {},
        "stream_error_on_invalid_http_message": True,
        "path_normalization_options": {},
        "proxy_status_config": {},
        "append_local_overload": True,
        "add_proxy_protocol_connection_state": True,
    },
    "listener": {
        "additional_addresses": [],
        "use_original_dst": True,
        "default_filter_chain": {},
        "metadata": {},
        "deprecated_v1": {},
        "drain_type": "MODIFY_ONLY",
        "continue_on_listener_filters_timeout": True,
        "transparent": True,
        "freebind": True,
        "tcp_fast_open_queue_length": 1,
        "udp_listener_config": {},
        "reuse_port": True,
        "max_connections_to_accept_per_socket_event": 1,
        "bind_to_port": True,
        "enable_mptcp": True,
        "ignore_global_conn_limit": True,
        "bypass_overload_manager": True,
    },
    "bootstrap": {
        "node_context_params": ["x"],
        "hds_config": {},
        "flags_path": "x",
        "deferred_stat_options": {},
        "stats_flush_on_admin": True,
        "watchdog": {},
        "tracing": {},
        "enable_dispatcher_stats": True,
        "header_prefix": "x",
        "stats_server_version_override": 1,
        "use_tcp_for_dns_lookups": True,
        "fatal_actions": [],
        "config_sources": [],
        "default_socket_interface": "x",
        "certificate_provider_instances": {},
        "inline_headers": [],
        "perf_tracing_file_path": "x",
        "application_log_config": {},
        "grpc_async_client_manager_config": {},
        "memory_allocator_manager": {},
    },
    "filter_chain": {"use_proxy_proto": True, "metadata": {}, "transport_socket_connect_timeout": "1s"},
    "socket_address": {"network_namespace_filepath": "x"},
    "router": {
        "upstream_log_options": {},
        "respect_expected_rq_timeout": True,
        "suppress_grpc_request_failure_code_stats": True,
    },
    "admin": {"socket_options": [], "ignore_global_conn_limit": True, "allow_paths": []},
}


def _message(data: dict, msg: str) -> tuple[dict, str]:
    """The message ``msg`` in ``helpers.config()``'s data, and its YAML path as wasmlab names it."""
    listener = data["static_resources"]["listeners"][0]
    chain = listener["filter_chains"][0]
    hcm = chain["filters"][0]["typed_config"]
    rc = hcm["route_config"]
    vh = rc["virtual_hosts"][0]
    h = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"
    table = {
        "route_action": (vh["routes"][1]["route"], f"{h}.route_config.virtual_hosts[0].routes[1].route"),
        "route": (vh["routes"][1], f"{h}.route_config.virtual_hosts[0].routes[1]"),
        "virtual_host": (vh, f"{h}.route_config.virtual_hosts[0]"),
        "route_config": (rc, f"{h}.route_config"),
        "hcm": (hcm, h),
        "listener": (listener, "static_resources.listeners[0]"),
        "bootstrap": (data, ""),
        "filter_chain": (chain, "static_resources.listeners[0].filter_chains[0]"),
        "socket_address": (
            listener["address"]["socket_address"],
            "static_resources.listeners[0].address.socket_address",
        ),
        "router": (hcm["http_filters"][-1]["typed_config"], f"{h}.http_filters[0].typed_config"),
    }
    if msg == "admin":
        data["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}}
        return data["admin"], "admin"
    return table[msg]


@pytest.mark.parametrize(("msg", "field"), [(m, f) for m, fields in NO_EFFECT.items() for f in fields])
def test_a_field_envoy_accepts_is_accepted_with_a_warning(envoy_bin, tmp_path, msg, field):
    data = yaml.safe_load(config())
    target, where = _message(data, msg)
    value = NO_EFFECT[msg][field]
    if field.endswith("_path"):  # Envoy writes such a file where it runs: not in the checkout
        value = str(tmp_path / field)
    target[field] = value
    accepted_with_a_warning(data, f"{where}.{field}" if where else field, tmp_path)


#: the same for messages nested deeper, and for the tcp_proxy network filter
NESTED_NO_EFFECT: dict[str, dict[str, object]] = {
    "weighted_clusters": {"use_hash_policy": True},
    "load_assignment": {"named_endpoints": {}},
    "locality_endpoints": {"metadata": {}, "load_balancer_endpoints": {}, "proximity": 1},
    "endpoint": {"additional_addresses": []},
    "tcp_proxy": {
        "on_demand": {},
        "metadata_match": {},
        "max_downstream_connection_duration_jitter_percentage": {},
        "access_log_flush_interval": "1s",
        "flush_access_log_on_connected": True,
        "access_log_options": {},
        "proxy_protocol_tlvs": [],
        "max_early_data_bytes": 1,
        "backoff_options": {"base_interval": "1s"},
    },
}
TCP = """
static_resources:
  listeners:
  - name: t
    address: {socket_address: {address: 127.0.0.1, port_value: 10001}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: backend
  clusters:
  - name: backend
    type: STATIC
    load_assignment:
      cluster_name: backend
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8081}}}}]}]
"""


def _nested(msg: str) -> tuple[dict, dict, str]:
    """A config, the message ``msg`` in it, and its YAML path."""
    if msg == "tcp_proxy":
        data = yaml.safe_load(TCP)
        tc = data["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        return data, tc, "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"
    data = yaml.safe_load(config())
    la = data["static_resources"]["clusters"][0]["load_assignment"]
    c = "static_resources.clusters[0].load_assignment"
    if msg == "weighted_clusters":
        hcm = data["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        route = hcm["route_config"]["virtual_hosts"][0]["routes"][1]
        route["route"] = {"weighted_clusters": {"clusters": [{"name": "backend", "weight": 1}]}}
        where = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config"
        return data, route["route"]["weighted_clusters"], f"{where}.virtual_hosts[0].routes[1].route.weighted_clusters"
    if msg == "load_assignment":
        return data, la, c
    if msg == "locality_endpoints":
        return data, la["endpoints"][0], f"{c}.endpoints[0]"
    return data, la["endpoints"][0]["lb_endpoints"][0]["endpoint"], f"{c}.endpoints[0].lb_endpoints[0].endpoint"


@pytest.mark.parametrize(("msg", "field"), [(m, f) for m, fields in NESTED_NO_EFFECT.items() for f in fields])
def test_a_nested_field_envoy_accepts_is_accepted_with_a_warning(envoy_bin, tmp_path, msg, field):
    data, target, where = _nested(msg)
    target[field] = NESTED_NO_EFFECT[msg][field]
    accepted_with_a_warning(data, f"{where}.{field}", tmp_path, request=False)


# ---- RouteAction: path_rewrite and host_rewrite ---------------------------------------------------
def test_path_and_host_rewrite_formats_like_envoy():
    routes = """
              - match: {prefix: "/r"}
                route: {cluster: backend, path_rewrite: "/new/%REQ(x-a)%", host_rewrite: "%REQ(x-h)%.example"}
              - match: {prefix: "/p"}
                route: {cluster: backend, path_rewrite: "/only%REQ(:METHOD)%"}
              - match: {prefix: "/"}
                route: {cluster: backend}"""
    both(
        config(routes=routes),
        [get("/r/x?q=1", **{"x-a": "AA", "x-h": "hh"}), get("/r/y"), get("/p/z?a=b&c"), get("/other")],
    )


def test_path_rewrite_is_one_of_the_path_rewrites_and_host_rewrite_one_of_the_host_rewrites(envoy_bin, tmp_path):
    from wasmlab import Proxy
    from wasmlab.errors import ConfigError

    for extra in ('path_rewrite: "/x", prefix_rewrite: "/y"', 'host_rewrite: "h", host_rewrite_literal: "k"'):
        routes = f"""
              - match: {{prefix: "/"}}
                route: {{cluster: backend, {extra}}}"""
        path = tmp_path / "c.yaml"
        path.write_text(config(routes=routes))
        assert not real.validate(path)[0], extra
        with pytest.raises(ConfigError, match="only one"):
            Proxy.from_yaml(path, workers=1)


# ---- RouteConfiguration: how the virtual host and the route are found -----------------------------
FOO_HOST = """
            - name: foo
              domains: ["foo", "bar:99"]
              routes: [{match: {prefix: "/"}, direct_response: {status: 200, body: {inline_string: "foo"}}}]"""


def _route_config_option(option: str, vhosts: str = FOO_HOST) -> str:
    return config().replace(
        "          route_config:\n            virtual_hosts:",
        "          route_config:\n            " + option + "\n            virtual_hosts:" + vhosts,
    )


HOSTS = [get("/p", host=h) for h in ("foo", "foo:123", "bar:99", "bar", "bar:98", "[::1]:5", "[::1]")]


@pytest.mark.parametrize("flag", ["true", "false"])
def test_ignore_port_in_host_matching_like_envoy(flag):
    both(_route_config_option(f"ignore_port_in_host_matching: {flag}"), HOSTS)


def test_vhost_header_chooses_the_virtual_host_like_envoy():
    reqs = [
        get("/p", host="foo"),
        get("/p", **{"x-vh": "foo"}),
        get("/p", **{"x-vh": "bar:99"}),
        get("/p", **{"x-vh": "z"}),
    ]
    both(_route_config_option("vhost_header: X-VH"), reqs)
    # a configuration with only the * virtual host: no vhost_header needed
    both(_route_config_option("vhost_header: x-vh", vhosts=""), [get("/p")])


def test_ignore_path_parameters_in_path_matching_like_envoy():
    """Routes match each segment without its ``;parameters``; the request keeps its path, and a
    prefix_rewrite applies only where the path as sent starts with the matched text."""
    routes = """
              - match: {path: "/a/b"}
                route: {cluster: backend, prefix_rewrite: "/matched"}
              - match: {prefix: "/c/d"}
                route: {cluster: backend, prefix_rewrite: "/pre"}
              - match: {prefix: "/"}
                direct_response: {status: 404, body: {inline_string: "no"}}"""
    cfg = config(routes=routes).replace(
        "          route_config:\n",
        "          route_config:\n            ignore_path_parameters_in_path_matching: true\n",
    )
    both(
        cfg,
        [get(p) for p in ("/a;x=1/b;c?q", "/a/b", "/a/b;", "/a;/b/c", "/;a/b", "/c;x/d/e", "/c/d;y/e?z", "/c/d/e;f")],
    )


def test_route_configuration_typed_per_filter_config_like_envoy():
    """The route configuration's entry applies where neither the route nor its virtual host has
    one: here it disables the Lua filter, and a virtual host's own entry turns it on again."""
    lua = lua_filter('function envoy_on_request(h) h:headers():add("x-lua", "ran") end')
    per_route = """
              typed_per_filter_config:
                envoy.filters.http.lua:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute
                  source_code: {inline_string: "function envoy_on_request(h) h:headers():add('x-vh', '1') end"}"""
    vhosts = (
        """
            - name: lua_on
              domains: ["lua-on"]"""
        + per_route
        + """
              routes: [{match: {prefix: "/"}, route: {cluster: backend}}]"""
    )
    cfg = config(filters=lua).replace(
        "          route_config:\n            virtual_hosts:",
        """          route_config:
            typed_per_filter_config:
              envoy.filters.http.lua:
                "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute
                disabled: true
            virtual_hosts:"""
        + vhosts,
    )
    both(cfg, [get("/p"), get("/p", host="lua-on")])


# ---- HttpConnectionManager: the host and x-forwarded-port ---------------------------------------
def test_strip_trailing_host_dot_like_envoy():
    hosts = ("example.com.", "example.com.:80", "example.com..", "example.com", "[::1].", "a.:x")
    both(hcm_option("strip_trailing_host_dot: true"), [get("/p", host=h) for h in hosts])
    both(
        hcm_option("strip_trailing_host_dot: true\n          strip_any_host_port: true"),
        [get("/p", host="example.com.:80")],
    )


def test_append_x_forwarded_port_names_the_listeners_port_like_envoy():
    """The port differs between the two runs (the harness gives Envoy a free one), so each side's
    upstream request is compared with its own listener's port put in."""
    from wasmlab import Proxy
    from wasmlab import envoy as real

    cfg = hcm_option("append_x_forwarded_port: true")
    reqs = [get("/p"), get("/p", **{"x-forwarded-port": "7"})]
    ours, theirs = UpstreamLog(), UpstreamLog()
    with Proxy.from_yaml(cfg, workers=1) as p:
        for name, app in recorded_apps(cfg, None, ours).items():
            p.upstream(name, app)
        for r in reqs:
            p.request(**r)
        our_port = "10000"
    with real.run(cfg, workers=1, apps=recorded_apps(cfg, None, theirs)) as e:
        for r in reqs:
            e.request(**r)
        their_port = str(e.listener_ports["l0"])

    def seen(log: UpstreamLog, port: str) -> list[list[tuple[str, str]]]:
        return [
            [(k, "<port>" if (k, v) == ("x-forwarded-port", port) else v) for k, v in hs] for *_, hs, _ in log.requests
        ]

    assert seen(ours, our_port) == seen(theirs, their_port)
    assert ("x-forwarded-port", "<port>") in seen(ours, our_port)[0]
    assert ("x-forwarded-port", "7") in seen(ours, our_port)[1]


# ---- VirtualHost: x-envoy-attempt-count --------------------------------------------------------
@pytest.mark.parametrize("fields", ["include_request_attempt_count", "include_attempt_count_in_response", "both"])
def test_attempt_count_headers_like_envoy(fields):
    names = ["include_request_attempt_count", "include_attempt_count_in_response"] if fields == "both" else [fields]
    extra = "".join(f"\n              {n}: true" for n in names)
    routes = """
              - match: {prefix: "/direct"}
                direct_response: {status: 200, body: {inline_string: "direct hello\\n"}}
              - match: {prefix: "/"}
                route: {cluster: backend}
                response_headers_to_add: [{header: {key: x-after, value: "1"}}]"""
    cfg = config(routes=routes).replace('              domains: ["*"]', '              domains: ["*"]' + extra)
    both(cfg, [get("/p"), get("/direct"), get("/p", **{"x-envoy-attempt-count": "5"})])


# ---- DirectResponseAction: body_format ----------------------------------------------------------
def test_direct_response_body_format_like_envoy():
    routes = """
              - match: {prefix: "/d"}
                direct_response:
                  status: 200
                  body: {inline_string: "plain"}
                  body_format: {text_format: "got %LOCAL_REPLY_BODY% for %REQ(x-a)% %RESPONSE_CODE%\\n"}
              - match: {prefix: "/j"}
                direct_response:
                  status: 201
                  body_format: {json_format: {a: "%REQ(x-a)%", code: "%RESPONSE_CODE%"}}
              - match: {prefix: "/c"}
                direct_response:
                  status: 403
                  body: {inline_string: "no"}
                  body_format: {text_format_source: {inline_string: "<%LOCAL_REPLY_BODY%>"}, content_type: text/html}
              - match: {prefix: "/"}
                route: {cluster: backend}"""
    both(config(routes=routes), [get("/d", **{"x-a": "AA"}), get("/j", **{"x-a": "AA"}), get("/j"), get("/c")])


# ---- substitution commands Envoy accepts and wasmlab refused -------------------------------------
#: TLS and connection-close commands: absent for a plaintext stream on an open connection
ABSENT_COMMANDS = """DOWNSTREAM_LOCAL_EMAIL_SAN DOWNSTREAM_LOCAL_IP_SAN DOWNSTREAM_LOCAL_OTHERNAME_SAN
DOWNSTREAM_PEER_CERT_V_START DOWNSTREAM_PEER_CERT_V_END DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_1
DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_256 DOWNSTREAM_PEER_CHAIN_SERIALS DOWNSTREAM_PEER_DNS_SAN DOWNSTREAM_PEER_EMAIL_SAN
DOWNSTREAM_PEER_FINGERPRINT_1 DOWNSTREAM_PEER_IP_SAN DOWNSTREAM_PEER_OTHERNAME_SAN DOWNSTREAM_PEER_SERIAL
TLS_JA3_FINGERPRINT TLS_JA4_FINGERPRINT UPSTREAM_LOCAL_DNS_SAN UPSTREAM_LOCAL_IP_SAN UPSTREAM_LOCAL_URI_SAN
UPSTREAM_PEER_CERT UPSTREAM_PEER_CERT_V_START UPSTREAM_PEER_CERT_V_END UPSTREAM_PEER_DNS_SAN UPSTREAM_PEER_IP_SAN
UPSTREAM_PEER_ISSUER UPSTREAM_TLS_CIPHER UPSTREAM_TLS_SESSION_ID DOWNSTREAM_LOCAL_CLOSE_REASON""".split()
#: commands with a value; ``a=``/``p=``/``d=`` mark a port-bearing address, a port and a duration,
#: which differ between the two runs and are compared by their shape
VALUE_COMMANDS = [
    "q=%QUERY_PARAMS%",
    "q=%QUERY_PARAMS(ORIG)%",
    "q=%QUERY_PARAMS(DECODED)%",
    "a=%DOWNSTREAM_DIRECT_LOCAL_ADDRESS%",
    "w=%DOWNSTREAM_DIRECT_LOCAL_ADDRESS_WITHOUT_PORT%",
    "p=%DOWNSTREAM_DIRECT_LOCAL_PORT%",
    "d=%COMMON_DURATION(DS_RX_BEG:DS_RX_END)%",
    "d=%COMMON_DURATION(DS_RX_BEG:US_RX_END:us)%",
    "d=%COMMON_DURATION(US_TX_BEG:DS_TX_END:ns)%",
    "d=%COMMON_DURATION(DS_RX_BEG:MY_TIMING)%",
    "d=%UPSTREAM_CONNECTION_POOL_READY_DURATION%",
    "e=%UPSTREAM_REMOTE_ADDRESS_ENDPOINT_ID%",
]


def _shape(line: str) -> list[str]:
    import re

    out = []
    for token in line.split(" "):
        kind, _, value = token.partition("=")
        if kind == "a":
            value = re.sub(r":\d+$", ":<port>", value)
        elif kind in ("p", "d") and value.isdigit():
            value = "<number>"
        out.append(f"{kind}={value}")
    return out


def test_substitution_commands_envoy_accepts_like_envoy(tmp_path):
    """Commands Envoy 1.40 accepts that wasmlab refused before this pass, in a file access log,
    for a routed request, a direct response and a request with no route."""
    fmt = " ".join(VALUE_COMMANDS + [f"x=%{c}%" for c in ABSENT_COMMANDS])
    template = hcm_option(
        f"""access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: LOG_PATH
              log_format: {{text_format_source: {{inline_string: "{fmt}\\n"}}}}"""
    )
    every = "".join(f"%{c:02X}" for c in range(0x7F)) + "%C3%A9%7f"
    reqs = [get("/x?a=1&b=%20c+%41%7e%2F%c3%a9"), get("/direct"), get("/y"), get("/z?" + every)]
    ours, theirs = file_logs_of_both(template, reqs, tmp_path)
    mine = [_shape(line) for line in ours.decode().splitlines()]
    assert mine == [_shape(line) for line in theirs.decode().splitlines()]
    assert len(mine) == 4 and mine[0][2] == "q=a=1&b=%20c+A~/%c3%a9" and "x=-" in mine[0]


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("%QUERY_PARAMS(decode)%", "Invalid QUERY_PARAMS option: 'decode', only 'ORIG'/'DECODED' are allowed"),
        ("%COMMON_DURATION(DS_RX_BEG)%", "Invalid common duration configuration: DS_RX_BEG."),
        ("%COMMON_DURATION(DS_RX_BEG:DS_TX_END:s)%", "Invalid common duration precision: s."),
    ],
)
def test_bad_arguments_of_those_commands_are_refused_like_envoy(envoy_bin, tmp_path, fmt, message):
    from wasmlab import Proxy
    from wasmlab.errors import ConfigError

    cfg = config(
        routes=f"""
              - match: {{prefix: "/"}}
                direct_response: {{status: 200}}
                response_headers_to_add:
                - header: {{key: x-f, value: "{fmt}"}}"""
    )
    path = tmp_path / "bad.yaml"
    path.write_text(cfg)
    ok, envoy_message = real.validate(path)
    assert not ok and message in envoy_message
    with pytest.raises(ConfigError, match=message.split(":")[0].replace("(", r"\(")):
        Proxy.from_yaml(path)


# ---- LuaPerRoute without a script of its own ---------------------------------------------------
def test_a_lua_per_route_entry_with_only_a_filter_context_like_envoy():
    """Envoy 1.40 accepts a ``LuaPerRoute`` that sets none of ``disabled``, ``name`` and
    ``source_code`` (wasmlab refused it): the filter's own script runs, with the entry's
    ``filter_context``; an empty entry changes nothing."""
    code = 'function envoy_on_request(h) h:headers():add("x-ctx", tostring(h:filterContext():get("a"))) end'
    lua = lua_filter(code, extra="\n              filter_context: {a: one}")
    entry = """
                typed_per_filter_config:
                  envoy.filters.http.lua:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute"""
    routes = f"""
              - match: {{prefix: "/r"}}
                route: {{cluster: backend}}{entry}
                    filter_context: {{a: two}}
              - match: {{prefix: "/e"}}
                route: {{cluster: backend}}{entry}
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}"""
    both(config(filters=lua, routes=routes), [get("/r"), get("/e"), get("/x")])


# ---- configs Envoy refuses that wasmlab accepted -------------------------------------------------
def _listeners_twice(d: dict) -> None:
    import copy

    d["static_resources"]["listeners"].append(dict(copy.deepcopy(d["static_resources"]["listeners"][0]), name="l1"))


def _hcm(d: dict) -> dict:
    return d["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


_file_log = file_log


def _route(d: dict) -> dict:
    return _hcm(d)["route_config"]["virtual_hosts"][0]["routes"][1]


def _endpoint(d: dict) -> dict:
    return d["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]


REFUSED = {
    "two listeners on one address": (_listeners_twice, "has duplicate address '127.0.0.1:10000' as existing listener"),
    "an empty stat_prefix": (lambda d: _hcm(d).update(stat_prefix=""), "StatPrefix: value length must be at least 1"),
    "a listener address that is no IP": (
        lambda d: d["static_resources"]["listeners"][0]["address"]["socket_address"].update(address="not-an-ip"),
        "malformed IP address: not-an-ip",
    ),
    "a STATIC endpoint that is a host name": (
        lambda d: _endpoint(d)["address"]["socket_address"].update(address="localhost"),
        "malformed IP address: localhost. Consider setting resolver_name or setting cluster type to 'STRICT_DNS'",
    ),
    "an access log in a missing directory": (
        lambda d: _hcm(d).update(access_log=[_file_log("/nonexistent-wasmlab-dir/x.log")]),
        "unable to open file '/nonexistent-wasmlab-dir/x.log': No such file or directory",
    ),
    "a header matcher with two specifiers": (
        lambda d: _route(d)["match"].update(headers=[{"name": "x", "exact_match": "a", "prefix_match": "b"}]),
        "exact_match",
    ),
    "an empty string_match prefix": (
        lambda d: _route(d)["match"].update(headers=[{"name": "x", "string_match": {"prefix": ""}}]),
        "StringMatcherValidationError.Prefix: value length must be at least 1 characters",
    ),
    "an empty query string_match suffix": (
        lambda d: _route(d)["match"].update(query_parameters=[{"name": "q", "string_match": {"suffix": ""}}]),
        "StringMatcherValidationError.Suffix: value length must be at least 1 characters",
    ),
    "an empty header contains_match": (
        lambda d: _route(d)["match"].update(headers=[{"name": "x", "contains_match": ""}]),
        "HeaderMatcherValidationError.ContainsMatch: value length must be at least 1 characters",
    ),
    "an empty regex": (
        lambda d: _route(d)["match"].update(safe_regex={"regex": ""}) or _route(d)["match"].pop("prefix"),
        "RegexMatcherValidationError.Regex: value length must be at least 1 characters",
    ),
    "a server_name with a newline": (
        lambda d: _hcm(d).update(server_name="a\nb"),
        "HttpConnectionManagerValidationError.ServerName: value does not match regex pattern",
    ),
    "an unknown lb_policy": (
        lambda d: d["static_resources"]["clusters"][0].update(lb_policy="NOPE"),
        "NOPE",
    ),
    "a zero connect_timeout": (
        lambda d: d["static_resources"]["clusters"][0].update(connect_timeout="0s"),
        "ClusterValidationError.ConnectTimeout: value must be greater than 0s",
    ),
    "a zero locality weight": (
        lambda d: d["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0].update(
            load_balancing_weight=0
        ),
        "LocalityLbEndpointsValidationError.LoadBalancingWeight: value must be greater than or equal to 1",
    ),
    "a zero endpoint weight": (
        lambda d: d["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0].update(
            load_balancing_weight=0
        ),
        "LbEndpointValidationError.LoadBalancingWeight: value must be greater than or equal to 1",
    ),
    "a local rate limit filled every 10 ms": (
        lambda d: _hcm(d)["http_filters"].insert(
            0,
            {
                "name": "envoy.filters.http.local_ratelimit",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                    "stat_prefix": "rl",
                    "token_bucket": {"max_tokens": 10, "fill_interval": "0.010s"},
                },
            },
        ),
        "local rate limit token bucket fill timer must be >= 50ms",
    ),
    "an access log path that is a directory": (
        lambda d: _hcm(d).update(access_log=[_file_log("/")]),
        "unable to open file '/': Is a directory",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_config_envoy_refuses_is_refused_in_envoys_words(envoy_bin, tmp_path, case):
    change, message = REFUSED[case]
    data = yaml.safe_load(config())
    change(data)
    assert_refused_in_envoys_words(data, message, tmp_path)


def test_a_dns_clusters_endpoint_may_be_a_host_name(envoy_bin, tmp_path):
    from wasmlab import Proxy

    data = yaml.safe_load(config())
    data["static_resources"]["clusters"][0]["type"] = "STRICT_DNS"
    _endpoint(data)["address"]["socket_address"]["address"] = "localhost"
    path = tmp_path / "dns.yaml"
    path.write_text(yaml.safe_dump(data))
    ok, envoy_message = real.validate(path)
    assert ok, envoy_message
    with Proxy.from_yaml(path, workers=1) as p:
        assert p.request("GET", "/x").status == 200


def test_a_header_matcher_with_two_specifiers_names_them(tmp_path):
    """Envoy cannot parse it (one protobuf oneof); wasmlab names the two fields."""
    from wasmlab import Proxy
    from wasmlab.errors import ConfigError

    data = yaml.safe_load(config())
    _route(data)["match"]["headers"] = [{"name": "x", "exact_match": "a", "prefix_match": "b"}]
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(
        ConfigError, match=r"only one of exact_match, prefix_match may be set \(they are one protobuf oneof\)"
    ):
        Proxy.from_yaml(path)


def test_a_format_with_text_and_json_names_them(tmp_path):
    """Envoy cannot parse it (one protobuf oneof); wasmlab names the two fields."""
    from wasmlab import Proxy
    from wasmlab.errors import ConfigError

    data = yaml.safe_load(config())
    _hcm(data)["local_reply_config"] = {"body_format": {"text_format": "a", "json_format": {"a": "b"}}}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"only one of text_format, json_format may be set"):
        Proxy.from_yaml(path)


def test_json_format_lists_and_nulls_like_envoy(tmp_path):
    """A ``json_format`` may hold lists (each element rendered as a value, nulls kept) and null;
    wasmlab refused lists before this pass."""
    import json

    template = hcm_option(
        """access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: LOG_PATH
              log_format:
                json_format:
                  a: ["x", "%REQ(x-a)%", 1, true, {"k": "%RESPONSE_CODE%"}, ["m"], "%REQ(nope)%"]
                  b: []
                  c: [null]
                  e: "%RESPONSE_CODE%\""""
    )
    ours, theirs = file_logs_of_both(template, [get("/x", **{"x-a": "AA"}), get("/direct")], tmp_path)
    assert ours == theirs
    assert json.loads(ours.splitlines()[0])["a"] == ["x", "AA", 1, True, {"k": 200}, ["m"], None]


# ---- local_ratelimit: enable_x_ratelimit_headers ------------------------------------------------
@pytest.mark.parametrize("enabled", [True, False])
def test_x_ratelimit_headers_like_envoy(enabled):
    """``DRAFT_VERSION_03``: a request the limiter ran on answers ``x-ratelimit-limit``,
    ``-remaining`` and ``-reset`` (0 while tokens are left, else the seconds until the next one),
    after its other headers, on the upstream's response and on the 429 alike; a request the
    limiter did not run on (``filter_enabled`` absent: 0 %) gets none. Accepted and ignored
    before this pass."""
    sampled = (
        """
              filter_enabled: {default_value: {numerator: 100, denominator: HUNDRED}, runtime_key: a}
              filter_enforced: {default_value: {numerator: 100, denominator: HUNDRED}, runtime_key: b}"""
        if enabled
        else ""
    )
    lrl = f"""
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: rl
              enable_x_ratelimit_headers: DRAFT_VERSION_03
              token_bucket: {{max_tokens: 2, tokens_per_fill: 1, fill_interval: 30s}}{sampled}"""
    mine, _ = both(config(filters=lrl), [get("/p"), get("/p"), get("/p"), get("/direct")])
    assert ("x-ratelimit-remaining" in mine[0].headers) is enabled
