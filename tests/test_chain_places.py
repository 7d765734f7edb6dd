"""One place per filter for both directions (host/active_filter.py): filters that take part in
one direction only, mixed in one chain, are walked in Envoy's order (decoding in config order,
encoding in reverse), each skipped in the direction it takes no part in, and a stop and a later
continue in either direction resume at the right neighbour."""

from __future__ import annotations

import pytest

from helpers import config
from wasmlab import FilterDataStatus, FilterHeadersStatus, NativeFilter, native_filter

_SEEN: list[str] = []


class _Recording(NativeFilter):
    tag = ""

    def _note(self, what: str) -> None:
        _SEEN.append(f"{self.tag}.{what}")


@native_filter("t_pl_decode_stop")
class DecodeOnlyStops(_Recording):
    """Decodes only; holds the request headers, and a timer continues decoding."""

    tag, encoder = "D", False

    def decode_headers(self, headers, end_stream):
        self._note("decode_headers")
        self.callbacks.dispatcher.create_timer(self.callbacks.continue_decoding).enable(0.01)
        return FilterHeadersStatus.StopIteration

    def decode_data(self, data, end_stream):
        self._note(f"decode_data:{len(data)}:{end_stream}")
        return FilterDataStatus.Continue


@native_filter("t_pl_encode_stop")
class EncodeOnlyStops(_Recording):
    """Encodes only; holds the response headers, and a timer continues encoding."""

    tag, decoder = "E", False

    def encode_headers(self, headers, end_stream):
        self._note("encode_headers")
        headers.add("x-e", "1")
        self.callbacks.dispatcher.create_timer(self.callbacks.continue_encoding).enable(0.01)
        return FilterHeadersStatus.StopIteration

    def encode_data(self, data, end_stream):
        self._note(f"encode_data:{end_stream}")
        return FilterDataStatus.Continue


@native_filter("t_pl_both")
class Both(_Recording):
    """Both directions; passes everything on."""

    tag = "B"

    def decode_headers(self, headers, end_stream):
        self._note("decode_headers")
        headers.add("x-b", "1")
        return FilterHeadersStatus.Continue

    def decode_data(self, data, end_stream):
        self._note(f"decode_data:{len(data)}:{end_stream}")
        return FilterDataStatus.Continue

    def encode_headers(self, headers, end_stream):
        self._note("encode_headers")
        return FilterHeadersStatus.Continue

    def encode_data(self, data, end_stream):
        self._note(f"encode_data:{end_stream}")
        return FilterDataStatus.Continue


@pytest.mark.parametrize("trace", [False, True])
def test_one_direction_filters_are_walked_in_envoys_order_and_resume_at_their_neighbour(proxy_factory, trace):
    """Config order E, D, B: decoding runs D then B (E skipped), encoding B then E (D skipped).
    D holds the headers and the body behind it; E holds the response headers and its body."""
    _SEEN.clear()
    p = proxy_factory(
        config("""
          - name: wasmlab.native.t_pl_encode_stop
          - name: wasmlab.native.t_pl_decode_stop
          - name: wasmlab.native.t_pl_both"""),
        workers=1,
        trace=trace,
    )
    r = p.request("POST", "/x", body=b"hello")
    assert r.status == 200
    assert r.headers.get("x-e") == "1"
    received = dict(r.json()["headers"])
    assert received.get("x-b") == "1"
    assert r.json()["body"] == "hello"
    # (the same sequence as with two places per filter, the structure before this one)
    assert _SEEN == [
        "D.decode_headers",
        "D.decode_data:5:False",  # held at D: the body still reaches D, which buffers and continues
        "B.decode_headers",
        "B.decode_data:5:False",
        "D.decode_data:0:True",
        "B.decode_data:0:True",
        "B.encode_headers",
        "E.encode_headers",
        "B.encode_data:False",
        "E.encode_data:False",
        "B.encode_data:True",
        "E.encode_data:True",
    ]


@native_filter("t_pl_reply_then_hold")
class ReplyThenHold(NativeFilter):
    """Answers from decode_headers; its encode_headers holds that reply for good."""

    def decode_headers(self, headers, end_stream):
        self.callbacks.send_local_reply(403, "denied")
        return FilterHeadersStatus.StopIteration

    def encode_headers(self, headers, end_stream):
        return FilterHeadersStatus.StopAllIterationAndBuffer


@pytest.mark.parametrize("trace", [False, True])
def test_a_held_stream_names_the_last_callback_of_the_direction_that_holds_it(proxy_factory, trace):
    """One place keeps each direction's last status: the decode_headers that returns after its
    own nested encode_headers does not hide which callback holds the response."""
    from wasmlab.errors import StreamTimeout

    p = proxy_factory(
        config("""
          - name: wasmlab.native.t_pl_reply_then_hold"""),
        workers=1,
        trace=trace,
    )
    with pytest.raises(StreamTimeout) as err:
        p.request("GET", "/x", timeout=0.3)
    assert (
        "filter 'wasmlab.native.t_pl_reply_then_hold' (encode_headers returned StopAllIterationAndBuffer, "
        "waiting for continue_encoding)" in str(err.value)
    )
