"""Filter-chain semantics with native filters: stop/continue, buffering, local replies through the
encoders, buffer limits, per-worker state, virtual-clock timers and stream timeouts."""

from __future__ import annotations

import threading
import time

import pytest

from helpers import config, with_trailers
from wasmlab import (
    Buffer,
    FilterDataStatus,
    FilterHeadersStatus,
    FilterTrailersStatus,
    HeaderMap,
    NativeFilter,
    Response,
    StreamTimeout,
    native_filter,
)

CALLS: list[tuple] = []


def native(name: str, extra: str = "") -> str:
    return f"""
          - name: wasmlab.native.{name}{extra}"""


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


@native_filter("t_hold_headers")
class HoldHeaders(NativeFilter):
    """StopIteration in decode_headers, buffers the body, continues 50 ms later from a timer."""

    def decode_headers(self, headers, end_stream):
        CALLS.append(("decode_headers", end_stream))
        headers.add("x-held", "yes")
        t = self.callbacks.dispatcher.create_timer(self._go)
        t.enable(0.05)
        return FilterHeadersStatus.StopIteration

    def decode_data(self, data, end_stream):
        CALLS.append(("decode_data", len(data), end_stream))
        # Continue here would release the held headers at once (Envoy's rule); keep buffering
        return FilterDataStatus.StopIterationAndBuffer

    def _go(self):
        CALLS.append(("continue",))
        self.callbacks.continue_decoding()


@native_filter("t_stop_all")
class StopAll(NativeFilter):
    """StopAllIterationAndBuffer: no body reaches this filter until it continues."""

    def decode_headers(self, headers, end_stream):
        CALLS.append(("decode_headers", end_stream))
        self.callbacks.dispatcher.create_timer(self.callbacks.continue_decoding).enable(0.05)
        return FilterHeadersStatus.StopAllIterationAndBuffer

    def decode_data(self, data, end_stream):
        CALLS.append(("decode_data", data.to_bytes(), end_stream))
        return FilterDataStatus.Continue


@native_filter("t_buffer_upper")
class BufferUpper(NativeFilter):
    """Buffers the request body with StopIterationAndBuffer and upper-cases it at end of stream."""

    def decode_data(self, data, end_stream):
        CALLS.append(("decode_data", len(data), end_stream))
        if not end_stream:
            return FilterDataStatus.StopIterationAndBuffer
        self.callbacks.add_decoded_data(data)
        buf = self.callbacks.decoding_buffer()
        buf.set(buf.to_bytes().upper())
        return FilterDataStatus.Continue


@native_filter("t_deny")
class Deny(NativeFilter):
    def decode_headers(self, headers, end_stream):
        CALLS.append(("deny.decode_headers",))
        self.callbacks.send_local_reply(403, "denied by native filter\n", {"x-why": "test"}, "test_denied")
        return FilterHeadersStatus.StopIteration

    def encode_headers(self, headers, end_stream):
        CALLS.append(("deny.encode_headers", headers.get(":status"), end_stream))
        return FilterHeadersStatus.Continue


@native_filter("t_observer")
class Observer(NativeFilter):
    def decode_headers(self, headers, end_stream):
        CALLS.append(("observer.decode_headers",))
        return FilterHeadersStatus.Continue

    def encode_headers(self, headers, end_stream):
        CALLS.append(("observer.encode_headers", headers.get(":status"), end_stream))
        headers.add("x-observed", "1")
        return FilterHeadersStatus.Continue

    def encode_data(self, data, end_stream):
        CALLS.append(("observer.encode_data", len(data), end_stream))
        return FilterDataStatus.Continue


@native_filter("t_buffer_response")
class BufferResponse(NativeFilter):
    """Holds the response headers and buffers the body (what Lua's response body() does)."""

    def encode_headers(self, headers, end_stream):
        return FilterHeadersStatus.StopIteration

    def encode_data(self, data, end_stream):
        return FilterDataStatus.Continue if end_stream else FilterDataStatus.StopIterationAndBuffer


@native_filter("t_counter")
class Counter(NativeFilter):
    """Counts requests per worker (worker_state) and tags each stream's filter instance."""

    def decode_headers(self, headers, end_stream):
        n = self.worker_state.get("n", 0) + 1
        self.worker_state["n"] = n
        headers.add("x-worker-count", str(n))
        headers.add("x-instance", str(id(self)))
        CALLS.append((self.callbacks.worker, n, id(self)))
        return FilterHeadersStatus.Continue


@native_filter("t_timer")
class VirtualTimer(NativeFilter):
    """Holds the request for 5 s of (virtual) time."""

    def decode_headers(self, headers, end_stream):
        self.callbacks.dispatcher.create_timer(self._fire).enable(5.0)
        return FilterHeadersStatus.StopIteration

    def _fire(self):
        CALLS.append(("fired", self.callbacks.proxy.clock.monotonic_ns()))
        self.callbacks.continue_decoding()


@native_filter("t_forever")
class Forever(NativeFilter):
    def decode_headers(self, headers, end_stream):
        return FilterHeadersStatus.StopIteration

    def on_destroy(self):
        CALLS.append(("destroyed",))


@native_filter("t_raises")
class Raises(NativeFilter):
    def decode_headers(self, headers, end_stream):
        if headers.get(":path") == "/boom":
            raise RuntimeError("learner bug")
        return FilterHeadersStatus.Continue


@native_filter("t_bad_return")
class BadReturn(NativeFilter):
    def decode_headers(self, headers, end_stream):
        return "continue"


@native_filter("t_trailers")
class Trailers(NativeFilter):
    def decode_trailers(self, trailers):
        CALLS.append(("decode_trailers", list(trailers)))
        trailers.add("x-trailer-added", "1")
        return FilterTrailersStatus.Continue


@native_filter("t_hold_response")
class HoldResponse(NativeFilter):
    def encode_headers(self, headers, end_stream):
        CALLS.append(("encode_headers", end_stream))
        self.callbacks.dispatcher.create_timer(self.callbacks.continue_encoding).enable(0.05)
        return FilterHeadersStatus.StopIteration

    def encode_data(self, data, end_stream):
        CALLS.append(("encode_data", len(data), end_stream))
        return FilterDataStatus.Continue


def test_stop_iteration_then_continue_from_a_timer(proxy_factory):
    p = proxy_factory(config(native("t_hold_headers")), workers=1)
    r = p.request("POST", "/x", body="hello")
    assert r.status == 200
    echoed = r.json()
    assert ["x-held", "yes"] in echoed["headers"]
    assert echoed["body"] == "hello"
    # body frames still reach a filter that stopped only the headers, before it continues
    assert CALLS[:3] == [("decode_headers", False), ("decode_data", 5, False), ("decode_data", 0, True)]
    assert CALLS[3] == ("continue",)


def test_stop_all_buffers_the_body_until_continue(proxy_factory):
    p = proxy_factory(config(native("t_stop_all")), workers=1)
    r = p.request("POST", "/x", body="abc")
    assert r.status == 200 and r.json()["body"] == "abc"
    # nothing reached decode_data while stopped; then the whole buffered body at once, ending the stream
    assert CALLS == [("decode_headers", False), ("decode_data", b"abc", True)]


def test_stop_iteration_and_buffer_then_rewrite(proxy_factory):
    p = proxy_factory(config(native("t_buffer_upper")), workers=1)
    r = p.request("POST", "/x", body="quiet please")
    assert r.json()["body"] == "QUIET PLEASE"
    assert CALLS == [("decode_data", 12, False), ("decode_data", 0, True)]


def test_local_reply_runs_through_every_encoder_filter(proxy_factory):
    called = []
    p = proxy_factory(config(native("t_observer") + native("t_deny") + native("t_observer")), workers=1)
    p.upstream("backend", lambda req: called.append(req) or Response(200))
    r = p.request("GET", "/x")
    assert r.status == 403
    assert r.body == b"denied by native filter\n"
    assert r.headers.get("x-why") == "test"
    assert r.headers.get_all("x-observed") == ["1", "1"]
    assert r.details == "test_denied"
    assert called == []  # never reached the router
    assert CALLS == [
        ("observer.decode_headers",),
        ("deny.decode_headers",),
        # the filter after Deny never decodes; encoders run in reverse order, Deny included
        ("observer.encode_headers", "403", False),
        ("deny.encode_headers", "403", False),
        ("observer.encode_headers", "403", False),
        ("observer.encode_data", 24, True),
        ("observer.encode_data", 24, True),
    ]


def test_request_buffer_limit_answers_413(proxy_factory):
    text = config(native("t_buffer_upper"), listener_extra="\n    per_connection_buffer_limit_bytes: 1024")
    p = proxy_factory(text, workers=1)
    r = p.request("POST", "/x", body=b"a" * 5000)
    assert r.status == 413
    assert r.body == b"Payload Too Large"
    assert r.headers.get("connection") == "close"
    assert p.request("POST", "/x", body=b"a" * 1000).status == 200
    assert p.stats()["http.ingress.downstream_rq_too_large"] == 1


def test_response_buffer_limit_answers_500(proxy_factory):
    text = config(native("t_buffer_response"), listener_extra="\n    per_connection_buffer_limit_bytes: 1024")
    p = proxy_factory(text, workers=1)
    p.upstream("backend", lambda req: Response(200, {"content-type": "text/plain"}, b"x" * 5000))
    r = p.request("GET", "/x")
    assert (r.status, r.body) == (500, b"Internal Server Error")
    assert "connection" not in r.headers


def test_filter_instances_are_per_stream_and_state_is_per_worker(proxy_factory):
    p = proxy_factory(config(native("t_counter")), workers=2)
    for i in range(10):
        p.request("GET", "/direct", worker=0 if i < 6 else 1)
    by_worker = {0: [], 1: []}
    for worker, n, _ in CALLS:
        by_worker[worker].append(n)
    assert by_worker == {0: [1, 2, 3, 4, 5, 6], 1: [1, 2, 3, 4]}
    assert len({inst for _, _, inst in CALLS}) >= 2  # a new instance per stream (ids may be reused)


def test_virtual_clock_fires_timers_only_when_advanced(proxy_factory):
    p = proxy_factory(config(native("t_timer")), workers=1, clock="virtual")
    out: list = []
    t = threading.Thread(target=lambda: out.append(p.request("GET", "/direct", timeout=10)))
    t.start()
    time.sleep(0.2)
    p.advance(4.9)
    time.sleep(0.1)
    assert out == [] and CALLS == []
    p.advance(0.1)
    t.join(5)
    assert out and out[0].status == 200
    assert CALLS == [("fired", 5_000_000_000)]


def test_route_timeout_on_the_virtual_clock(proxy_factory):
    release = threading.Event()
    routes = """
              - match: {prefix: "/"}
                route: {cluster: backend, timeout: 2s}"""
    p = proxy_factory(config(routes=routes), workers=1, clock="virtual")
    p.upstream("backend", lambda req: release.wait(5) and Response(200))
    out: list = []
    t = threading.Thread(target=lambda: out.append(p.request("GET", "/slow", timeout=10)))
    t.start()
    time.sleep(0.2)
    p.advance(2.0)
    t.join(5)
    release.set()
    assert (out[0].status, out[0].body) == (504, b"upstream request timeout")


def test_a_stream_held_forever_raises_stream_timeout_naming_the_filter(proxy_factory):
    p = proxy_factory(config(native("t_forever")), workers=1)
    t0 = time.monotonic()
    with pytest.raises(StreamTimeout) as e:
        p.request("GET", "/direct", timeout=0.3)
    assert time.monotonic() - t0 < 3
    msg = str(e.value)
    assert "GET /direct on worker_0: no response after 0.3s" in msg
    assert "filter 'wasmlab.native.t_forever' (decode_headers returned StopIteration" in msg
    p.wait_idle()
    assert ("destroyed",) in CALLS  # the held stream was reset and cleaned up


def test_a_filter_that_raises_fails_only_its_stream(proxy_factory):
    p = proxy_factory(config(native("t_raises")), workers=1)
    r = p.request("GET", "/boom")
    assert (r.status, r.body) == (500, b"Internal Server Error")
    assert any("raised in decode_headers: RuntimeError: learner bug (test_chain.py:" in line for line in p.logs)
    assert p.request("GET", "/direct").status == 200


def test_a_filter_returning_a_non_status_fails_its_stream(proxy_factory):
    p = proxy_factory(config(native("t_bad_return")), workers=1)
    assert p.request("GET", "/direct").status == 500
    assert any("returned 'continue' from decode_headers" in line for line in p.logs)


def test_request_trailers_reach_filters_and_upstream(proxy_factory):
    p = proxy_factory(with_trailers(config(native("t_trailers"))), workers=1)
    seen = []
    p.upstream("backend", lambda req: seen.append(req) or Response(200))
    p.request("POST", "/x", body="b", trailers=[("x-t", "1")])
    assert CALLS == [("decode_trailers", [("x-t", "1")])]
    assert list(seen[0].trailers) == [("x-t", "1"), ("x-trailer-added", "1")]


def test_http1_codec_drops_trailers_by_default(proxy_factory):
    """Without enable_trailers Envoy's HTTP/1 codec drops them: decode_trailers is not called,
    the body ends with an empty end-of-stream data frame, the upstream gets none."""
    p = proxy_factory(config(native("t_trailers")), workers=1)
    seen = []
    p.upstream("backend", lambda req: seen.append(req) or Response(200, {}, b"r", trailers=[("x-u", "1")]))
    r = p.request("POST", "/x", body="b", trailers=[("x-t", "1")])
    assert CALLS == [] and seen[0].trailers is None and r.trailers is None
    assert seen[0].headers.get("transfer-encoding") == "chunked"  # still a chunked body upstream


def test_encoder_stop_and_continue(proxy_factory):
    p = proxy_factory(config(native("t_hold_response")), workers=1)
    p.upstream("backend", lambda req: Response(200, {"content-type": "text/plain"}, b"12345"))
    r = p.request("GET", "/x")
    assert r.body == b"12345"
    assert CALLS == [("encode_headers", False), ("encode_data", 5, False), ("encode_data", 0, True)]


def test_upstream_body_arrives_as_a_frame_then_an_empty_end_frame(proxy_factory):
    p = proxy_factory(config(native("t_observer")), workers=1)
    p.upstream("backend", lambda req: Response(200, {}, b"abc"))
    p.request("GET", "/x")
    p.request("GET", "/direct")
    assert CALLS[1:4] == [
        ("observer.encode_headers", "200", False),
        ("observer.encode_data", 3, False),
        ("observer.encode_data", 0, True),
    ]
    # a direct_response body comes in one frame that ends the stream
    assert CALLS[5:] == [("observer.encode_headers", "200", False), ("observer.encode_data", 13, True)]


def test_upstream_failures_look_like_envoys(proxy_factory):
    p = proxy_factory(config(), workers=1)
    p.upstream("backend", lambda req: 1 / 0)
    r = p.request("GET", "/x")
    assert r.status == 503
    assert r.body == b"upstream connect error or disconnect/reset before headers. reset reason: connection termination"
    assert any("app for cluster 'backend' raised ZeroDivisionError" in line for line in p.logs)
    p.upstream("backend", None)
    r = p.request("GET", "/x")
    assert r.body.endswith(b"reset reason: remote connection failure")


def test_request_many_spreads_over_workers(proxy_factory):
    p = proxy_factory(config(native("t_counter")), workers=2)
    rs = p.request_many([("GET", "/direct")] * 20, concurrency=4)
    assert [r.status for r in rs] == [200] * 20
    assert {w for w, _, _ in CALLS} == {0, 1}


def test_closed_proxy_refuses_requests(proxy_factory):
    from wasmlab.errors import ProxyClosed

    p = proxy_factory(config(), workers=1)
    p.close()
    with pytest.raises(ProxyClosed):
        p.request("GET", "/")


def test_bad_request_arguments_are_clear():
    from wasmlab.host.proxy import make_request_spec

    with pytest.raises(ValueError, match="path must start with '/'"):
        make_request_spec("GET", "hello")
    with pytest.raises(ValueError, match="method must be an HTTP method"):
        make_request_spec("", "/")
    spec = make_request_spec("POST", "/", [("Host", "a.b"), ("X", "1")], "body")
    assert spec.authority == "a.b"
    assert spec.headers == [("x", "1"), ("content-length", "4")]


def test_headermap_and_buffer_are_what_filters_get(proxy_factory):
    seen = {}

    @native_filter("t_types")
    class Types(NativeFilter):
        def decode_headers(self, headers, end_stream):
            seen["headers"] = type(headers)
            return FilterHeadersStatus.Continue

        def decode_data(self, data, end_stream):
            seen["data"] = type(data)
            return FilterDataStatus.Continue

    p = proxy_factory(config(native("t_types")), workers=1)
    p.request("POST", "/x", body="1")
    assert seen == {"headers": HeaderMap, "data": Buffer}
