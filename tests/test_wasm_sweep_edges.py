"""Proxy-Wasm host calls at their edges, on wasmlab and real Envoy 1.40 (the probes of
:mod:`wasm_probe`, compared by :mod:`wasm_diff`): what a module sees of a local reply it sent
with empty details, of a callout's response without trailers, and what a callout's upstream
receives when the module's headers carry their own ``content-length``.

Each test failed on wasmlab before its fix; the docstrings say what wasmlab answered then.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_wasm_sweep import _config
from wasm_probe import (
    OUT,
    PAUSE,
    Op,
    Saved,
    buf,
    buf_status,
    call,
    define,
    get_metric,
    hadd,
    hdr,
    hpairs,
    hremove,
    hreplace,
    hsize,
    http_call,
    incr,
    local,
    prop,
    set_buf,
    set_prop,
)

from wasm_diff import assert_same_run, run_both
from wasmlab import Response
from wasmlab.http import HeaderMap

GET = {"method": "GET", "path": "/x", "timeout": 5}


def _worker_logs(lines: dict[str, tuple[list[str], list[str]]]) -> list[str]:
    """wasmlab's ``wasm log`` lines on the worker (equal to Envoy's once the run compared)."""
    return [ln for ln in lines["worker_0"][0] if ln.startswith("wasm log")]


# ---- local replies ----------------------------------------------------------------------------------
EMPTY_DETAILS = {
    "proxy_on_request_headers": [local(403, "", "denied")],
    "proxy_on_log": [prop("response.code_details"), prop("response.code")],
}


@pytest.mark.envoy
def test_a_local_reply_with_empty_details_has_found_empty_details_like_envoy(envoy_bin, tmp_path):
    """Envoy sets the stream's response code details to what the module gave, empty too:
    ``response.code_details`` is then found with no bytes (wasmlab answered NOT_FOUND, as for
    details never set)."""
    ours, theirs, lines = run_both(_config(tmp_path, EMPTY_DETAILS), [GET])
    assert_same_run(ours, theirs, lines)
    assert any("prop response.code_details rc=0 len=0" in ln for ln in _worker_logs(lines))


LENGTH_IN_EXTRA_HEADERS = {
    "proxy_on_request_headers": [
        local(200, "", "body!", [("content-length", "99"), ("Content-Type", "a/b"), ("x-up", "U")])
    ],
}


@pytest.mark.envoy
def test_a_local_replys_content_length_takes_the_modules_place_like_envoy(envoy_bin, tmp_path):
    """A ``content-length`` among the module's extra headers gets the body's length in its own
    place (Envoy's ``setContentLength``), before the module's other headers; wasmlab moved it
    after them."""
    requests = [GET, {**GET, "method": "HEAD"}]
    ours, theirs, lines = run_both(_config(tmp_path, LENGTH_IN_EXTRA_HEADERS), requests)
    assert_same_run(ours, theirs, lines)
    assert [k for k, _ in theirs[0].headers][:3] == ["content-length", "content-type", "x-up"]


@pytest.mark.envoy
def test_a_local_reply_100_with_a_body_reaches_the_client_without_it_like_envoy(envoy_bin, tmp_path):
    """A 1xx has no body for an HTTP/1 client: Envoy writes the module's body (it counts in
    ``response.total_size``) and the client reads none; wasmlab's client got the body."""
    callbacks = {
        "proxy_on_request_headers": [local(100, "", "x")],
        "proxy_on_log": [prop("response.code"), prop("response.total_size")],
    }
    ours, theirs, lines = run_both(_config(tmp_path, callbacks), [GET])
    assert_same_run(ours, theirs, lines)
    assert (theirs[0].status, theirs[0].body) == (100, b"")


# ---- continuing the request lets go of its headers ----------------------------------------------------
AFTER_CONTINUE = [hdr(0, ":path"), hadd(0, "x-late", "1"), hsize(0), hpairs(0)]
CONTINUES = {
    "in_the_headers_callback": {"proxy_on_request_headers": [call("proxy_continue_stream", 0), *AFTER_CONTINUE]},
    "in_a_body_callback": {
        "proxy_on_request_headers": [hremove(0, "content-length")],
        "proxy_on_request_body": [
            call("proxy_continue_stream", 0),
            buf(0, 0, 10),
            set_buf(0, 0, 0, b"Z"),
            buf_status(0),
        ],
    },
    "from_a_callout_response": {
        "proxy_on_request_headers": [
            "(i32.store (i32.const 132) (local.get $a))",  # Saved(1): this stream's context id
            http_call("backend", [(":method", "GET"), (":path", "/c"), (":authority", "cb")]),
            PAUSE,
        ],
        "proxy_on_http_call_response": [
            *(call("proxy_set_effective_context", Saved(1)), hadd(0, "x-before", "1")),
            *(call("proxy_continue_stream", 0), *AFTER_CONTINUE),
        ],
    },
}


@pytest.mark.envoy
@pytest.mark.parametrize("case", sorted(CONTINUES))
def test_continuing_the_request_lets_go_of_its_headers_like_envoy(envoy_bin, tmp_path, case):
    """After ``proxy_continue_stream(HttpRequest)`` the rest of the callback finds the request
    headers gone (BAD_ARGUMENT; pairs empty) and the body empty (a write BAD_ARGUMENT), and what
    it changes then never reaches the upstream. wasmlab let go of them only once the callback
    returned: the edits succeeded and the upstream got ``x-late`` or the changed body."""
    ours, theirs, lines = run_both(
        _config(tmp_path, CONTINUES[case]), [GET, {**GET, "method": "POST", "body": "abc"}], settle=0.5
    )
    assert_same_run(ours, theirs, lines)
    want = "set_buf 0 0 0 b'Z' rc=2" if case == "in_a_body_callback" else "add 0 x-late=1 rc=2"
    assert any(want in ln for ln in _worker_logs(lines))


# ---- http callouts ----------------------------------------------------------------------------------
def _callout_app(request: Any) -> Response:
    """A callout upstream that answers with trailers (kept when the cluster enables them)."""
    headers = HeaderMap([("content-type", "text/plain")])
    return Response(200, headers, b"callout body", HeaderMap([("x-t", "1")]))


CALLOUT_TRAILERS = {
    "proxy_on_request_headers": [http_call("backend", [(":method", "GET"), (":path", "/c"), (":authority", "cb")])],
    "proxy_on_http_call_response": [hpairs(7), hsize(7), hdr(7, "x-t"), hdr(7, "nosuch"), buf(4, 0, 100)],
}


@pytest.mark.envoy
@pytest.mark.parametrize("trailers", [False, True], ids=["no_trailers", "trailers"])
def test_a_callout_response_without_trailers_has_no_trailer_map_like_envoy(envoy_bin, tmp_path, trailers):
    """Without trailers (HTTP/1 drops them unless the cluster enables them) Envoy has no trailer
    map: its pairs read as empty, a value's lookup is BAD_ARGUMENT (wasmlab answered NOT_FOUND
    from an empty map). With trailers, the lookup finds them, a missing name NOT_FOUND."""
    config = _config(tmp_path, CALLOUT_TRAILERS, trailers=trailers)
    ours, theirs, lines = run_both(config, [GET], apps={"backend": _callout_app}, settle=0.5)
    assert_same_run(ours, theirs, lines)
    want = 'hdr 7 x-t rc=0 len=1 "1"' if trailers else "hdr 7 x-t rc=2 len=0"
    assert any(want in ln for ln in _worker_logs(lines))


CALLOUT_LENGTH = [(":method", "POST"), (":path", "/c"), (":authority", "cb"), ("content-length", "99"), ("x-a", "1")]


@pytest.mark.envoy
def test_a_callout_body_sets_the_content_length_like_envoy(envoy_bin, tmp_path):
    """Envoy sets ``content-length`` from the body over the one the module's headers gave (in
    its place); wasmlab sent the module's 99 with a 3-byte body. ``run_both`` compares what the
    callout's upstream received."""
    callbacks = {"proxy_on_request_headers": [http_call("backend", CALLOUT_LENGTH, body=b"abc")]}
    ours, theirs, lines = run_both(_config(tmp_path, callbacks), [GET], settle=0.5)
    assert_same_run(ours, theirs, lines)


# ---- context, buffers, gRPC tokens --------------------------------------------------------------------
EFFECTIVE = {
    "proxy_on_request_headers": [
        "(i32.store (i32.const 132) (local.get $a))",  # Saved(1): this stream's context id
        call("proxy_set_effective_context", 0),
        http_call("backend", [(":method", "GET"), (":path", "/c"), (":authority", "cb")]),
        PAUSE,
    ],
    "proxy_on_http_call_response": [
        *(call("proxy_set_effective_context", Saved(1)), hdr(0, ":path")),
        *(call("proxy_set_effective_context", 0), hdr(0, ":path"), call("proxy_set_effective_context", 999)),
        *(call("proxy_set_effective_context", Saved(1)), call("proxy_continue_stream", 0)),
    ],
}


@pytest.mark.envoy
def test_effective_context_zero_means_the_callbacks_own_context_like_envoy(envoy_bin, tmp_path):
    """Context id 0 is the VM's own context: ``proxy_set_effective_context(0)`` is OK and later
    calls act on the callback's context again (here the root, which has no request headers:
    BAD_ARGUMENT). wasmlab answered BAD_ARGUMENT to the 0."""
    ours, theirs, lines = run_both(_config(tmp_path, EFFECTIVE), [GET], settle=0.5)
    assert_same_run(ours, theirs, lines)
    assert any("set_effective_context rc=0" in ln for ln in _worker_logs(lines))


CONFIG_BUFFERS = [buf(6, 0, 100), buf(7, 0, 100), buf_status(7), set_buf(7, 0, 0, b"x")]
CALL_DATA = [buf(8, 0, 100), buf_status(8), set_buf(8, 0, 0, b"x")]
ROOT_CALLBACKS = ("proxy_on_context_create", "proxy_on_vm_start", "proxy_on_configure", "proxy_on_request_headers")


@pytest.mark.envoy
def test_the_plugin_configuration_is_there_while_configuring_like_envoy(envoy_bin, tmp_path):
    """The plugin configuration (7) is there while the root context is created and configured,
    read-only; NOT_FOUND in ``proxy_on_vm_start`` (wasmlab answered it there) and in streams."""
    callbacks = dict.fromkeys(ROOT_CALLBACKS, CONFIG_BUFFERS)
    config = _config(tmp_path, callbacks, configuration="plugin-cfg", vm_configuration="vm-cfg")
    ours, theirs, lines = run_both(config, [GET])
    assert_same_run(ours, theirs, lines)
    main = [ln for ln in lines["main"][0] if ln.startswith("wasm log")]
    assert any('buf 7 0 100 rc=0 len=10 "plugin-cfg"' in ln for ln in main)
    assert any("buf 7 0 100 rc=1 len=0" in ln for ln in main)


@pytest.mark.envoy
def test_the_call_data_buffer_outside_a_foreign_call_is_empty_like_envoy(envoy_bin, tmp_path):
    """Outside a foreign call Envoy answers the call-data buffer (8) with its context's scratch
    buffer: reads OK, writes BAD_ARGUMENT (wasmlab: NOT_FOUND). The scratch buffer keeps what
    the context last read through it (the VM or plugin configuration, a body: in
    ``proxy_on_log`` a write is OK): not modelled, so this module reads nothing else and writes
    before the stream's bodies passed."""
    callbacks = dict.fromkeys(ROOT_CALLBACKS, CALL_DATA)
    ours, theirs, lines = run_both(_config(tmp_path, callbacks), [GET])
    assert_same_run(ours, theirs, lines)


def _grpc(name: str, cluster: str, *, stream: bool = False) -> Op:
    args: list[Any] = [cluster.encode(), b"pkg.Svc", b"M", b""]
    args += [OUT] if stream else [b"", 1000, OUT]
    return Op(f"{name} {cluster}", f"proxy_{name}", args, ["u32"])


GRPC_TOKENS = [
    *(_grpc("grpc_call", "backend"), _grpc("grpc_stream", "nosuch", stream=True)),
    *(call("proxy_grpc_send", 5, b"x", 0), call("proxy_grpc_send", 1, b"x", 0), call("proxy_grpc_send", 2, b"x", 1)),
    *(call("proxy_grpc_cancel", 1), call("proxy_grpc_cancel", 2), call("proxy_grpc_cancel", 4)),
    *(
        call("proxy_grpc_cancel", 0),
        call("proxy_grpc_close", 1),
        call("proxy_grpc_close", 4),
        call("proxy_grpc_close", 6),
    ),
]


@pytest.mark.envoy
def test_grpc_tokens_answer_by_their_kind_like_envoy(envoy_bin, tmp_path):
    """A token's low two bits say its kind (1 gRPC call, 2 stream): send takes stream tokens
    only (BAD_ARGUMENT for a call's, NOT_FOUND for an unknown stream's); cancel and close take
    call and stream tokens, BAD_ARGUMENT for an HTTP call's or 0; a stream to an unknown
    cluster is PARSE_FAILURE. wasmlab answered NOT_FOUND to the wrong kinds and
    UNIMPLEMENTED to the stream before looking at its cluster."""
    callbacks = {"proxy_on_vm_start": GRPC_TOKENS, "proxy_on_request_headers": GRPC_TOKENS}
    ours, theirs, lines = run_both(_config(tmp_path, callbacks), [GET], compare_upstreams=False)
    assert_same_run(ours, theirs, lines)


# ---- metrics ----------------------------------------------------------------------------------------
METRIC_EDGES = [
    *(define(0, "same", save=2), define(1, "same", save=3), incr(Saved(3), 3), get_metric(Saved(2))),
    *(incr(Saved(2), 0x7FFFFFFFFFFFFFFF), incr(Saved(2), 0x7FFFFFFFFFFFFFFF), get_metric(Saved(2))),
    *(incr(Saved(2), 2), get_metric(Saved(2)), get_metric(Saved(3))),
]


@pytest.mark.envoy
def test_a_counter_and_a_gauge_of_one_name_are_two_stats_like_envoy(envoy_bin, tmp_path):
    """Envoy keeps counters and gauges apart, so a counter reads its own value beside a gauge of
    the same name (wasmlab read the gauge's), and a counter is a uint64 that wraps (wasmlab's
    grew past 2**64)."""
    callbacks = {"proxy_on_vm_start": METRIC_EDGES}
    ours, theirs, lines = run_both(_config(tmp_path, callbacks), [GET], compare_upstreams=False)
    assert_same_run(ours, theirs, lines)


STAT_METRICS = {
    "proxy_on_vm_start": [define(0, "my.counter"), define(1, "my.gauge"), define(0, "")],
    "proxy_on_request_headers": [
        *(define(0, "my.counter", save=2), define(1, "my.gauge", save=3)),
        *(incr(Saved(2), 2), incr(Saved(3), -3)),
    ],
}


@pytest.mark.envoy
def test_custom_metrics_in_the_stats_like_envoy(envoy_bin, tmp_path):
    """What ``/stats`` shows of a module's metrics: a gauge below zero wraps as Envoy's uint64
    (wasmlab showed -6), and a metric with an empty name is ``wasmcustom`` (wasmlab:
    ``wasmcustom.``)."""
    import time

    from wasmlab import Proxy
    from wasmlab import envoy as real

    config = _config(tmp_path, STAT_METRICS)
    p, e = Proxy.from_yaml(config, workers=1), real.run(config, workers=1)
    try:
        for proxy in (p, e):
            proxy.request("GET", "/x")
            proxy.request("GET", "/x")
        time.sleep(0.3)
        ours, theirs = ({k: v for k, v in x.stats().items() if k.startswith("wasmcustom")} for x in (p, e))
    finally:
        p.close()
        e.close()
    assert ours == theirs
    assert theirs["wasmcustom.my.gauge"] == 2**64 - 6 and "wasmcustom" in theirs


# ---- properties the module set ---------------------------------------------------------------------
SET_PROPERTIES = [
    *(set_prop("foo", b"bar"), prop("foo"), prop(["foo", "x"])),
    *(set_prop(["a", "b"], b"c"), prop(["a", "b"]), prop("a"), prop(["a.b"]), prop(["a\0b"])),
    *(set_prop(["d.e"], b"f"), prop(["d.e"]), prop(["d", "e"])),
]


@pytest.mark.envoy
def test_a_property_set_under_several_segments_is_not_read_back_like_envoy(envoy_bin, tmp_path):
    """Envoy stores ``proxy_set_property`` under ``wasm.<the raw path>`` and reads an unknown
    name by its first segment only, so a path of several segments (Rust's ``vec!["a", "b"]``)
    is never found again (wasmlab joined the segments with dots and found it)."""
    callbacks = {"proxy_on_request_headers": SET_PROPERTIES, "proxy_on_log": [prop("foo"), prop(["a", "b"])]}
    ours, theirs, lines = run_both(_config(tmp_path, callbacks), [GET])
    assert_same_run(ours, theirs, lines)
    assert any("prop a.b rc=1 len=0" in ln for ln in _worker_logs(lines))


# ---- trailers added from a body callback -------------------------------------------------------------
POST = {"method": "POST", "path": "/x", "body": "hello", "timeout": 5}
ADD_TRAILERS = {
    "proxy_on_request_body": [hadd(1, "rt", "v"), hpairs(1), hsize(1), hreplace(1, "rt2", "x"), hremove(1, "rt")],
    "proxy_on_response_body": [hadd(3, "st", "w"), hpairs(3), hsize(3)],
    "proxy_on_request_trailers": [hpairs(1)],
    "proxy_on_response_trailers": [hpairs(3)],
    "proxy_on_log": [hpairs(3)],
}


@pytest.mark.envoy
@pytest.mark.parametrize("trailers", [False, True], ids=["default", "enable_trailers"])
def test_trailers_are_added_from_the_last_body_callback_only_like_envoy(envoy_bin, tmp_path, trailers):
    """Envoy adds a trailer map only in a body callback with ``end_of_stream``: before it, adding
    is BAD_ARGUMENT. wasmlab added one in the first body callback, and the stream then lost its
    end-of-stream body callbacks (the upstream and the client got different messages)."""
    config = _config(tmp_path, ADD_TRAILERS, trailers=trailers)
    ours, theirs, lines = run_both(config, [POST, GET])
    assert_same_run(ours, theirs, lines)
    assert any("add 1 rt=v rc=2" in ln for ln in _worker_logs(lines))


# ---- an access logger's proxy_on_log -----------------------------------------------------------------
ACCESS_LOG_OPS = [
    *(hdr(0, ":path"), hdr(2, ":status"), hsize(0), hpairs(1), buf(1, 0, 10)),
    *(prop("response.code"), prop("xds.route_name"), prop("xds.virtual_host_name"), prop("xds.cluster_name")),
    *(set_prop("k", b"v"), prop("k"), hadd(2, "x", "y")),
]


@pytest.mark.envoy
def test_an_access_loggers_properties_like_envoy(envoy_bin, tmp_path):
    """An access logger's root context reads the logged stream: ``xds.route_name`` of a route
    without a name is found, empty (wasmlab: NOT_FOUND, the logger saw no route); it has no
    stream to write to, so ``proxy_set_property`` is NOT_FOUND (wasmlab stored the value)."""
    import time

    import wasmtime
    from test_wasm_service import ACCESS_LOG, _log_calls
    from wasm_probe import probe_wat

    from conftest import CONFIGS
    from wasm_diff import envoy_lines, wasmlab_lines
    from wasmlab import Proxy
    from wasmlab import envoy as real

    module = tmp_path / "logger.wasm"
    module.write_bytes(wasmtime.wat2wasm(probe_wat({"proxy_on_log": ACCESS_LOG_OPS})))
    logger = ACCESS_LOG.replace("MODULE", str(module)).lstrip("\n")
    text = (CONFIGS / "hello.yaml").read_text()
    config = tmp_path / "al.yaml"
    config.write_text(text.replace("          stat_prefix: ingress\n", "          stat_prefix: ingress\n" + logger))
    p = Proxy.from_yaml(config, workers=1, component_log_level="wasm:trace")
    e = real.run(config, workers=1, component_log_level="wasm:trace")
    try:
        for proxy in (p, e):
            proxy.request("GET", "/direct")
            proxy.request("GET", "/hello")
        deadline = time.monotonic() + 15
        while (
            time.monotonic() < deadline
            and min(_log_calls(wasmlab_lines(p, "worker_0")), _log_calls(envoy_lines(e, "worker_0"))) < 2
        ):
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        p.close()
        e.close()
    mine, env = wasmlab_lines(p, "worker_0"), envoy_lines(e, "worker_0")
    e.__exit__(None, None, None)
    assert mine == env
    assert any("set_prop k rc=1" in ln for ln in mine)
