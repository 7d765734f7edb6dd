"""Async HTTP client to a cluster: what Lua ``httpCall`` and Proxy-Wasm ``proxy_http_call`` use.

Envoy's ``Http::AsyncClient`` sends a request to a cluster outside the downstream filter chain
and calls back on the same worker when the response arrives. Here the request is handed to the
cluster's upstream app on an upstream thread and the answer is *posted* back to the calling
worker's dispatcher — never delivered inline, as in Envoy. As in Envoy, the client's own router
answers for the failures it sees, so they arrive as ordinary responses: a timeout (0 = none) is a
504 ``upstream request timeout``, an upstream that refuses or drops the connection a 503 with
Envoy's reset text. ``failure`` is set only for a reset of the call itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..http import HeaderMap, Request
from ..http.codec import copy_for_upstream, frame_headers_only_request
from .conn_manager_utility import append_xff
from .local_info import local_address
from .upstream import (
    CONNECT_FAILURE,
    CONNECTION_TERMINATION,
    PROTOCOL_ERROR,
    ROUTER_CONSUMED_HEADERS,
    charge_upstream_code,
    charge_upstream_result,
    charge_upstream_sent,
    charge_upstream_timeout,
    to_wire_response,
    to_wire_trailers,
)

if TYPE_CHECKING:
    from .dispatcher import Dispatcher, Timer
    from .services import ServerContext
    from .upstream import Cluster, UpstreamCall, UpstreamResult


TIMEOUT_BODY = b"upstream request timeout"
#: the reset reasons Envoy's async client names in its response code details (measured: a
#: cluster whose endpoint has nothing listening; the others as Envoy's router names them)
_RESET_DETAILS = {
    CONNECT_FAILURE: "remote_connection_failure|delayed_connect_error:_Connection_refused",
    PROTOCOL_ERROR: "protocol_error",
}


def local_reply(status: int, body: bytes) -> tuple[HeaderMap, bytes]:
    """What Envoy's async client hands back when its router answers itself (timeout, no upstream)."""
    h = HeaderMap([(":status", str(status))])
    if body:
        h.add("content-length", str(len(body)))
        h.add("content-type", "text/plain")
    return h, body


@dataclass
class AsyncResponse:
    """A completed call: ``headers`` include ``:status``; ``failure`` set when there is none (a
    reset of the call itself: Envoy's ``onFailure``). ``details``: the call's response code
    details (``via_upstream``, or why its router answered itself: then ``local`` is set)."""

    headers: HeaderMap | None
    body: bytes
    trailers: HeaderMap | None
    failure: str | None = None
    details: str = "via_upstream"
    local: bool = False

    @property
    def status(self) -> int:
        if self.headers is None:
            return 0
        try:
            return int(self.headers.get(":status") or 0)
        except ValueError:
            return 0


class AsyncRequest:
    """A call in flight; ``cancel()`` drops its answer."""

    def __init__(self, dispatcher: Dispatcher, on_complete: Callable[[AsyncResponse], None]) -> None:
        self.dispatcher = dispatcher
        self.on_complete = on_complete
        self.done = False
        self.timer: Timer | None = None
        #: the app call in flight: abandoned when the answer no longer matters (frees the pool)
        self.upstream: UpstreamCall | None = None

    def cancel(self) -> None:
        self.done = True
        if self.timer is not None:
            self.timer.disable()
        if self.upstream is not None:
            self.upstream.abandon()

    def _finish(self, response: AsyncResponse) -> None:
        if self.done:
            return
        self.done = True
        if self.timer is not None:
            self.timer.disable()
        if self.upstream is not None:  # a timeout: Envoy resets the upstream request
            self.upstream.abandon()
        self.on_complete(response)


def send(
    proxy: ServerContext,
    dispatcher: Dispatcher,
    cluster_name: str,
    headers: HeaderMap,
    body: bytes,
    timeout_s: float | None,
    on_complete: Callable[[AsyncResponse], None],
    trailers: HeaderMap | None = None,
    send_xff: bool = True,
    token: int | None = None,
    streamed: bool = False,
) -> AsyncRequest:
    """Start a call; ``headers`` carry ``:method``, ``:path`` and ``:authority``.

    The caller checks the cluster exists (Lua and Wasm report that error differently). As
    Envoy's async client (its request goes through a router of its own), the upstream also gets
    ``x-envoy-internal: true``, ``x-forwarded-for: <LocalInfo::address()>`` if ``send_xff`` (Lua's
    ``httpCall``; not Wasm's ``proxy_http_call``), ``x-envoy-expected-rq-timeout-ms`` if timed;
    the answer gets ``x-envoy-upstream-service-time``. A timeout, an unreachable or crashing
    upstream and a cluster without endpoints come back as that router's local replies (504/503,
    ``text/plain``), as in Envoy. Callout trace events carry the caller's stream (None for a root
    context), its ``token`` (Proxy-Wasm) and, on the answer, the request event's ``seq``.
    """
    cluster = proxy.clusters[cluster_name]
    req = AsyncRequest(dispatcher, on_complete)
    up, broken, timeout_s = _upstream_headers(headers, body, timeout_s, send_xff, streamed)
    request = Request(headers.get(":method") or "GET", headers.get(":path") or "/", up, body, trailers)
    head = request.method == "HEAD"
    rec = proxy.recorder
    tdata: dict[str, object] = {"stream": rec.current_stream(), "token": token} if rec.enabled else {}
    if rec.enabled:
        sent = rec.record(
            "callout",
            "http_request",
            {
                "cluster": cluster_name,
                "method": request.method,
                "path": request.path,
                "headers": tuple(up),
                "body_size": len(body),
                "timeout_ms": int((timeout_s or 0) * 1000),
            },
            data=tdata,
        )
        tdata = {**tdata, "request": sent.seq if sent is not None else None}
    if timeout_s:
        _arm_timeout(proxy, dispatcher, req, cluster_name, timeout_s, tdata)
    activity = proxy.activity
    activity.begin()
    if cluster.healthy:
        charge_upstream_sent(proxy.stat_store, cluster)
    sent_ns = proxy.clock.monotonic_ns()

    stats = proxy.stat_store

    def deliver(result: UpstreamResult) -> None:
        if not req.done:  # else timed out or cancelled: Envoy reset the upstream request
            charge_upstream_result(stats, cluster_name, result, True)
        resp = _response_of(result, head, (proxy.clock.monotonic_ns() - sent_ns) // 1_000_000)
        if rec.enabled and not req.done:
            rec.record(
                "callout",
                "http_response",
                {"cluster": cluster_name, "status": resp.status, "failure": resp.failure, "body_size": len(resp.body)},
                data=tdata,
            )
        req._finish(resp)

    def done(result: UpstreamResult) -> None:
        dispatcher.post(deliver, result)
        activity.end()

    refusal = _refusal(proxy, cluster, broken)
    if refusal is not None:  # the router answers at once (on the next loop turn)
        activity.end()
        dispatcher.post(req._finish, refusal)
    else:
        req.upstream = proxy.upstream_pool.call(cluster, request, done)
    return req


def _refusal(proxy: ServerContext, cluster: Cluster, broken: str | None) -> AsyncResponse | None:
    """The router's 503 when the call cannot be sent: a cluster without endpoints
    (``upstream_cx_none_healthy``), or headers the HTTP/1 codec refuses (http/codec.py)."""
    if not cluster.healthy:  # charged as the router charges its 503 (a callout is internal)
        stats = proxy.stat_store
        stats.inc(f"cluster.{cluster.name}.upstream_cx_none_healthy")
        stats.inc(f"cluster.{cluster.name}.lb_healthy_panic")
        charge_upstream_code(stats, cluster.name, 503, True)
        h, b = local_reply(503, b"no healthy upstream")
        return AsyncResponse(h, b, None, details="no_healthy_upstream", local=True)
    if broken is None:
        return None
    return AsyncResponse(*local_reply(503, broken.encode()), None, details="", local=True)


def _upstream_headers(
    headers: HeaderMap, body: bytes, timeout_s: float | None, send_xff: bool, streamed: bool = False
) -> tuple[HeaderMap, str | None, float | None]:
    """The headers the upstream receives: ``host`` from ``:authority``, no pseudo-headers, and
    what the async client's own router adds (``x-envoy-internal``, ``x-forwarded-for``,
    ``x-envoy-expected-rq-timeout-ms``); the HTTP/1 codec's refusal of them, if any; and the
    call's timeout as that router sets it (:func:`_final_timeout`). A ``streamed`` body (a gRPC
    call's) goes chunked, without ``content-length``."""
    up = HeaderMap()
    up.add("host", headers.get(":authority") or "")
    broken = copy_for_upstream(headers, up)
    timeout_s = _final_timeout(up, timeout_s)
    if body and not streamed:  # Envoy's callers set it from the body, over the caller's own
        up.set_in_place("content-length", str(len(body)))
    up.set_in_place("x-envoy-internal", "true")
    if send_xff:
        append_xff(up, local_address())
    if timeout_s:
        up.set_in_place("x-envoy-expected-rq-timeout-ms", str(round(timeout_s * 1000)))
    if not body:
        frame_headers_only_request(headers.get(":method") or "GET", up)
    elif streamed:
        up.add("transfer-encoding", "chunked")
    return up, broken, timeout_s


def _final_timeout(up: HeaderMap, timeout_s: float | None) -> float | None:
    """The timeout of a call as the async client's router sets it (Envoy's
    ``FilterUtility::finalTimeout``; a callout is an internal request, so its headers are
    honored): ``x-envoy-upstream-rq-timeout-ms`` replaces the caller's timeout (0: none),
    ``x-envoy-upstream-rq-per-try-timeout-ms`` shortens it (there are no retries: the first try
    is the last). Every header that router consumes is then removed (measured on Envoy 1.40)."""
    ms = round(timeout_s * 1000) if timeout_s else 0
    given = _milliseconds(up.get("x-envoy-upstream-rq-timeout-ms"))
    if given is not None:
        ms = given
    per_try = _milliseconds(up.get("x-envoy-upstream-rq-per-try-timeout-ms"))
    if per_try and (ms == 0 or per_try < ms):
        ms = per_try
    for name in ROUTER_CONSUMED_HEADERS:
        up.remove(name)
    return ms / 1000 if ms else None


def _milliseconds(value: str | None) -> int | None:
    """A header's count of milliseconds as ``absl::SimpleAtoi`` reads a uint64 (spaces around it
    and a ``+`` allowed), or None."""
    if value is None:
        return None
    v = value.strip(" \t\n\v\f\r").removeprefix("+")
    return int(v) if v.isascii() and v.isdigit() and int(v) < 2**64 else None


def _arm_timeout(
    proxy: ServerContext,
    dispatcher: Dispatcher,
    req: AsyncRequest,
    cluster_name: str,
    timeout_s: float,
    tdata: dict[str, object],
) -> None:
    """The call's timer: when it fires first, the router answers 504 ``upstream request timeout``."""
    rec = proxy.recorder

    def on_timeout() -> None:
        charge_upstream_timeout(proxy.stat_store, cluster_name, True)
        if rec.enabled:
            rec.record("callout", "http_timeout", {"cluster": cluster_name}, data=tdata)
        h, b = local_reply(504, TIMEOUT_BODY)
        req._finish(AsyncResponse(h, b, None, details="response_timeout", local=True))

    req.timer = dispatcher.create_timer(on_timeout, "async_client_timeout")
    req.timer.enable(timeout_s)


def _response_of(result: UpstreamResult, head: bool, service_ms: int) -> AsyncResponse:
    """The upstream's answer as the caller sees it; no response is the router's 503 (502 for a
    protocol error) with the reset reason as its body."""
    if result.response is None:
        failure = result.failure or CONNECTION_TERMINATION
        h, b = local_reply(502 if failure == PROTOCOL_ERROR else 503, failure.encode())
        details = f"upstream_reset_before_response_started{{{_RESET_DETAILS.get(failure, 'connection_termination')}}}"
        return AsyncResponse(h, b, None, details=details, local=True)
    h, b = to_wire_response(result.response, head, result.was_chunked)
    h.set_in_place("x-envoy-upstream-service-time", str(max(0, service_ms)))
    tr = to_wire_trailers(result.response.trailers) if result.response.trailers else None
    return AsyncResponse(h, b, tr)
