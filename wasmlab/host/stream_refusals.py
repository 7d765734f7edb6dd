"""A stream that ends before its filter chain runs: the HTTP/1 codec refused the request's head
(Envoy answers 431 or 400 from the codec), the HCM refused its path or a ``QUERY`` without
``content-type``, or a filter raised while the chain was made (wasmlab answers 500, as for a
filter that raised in a callback); and the name a failing filter's log line gives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..http.codec import codec_error_details
from ..http.grpc import is_grpc_request
from .filter_manager import FilterManager

if TYPE_CHECKING:
    from ..http import HeaderMap
    from .hcm import ActiveStream
    from .proxy import RequestSpec


def codec_refusal(spec: RequestSpec, limits: tuple[int, int]) -> str | None:
    """Why Envoy's HTTP/1 codec would refuse this request's head, or None. Measured on Envoy
    1.40 (tests/test_robustness_sweep.py): it counts the head's bytes as sent (request line,
    every ``name: value`` line and the blank line, CRLFs included) against
    ``max_request_headers_kb``, and its header lines, ``host`` included, against
    ``max_headers_count`` (``RequestSpec.head_bytes``/``head_lines``). Then the framing
    (tests/lua/test_lua_sweep_request_framing.py): a ``transfer-encoding`` other than one
    ``chunked`` (any case, spaces around it allowed) is refused, and so is ``chunked`` with a
    ``content-length``."""
    if spec.head_lines > limits[1]:
        return "http1.too_many_headers"
    if spec.head_bytes > limits[0]:
        return "http1.headers_too_large"
    codings = [v for k, v in spec.headers if k == "transfer-encoding"]
    if not codings:
        return None
    if len(codings) > 1 or codings[0].strip(" \t").lower() != "chunked":
        return "http1.invalid_transfer_encoding"
    if any(k == "content-length" for k, _ in spec.headers):
        return "http1.content_length_and_chunked_not_allowed"
    return None


#: the codec's answer to each refusal of :func:`codec_refusal` (by its details)
_CODEC_ANSWERS = {
    "http1.invalid_transfer_encoding": (501, b"Not Implemented"),
    "http1.content_length_and_chunked_not_allowed": (400, b"Bad Request"),
}


def filter_name(f: Any) -> str:
    """The config name of a filter at the stream's end (its callbacks carry it)."""
    callbacks = getattr(f, "callbacks", None)
    return getattr(callbacks, "name", None) or type(f).__name__


def refuse_head(stream: ActiveStream, spec: RequestSpec, details: str) -> None:
    """The HTTP/1 codec refused the request's head: Envoy answers from the codec, before any
    filter or route sees the request -- 431 for a head too big or with too many headers, 501
    for a ``transfer-encoding`` it does not implement, 400 for ``chunked`` with a length --
    and closes the connection (``DPE``, ``downstream_cx_protocol_error``)."""
    stream.method = spec.method
    stream.stat("downstream_rq_total")
    stream.stat("downstream_rq_http1_total")
    stream.stat("downstream_cx_protocol_error")
    stream.stat("downstream_rq_rx_reset")  # the connection closes under the unfinished request
    stream.info.response_flags = "DPE"
    # the request never completed: the reply says ``connection: close`` and counts
    # downstream_rq_response_before_rq_complete (codec_encode_headers)
    stream.fm = fm = FilterManager(stream, [], stream.hcm.config.buffer_limit)
    status, body = _CODEC_ANSWERS.get(details, (431, b"Request Header Fields Too Large"))
    fm.send_local_reply(status, body, None, details)


def answer_refused(stream: ActiveStream, verdict: str, headers: HeaderMap, ends_at_headers: bool) -> None:
    """Envoy's answer to a request it will not route (no filter runs): the HTTP/1 codec's
    ``Bad Request`` for a request line with bytes outside printable ASCII or a method it does
    not know; 400 with no body for a ``QUERY`` without ``content-type``; 400 for a rejected
    path, or a 307 to the unescaped path for ``UNESCAPE_AND_REDIRECT``."""
    if verdict == "codec_error":
        _refuse_request_line(stream, headers)
        return
    stream.fm = fm = FilterManager(stream, [], stream.hcm.config.buffer_limit)
    fm.request_headers = headers
    fm.remote_decode_complete = ends_at_headers
    if verdict == "query_missing_content_type":
        fm.send_local_reply(400, b"", None, verdict)
    elif verdict == "redirect" and not is_grpc_request(headers):  # (gRPC: rejected instead)
        stream.stat("downstream_rq_redirected_with_normalized_path")
        location = headers.get(":path") or "/"
        fm.send_local_reply(307, b"", lambda h: h.add("location", location), "path_normalization_failed")
    else:
        stream.stat("downstream_rq_failed_path_normalization")
        fm.send_local_reply(400, b"", None, "path_normalization_failed")


def _refuse_request_line(stream: ActiveStream, headers: HeaderMap) -> None:
    """The HTTP/1 codec refused the request line: as for a refused head (:func:`refuse_head`),
    Envoy answers from the codec before the headers exist -- the access log shows no request
    header (``%REQ(:METHOD)%`` is ``-``), ``DPE``, the connection closes -- with 400 ``Bad
    Request`` and the parser's reason (:func:`codec_error_details`, measured on Envoy 1.40)."""
    details = codec_error_details(headers.get(":method") or "", headers.get(":path") or "")
    stream.stat("downstream_cx_protocol_error")
    stream.stat("downstream_rq_rx_reset")  # the connection closes under the unfinished request
    stream.info.response_flags = "DPE"
    stream.info.request_headers = None
    stream.fm = fm = FilterManager(stream, [], stream.hcm.config.buffer_limit)
    fm.send_local_reply(400, b"Bad Request", None, details)


def chain_failed(stream: ActiveStream, fm: FilterManager, headers: HeaderMap, end_stream: bool, message: str) -> None:
    """A filter raised while the stream's chain was made (its ``__init__`` or
    ``set_callbacks``): the stream answers 500 as for a filter that raised in a callback,
    through the filters set up before it. (Envoy has no such case: a C++ filter that throws
    while it is made takes the process down.)"""
    stream.proxy.log("error", "http", message)
    if stream.proxy.recorder.enabled:
        stream.proxy.recorder.record("trap", "create_filter", {}, message, {"stream": stream.stream_id})
    fm.request_headers = headers
    fm.remote_decode_complete = end_stream
    stream.fail_filter_exception(message)
