"""A kernel that never dies, whatever the learner types: an adversarial learner's native filters,
callbacks used from the wrong thread, and misuse of the stream's callbacks.

Envoy has no counterpart for most of these: a C++ filter that throws while it is made, calls
``exit`` or uses its callbacks from another thread takes the process down or is undefined
behaviour. wasmlab's rule (docs/errors.md) is the one it applies to a filter callback that
raises: the stream answers 500 (``filter_raised_exception``), the log names the filter, the step
and the line, and the worker keeps serving. Anything that could end or freeze the process runs
in a subprocess (``run_isolated``)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from helpers import config
from safety_helpers import ROOT, run_isolated
from wasmlab import ConfigError, NativeFilter, Proxy, load_config, native_filter
from wasmlab.errors import StreamTimeout
from wasmlab.http import FilterDataStatus, FilterHeadersStatus


def _chain(name: str) -> str:
    return config(f"""
          - name: wasmlab.native.{name}""")


def _errors(p: Proxy) -> list[str]:
    return [ln for ln in p.logs if ln.startswith(("[error]", "[critical]"))]


def _serves(p: Proxy) -> None:
    """The worker still answers (a direct response needs no upstream)."""
    assert p.request("GET", "/direct", timeout=5).status in (200, 500)


# ---- a filter that raises anything, anywhere ----------------------------------------------------------
class _Custom(BaseException):
    pass


@native_filter("t_rs_raise_base")
class RaiseBase(NativeFilter):
    """Raises what the path names from decode_headers."""

    def decode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        what = headers.get(":path")
        if what == "/exit":
            raise SystemExit(3)
        if what == "/interrupt":
            raise KeyboardInterrupt
        if what == "/custom":
            raise _Custom("custom base")
        return FilterHeadersStatus.Continue


@pytest.mark.parametrize(
    ("path", "words"),
    [("/exit", "SystemExit: 3"), ("/interrupt", "KeyboardInterrupt"), ("/custom", "_Custom: custom base")],
)
def test_a_base_exception_from_a_callback_fails_the_stream_not_the_worker(proxy_factory, path, words):
    # before: SystemExit/KeyboardInterrupt unwound the worker's loop and ended its thread; this
    # request and every later one on the worker waited for their timeout
    p = proxy_factory(_chain("t_rs_raise_base"), workers=1)
    r = p.request("GET", path, timeout=5)
    assert (r.status, r.details) == (500, "filter_raised_exception")
    assert any(f"filter 'wasmlab.native.t_rs_raise_base' raised in decode_headers: {words}" in ln for ln in _errors(p))
    assert p.request("GET", "/fine", timeout=5).status == 200


@native_filter("t_rs_exit_on_destroy")
class ExitOnDestroy(NativeFilter):
    def on_destroy(self) -> None:
        raise SystemExit(1)


def test_a_system_exit_at_the_streams_end_is_logged_with_the_filters_name(proxy_factory):
    p = proxy_factory(_chain("t_rs_exit_on_destroy"), workers=1)
    for _ in range(2):  # before: the second request found the worker's thread ended
        assert p.request("GET", "/x", timeout=5).status == 200
    assert "filter 'wasmlab.native.t_rs_exit_on_destroy' raised in on_destroy: SystemExit: 1" in _errors(p)[0]


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() itself fails")


@native_filter("t_rs_unprintable")
class RaiseUnprintable(NativeFilter):
    def decode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        raise _Unprintable()


def test_an_exception_whose_str_raises_is_still_the_filters_error(proxy_factory):
    # before: formatting the message raised again, and the stream was reset as a host bug
    # ("host error on stream 1: RuntimeError: str() itself fails")
    p = proxy_factory(_chain("t_rs_unprintable"), workers=1)
    r = p.request("GET", "/x", timeout=5)
    assert (r.status, r.details) == (500, "filter_raised_exception")
    (line,) = _errors(p)
    assert "raised in decode_headers: _Unprintable: <str() of the exception failed>" in line
    assert "filter 'wasmlab.native.t_rs_unprintable'" in line
    assert "test_robustness_sweep.py:" in line


# ---- a filter that cannot be made ---------------------------------------------------------------------
@native_filter("t_rs_bad_init")
class BadInit(NativeFilter):
    def __init__(self, config: dict[str, Any], worker_state: dict[str, Any]) -> None:
        raise ValueError("no such setting")


@native_filter("t_rs_bad_set_callbacks")
class BadSetCallbacks(NativeFilter):
    def set_callbacks(self, callbacks: Any) -> None:
        raise AttributeError("typo in set_callbacks")


@native_filter("t_rs_tag_response")
class TagResponse(NativeFilter):
    """Marks every response it sees, so a test can tell which filters a reply went through."""

    def encode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        headers.add("x-tagged", "yes")
        return FilterHeadersStatus.Continue


@pytest.mark.parametrize(
    ("name", "step", "words"),
    [
        ("t_rs_bad_init", "__init__", "ValueError: no such setting"),
        ("t_rs_bad_set_callbacks", "set_callbacks", "AttributeError: typo in set_callbacks"),
    ],
)
def test_a_filter_that_raises_while_it_is_made_answers_500_naming_it(proxy_factory, name, step, words):
    # before: "[critical][http] host error on stream 1: ..." and a reset stream (StreamReset),
    # as if wasmlab itself had a bug
    yaml = config(f"""
          - name: wasmlab.native.t_rs_tag_response
          - name: wasmlab.native.{name}""")
    p = proxy_factory(yaml, workers=1)
    for _ in range(2):
        r = p.request("GET", "/x", timeout=5)
        assert (r.status, r.body, r.details) == (500, b"Internal Server Error", "filter_raised_exception")
        assert r.headers.get("x-tagged") == "yes"  # through the filters made before it
    errors = _errors(p)
    assert len(errors) == 2 and not any("[critical]" in ln for ln in errors)
    assert (
        f"[error][http] filter 'wasmlab.native.{name}' raised in {step}: {words} (test_robustness_sweep.py:"
        in errors[0]
    )


# ---- the stream's callbacks used wrongly ------------------------------------------------------------------
@native_filter("t_rs_continue_from_timer")
class ContinueFromTimer(NativeFilter):
    """Continues from a ``threading.Timer`` instead of the worker (a natural first try)."""

    def decode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        if headers.get(":path") == "/posted":
            cb = self.callbacks
            threading.Timer(0.01, lambda: cb.dispatcher.post(cb.continue_decoding)).start()
        else:
            threading.Timer(0.01, self.callbacks.continue_decoding).start()
        return FilterHeadersStatus.StopIteration


def test_callbacks_from_another_thread_are_refused_and_the_worker_keeps_serving(proxy_factory, monkeypatch):
    # before: the Timer's thread ran the rest of the chain beside the worker's loop; the response
    # came back, but the worker's next response was left queued and never handed over
    seen: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))
    p = proxy_factory(_chain("t_rs_continue_from_timer"), workers=1)
    with pytest.raises(StreamTimeout):
        p.request("GET", "/x", timeout=1)
    assert len(seen) == 1 and isinstance(seen[0], RuntimeError)
    assert "called continue_decoding() on thread " in str(seen[0])
    assert "a filter's callbacks may only be used on its worker; hand the call over with " in str(seen[0])
    assert "self.callbacks.dispatcher.post(...)" in str(seen[0])
    assert str(seen[0]) in _errors(p)[0]
    # the documented way works, and so does the worker
    assert p.request("GET", "/posted", timeout=5).status == 200
    assert p.request("GET", "/posted", timeout=5).status == 200


@native_filter("t_rs_keep_callbacks")
class KeepCallbacks(NativeFilter):
    kept: list[Any] = []

    def decode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        KeepCallbacks.kept.append(self.callbacks)
        return FilterHeadersStatus.Continue


def test_callbacks_kept_past_the_stream_and_used_from_the_notebook_are_refused(proxy_factory):
    p = proxy_factory(_chain("t_rs_keep_callbacks"), workers=1)
    assert p.request("GET", "/x").status == 200
    cb = KeepCallbacks.kept[-1]
    for call in (
        cb.continue_decoding,
        lambda: cb.send_local_reply(403, "late"),
        lambda: cb.add_decoded_data(b"x"),
        cb.reset_stream,
    ):
        with pytest.raises(RuntimeError, match="not on its worker worker_0"):
            call()
    # on the worker, after the stream ended, they do nothing
    p._server.workers[0].run_sync(lambda: (cb.continue_decoding(), cb.send_local_reply(403, "late"), cb.reset_stream()))
    assert p.request("GET", "/x").status == 200


@native_filter("t_rs_add_int")
class AddInt(NativeFilter):
    def decode_data(self, data: Any, end_stream: bool) -> FilterDataStatus:
        if end_stream:
            self.callbacks.add_decoded_data(123)
        return FilterDataStatus.Continue


def test_added_body_data_must_be_bytes_not_an_int(proxy_factory):
    # before: Buffer(123) was 123 NUL bytes appended to the body
    seen: list[bytes] = []
    p = proxy_factory(_chain("t_rs_add_int"), workers=1)
    p.upstream("backend", lambda req: (seen.append(bytes(req.body)), (200, {}, b"ok"))[1])
    r = p.request("POST", "/x", body=b"abc", timeout=5)
    assert (r.status, seen) == (500, [])
    assert "TypeError: add_decoded_data() takes bytes, str or a Buffer, got int" in _errors(p)[0]


# ---- the worker's loop itself ----------------------------------------------------------------------------
def test_the_dispatcher_outlives_a_base_exception_from_a_task():
    out = run_isolated(
        """
        from wasmlab.host.dispatcher import Dispatcher, RealClock
        errors = []
        d = Dispatcher("worker_9", 9, RealClock(), on_error=lambda thread, e: errors.append(type(e).__name__))
        d.start()
        def leave():
            raise SystemExit(2)
        d.post(leave)
        d.post(lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
        print("answer", d.run_sync(lambda: 42, timeout=5), d.alive, errors)
        d.stop()
        """,
        timeout=60,
    )
    assert out.returncode == 0, out.explain()
    assert "answer 42 True ['SystemExit', 'KeyboardInterrupt']" in out.stdout, out.explain()


# ---- what the notebook passes to request() -----------------------------------------------------------------
@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "5", True])
def test_a_timeout_that_is_not_seconds_is_refused(proxy_factory, timeout):
    # before: 0, -1 and nan gave a StreamTimeout "no response after nans", "5" a bare TypeError
    # from a comparison inside threading
    p = proxy_factory(config(), workers=1)
    for call in (
        lambda: p.request("GET", "/direct", timeout=timeout),
        lambda: p.request_many([("GET", "/direct")], timeout=timeout),
    ):
        with pytest.raises(ValueError, match=r"^timeout must be a number of seconds > 0, got "):
            call()


@pytest.mark.parametrize("timeout", [float("inf"), 1e30, None])
def test_an_unbounded_timeout_waits_without_a_limit(proxy_factory, timeout):
    # before: OverflowError: timestamp out of range for platform time_t
    p = proxy_factory(config(), workers=1)
    assert p.request("GET", "/direct", timeout=timeout).status == 200
    assert [r.status for r in p.request_many([("GET", "/direct")] * 3, timeout=timeout)] == [200] * 3


def test_a_bool_is_not_a_worker_number(proxy_factory):
    p = proxy_factory(config(), workers=2)
    with pytest.raises(ValueError, match=r"worker must be 0\.\.1, got True"):
        p.request("GET", "/direct", worker=True)  # before: worker 1


@pytest.mark.parametrize("what", ["headers", "trailers"])
def test_headers_that_are_not_pairs_are_named(proxy_factory, what):
    # before: TypeError: 'int' object is not iterable
    p = proxy_factory(config(), workers=1)
    with pytest.raises(TypeError, match=rf"^{what} must be a dict or a list of \(name, value\) pairs, got int$"):
        p.request("GET", "/direct", **{what: 5})
    with pytest.raises(TypeError, match=rf"^{what} must be a dict or a list of \(name, value\) pairs, got str$"):
        p.request("GET", "/direct", **{what: "x-a: 1"})


def test_check_status_with_a_str_says_which_is_which(proxy_factory, capsys):
    # before: "status is 200, expected 200" for check_status(r, "200")
    from wasmlab.checks import check_status

    r = proxy_factory(config(), workers=1).request("GET", "/direct")
    with pytest.raises(AssertionError, match=r"^status is 200, expected '200'$"):
        check_status(r, "200")
    assert check_status(r, 200).ok


# ---- a native filter's registration and config ------------------------------------------------------------
@native_filter("t_rs_buggy_validate")
class BuggyValidate(NativeFilter):
    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        config.nope  # noqa: B018 - the learner's bug: AttributeError


@native_filter("t_rs_exiting_validate")
class ExitingValidate(NativeFilter):
    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        raise SystemExit(2)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("t_rs_buggy_validate", "validate_config raised AttributeError: 'dict' object has no attribute 'nope' at "),
        ("t_rs_exiting_validate", "validate_config raised SystemExit: 2 at "),
    ],
)
def test_a_bug_in_validate_config_is_a_config_error_naming_the_filter(name, words):
    # before: the AttributeError (or SystemExit) escaped load_config with no YAML path
    with pytest.raises(ConfigError) as e:
        load_config(_chain(name))
    msg = str(e.value)
    assert f"typed_config.http_filters[0]: invalid config for wasmlab.native.{name}: {words}" in msg
    assert "test_robustness_sweep.py:" in msg


def test_a_native_filter_name_must_be_a_str_and_does_not_poison_the_registry():
    # before: @native_filter(5) registered 5, and every later "unknown native filter" error was
    # "TypeError: '<' not supported between instances of 'int' and 'str'" (sorting the names)
    with pytest.raises(TypeError, match=r"^@native_filter\(name\) takes the filter's name as a non-empty str, got 5$"):
        native_filter(5)
    with pytest.raises(ConfigError, match=r"unknown native filter 'wasmlab\.native\.t_rs_nope' \(registered: "):
        load_config(_chain("t_rs_nope"))


def test_a_native_filters_typed_config_must_be_a_mapping():
    yaml = _chain("add_header").replace(
        "- name: wasmlab.native.add_header", "- name: wasmlab.native.add_header\n            typed_config: 5"
    )
    with pytest.raises(ConfigError, match=r"http_filters\[0\]\.typed_config: expected a mapping, got a number$"):
        load_config(yaml)  # before: loaded, as if no config was given


# ---- an upstream app that answers a status no HTTP/1 peer would send -----------------------------------
_LOGGED = config().replace(
    "          stat_prefix: ingress",
    """          stat_prefix: ingress
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format:
                text_format_source: {inline_string: "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\\n"}""",
)
_ODD_STATUSES = [0, 99, 600, 1000, 65536, 100000]


def _status_app(request: Any) -> tuple[int, dict[str, str], bytes]:
    return int(request.path[1:]), {"x-a": "1"}, b"body"


def _counters(stats: dict[str, int]) -> dict[str, int]:
    keep = ("cluster.backend.upstream_rq_", "cluster.backend.upstream_cx_protocol_error", "http.ingress.downstream_rq_")
    return {k: v for k, v in stats.items() if k.startswith(keep) and v and not k.endswith(("_total", "_active"))}


def test_an_app_status_below_100_is_envoys_protocol_error_and_codes_keep_16_bits(envoy_bin):
    # before: wasmlab handed status 0 (or 99, 65536) to the client and counted upstream_rq_0 /
    # upstream_rq_0xx; Envoy's codec refuses it: 502 "protocol error", flag UPE. A code past
    # 65535 arrives cut to 16 bits (100000 -> 34464), and one outside 100..599 counts
    # upstream_rq_unknown
    import time

    from helpers import assert_same
    from wasmlab import envoy as real

    with real.run(_LOGGED, workers=1, apps={"backend": _status_app}) as e:
        theirs = [e.request("GET", f"/{s}", timeout=5) for s in _ODD_STATUSES]
        # Envoy writes its access log asynchronously; stdout shares Envoy's log file, so its
        # lines continue other log lines
        deadline = time.monotonic() + 10
        while True:
            their_log = [ln for ln in "\n".join(e.logs).split("\n") if ln[:1].isdigit()]
            if len(their_log) >= len(_ODD_STATUSES) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        their_stats = _counters(e.stats())
    with Proxy.from_yaml(_LOGGED, workers=1) as p:
        p.upstream("backend", _status_app)
        ours = [p.request("GET", f"/{s}", timeout=5) for s in _ODD_STATUSES]
        our_stats, our_log = _counters(p.stats()), p.access_logs
    for s, a, b in zip(_ODD_STATUSES, ours, theirs, strict=True):
        assert_same(a, b, f"status {s}")
    assert [r.status for r in ours] == [502, 502, 600, 1000, 502, 34464]
    assert our_stats == their_stats
    assert [ln.strip() for ln in our_log] == [ln.strip() for ln in their_log]


def test_a_callouts_protocol_error_is_502_as_envoys_async_client_answers(envoy_bin):
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "lua"))
    from lua_helpers import Req, lua_config, run_envoy, run_wasmlab

    script = """
function envoy_on_request(h)
  local path = h:headers():get(":path")
  local hd, b = h:httpCall("backend", {[":method"]="GET", [":path"]=path, [":authority"]="x"}, "", 1000)
  h:respond({[":status"]="200", ["x-st"]=hd[":status"], ["x-b"]=b}, "")
end"""
    yaml = lua_config(script)
    requests = [Req("GET", "/0"), Req("GET", "/100000"), Req("GET", "/1000")]
    theirs = run_envoy(yaml, requests, {"backend": _status_app})
    ours = run_wasmlab(yaml, requests, {"backend": _status_app})
    got = [(r.headers.get("x-st"), r.headers.get("x-b")) for r in ours.responses]
    assert got == [(r.headers.get("x-st"), r.headers.get("x-b")) for r in theirs.responses]
    assert got[0] == ("502", "upstream connect error or disconnect/reset before headers. reset reason: protocol error")
    assert _counters(ours.stats) == _counters(theirs.stats)


# ---- a TCP connection -----------------------------------------------------------------------------------------
def test_a_tcp_send_of_an_int_is_refused_and_a_send_after_close_says_closed():
    from conftest import CONFIGS
    from wasmlab.errors import ProxyClosed

    with Proxy.from_yaml(CONFIGS / "wasm" / "tcp_logger.yaml", workers=1) as p:
        c = p.connect()
        with pytest.raises(TypeError, match=r"^send\(\) takes bytes or str, got int$"):
            c.send(5)  # before: five NUL bytes went to the upstream
        c.send(b"hi")
        assert c.close() == b"hi"
        late = p.connect()
    with pytest.raises(ProxyClosed, match=r"^this proxy was closed; create a new one"):
        late.send(b"x")  # before: accepted and dropped without a word


# ---- Proxy.from_yaml's other arguments, advance() and the config source ---------------------------------------
def test_a_config_on_one_long_line_is_yaml_text_not_a_file_name():
    # before: OSError: [Errno 36] File name too long (json.dumps(config) is one line, and JSON is YAML)
    import json

    import yaml

    one_line = json.dumps(yaml.safe_load(config()))
    assert "\n" not in one_line and len(one_line) > 255
    with Proxy.from_yaml(one_line, workers=1) as p:
        assert p.request("GET", "/direct").status == 200


def test_a_folder_is_not_a_config_file(tmp_path):
    # before: the folder's name was read as YAML text: "the top level must be a mapping ..., got a string"
    with pytest.raises(ConfigError, match=r": is a folder, not a config file$"):
        load_config(str(tmp_path))


@pytest.mark.parametrize(
    ("kw", "exc", "words"),
    [
        ({"trace_capacity": -1}, ValueError, "trace_capacity must be an int >= 0 (events kept), got -1"),
        ({"trace_capacity": "5"}, ValueError, "trace_capacity must be an int >= 0 (events kept), got '5'"),
        ({"options": [1]}, TypeError, "options must be a dict of proxy options, got list"),
        ({"upstreams": [1]}, TypeError, "upstreams must be a dict of cluster name to app, got list"),
        ({"options": {"lua_instruction_limit": float("inf")}}, ValueError, "must be a number >= 0, got inf"),
        ({"options": {"lua_memory_limit_mb": float("nan")}}, ValueError, "must be a number >= 0, got nan"),
        ({"options": {"lua_hook_every": 1e300}}, ValueError, "must be a number >= 0, got 1e+300"),
    ],
)
def test_proxy_arguments_of_the_wrong_kind_are_named(kw, exc, words):
    # before: -1 kept no trace and "5" five events, silently; a list of options or upstreams was
    # a bare "cannot convert dictionary update sequence" / AttributeError; an infinite Lua limit
    # an OverflowError at start-up
    with pytest.raises(exc) as e:
        Proxy.from_yaml(config(), workers=1, **kw).close()
    assert words in str(e.value)


@pytest.mark.parametrize("seconds", [float("inf"), float("nan"), 1e300, "1", None, True])
def test_advance_takes_a_finite_number_of_seconds(seconds):
    # before: OverflowError / ValueError "cannot convert float NaN to integer" / a TypeError
    # from a comparison
    with Proxy.from_yaml(config(), workers=1, clock="virtual") as p:
        with pytest.raises(ValueError, match=r"^advance\(\) takes a finite number of seconds, got "):
            p.advance(seconds)
        p.advance(1.5)
        assert p.request("GET", "/direct").status == 200


def test_a_config_error_stays_on_one_line_when_a_key_holds_a_line_break():
    # found by tests/test_fuzz_inputs.py with more examples: a quoted key with "\n" in it split
    # the message over three lines
    with pytest.raises(ConfigError) as e:
        load_config('admin:\n  ? "a\\nb"\n  : null\n')
    assert str(e.value) == "<string>:2: admin.a\\nb: unknown field 'a\\nb' (wasmlab supports: address)"


# ---- a request head past the HTTP/1 codec's limits -----------------------------------------------------------
def _limited(kb: int | None = None, count: int | None = None) -> str:
    extra = ""
    if kb is not None:
        extra += f"\n          max_request_headers_kb: {kb}"
    if count is not None:
        extra += f"\n          common_http_protocol_options: {{max_headers_count: {count}}}"
    return _LOGGED.replace("          stat_prefix: ingress", "          stat_prefix: ingress" + extra).replace(
        "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%",
        "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %REQ(:PATH)%",
    )


# (config, [(path, headers)]): each on the limit, then one byte or one header past it. The head
# is "GET /direct HTTP/1.1\r\nhost: localhost\r\n" + "x-big: <n>\r\n" + "\r\n": 50 bytes + n
_HEAD_CASES = [
    (_limited(), [("/direct", {"x-big": "a" * 61390}), ("/direct", {"x-big": "a" * 61391})]),
    (
        _limited(),
        [("/direct", [(f"x-{i}", "v") for i in range(99)]), ("/direct", [(f"x-{i}", "v") for i in range(100)])],
    ),
    (_limited(), [("/" + "p" * 61400, {}), ("/" + "p" * 61420, {})]),
    (_limited(kb=1), [("/direct", {"x-big": "a" * 974}), ("/direct", {"x-big": "a" * 975})]),
    (
        _limited(count=5),
        [("/direct", [(f"x-{i}", "v") for i in range(4)]), ("/direct", [(f"x-{i}", "v") for i in range(5)])],
    ),
]


@pytest.mark.parametrize(("yaml", "requests"), _HEAD_CASES, ids=["bytes", "count", "path", "kb=1", "count=5"])
def test_a_request_head_past_the_codecs_limits_is_431_as_envoy_answers(envoy_bin, yaml, requests):
    # before: wasmlab took any head (a 1 MiB header, 500 headers) and answered 200; Envoy's
    # HTTP/1 codec answers 431 (DPE, http1.headers_too_large / http1.too_many_headers) and
    # closes the connection, before any filter or route sees the request
    import time

    from helpers import assert_same
    from wasmlab import envoy as real

    with real.run(yaml, workers=1) as e:
        theirs = [e.request("GET", path, headers=h, timeout=5) for path, h in requests]
        deadline = time.monotonic() + 15
        while True:
            their_log = [ln for ln in "\n".join(e.logs).split("\n") if ln[:3].isdigit()]
            if len(their_log) >= len(requests) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        their_stats = _counters(e.stats())
    with Proxy.from_yaml(yaml, workers=1) as p:
        ours = [p.request("GET", path, headers=h) for path, h in requests]
        our_stats, our_log = _counters(p.stats()), p.access_logs
    for (path, _), a, b in zip(requests, ours, theirs, strict=True):
        assert_same(a, b, path[:20])
    assert [r.status for r in ours] == [200, 431]
    assert ours[1].body == b"Request Header Fields Too Large" and ours[1].headers.get("connection") == "close"
    assert [ln.strip() for ln in our_log] == [ln.strip() for ln in their_log]
    assert our_stats == their_stats


@pytest.mark.parametrize(("status", "seen"), [(99, 99), (1000, 1000), (70000, 4464), (-5, 65531)])
def test_a_local_reply_status_reaches_the_client_in_16_bits_as_envoy_sends_it(envoy_bin, tmp_path, status, seen):
    # before: wasmlab answered 70000 and 4294967291 (proxy_send_local_response(-5) read as u32)
    import wasmtime
    from wat_plugin import plugin_wat

    from wasm_diff import plugin_yaml
    from wasmlab import envoy as real

    reply = (
        f"(drop (call $local (i32.const {status}) (i32.const 0) (i32.const 0) (i32.const 1216) (i32.const 6) "
        "(i32.const 0) (i32.const 0) (i32.const -1))) (return (i32.const 1))"
    )
    (tmp_path / "reply.wasm").write_bytes(wasmtime.wat2wasm(plugin_wat({"proxy_on_request_headers": reply})))
    yaml = plugin_yaml(tmp_path / "reply.wasm")
    with real.run(yaml, workers=1) as e:
        theirs = e.request("GET", "/x", timeout=5)
    with Proxy.from_yaml(yaml, workers=1) as p:
        ours = p.request("GET", "/x", timeout=5)
    assert (ours.status, ours.body) == (theirs.status, theirs.body) == (seen, b"denied")


def test_max_headers_count_alone_is_not_warned_about():
    yaml = config().replace(
        "stat_prefix: ingress", "stat_prefix: ingress\n          common_http_protocol_options: {max_headers_count: 5}"
    )
    with Proxy.from_yaml(yaml, workers=1) as p:
        assert not [ln for ln in p.logs if ln.startswith("[warning][config]")]
        assert p.request("GET", "/direct", headers=[(f"x-{i}", "v") for i in range(4)]).status == 200
        assert p.request("GET", "/direct", headers=[(f"x-{i}", "v") for i in range(5)]).status == 431
