"""The errors a learner meets in a notebook, one case each, as docs/errors.md lists them: the
``Proxy`` API used wrongly, a closed proxy, unknown clusters and listeners, views misused, and the
config mistakes every first config makes. Each case asserts the exception's class and the words
of its message (tests/test_errors_doc.py checks that every catalogue row names a test that
asserts its message)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import CONFIGS
from wasmlab import ConfigError, Proxy, load_config
from wasmlab.errors import ProxyClosed

HELLO = (CONFIGS / "hello.yaml").read_text()


@pytest.fixture(scope="module")
def proxy() -> Iterator[Proxy]:
    with Proxy.from_yaml(CONFIGS / "hello.yaml", workers=1) as p:
        yield p


API_CASES: list[tuple[str, Callable[[Proxy], Any], type[Exception], str]] = [
    ("method", lambda p: p.request("G T", "/"), ValueError, "method must be an HTTP method such as 'GET', got "),
    ("path", lambda p: p.request("GET", "hello"), ValueError, "path must start with '/', got "),
    ("path-space", lambda p: p.request("GET", "/a b"), ValueError, "path must not contain spaces or line breaks, got "),
    ("header-name", lambda p: p.request("GET", "/", headers={"x y": "1"}), ValueError, "invalid header name "),
    (
        "header-value",
        lambda p: p.request("GET", "/", headers={"x": "1\r\n"}),
        ValueError,
        "has a line break in its value",
    ),
    (
        "headers-shape",
        lambda p: p.request("GET", "/", headers=[1]),
        TypeError,
        "headers must be (name, value) pairs, got ",
    ),
    ("body-type", lambda p: p.request("POST", "/", body=5), TypeError, "body must be bytes or str, got int"),
    ("worker", lambda p: p.request("GET", "/", worker=5), ValueError, "worker must be 0.."),
    (
        "request-many",
        lambda p: p.request_many([42]),
        TypeError,
        "each request must be a (method, path) tuple or a dict, got ",
    ),
    (
        "upstream-cluster",
        lambda p: p.upstream("nope", None),
        KeyError,
        "no cluster named 'nope' in the config (clusters: ",
    ),
    (
        "upstream-app",
        lambda p: p.upstream("backend", 42),
        TypeError,
        "an upstream app must be callable (Request -> Response), got ",
    ),
    (
        "connect",
        lambda p: p.connect(),
        ConfigError,
        "this config has no TCP listener (network filters ending in tcp_proxy)",
    ),
    (
        "advance",
        lambda p: p.advance(1),
        RuntimeError,
        "advance() needs a virtual clock: Proxy.from_yaml(..., clock='virtual')",
    ),
    ("log-level", lambda p: p.set_log_level("loud"), ValueError, " (expected one of: "),
    (
        "link",
        lambda p: __import__("wasmlab.views", fromlist=["link"]).link(p.views.timeline()),
        ValueError,
        "link() needs at least two views",
    ),
    (
        "link-type",
        lambda p: __import__("wasmlab.views", fromlist=["link"]).link(1, 2),
        TypeError,
        "link() takes wasmlab views, got ",
    ),
    (
        "timeline-mode",
        lambda p: __import__("wasmlab.views.timeline", fromlist=["x"]).TimelineView([], mode="x"),
        ValueError,
        "mode must be one of ",
    ),
]


@pytest.mark.parametrize(("fn", "exc", "words"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_api_misuse(proxy: Proxy, fn: Callable[[Proxy], Any], exc: type[Exception], words: str) -> None:
    with pytest.raises(exc) as e:
        fn(proxy)
    assert words in str(e.value)


def test_a_closed_proxy_says_so() -> None:
    p = Proxy.from_yaml(CONFIGS / "hello.yaml", workers=1)
    p.close()
    with pytest.raises(ProxyClosed) as e:
        p.request("GET", "/")
    assert str(e.value) == "this proxy was closed; create a new one with Proxy.from_yaml(...)"


@pytest.mark.parametrize(
    ("config", "kw", "words"),
    [
        ("hello.yaml", {"workers": 0}, "workers must be an int from 1 to 64, got "),
        ("hello.yaml", {"clock": "fast"}, "clock must be 'real' or 'virtual', got "),
        ("hello.yaml", {"options": {"wasm_deadline": 1}}, "unknown proxy option "),
        (
            "wasm/hello.yaml",
            {"options": {"wasm_call_path": "quick"}},
            "wasm_call_path must be auto, fast or normal, got ",
        ),
        ("lua/add_header.yaml", {"options": {"lua_instruction_limit": -1}}, " must be a number >= 0, got "),
        # checked with the other options: also refused where no Lua filter would read it
        ("hello.yaml", {"options": {"lua_memory_limit_mb": -5}}, "lua_memory_limit_mb must be a number >= 0, got -5"),
        ("hello.yaml", {"options": {"lua_sandbox": "no"}}, "lua_sandbox must be True or False, got 'no'"),
        ("hello.yaml", {"component_log_level": "wasm"}, "component log level must look like logger:level, got "),
    ],
)
def test_from_yaml_arguments(config: str, kw: dict[str, Any], words: str) -> None:
    with pytest.raises((ValueError, TypeError)) as e:
        Proxy.from_yaml(CONFIGS / config, **kw).close()
    assert words in str(e.value)


def test_config_source_type() -> None:
    with pytest.raises(TypeError) as e:
        load_config(42)  # type: ignore[arg-type]
    assert "config source must be a path or YAML text, got " in str(e.value)


def _mutated(old: str, new: str) -> str:
    assert old in HELLO
    return HELLO.replace(old, new, 1)


ROUTER = """          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""
CONFIG_CASES: list[tuple[str, str, str]] = [
    ("empty", "# nothing\n", ": the config is empty"),
    ("not-mapping", "- a\n- b\n", ": the top level must be a mapping (an Envoy bootstrap), got "),
    ("no-file", "missing.yaml", ": no such config file"),
    ("syntax", "a: [1, 2\n", ": YAML syntax error: "),
    (
        "unknown-field",
        _mutated("stat_prefix: ingress", "stat_prefix: ingress\n          stats_prefix: x"),
        "unknown field 'stats_prefix' (wasmlab supports: ",
    ),
    (
        "missing-field",
        _mutated("    type: STATIC\n", "    type: STATIC\n").replace("  - name: backend\n", "  -\n"),
        "missing required field 'name'",
    ),
    ("wrong-type", _mutated("port_value: 10000", "port_value: ten"), "expected an integer, got "),
    ("enum", _mutated("type: STATIC", "type: STATICK"), "unknown value 'STATICK' (expected one of: "),
    ("duration", _mutated("connect_timeout: 1s", "connect_timeout: soon"), 'expected a duration such as "1.5s", got '),
    (
        "bool",
        _mutated(
            "routes:\n",
            "routes:\n              - match: {prefix: /x, case_sensitive: maybe}\n"
            "                route: {cluster: backend}\n",
        ),
        "expected true or false, got ",
    ),
    (
        "unknown-cluster",
        _mutated("route: {cluster: backend}", "route: {cluster: backends}"),
        "route: unknown cluster 'backends'",
    ),
    (
        "duplicate-cluster",
        HELLO + HELLO[HELLO.index("  - name: backend") :],
        "cluster manager: duplicate cluster 'backend'",
    ),
    (
        "router-not-last",
        _mutated(
            ROUTER,
            ROUTER
            + """          - name: envoy.filters.http.lua
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
              default_source_code: {inline_string: "function envoy_on_request(h) end"}
""",
        ),
        " must be the last filter in a http filter chain.",
    ),
    (
        "no-router",
        _mutated(
            ROUTER,
            """          - name: envoy.filters.http.lua
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
              default_source_code: {inline_string: "function envoy_on_request(h) end"}
""",
        ),
        " is the last filter in a http filter chain.",
    ),
    (
        "empty-filters",
        _mutated(ROUTER, "").replace("http_filters:\n", "http_filters: []\n"),
        "http_filters is empty: add envoy.filters.http.router as the last filter",
    ),
    ("unknown-filter", _mutated("router.v3.Router", "router.v3.Routr"), "Didn't find a registered implementation for "),
    (
        "type-url",
        _mutated("type.googleapis.com/envoy.extensions.filters.http.router", "envoy.extensions.filters.http.router"),
        "type URL must start with type.googleapis.com/, got ",
    ),
    (
        "domains",
        _mutated('domains: ["*"]', 'domains: ["*", "*"]'),
        "only unique values for domains are permitted. Duplicate entry of domain ",
    ),
    (
        "route-action",
        _mutated("                route: {cluster: backend}\n", ""),
        "exactly one of route, direct_response, redirect must be set",
    ),
    (
        "path-match",
        _mutated('match: {prefix: "/direct"}', 'match: {prefix: "/direct", path: "/d"}'),
        "exactly one of prefix, path, safe_regex, path_separated_prefix must be set",
    ),
    (
        "no-listeners",
        _mutated("static_resources:\n  listeners:", "static_resources:\n  old_listeners:").split("  old_listeners:")[0]
        + HELLO[HELLO.index("  clusters:") :],
        "no listeners: add static_resources.listeners with an http_connection_manager",
    ),
    (
        "no-chain",
        "static_resources:\n  listeners:\n  - name: l\n    address: {socket_address: {address: 127.0.0.1, "
        "port_value: 1}}\n    filter_chains: []\n",
        "at least one filter chain is required",
    ),
    (
        "tls",
        _mutated("    type: STATIC\n", "    type: STATIC\n    transport_socket: {name: tls}\n"),
        "TLS transport sockets are not supported (upstreams are in-process apps)",
    ),
    (
        "data-source",
        _mutated('body: {inline_string: "direct hello\\n"}', 'body: {inline_string: "a", filename: "/etc/hostname"}'),
        "exactly one of inline_string, inline_bytes, filename must be set",
    ),
    ("negative", _mutated("port_value: 10000", "port_value: -1"), "must be >= "),
    ("too-big", _mutated("port_value: 10000", "port_value: 70000"), "must be <= "),
    ("mapping", _mutated("route: {cluster: backend}", "route: [backend]"), "expected a mapping, got "),
]


WASM = (CONFIGS / "wasm" / "add_header.yaml").read_text().replace("../../../modules/", "modules/")
LIMIT = (CONFIGS / "local_ratelimit.yaml").read_text()


def _wasm(old: str, new: str) -> str:
    assert old in WASM
    return WASM.replace(old, new, 1)


CONFIG_CASES += [
    ("wasm-runtime", _wasm("envoy.wasm.runtime.v8", "envoy.wasm.runtime.v9"), "unknown Wasm runtime "),
    (
        "wasm-null",
        _wasm("envoy.wasm.runtime.v8", "envoy.wasm.runtime.null"),
        "envoy.wasm.runtime.null runs plugins compiled into Envoy (NullVM); wasmlab can only run .wasm code",
    ),
    ("wasm-file", _wasm("modules/add_header.wasm", "modules/no_such.wasm"), "cannot read Wasm module "),
    (
        "wasm-policy",
        _wasm(
            "root_id: add_header",
            "root_id: add_header\n                fail_open: true\n                failure_policy: FAIL_OPEN",
        ),
        "only one of fail_open and failure_policy can be set",
    ),
    (
        "wasm-code",
        _wasm("code: {local: {filename: modules/add_header.wasm}}", "code: {local: {}}"),
        "exactly one of filename, inline_bytes, inline_string must be set",
    ),
    ("fill-interval", LIMIT.replace("fill_interval: 60s", "fill_interval: 0s"), "fill_interval must be greater than 0"),
    ("one-domain", _mutated('domains: ["*"]', "domains: []"), "at least one domain is required"),
    ("string", _mutated("stat_prefix: ingress", "stat_prefix: [ingress]"), "expected a string, got "),
    (
        "network-filter",
        _mutated(
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "envoy.extensions.filters.network.redis_proxy.v3.RedisProxy",
        ),
        "(wasmlab supports http_connection_manager, envoy.filters.network.wasm and envoy.filters.network.tcp_proxy)",
    ),
    (
        "native-unknown",
        _mutated(
            """          - name: envoy.filters.http.router
""",
            """          - name: wasmlab.native.nope
            typed_config: {"@type": type.googleapis.com/google.protobuf.Struct}
          - name: envoy.filters.http.router
""",
        ),
        "register one with @wasmlab.native_filter(name)",
    ),
]


LUA = (CONFIGS / "lua" / "add_header.yaml").read_text()
BODY = 'body: {inline_string: "direct hello\\n"}'
CONFIG_CASES += [
    ("env-body", _mutated(BODY, "body: {environment_variable: WASMLAB_SURELY_NOT_SET}"), "environment variable "),
    ("file-body", _mutated(BODY, "body: {filename: /nonexistent/wasmlab/body.txt}"), "cannot read "),
    ("base64", _mutated(BODY, 'body: {inline_bytes: "!!not base64!!"}'), "inline_bytes must be base64"),
    (
        "append-both",
        _mutated(
            "route: {cluster: backend}",
            "route: {cluster: backend}\n"
            "                request_headers_to_add: [{header: {key: x-a, value: b}, append: true,"
            " append_action: APPEND_IF_EXISTS_OR_ADD}]",
        ),
        "'append' and 'append_action' are mutually exclusive",
    ),
    (
        "string-match",
        _mutated('match: {prefix: "/direct"}', 'match: {prefix: "/direct", headers: [{name: x-a, string_match: {}}]}'),
        "exactly one of exact, prefix, suffix, contains, safe_regex must be set",
    ),
    (
        "wasm-code-both",
        _wasm(
            "code: {local: {filename: modules/add_header.wasm}}",
            "code: {local: {filename: modules/add_header.wasm}, remote: {http_uri: {uri: x}}}",
        ),
        "only one of local and remote can be set",
    ),
    ("lua-syntax", LUA.replace("function envoy_on_request", "function envoy_on_request(((", 1), "script load error: "),
]


@pytest.mark.parametrize(("text", "words"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_config_mistakes(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(text)
    assert words in str(e.value)
    assert "\n" not in str(e.value).strip()


def test_course_check_messages(capsys: pytest.CaptureFixture[str]) -> None:
    """A blank answer, then a wrong one: what a check cell shows (and the AssertionError)."""
    from wasmlab.checks import Exercise

    blank = Exercise(1, "a")
    assert blank.answered(...) is False
    assert "NOT ANSWERED YET: Exercise 01.a: fill in the answer cell above, run it, then run this check again" in (
        capsys.readouterr().out
    )
    wrong = Exercise(1, "b")
    with pytest.raises(AssertionError) as e:
        wrong.check(False, fail="the status is 200, not the one the exercise asks for", hint="look at the route")
    assert str(e.value) == (
        "Exercise 01.b: the status is 200, not the one the exercise asks for (hint: look at the route)"
    )
    assert "NOT YET: Exercise 01.b" in capsys.readouterr().out


def test_advance_cannot_go_back() -> None:
    with Proxy.from_yaml(CONFIGS / "hello.yaml", workers=1, clock="virtual") as p, pytest.raises(ValueError) as e:
        p.advance(-1)
    assert str(e.value) == "advance() cannot move time backwards"


def test_a_wrong_envoy_binary_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from wasmlab.envoy.binary import find_envoy
    from wasmlab.errors import EnvoyNotFound

    monkeypatch.setenv("WASMLAB_ENVOY", str(tmp_path / "envoy"))
    with pytest.raises(EnvoyNotFound) as e:
        find_envoy()
    assert " is not an executable file" in str(e.value)


def test_a_host_bug_on_a_worker_is_logged_and_the_worker_serves() -> None:
    with Proxy.from_yaml(CONFIGS / "hello.yaml", workers=1) as p:
        p._server.workers[0].post(lambda: 1 / 0)
        p.wait_idle(5.0)
        assert p.request("GET", "/direct").status == 200
        assert any("unhandled error on worker_0: " in ln and "ZeroDivisionError" in ln for ln in p.logs)


def test_an_invalid_regex_names_re2() -> None:
    text = _mutated('match: {prefix: "/direct"}', "match: {safe_regex: {regex: '(a'}}")
    with pytest.raises(ConfigError) as e:
        load_config(text)
    assert "invalid regex '(a': missing ): (a (RE2, Envoy's regex engine)" in str(e.value)


def test_a_reset_stream_says_so(tmp_path: Any) -> None:
    import wasmtime

    from wasm_diff import plugin_yaml
    from wasmlab import StreamReset

    wat = """(module
      (import "env" "proxy_close_stream" (func $close (param i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "proxy_abi_version_0_2_1"))
      (func (export "malloc") (param i32) (result i32) (i32.const 1024))
      (func (export "proxy_on_context_create") (param i32 i32))
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (drop (call $close (i32.const 0))) (i32.const 0)))"""
    (tmp_path / "reset.wasm").write_bytes(wasmtime.wat2wasm(wat))
    with Proxy.from_yaml(plugin_yaml(tmp_path / "reset.wasm"), workers=1) as p, pytest.raises(StreamReset) as e:
        p.request("GET", "/a")
    assert str(e.value) == "the proxy reset the stream (wasm_close_stream)"
