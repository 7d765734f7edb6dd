"""The filter manager's short cuts change nothing a filter, a client or a trace can see: a
callback a filter class leaves as StreamFilter's default is skipped only on untraced streams,
with the same iteration (held headers, buffered body, continue) as calling it."""

from __future__ import annotations

import functools

import pytest

from helpers import config
from wasmlab import FilterHeadersStatus, NativeFilter, Proxy, native_filter
from wasmlab.filters.base import StreamFilter
from wasmlab.host.active_filter import _DECODE_DATA, _DECODE_HEADERS, _ENCODE_DATA, traits_of


@native_filter("t_headers_only")
class HeadersOnly(NativeFilter):
    """Overrides decode_headers only: every other callback is StreamFilter's default."""

    def decode_headers(self, headers, end_stream):
        headers.add("x-seen", "yes")
        return FilterHeadersStatus.Continue


@native_filter("t_hold_no_data")
class HoldNoData(NativeFilter):
    """StopIteration in decode_headers, no decode_data of its own: the body that arrives while
    it holds is buffered (the default decode_data returns Continue, and a held filter buffers
    then continues, Envoy's rule) and a timer continues the stream."""

    def decode_headers(self, headers, end_stream):
        self.callbacks.dispatcher.create_timer(self.callbacks.continue_decoding).enable(0.02)
        return FilterHeadersStatus.StopIteration


def _chain(name: str) -> str:
    return config(f"""
          - name: wasmlab.native.{name}""")


@pytest.mark.parametrize("trace", [False, True])
def test_a_held_filter_with_the_default_decode_data_gets_its_body_through(proxy_factory, trace):
    p = proxy_factory(_chain("t_hold_no_data"), workers=1, trace=trace)
    r = p.request("POST", "/x", body="hello")
    assert r.status == 200
    assert r.json()["body"] == "hello"


def test_a_traced_stream_still_shows_every_default_callback_of_a_filter():
    with Proxy.from_yaml(_chain("t_headers_only"), workers=1) as p:
        r = p.request("POST", "/x", body="abc")
        events = p.trace.filter(kind="filter")
    assert r.status == 200
    ours = [
        (e.name, e.data["phase"], e.args.get("end_stream"))
        for e in events
        if e.args and e.args.get("filter") == "wasmlab.native.t_headers_only"
    ]
    # the body as one frame, then the end of stream (the HTTP/1 codec), both ways
    calls = [
        ("decode_headers", False),
        ("decode_data", False),
        ("decode_data", True),
        ("encode_headers", False),
        ("encode_data", False),
        ("encode_data", True),
    ]
    assert ours == [(name, phase, end) for name, end in calls for phase in ("enter", "exit")]


def test_untraced_and_traced_streams_answer_alike(proxy_factory):
    answers = []
    for trace in (False, True):
        p = proxy_factory(_chain("t_headers_only"), workers=1, trace=trace)
        r = p.request("POST", "/x", body="abc")
        answers.append((r.status, ["x-seen", "yes"] in r.json()["headers"], r.json()["body"]))
    assert answers[0] == answers[1] == (200, True, "abc")


def test_traits_see_which_callbacks_a_class_overrides_and_inherits():
    class Base(StreamFilter):
        def decode_data(self, data, end_stream):
            return super().decode_data(data, end_stream)

    class Child(Base):
        encoder = False

    class Mixin:
        def encode_data(self, data, end_stream):
            raise AssertionError("not called here")

    class Mixed(Mixin, StreamFilter):
        kind = "lua"

    assert traits_of(StreamFilter()).passthrough & (_DECODE_HEADERS | _DECODE_DATA) == _DECODE_HEADERS | _DECODE_DATA
    child = traits_of(Child())
    assert not child.passthrough & _DECODE_DATA  # an override, even inherited, is always called
    assert child.passthrough & _DECODE_HEADERS
    assert (child.decoder, child.encoder, child.kind, child.plain_set_callbacks) == (True, False, "native", True)
    mixed = traits_of(Mixed())
    assert not mixed.passthrough & _ENCODE_DATA and mixed.kind == "lua"


# ---- filters whose callbacks are not plain methods of their class ---------------------------------
_CALLS: list[str] = []


def _logged(fn):
    @functools.wraps(fn)  # copies the function's attributes onto the wrapper
    def wrapper(self, *args):
        _CALLS.append(fn.__name__)
        return fn(self, *args)

    return wrapper


@native_filter("t_wrapped")
class Wrapped(NativeFilter):
    """A class decorator wraps defaults and overrides alike: every wrapper must run."""

    def decode_headers(self, headers, end_stream):
        return FilterHeadersStatus.Continue


for _name in ("decode_headers", "decode_data", "encode_headers", "encode_data"):
    setattr(Wrapped, _name, _logged(getattr(Wrapped, _name)))


@native_filter("t_instance_level")
class InstanceLevel(NativeFilter):
    """Callbacks and flags set on the instance, not the class."""

    def __init__(self, config, worker_state):
        super().__init__(config, worker_state)
        self.decode_headers = self._add
        self.encoder = False
        self.log = lambda info: _CALLS.append("log")
        self.on_destroy = lambda: _CALLS.append("on_destroy")

    def _add(self, headers, end_stream):
        headers.add("x-instance", "1")
        return FilterHeadersStatus.Continue

    def encode_headers(self, headers, end_stream):  # never called: encoder is False
        headers.add("x-encoded", "1")
        return FilterHeadersStatus.Continue


@native_filter("t_patched_later")
class PatchedLater(NativeFilter):
    """Nothing of its own until a notebook cell patches decode_headers in."""


def _echoed(r, name):
    """The value of request header ``name`` as the echo upstream received it, or None."""
    return dict(r.json()["headers"]).get(name)


def test_wrapped_callbacks_all_run_traced_or_not():
    """functools.wraps copies the default's mark onto a wrapper: the wrapper is no default."""
    seen = []
    for trace in (True, False):
        _CALLS.clear()
        with Proxy.from_yaml(_chain("t_wrapped"), workers=1, trace=trace) as p:
            assert p.request("GET", "/x").status == 200
        seen.append(list(_CALLS))
    assert seen[0] == seen[1]
    assert {"decode_headers", "encode_headers", "encode_data"} <= set(seen[1])


@pytest.mark.parametrize("trace", [False, True])
def test_instance_level_callbacks_and_flags_count(trace):
    _CALLS.clear()
    with Proxy.from_yaml(_chain("t_instance_level"), workers=1, trace=trace) as p:
        r = p.request("GET", "/x")
        assert p.wait_idle(5.0)
    assert r.status == 200
    assert r.headers.get("x-encoded") is None  # the instance said it is no encoder
    assert _CALLS == ["log", "on_destroy"]
    assert _echoed(r, "x-instance") == "1"


@pytest.mark.parametrize("trace", [False, True])
def test_a_class_patched_after_its_first_stream_takes_effect(trace):
    with Proxy.from_yaml(_chain("t_patched_later"), workers=1, trace=trace) as p:
        first = p.request("GET", "/x")

        def decode_headers(self, headers, end_stream):
            headers.add("x-patched", "1")
            return FilterHeadersStatus.Continue

        PatchedLater.decode_headers = decode_headers
        try:
            second = p.request("GET", "/x")
        finally:
            del PatchedLater.decode_headers
        third = p.request("GET", "/x")
    assert [_echoed(r, "x-patched") for r in (first, second, third)] == [None, "1", None]


@native_filter("t_no_direction")
class NoDirection(NativeFilter):
    """Takes part in neither direction (no chain place): its callbacks still reach the stream,
    and continue_decoding/continue_encoding do nothing."""

    decoder = False
    encoder = False

    def log(self, info):
        cb = self.callbacks
        cb.continue_decoding()
        cb.continue_encoding()
        self.worker_state["seen"] = (cb.stream_id == info.stream_id, cb.response_headers is not None)


@native_filter("t_encode_only")
class EncodeOnly(NativeFilter):
    """Only encodes: its callbacks are its encoder place."""

    decoder = False

    def encode_headers(self, headers, end_stream):
        headers.add("x-enc", str(self.callbacks.stream_id == self.callbacks.stream_info.stream_id))
        return FilterHeadersStatus.Continue


@pytest.mark.parametrize("trace", [False, True])
def test_a_filter_in_one_direction_or_none_has_working_callbacks(proxy_factory, trace):
    p = proxy_factory(
        config("""
          - name: wasmlab.native.t_no_direction
          - name: wasmlab.native.t_encode_only"""),
        workers=1,
        trace=trace,
    )
    r = p.request("GET", "/x")
    assert r.status == 200
    assert r.headers.get("x-enc") == "True"
    states = [s for d in p._server.workers for s in d.slots.values() if isinstance(s, dict) and "seen" in s]
    assert [s["seen"] for s in states] == [(True, True)]
