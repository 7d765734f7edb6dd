"""Issue 11's fidelity items, each compared with real Envoy 1.40: the client's response and what
every upstream (route and callout) receives."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import CONFIGS
from helpers import UpstreamLog, assert_same, assert_same_upstreams, config, lua_filter, recorded_apps
from wasmlab import Proxy
from wasmlab import envoy as real
from wasmlab.host.local_info import local_address

WASM = CONFIGS / "wasm"


def diff(cfg: Any, requests: list[dict[str, Any]], apps: dict[str, Any] | None = None) -> tuple[UpstreamLog, list]:
    """Same requests on both; asserts equal responses and equal upstream requests; returns
    wasmlab's upstream log and responses."""
    ours, theirs = UpstreamLog(), UpstreamLog()
    with Proxy.from_yaml(cfg, workers=1) as p:
        for name, app in recorded_apps(cfg, apps, ours).items():
            p.upstream(name, app)
        mine = [p.request(**kw) for kw in requests]
        p.wait_idle(5)
    with real.run(cfg, workers=1, apps=recorded_apps(cfg, apps, theirs)) as e:
        env = [e.request(**kw) for kw in requests]
    for i, (a, b) in enumerate(zip(mine, env, strict=True)):
        assert_same(a, b, f"request {i} {requests[i]}")
    assert_same_upstreams(ours, theirs)
    diff.envoy_responses = env  # type: ignore[attr-defined]  # for checks the normalisation hides
    return ours, mine


def get(path: str, **headers: str) -> dict[str, Any]:
    return {"method": "GET", "path": path, "headers": dict(headers)}


# ---- 1. location on direct responses ------------------------------------------------------------
DIRECT_ROUTES = "".join(
    f"""
              - match: {{prefix: "/d{code}"}}
                direct_response: {{status: {code}}}"""
    for code in (200, 201, 301, 302, 303, 304, 404)
)


def test_direct_response_location_like_envoy(envoy_bin):
    reqs = [get(f"/d{c}/x?q=1") for c in (200, 201, 301, 302, 303, 304, 404)]
    reqs += [get("/d301/y", **{"host": "example.com:8080", "x-forwarded-proto": "https"})]
    _, mine = diff(config(routes=DIRECT_ROUTES), reqs)
    assert mine[1].headers.get("location") == "http://localhost/d201/x?q=1"
    assert mine[-1].headers.get("location") == "https://example.com:8080/d301/y"
    assert mine[0].headers.get("location") is None


# ---- 2. connection: close after a local 400 ----------------------------------------------------
LUA_RESPOND = lua_filter("""
    function envoy_on_request(h)
      local s = h:headers():get("x-status")
      if s then h:respond({[":status"]=s}, "") end
      if h:headers():get("x-call") then
        local hs = {[":method"]="GET", [":path"]="/co", [":authority"]="cb"}
        local hh, b = h:httpCall("backend", hs, "", 1000)
        h:respond({[":status"]="200"}, b)
      end
    end""")


@pytest.mark.parametrize("status", ["400", "403", "413", "431", "500"])
def test_local_reply_400_closes_the_connection_like_envoy(envoy_bin, status):
    reqs = [get("/a", **{"x-status": status}), {**get("/a", **{"x-status": status}), "method": "POST", "body": b"xx"}]
    _, mine = diff(config(filters=LUA_RESPOND), reqs)
    assert (mine[0].headers.get("connection") == "close") == (status == "400")


# ---- 3. callout request headers -----------------------------------------------------------------
def test_lua_http_call_sends_the_machines_address_as_envoy_does(envoy_bin):
    log, _ = diff(config(filters=LUA_RESPOND), [get("/a", **{"x-call": "1"})])
    (callout,) = log.by_cluster()["backend"]
    assert ("x-forwarded-for", local_address()) in callout[2]


def test_wasm_http_call_sends_no_x_forwarded_for_like_envoy(envoy_bin):
    def auth(req):
        return (200, [("content-type", "text/plain")], b"ok")

    log, _ = diff(WASM / "http_auth.yaml", [get("/", authorization="Bearer x")], apps={"auth": auth})
    calls = log.by_cluster()["auth"]
    assert calls and all(k != "x-forwarded-for" for k, _ in calls[0][2])


# ---- 4. use_remote_address / xff_num_trusted_hops -----------------------------------------------
@pytest.mark.parametrize(
    "extra",
    [
        "use_remote_address: true",
        "use_remote_address: true\n          xff_num_trusted_hops: 1",
        "xff_num_trusted_hops: 1",
        "use_remote_address: true\n          skip_xff_append: true",
    ],
)
def test_remote_address_headers_like_envoy(envoy_bin, extra):
    cfg = config().replace("stat_prefix: ingress", "stat_prefix: ingress\n          " + extra)
    internal = {"x-envoy-internal": "true", "x-envoy-original-path": "/p", "x-envoy-foo": "1"}
    reqs = [get("/up"), get("/up", **{"x-forwarded-for": "1.2.3.4, 5.6.7.8"}), get("/up", **internal)]
    reqs.append(get("/up", **{"x-forwarded-for": "10.0.0.1", "x-forwarded-proto": "https"}))
    log, _ = diff(cfg, reqs)
    first = dict(log.by_cluster()["backend"][0][2])
    if "use_remote_address" in extra and "skip" not in extra:
        assert first["x-forwarded-for"] == local_address()
        assert first["x-envoy-external-address"] == "127.0.0.1"


# ---- 5. config Envoy accepts --------------------------------------------------------------------
@pytest.mark.parametrize("typed_struct", ["xds.type.v3.TypedStruct", "udpa.type.v1.TypedStruct"])
def test_typed_struct_wasm_config_and_cluster_metadata_like_envoy(envoy_bin, tmp_path, typed_struct):
    import yaml

    data = yaml.safe_load((WASM / "hello.yaml").read_text())
    hcm = data["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    wasm = hcm["http_filters"][0]
    plugin = wasm["typed_config"]["config"]
    plugin["vm_config"]["code"]["local"]["filename"] = str((WASM / "../../../modules/hello.wasm").resolve())
    wasm["typed_config"] = {
        "@type": f"type.googleapis.com/{typed_struct}",
        "type_url": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "value": {"config": plugin},
    }
    data["static_resources"]["clusters"][0]["metadata"] = {"filter_metadata": {"istio": {"version": "1"}}}
    path = tmp_path / "hello_typed_struct.yaml"
    path.write_text(yaml.safe_dump(data))
    assert real.validate(path)[0]
    diff(path, [get("/"), get("/direct")])


# ---- 8. node and listener properties ------------------------------------------------------------
@pytest.mark.parametrize("direction", [None, "OUTBOUND"])
def test_node_and_listener_direction_properties_like_envoy(envoy_bin, direction):
    import yaml

    from conftest import FIXTURES
    from wasm_diff import assert_same_run, plugin_yaml, run_both

    data = yaml.safe_load(plugin_yaml(FIXTURES / "wasm" / "node_properties.wasm"))
    data["node"] = {"id": "sidecar~10.0.0.1~pod.ns~ns.svc", "cluster": "edge", "metadata": {"team": "lab"}}
    if direction:
        data["static_resources"]["listeners"][0]["traffic_direction"] = direction
    ours, theirs, lines = run_both(yaml.safe_dump(data), [get("/")])
    assert_same_run(ours, theirs, lines)
    logged = [ln for ln in lines["worker_0"][0] if "property" in ln]
    assert any("node.id -> status=0 value=sidecar~10.0.0.1~pod.ns~ns.svc" in ln for ln in logged), logged
    assert any(f"listener_direction -> status=0 value={2 if direction else 0}" in ln for ln in logged), logged


# ---- 6. a virtual clock Go's runtime can start on ------------------------------------------------
@pytest.mark.parametrize("clock", ["virtual", "real"])
def test_monotonic_clock_go_can_start_on_like_envoy(envoy_bin, clock):
    from conftest import FIXTURES
    from wasm_diff import assert_same_run, plugin_yaml, run_both

    cfg = plugin_yaml(FIXTURES / "wasm" / "clock_check.wasm")
    ours, theirs, lines = run_both(cfg, [get("/")], clock=clock)
    assert_same_run(ours, theirs, lines)
    assert any("clock ok" in ln for ln in lines["main"][0]), lines["main"][0]


def test_a_failed_start_shows_the_guests_stderr_as_envoy_logs_it(envoy_bin, tmp_path):
    from conftest import FIXTURES
    from wasm_diff import plugin_yaml
    from wasmlab.errors import StartupError

    cfg = plugin_yaml(FIXTURES / "wasm" / "stderr_then_trap.wasm")
    path = tmp_path / "trap.yaml"
    path.write_text(cfg)
    ok, message = real.validate(path)
    assert not ok and "Unable to create Wasm plugin p" in message
    import subprocess

    run = subprocess.run(
        [envoy_bin, "-c", str(path), "--mode", "validate", "-l", "error", "--disable-hot-restart",
         "--use-dynamic-base-id"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "wasm log: fatal error: nanotime returning zero" in run.stderr + run.stdout
    with pytest.raises(StartupError, match="module wrote to stderr: fatal error: nanotime returning zero"):
        Proxy.from_yaml(cfg)


# ---- 9. thread-labelled Envoy-format trace -------------------------------------------------------
def test_envoy_format_trace_names_each_lines_thread_like_envoys_log(envoy_bin):
    import re

    from wasm_diff import WASM_PREFIXES
    from wasmlab.trace.export import envoy_lines

    cfg = WASM / "hello.yaml"
    with Proxy.from_yaml(cfg, workers=1, component_log_level="wasm:trace") as p:
        p.request("GET", "/")
    ours = envoy_lines(
        p.trace.events, label_threads=True
    )  # after close: shutdown (proxy_on_done, proxy_on_delete) included
    with real.run(cfg, workers=1, component_log_level="wasm:trace") as e:
        e.request("GET", "/")
        time_settle = e.wait_for_log(lambda ln: "proxy_on_log" in ln.message, 5.0)
        assert time_settle
    theirs = envoy_lines(e.trace.events, label_threads=True)

    def by_thread(lines: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for ln in lines:
            m = re.match(r"\[(\w+)\] (.*)", ln)
            assert m, f"line without a thread label: {ln!r}"
            if m.group(2).startswith(WASM_PREFIXES):
                out.setdefault(m.group(1), []).append(m.group(2))
        return out

    a, b = by_thread(ours), by_thread(theirs)
    assert set(a) == set(b) == {"main", "worker_0"}
    for thread in a:
        assert a[thread] == b[thread], thread


# ---- 7. network filters: upstream.address, byte and connection counters --------------------------
def test_network_filter_upstream_address_and_byte_counters_like_envoy(envoy_bin, tmp_path):
    import re
    import time

    from conftest import FIXTURES
    from wasm_diff import envoy_lines, wasmlab_lines

    text = (WASM / "tcp_logger.yaml").read_text()
    module = (FIXTURES / "wasm" / "tcp_upstream.wasm").resolve()
    path = tmp_path / "tcp_upstream.yaml"
    # a five-digit upstream port, like the bridge's loopback servers, so sizes agree in the trace
    text = text.replace("port_value: 8083", "port_value: 18083")
    path.write_text(text.replace("../../../modules/tcp_logger.wasm", str(module)))
    p = Proxy.from_yaml(path, workers=1, component_log_level="wasm:trace")
    e = real.run(path, workers=1, component_log_level="wasm:trace")
    try:
        got = []
        for conn in (p.connect(), e.connect()):
            conn.send(b"hello over tcp\n")
            first = conn.recv_exactly(1)
            got.append((first, conn.close()))
        time.sleep(0.3)
        ours, theirs = p.stats(), e.stats()
    finally:
        p.close()
        e.close()
    assert got[0] == got[1] == (b"X", b"")
    names = ("tcp.tcp.downstream_cx_rx_bytes_total", "tcp.tcp.downstream_cx_tx_bytes_total")
    names += ("cluster.echo.upstream_cx_total", "tcp.tcp.downstream_cx_total")
    assert {n: ours.get(n) for n in names} == {n: theirs.get(n) for n in names}
    assert ours["tcp.tcp.downstream_cx_rx_bytes_total"] == 15  # what the client sent, not the "X"

    # the upstream's port differs (the bridge's loopback server): compare the rest of the lines
    def port(lines: list[str]) -> list[str]:
        return [re.sub(r"127\.0\.0\.1:\d{5}", "127.0.0.1:<port>", ln) for ln in lines]

    mine, env = port(wasmlab_lines(p, "worker_0")), port(envoy_lines(e, "worker_0"))
    e.__exit__(None, None, None)
    assert mine == env
    assert any("upstream.address status=0 value=127.0.0.1:<port>" in ln for ln in mine), mine


# ---- audit: via and request-id options ------------------------------------------------------------
@pytest.mark.parametrize(
    "extra",
    [
        "via: lab-proxy",
        "always_set_request_id_in_response: true",
        "via: lab-proxy\n          use_remote_address: true\n          always_set_request_id_in_response: true",
        "use_remote_address: true\n          preserve_external_request_id: true",
    ],
)
def test_via_and_request_id_options_like_envoy(envoy_bin, extra):
    cfg = config().replace("stat_prefix: ingress", "stat_prefix: ingress\n          " + extra)
    reqs = [get("/up"), get("/up", via="1.0 a", **{"x-request-id": "abc"}), get("/direct", via="1.0 a")]
    _, mine = diff(cfg, reqs)
    if extra.startswith("via"):
        assert mine[0].headers.get("via") == "lab-proxy"
    # x-request-id values are compared by presence; whether the client's id survived is not random
    for resp in (mine[1], diff.envoy_responses[1]):
        kept = ["x-request-id", "abc"] in json.loads(resp.body)["headers"]
        assert kept == ("use_remote_address" not in extra or "preserve" in extra), extra


# ---- audit: headers the codec and the router remove or rewrite -------------------------------------
def test_hop_by_hop_and_router_consumed_headers_like_envoy(envoy_bin):
    hop = {"connection": "keep-alive", "keep-alive": "timeout=5", "proxy-connection": "keep-alive", "te": "trailers"}
    router = {
        "x-envoy-upstream-rq-timeout-ms": "100",
        "x-envoy-upstream-rq-per-try-timeout-ms": "50",
        "x-envoy-max-retries": "2",
        "x-envoy-retry-on": "5xx",
        "x-envoy-retry-grpc-on": "cancelled",
        "x-envoy-hedge-on-per-try-timeout": "true",
        "x-envoy-upstream-alt-stat-name": "alt",
        "x-envoy-original-path": "/p",
        "x-envoy-expected-rq-timeout-ms": "7",
        "x-envoy-foo": "1",
    }
    reqs = [
        get("/up", **hop),
        get("/up", **router),
        get("/up", **{"x-forwarded-host": "h", "forwarded": "for=1.2.3.4"}),
        get("/up", te="gzip, trailers;q=1"),
        get("/up", te="gzip, trailers"),
        get("/up", te="gzip"),
        get("/up", connection="close"),
        get("/direct", connection="close"),
    ]
    diff(config(), reqs)


# ---- audit: a typical example config is accepted (implemented or warned) ---------------------------
def test_typical_example_config_is_accepted_with_warnings_like_envoy_accepts_it(envoy_bin):
    from conftest import FIXTURES

    path = FIXTURES / "typical_envoy_example.yaml"
    assert real.validate(path)[0]
    with Proxy.from_yaml(path) as p:
        warned = [ln for ln in p.logs if ln.startswith("[warning][config]")]
    for field in ("codec_type", "stream_idle_timeout", "connect_timeout", "circuit_breakers"):
        assert any(f".{field}: accepted as Envoy does, but has no effect" in ln for ln in warned), field
    # implemented, so not warned about
    for field in ("use_remote_address", "traffic_direction", "node", "normalize_path"):
        assert not any(f".{field}:" in ln or ln.split("] ", 1)[1].startswith(f"{field}:") for ln in warned), field
    diff(path, [get("/"), get("/x", **{"x-forwarded-for": "1.2.3.4"})])


# ---- audit: every attribute the ABI exposes --------------------------------------------------------
def test_every_property_answers_like_envoy(envoy_bin):
    """all_properties.wasm reads each attribute at request and response headers; the wasm:trace
    lines (statuses, values, sizes, and the host's allocations) must be Envoy's."""
    import yaml

    from conftest import FIXTURES
    from wasm_diff import assert_same_run, plugin_yaml, run_both

    data = yaml.safe_load(plugin_yaml(FIXTURES / "wasm" / "all_properties.wasm"))
    data["node"] = {"id": "n1"}
    data["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = 10000
    data["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"][
        "address"
    ]["socket_address"]["port_value"] = 18081  # five digits, as the bridge's loopback ports
    headers = {"x-test": "t1", "user-agent": "ua/1", "referer": "http://r/"}
    reqs = [get("/up/a?q=1", **headers), get("/direct", **headers)]
    ours, theirs, lines = run_both(yaml.safe_dump(data), reqs)
    assert_same_run(ours, theirs, lines)


def test_upstream_http_filters_on_a_cluster_are_accepted_and_warned_about(envoy_bin, tmp_path):
    """A cluster's ``HttpProtocolOptions.http_filters`` (upstream HTTP filters, which Envoy runs
    per upstream request) is a config Envoy accepts: wasmlab accepts it too and says it does not
    run them, rather than silently dropping them."""
    opts = """
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http_protocol_options: {}}
        http_filters:
        - name: envoy.filters.http.upstream_codec
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"""
    cfg = config().replace("  - name: backend\n    type: STATIC", "  - name: backend\n    type: STATIC" + opts)
    assert "http_filters" in cfg
    path = tmp_path / "upstream_filters.yaml"
    path.write_text(cfg)
    ok, why = real.validate(path)
    assert ok, why
    with Proxy.from_yaml(path) as p:
        assert p.request("GET", "/x").status == 200
        warned = [ln for ln in p.logs if ln.startswith("[warning][config]")]
    assert any(".http_filters: accepted as Envoy does, but has no effect" in ln for ln in warned), warned
