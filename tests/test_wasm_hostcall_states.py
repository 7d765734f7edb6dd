"""Stream control host calls in states where the stream is gone or not ready, on wasmlab and on
real Envoy 1.40: ``proxy_continue_stream``/``proxy_close_stream``/``proxy_send_local_response``
after a local reply or a reset, from a root context (an http call response), for a stream that
already ended, and with stream types a filter has no side for. Envoy answers OK (UNIMPLEMENTED for
continuing the upstream, BAD_ARGUMENT for an unknown type) and acts only where it can; wasmlab
answers the same, with no Python error in its log and no hung stream.

Where Envoy 1.40 crashes (a reset or local reply from ``proxy_on_log``/``proxy_on_done``,
continuing the response before it started) the differential is Envoy's death: wasmlab answers the
same OK, ignores the call and logs a warning that says Envoy would crash.

Modules whose start functions have the wrong type are refused in Envoy's words on both call
paths (the fast path used to raise a bare TypeError).
"""

from __future__ import annotations

import subprocess

import pytest
import wasmtime
from wat_plugin import (
    CLOSE_REQ,
    CONTINUE_REQ,
    CONTINUE_RESP,
    HTTP_CALL,
    LOCAL_403,
    PAUSE,
    SCAN,
    plugin_wat,
)

from wasm_diff import assert_same_run, plugin_yaml, run_both
from wasmlab import ConfigError, Proxy

SAVE_ID = "(i32.store (i32.const 600) (local.get $a))"
SAVED_ID_EFFECTIVE = "(drop (call $effective (i32.load (i32.const 600))))"
CLOSE_RESP = "(drop (call $close (i32.const 1)))"


def _call(name: str, stream_type: int) -> str:
    return f"(drop (call ${name} (i32.const {stream_type})))"


GET = {"method": "GET", "path": "/x", "timeout": 5}
POST = {"method": "POST", "path": "/x", "body": "hello", "timeout": 5}

CASES = {
    # the local reply ends the stream before the deferred continue runs
    "local_reply_then_continue": ({"proxy_on_request_headers": LOCAL_403 + CONTINUE_REQ}, [GET, POST]),
    "reset_then_continue": ({"proxy_on_request_headers": CLOSE_REQ + CONTINUE_REQ}, [GET, POST]),
    "local_reply_in_response_then_continue": (
        {"proxy_on_response_headers": LOCAL_403 + CONTINUE_RESP},
        [GET, POST],
    ),
    "reset_in_response_then_continue": ({"proxy_on_response_headers": CLOSE_REQ + CONTINUE_RESP}, [GET]),
    # continue while the headers callback runs, then pause: the continue comes after the pause
    "continue_during_headers_then_pause": ({"proxy_on_request_headers": CONTINUE_REQ + PAUSE}, [GET]),
    # the callout answers after the local reply ended the stream: the stream context is gone
    # (set_effective_context says BAD_ARGUMENT) and the calls land on the root context: OK
    "callout_after_the_stream_ended": (
        {
            "proxy_on_request_headers": SAVE_ID + HTTP_CALL + LOCAL_403,
            "proxy_on_http_call_response": SAVED_ID_EFFECTIVE + CONTINUE_REQ + CLOSE_REQ + LOCAL_403,
        },
        # one request: the client has its 403 before the callout answers, so a second request
        # would race the callout's response on Envoy
        [GET],
    ),
    # the callout answers a paused stream with a local reply, then continues (or resets) it
    "callout_local_reply_then_continue": (
        {
            "proxy_on_request_headers": SAVE_ID + HTTP_CALL + PAUSE,
            "proxy_on_http_call_response": SAVED_ID_EFFECTIVE + LOCAL_403 + CONTINUE_REQ,
        },
        [GET, POST],
    ),
    "callout_reset_then_continue": (
        {
            "proxy_on_request_headers": SAVE_ID + HTTP_CALL + PAUSE,
            "proxy_on_http_call_response": SAVED_ID_EFFECTIVE + CLOSE_REQ + CONTINUE_REQ,
        },
        [GET],
    ),
    # from the root context first (OK, nothing happens), then for the paused stream
    "callout_root_then_stream": (
        {
            "proxy_on_request_headers": SAVE_ID + HTTP_CALL + PAUSE,
            "proxy_on_http_call_response": CONTINUE_REQ
            + CLOSE_REQ
            + LOCAL_403
            + _call("continue", 3)
            + SAVED_ID_EFFECTIVE
            + CONTINUE_REQ,
        },
        [GET, POST],
    ),
    # from the stream's proxy_on_context_create (runs inside the request headers, before
    # proxy_on_request_headers): the stream goes on (or is answered) without that callback
    "continue_from_context_create": (
        {"proxy_on_context_create": f"(if (i32.ne (local.get $b) (i32.const 0)) (then {CONTINUE_REQ}))"},
        [GET, POST],
    ),
    "local_reply_from_context_create": (
        {"proxy_on_context_create": f"(if (i32.ne (local.get $b) (i32.const 0)) (then {LOCAL_403}))"},
        [GET, POST],
    ),
    # stream types an HTTP filter has no side for, and unknown ones
    "other_stream_types": (
        {
            "proxy_on_request_headers": "".join(
                _call(n, t) for n in ("continue", "close") for t in (2, 3, 4, 0x7FFFFFFF)
            )
        },
        [GET],
    ),
}


def _module(tmp_path, bodies: dict[str, str]) -> str:
    wasm = tmp_path / "m.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(plugin_wat(bodies)))
    return plugin_yaml(wasm)


def _problems(logs: list[str]) -> list[str]:
    """Error lines of the host (the guest's own ``proxy_log`` lines are not the host's problems)."""
    return [ln for ln in logs if ln.startswith(("[error]", "[critical]")) and "] wasm log" not in ln]


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_host_error_and_no_hang(tmp_path, case):
    bodies, requests = CASES[case]
    with Proxy.from_yaml(_module(tmp_path, bodies), workers=1) as p:
        for kw in requests:
            try:
                p.request(**kw)
            except Exception as e:  # a reset is an answer; a timeout is not
                assert type(e).__name__ == "StreamReset", f"{case}: {e}"
        assert not _problems(p.logs), f"{case}: {_problems(p.logs)}"
        assert not [ln for ln in p.logs if "Envoy 1.40" in ln]


@pytest.mark.envoy
@pytest.mark.parametrize("case", sorted(CASES))
def test_same_answers_as_envoy(envoy_bin, tmp_path, case):
    bodies, requests = CASES[case]
    ours, theirs, lines = run_both(_module(tmp_path, bodies), requests, settle=0.2)
    assert_same_run(ours, theirs, lines)


def test_root_context_stream_control_answers_ok(tmp_path):
    bodies, _ = CASES["callout_root_then_stream"]
    with Proxy.from_yaml(_module(tmp_path, bodies), workers=1) as p:
        assert p.request("GET", "/x").status == 200
        results = [(e.name, e.result) for e in p.trace.filter(kind="hostcall") if e.data.get("phase") == "exit"]
    calls = [r for r in results if r[0] != "env.proxy_http_call"]
    assert calls == [
        ("env.proxy_continue_stream", 0),
        ("env.proxy_close_stream", 0),
        ("env.proxy_send_local_response", 0),
        ("env.proxy_continue_stream", 12),  # UNIMPLEMENTED: the upstream side
        ("env.proxy_set_effective_context", 0),
        ("env.proxy_continue_stream", 0),
    ]


# ---- where Envoy 1.40 crashes ----------------------------------------------------------------------
CRASHES = {
    "close_in_log": ({"proxy_on_log": CLOSE_REQ}, "proxy_close_stream after the stream ended"),
    "close_response_in_done": ({"proxy_on_done": CLOSE_RESP}, "proxy_close_stream after the stream ended"),
    "local_reply_in_log": ({"proxy_on_log": LOCAL_403}, "proxy_send_local_response after the stream ended"),
    "local_reply_in_done": ({"proxy_on_done": LOCAL_403}, "proxy_send_local_response after the stream ended"),
    "continue_response_before_it_started": (
        {"proxy_on_request_headers": CONTINUE_RESP},
        "proxy_continue_stream(HttpResponse) before the response started",
    ),
}
CRASH_WARNING = " is ignored (Envoy 1.40 crashes on it: Segmentation fault)"


@pytest.mark.parametrize("case", sorted(CRASHES))
def test_where_envoy_crashes_wasmlab_ignores_the_call_and_says_so(tmp_path, case):
    bodies, what = CRASHES[case]
    with Proxy.from_yaml(_module(tmp_path, bodies), workers=1) as p:
        first = p.request("GET", "/x")
        second = p.request("POST", "/x", body="hello")
        logs = p.logs
        results = [e.result for e in p.trace.filter(kind="hostcall") if e.data.get("phase") == "exit"]
    assert (first.status, second.status) == (200, 200)
    assert f"[warning][wasm] {what}{CRASH_WARNING}" in logs
    assert set(results) == {0}  # Envoy's host call answers OK before its deferred action crashes
    assert not _problems(logs)


@pytest.mark.envoy
@pytest.mark.parametrize("case", sorted(CRASHES))
def test_envoy_crashes_on_these(envoy_bin, tmp_path, case):
    """Envoy's own behaviour, so that a fixed Envoy shows up here (then copy what it does)."""
    from wasmlab import envoy as real

    e = real.run(_module(tmp_path, CRASHES[case][0]), workers=1)
    try:
        with pytest.raises(Exception, match=r"reset|closed|refused"):
            e.request("GET", "/x", timeout=5)
        assert e.wait_for_log(lambda ln: "Caught Segmentation fault" in ln.message, timeout=5)
    finally:
        e.close()


# ---- a second reset or local reply after the first ended the stream ---------------------------
CLOSE_RESP_SECOND = "(drop (call $close (i32.const 1)))"
#: (callback, first, second) -> what Envoy 1.40 did once: the client's answer, and whether it
#: survived. Not a differential test: Envoy touches a stream it already destroyed, and repeated
#: runs differ (a crash in some runs, a reset in others), so wasmlab's documented answer is
#: asserted instead: the first action stands, the second is ignored with a warning.
SECOND_ACTIONS = {
    ("proxy_on_request_headers", "local", "close"): ("reset", True),
    ("proxy_on_request_headers", "local", "local"): (403, True),
    ("proxy_on_request_headers", "close", "local"): ("reset", True),
    ("proxy_on_request_headers", "close", "close"): ("reset", False),
    ("proxy_on_response_headers", "local", "close"): ("reset", False),
    ("proxy_on_response_headers", "local", "local"): ("reset", False),
    ("proxy_on_response_headers", "close", "local"): ("reset", True),
    ("proxy_on_response_headers", "close", "close"): ("reset", False),
}
_ACTION = {"local": LOCAL_403, "close": CLOSE_REQ}
SECOND_WARNING = "after the stream ended is ignored (Envoy 1.40 may reset the connection or crash here)"


@pytest.mark.parametrize("key", sorted(SECOND_ACTIONS))
def test_a_second_ending_action_is_ignored_with_a_warning(tmp_path, key):
    """The first action ends the stream; wasmlab answers it and ignores the second, with a warning
    (Envoy's outcome varies, see SECOND_ACTIONS: wasmlab keeps the first action's answer)."""
    callback, first, second = key
    with Proxy.from_yaml(_module(tmp_path, {callback: _ACTION[first] + _ACTION[second]}), workers=1) as p:
        if first == "local":
            assert p.request("GET", "/x").status == 403
        else:
            with pytest.raises(Exception, match="wasm_close_stream"):
                p.request("GET", "/x")
        call = "proxy_send_local_response" if second == "local" else "proxy_close_stream"
        assert f"[warning][wasm] {call} {SECOND_WARNING}" in p.logs
        assert not _problems(p.logs)


# ---- exports of the wrong type ---------------------------------------------------------------------
BAD_EXPORTS = {
    "_initialize": (
        '(func (export "_initialize") (param i32))',
        "_initialize, want: void -> void, but the module exports: i32 -> void",
    ),
    "_start": (
        '(func (export "_start") (result i32) (i32.const 0))',
        "_start, want: void -> void, but the module exports: void -> i32",
    ),
    "main": (
        '(func (export "_initialize")) (func (export "main") (param i64 i64) (result i32) (i32.const 0))',
        "main, want: i32 i32 -> i32, but the module exports: i64 i64 -> i32",
    ),
    "__main_void": (
        '(func (export "_initialize")) (func (export "__main_void") (param i32) (result i32) (i32.const 0))',
        "__main_void, want: void -> i32, but the module exports: i32 -> i32",
    ),
    "proxy_on_request_headers": (
        '(func (export "proxy_on_request_headers") (param i32 i32 i64) (result i32) (i32.const 0))',
        "proxy_on_request_headers, want: i32 i32 i32 -> i32, but the module exports: i32 i32 i64 -> i32",
    ),
}


def _bad_module(tmp_path, export: str) -> str:
    wat = plugin_wat({}).rstrip().removesuffix(")") + BAD_EXPORTS[export][0] + ")"
    wasm = tmp_path / "bad.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(wat))
    path = tmp_path / "bad.yaml"
    path.write_text(plugin_yaml(wasm))
    return str(path)


@pytest.mark.parametrize("call_path", ["fast", "normal"])
@pytest.mark.parametrize("export", sorted(BAD_EXPORTS))
def test_an_export_of_the_wrong_type_is_refused_in_envoys_words(tmp_path, export, call_path):
    path = _bad_module(tmp_path, export)
    with pytest.raises(ConfigError) as e:
        Proxy.from_yaml(path, workers=1, options={"wasm_call_path": call_path})
    msg = str(e.value)
    assert f"Bad function signature for: {BAD_EXPORTS[export][1]}" in msg
    assert "Wasm VM failed Failed to initialize Wasm code" in msg and "Unable to create Wasm plugin p" in msg
    assert path in msg and "\n" not in msg


@pytest.mark.envoy
@pytest.mark.parametrize("export", sorted(BAD_EXPORTS))
def test_envoy_refuses_the_same_exports_with_the_same_words(envoy_bin, tmp_path, export):
    path = _bad_module(tmp_path, export)
    run = subprocess.run(
        [envoy_bin, "-c", path, "--concurrency", "1", "--use-dynamic-base-id", "-l", "info"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert run.returncode != 0
    words = f"Bad function signature for: {BAD_EXPORTS[export][1]}"
    assert any("[error][wasm]" in ln and ln.endswith(words) for ln in run.stderr.splitlines()), run.stderr
    assert "Unable to create Wasm plugin p" in run.stderr


# ---- every host call in every callback -------------------------------------------------------------
RET_TRUE = "(return (i32.const 1))"
REGISTER_Q = "(drop (call $register_queue (i32.const 1200) (i32.const 1) (i32.const 700)))"
ENQUEUE_Q = "(drop (call $enqueue (i32.load (i32.const 700)) (i32.const 1216) (i32.const 6)))"
SCAN_ALL = {
    "proxy_on_context_create": SCAN,
    "proxy_on_vm_start": REGISTER_Q + SCAN + RET_TRUE,
    "proxy_on_configure": "(drop (call $tick (i32.const 20)))" + SCAN + RET_TRUE,
    "proxy_on_request_headers": HTTP_CALL + ENQUEUE_Q + SCAN,
    "proxy_on_request_body": SCAN,
    "proxy_on_request_trailers": SCAN,
    "proxy_on_response_headers": SCAN,
    "proxy_on_response_body": SCAN,
    "proxy_on_response_trailers": SCAN,
    "proxy_on_log": SCAN,
    "proxy_on_done": SCAN + RET_TRUE,
    "proxy_on_delete": SCAN,
    "proxy_on_tick": SCAN,
    "proxy_on_http_call_response": SCAN,
    "proxy_on_queue_ready": SCAN,
}


def _scan_run(config: str, requests: list[dict]) -> set[str]:
    """Send ``requests`` (a reset is an answer), let the timers run, check the host logged no
    error; the names of the callbacks that ran."""
    with Proxy.from_yaml(config, workers=1, clock="virtual") as p:
        for kw in requests:
            try:
                p.request(**kw)
            except Exception as e:
                assert type(e).__name__ == "StreamReset", e
        p.advance(0.1)
        names = {e.name for e in p.trace.filter(kind="callback")}
        logs = p.logs
    assert not _problems(logs), _problems(logs)[:3]
    return names


def test_every_host_call_in_every_http_callback_raises_nothing(tmp_path):
    """The generalisation of the cases above: each host function, with each first argument from
    0 to 8 (map, buffer, stream, queue, metric ids...), from every callback of an HTTP plugin —
    before the stream exists, while it runs, after it ended, from timers, callouts and queues.
    No call may reach a Python exception (logged ``host function ... failed``) or hang."""
    wasm = tmp_path / "scan.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(plugin_wat(SCAN_ALL, scan=True)))
    names = _scan_run(plugin_yaml(wasm), [GET, POST, {"method": "GET", "path": "/direct"}])
    # the scan's own calls (a header map replaced by garbage, continues) end some streams early:
    # the body and trailer callbacks need not all run
    assert set(SCAN_ALL) - {f"proxy_on_{d}_{p}" for d in ("request", "response") for p in ("body", "trailers")} <= names


NETWORK_SCAN = {
    "proxy_on_context_create": SCAN,
    "proxy_on_new_connection": SCAN,
    "proxy_on_downstream_data": SCAN,
    "proxy_on_upstream_data": SCAN,
    "proxy_on_downstream_connection_close": SCAN,
    "proxy_on_upstream_connection_close": SCAN,
    "proxy_on_log": SCAN,
    "proxy_on_done": SCAN + RET_TRUE,
    "proxy_on_delete": SCAN,
}


def test_every_host_call_in_every_network_callback_raises_nothing(tmp_path):
    from conftest import CONFIGS

    wasm = tmp_path / "scan.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(plugin_wat(NETWORK_SCAN, scan=True)))
    text = (CONFIGS / "wasm" / "tcp_logger.yaml").read_text().replace("../../../modules/tcp_logger.wasm", str(wasm))
    with Proxy.from_yaml(text, workers=1) as p:
        for _ in range(2):
            c = p.connect()
            c.send(b"hello")
            c.recv(timeout=1)
            c.close()
        names = {e.name for e in p.trace.filter(kind="callback")}
        logs = p.logs
    assert not _problems(logs), _problems(logs)[:3]
    assert {"proxy_on_new_connection", "proxy_on_downstream_data", "proxy_on_done"} <= names


def test_a_trapped_callout_response_leaves_its_stream_paused_until_the_timeout(tmp_path):
    """As on Envoy 1.40 (tests/test_fault_matrix.py compares it): the VM fails, nothing continues
    the paused stream, and the request ends in a StreamTimeout naming the filter that holds it."""
    from wasmlab import StreamTimeout

    bodies = {"proxy_on_request_headers": HTTP_CALL + PAUSE, "proxy_on_http_call_response": "unreachable"}
    with Proxy.from_yaml(_module(tmp_path, bodies), workers=1) as p:
        with pytest.raises(StreamTimeout) as e:
            p.request("GET", "/x", timeout=1)
        assert p.request("GET", "/x").status == 503  # FAIL_CLOSED: the next stream
        logs = p.logs
    assert "the stream is held by filter 'envoy.filters.http.wasm' (decode_headers returned " in str(e.value)
    assert "waiting for continue_decoding" in str(e.value)
    assert any(ln.startswith("[error][wasm] Function: proxy_on_http_call_response failed: ") for ln in logs)


@pytest.mark.parametrize("config", ["access_logger.yaml", "stats_service.yaml"])
def test_every_host_call_from_an_access_logger_and_a_wasm_service_raises_nothing(tmp_path, config):
    """The same scan as the access logger (``proxy_on_log`` of envoy.access_loggers.wasm) and as a
    bootstrap WasmService (root callbacks only: start, configure, tick, queue)."""
    from conftest import CONFIGS, ROOT

    wasm = tmp_path / "scan.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(plugin_wat(SCAN_ALL, scan=True)))
    text = (CONFIGS / "wasm" / config).read_text()
    for module in ("access_logger", "stats_service"):
        text = text.replace(f"../../../modules/{module}.wasm", str(wasm))
    text = text.replace("../../../modules/", f"{ROOT}/modules/")  # the other filters' modules
    names = _scan_run(text, [GET, POST])
    assert {"proxy_on_vm_start", "proxy_on_configure", "proxy_on_tick"} <= names
