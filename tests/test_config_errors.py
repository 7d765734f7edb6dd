"""Malformed configs: each gives one line naming the file, line and YAML path, in Envoy's words
where Envoy has words for it."""

import re

import pytest

from helpers import config
from wasmlab import ConfigError, Proxy, load_config

ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def err(yaml_text: str) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(yaml_text)
    msg = str(e.value)
    assert "\n" not in msg, f"error must be one line: {msg!r}"
    return msg


def test_yaml_syntax_error_names_the_line():
    msg = err("static_resources:\n  listeners: [\n  - a\n")
    assert msg.startswith("<string>:")
    assert "YAML syntax error" in msg


def test_top_level_must_be_a_mapping():
    assert err("- 1\n- 2\n") == "<string>: the top level must be a mapping (an Envoy bootstrap), got a list"


def test_unknown_top_level_field_lists_what_is_supported():
    msg = err("static_resource: {}\n")
    assert msg.startswith("<string>:1: static_resource: unknown field 'static_resource'")
    assert "admin, bootstrap_extensions, node, static_resources" in msg


def test_unknown_listener_field_names_the_yaml_path():
    text = config().replace("    filter_chains:", "    fliter_chains:")
    msg = err(text)
    assert "static_resources.listeners[0].fliter_chains: unknown field 'fliter_chains'" in msg
    assert re.match(r"<string>:\d+: ", msg)


def test_unknown_http_filter_type_uses_envoys_words():
    bogus = """
          - name: my.bogus
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.bogus.v3.Bogus"""
    msg = err(config(bogus))
    assert "http_filters[0].typed_config.@type" in msg
    assert (
        "Didn't find a registered implementation for 'my.bogus' with type URL: "
        "'envoy.extensions.filters.http.bogus.v3.Bogus'" in msg
    )


def test_route_to_unknown_cluster():
    routes = """
              - match: {prefix: "/"}
                route: {cluster: nosuch}"""
    msg = err(config(routes=routes))
    assert msg.endswith("virtual_hosts[0].routes[0].route.cluster: route: unknown cluster 'nosuch'")


def test_wrong_type_for_a_port():
    text = config().replace("port_value: 10000", "port_value: abc")
    msg = err(text)
    assert "listeners[0].address.socket_address.port_value: expected an integer, got a string" in msg


def test_missing_required_field():
    text = config().replace("          stat_prefix: ingress\n", "")
    msg = err(text)
    assert "filter_chains[0].filters[0].typed_config: missing required field 'stat_prefix'" in msg


def test_out_of_range_status():
    routes = """
              - match: {prefix: "/"}
                direct_response: {status: 1000}"""
    msg = err(config(routes=routes))
    assert "routes[0].direct_response.status: must be <= 599, got 1000" in msg


def test_router_must_be_last():
    text = config().replace(
        "          http_filters:",
        f"""          http_filters:
          - name: first.router
            typed_config:
              "@type": {ROUTER}""",
    )
    msg = err(text)
    assert "http_filters[0]: terminal filter named first.router" in msg
    assert "must be the last filter in a http filter chain." in msg


def test_missing_router():
    from helpers import ROUTER as ROUTER_YAML

    routes = """
              - match: {prefix: "/"}
                direct_response: {status: 200}"""
    hm = """
          - name: envoy.filters.http.header_mutation
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"""
    text = config(hm, routes=routes).replace(ROUTER_YAML, "")
    msg = err(text)
    assert "http_filters[0]: non-terminal filter named envoy.filters.http.header_mutation" in msg
    assert "is the last filter in a http filter chain." in msg


def test_bad_regex():
    routes = """
              - match: {safe_regex: {regex: "/items/(["}}
                route: {cluster: backend}"""
    msg = err(config(routes=routes))
    assert "routes[0].match.safe_regex.regex: invalid regex '/items/(['" in msg


def test_bad_duration():
    routes = """
              - match: {prefix: "/"}
                route: {cluster: backend, timeout: 5}"""
    msg = err(config(routes=routes))
    assert 'routes[0].route.timeout: expected a duration such as "1.5s", got 5' in msg


def test_duplicate_cluster():
    clusters = """
  - name: backend
    type: STATIC
  - name: backend
    type: STATIC"""
    msg = err(config(clusters=clusters))
    assert "static_resources.clusters[1].name: cluster manager: duplicate cluster 'backend'" in msg


def test_unknown_native_filter():
    filt = """
          - name: wasmlab.native.nope"""
    msg = err(config(filt))
    assert "unknown native filter 'wasmlab.native.nope' (registered:" in msg


def test_rds_is_not_supported():
    text = config().replace(
        "          route_config:", "          rds: {route_config_name: x}\n          route_config_x:"
    )
    msg = err(text)
    assert "unknown field 'rds'" in msg and "rds and scoped_routes (dynamic routes) are not supported" in msg


def test_match_with_two_kinds():
    routes = """
              - match: {prefix: "/", path: "/x"}
                route: {cluster: backend}"""
    msg = err(config(routes=routes))
    assert "routes[0].match: exactly one of prefix, path, safe_regex, path_separated_prefix must be set" in msg


def test_unknown_access_logger():
    text = config().replace(
        "          stat_prefix: ingress\n",
        """          stat_prefix: ingress
          access_log:
          - name: x
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig
""",
    )
    msg = err(text)
    assert "access_log[0].typed_config.@type: unsupported access logger" in msg


def test_unknown_access_log_operator():
    text = config().replace(
        "          stat_prefix: ingress\n",
        """          stat_prefix: ingress
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format: {text_format_source: {inline_string: "%NOPE%"}}
""",
    )
    msg = err(text)
    assert "Not supported field in StreamInfo: NOPE" in msg


def test_errors_in_a_file_name_the_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    routes = """
              - match: {prefix: "/"}
                route: {cluster: nosuch}"""
    path.write_text(config(routes=routes))
    with pytest.raises(ConfigError) as e:
        Proxy.from_yaml(path)
    assert re.match(rf"{re.escape(str(path))}:\d+: static_resources\.listeners\[0\]", str(e.value))


def test_missing_file():
    with pytest.raises(ConfigError, match=r"^nope/missing\.yaml: no such config file$"):
        Proxy.from_yaml("nope/missing.yaml")


def test_at_least_twelve_distinct_errors_are_covered():
    tests = [
        name
        for name in globals()
        if name.startswith("test_") and name != "test_at_least_twelve_distinct_errors_are_covered"
    ]
    assert len(tests) >= 12


def test_unknown_proxy_option_is_named_with_the_known_ones():
    from wasmlab.bench import direct_config

    with pytest.raises(ValueError) as e:
        Proxy.from_yaml(direct_config(), options={"wasm_callback_deadline": 0.5})
    msg = str(e.value)
    assert "'wasm_callback_deadline'" in msg and "wasm_callback_deadline_s" in msg and "lua_memory_limit_mb" in msg
