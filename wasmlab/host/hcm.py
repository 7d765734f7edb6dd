"""The HTTP connection manager: turns a request into a stream and the stream into a response.

What Envoy's HCM (``ConnectionManagerImpl::ActiveStream``) and its HTTP/1.1 codec do around the
filter chain, and wasmlab copies (each checked against real Envoy 1.40):

* request headers as filters see them: ``:authority`` (from ``host``), ``:path``, ``:method``,
  ``:scheme``, the client's headers in order (names lower-cased) without the hop-by-hop ones, the
  client-address rules (``conn_manager_utility``), then ``x-forwarded-proto``, ``via`` and
  ``x-request-id`` when the client did not send them;
* a body arrives as one data frame plus an empty end-of-stream frame (the HTTP/1 codec's
  message-complete), a bodyless request ends at the headers;
* the filter chain is built per stream after the route is known, skipping filters a route disables;
* on the way out, after the encoder filters: ``date`` (if absent) and ``server: envoy``
  (overwritten in place), ``x-request-id`` and ``via`` if configured, ``connection: close`` when
  the response beat the request, the client asked for it, or a local reply was a 400; then the codec
  adds ``content-length: 0`` to a bodyless response (not 1xx/204/304) or
  ``transfer-encoding: chunked`` to a body without a length;
* when the response is complete: access logs, then each filter's ``log()``, then ``on_destroy``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from itertools import chain
from typing import TYPE_CHECKING, Any

from ..config.bootstrap import HcmConfig, ListenerConfig, PerRouteDisabled
from ..config.route import RouteAction, per_route_config
from ..errors import describe, raised_at
from ..http import Buffer, HeaderMap, Response
from ..http.codec import HTTP1_METHODS, query_refusal
from ..http.grpc import GRPC_CONTENT_TYPE, http_to_grpc_status, is_grpc_request, percent_encode_message
from ..http.inline_headers import REQUEST_HEADERS_INLINE, RESPONSE_HEADERS_INLINE
from ..http.stream_info import StreamInfo
from ..trace.shapes import STREAM_REQUEST
from .active_filter import filter_raised_message
from .conn_manager_utility import (
    add_external_address,
    add_user_agent,
    append_via,
    http_date,
    mutate_client_address,
    normalize_path,
    request_id,
    set_inline,
    strip_host_port,
    strip_trailing_host_dot,
)
from .dispatcher import run_guarded
from .filter_manager import FilterManager
from .stream_refusals import answer_refused, chain_failed, codec_refusal, filter_name, refuse_head

if TYPE_CHECKING:
    from ..config.route import Route
    from .dispatcher import Dispatcher
    from .proxy import RequestSpec, _Pending
    from .services import ServerContext

_stream_ids = itertools.count(1)
_connection_ids = itertools.count(1)
_remote_ports = itertools.count()  # client ports 40000-59999, reused round-robin
_NO_BODY_STATUSES = (204, 304)


class ActiveStream:
    """One request/response exchange on one worker."""

    __slots__ = (
        "proxy",
        "hcm",
        "dispatcher",
        "stream_id",
        "info",
        "pending",
        "fm",
        "_route",
        "_route_cached",
        "_route_key",
        "_status",
        "_resp_headers",
        "_resp_body",
        "_resp_trailers",
        "_done",
        "_reset_details",
        "_waiting",
        "method",
    )

    def __init__(self, hcm: HttpConnectionManager, dispatcher: Dispatcher, pending: _Pending | None) -> None:
        proxy = hcm.proxy
        self.proxy = proxy
        self.hcm = hcm
        self.dispatcher = dispatcher
        self.stream_id = next(_stream_ids)
        clock = proxy.clock
        peer = f"127.0.0.1:{40000 + next(_remote_ports) % 20000}"
        self.info = StreamInfo(
            self.stream_id,
            next(_connection_ids),
            clock.wall_ns(),
            clock.monotonic_ns(),
            downstream_remote_address=peer,
            downstream_direct_remote_address=peer,
            downstream_local_address=hcm.local_address,
            listener_direction=hcm.listener.direction,
        )
        self.pending = pending
        self.fm: FilterManager | None = None
        self._route: Route | None = None
        self._route_cached = False
        self._route_key: tuple[str, str, str | None] | None = None
        self._status = 0
        self._resp_headers: HeaderMap | None = None
        self._resp_body = bytearray()
        self._resp_trailers: HeaderMap | None = None
        self._done = False
        self._reset_details: str | None = None
        self._waiting = ""
        self.method = ""

    # ---- routing ----------------------------------------------------------------------------
    def cached_route(self) -> Route | None:
        """The route matched last, without matching again (what an access logger reads)."""
        return self._route if self._route_cached else None

    def route(self) -> Route | None:
        """The route of the request headers (Envoy ``route()``): matched on first use, and again
        after a filter cleared the cache, on the headers as they are then."""
        if not self._route_cached:
            self._route_cached = True
            headers = self.info.request_headers
            if headers is None:
                self._route = self._route_key = None
            else:
                rc = self.hcm.config.route_config
                key = (headers.get(":authority") or "", headers.get(":path") or "", headers.get("x-forwarded-proto"))
                # a speed-up (see clear_route_cache): the same inputs find the same route
                if key != self._route_key or rc.reads_headers:
                    self._route_key = key
                    self._route = rc.route_for(headers, key[0], key[1], key[2], self.info)
            route = self._route
            if route is not None:
                self.info.route_name = route.name
                self.info.route_metadata = route.metadata
            else:  # a re-match that found none: %ROUTE_NAME% is "-" again (measured)
                self.info.route_name, self.info.route_metadata = "", None
            # Envoy names the stream's upstream cluster when the route is matched (its cached
            # route's cluster, if it exists): a filter's local reply logs it, xds.cluster_name reads
            # it; for weighted_clusters the entry picked now, for cluster_header the header now
            action = route.action if route is not None else None
            name = action.pick(headers, self.info)[0] if isinstance(action, RouteAction) and headers else None
            self.info.upstream_cluster = name if name in self.proxy.clusters else None
        return self._route

    def clear_route_cache(self) -> None:
        """Envoy ``clearRouteCache``: the next ``route()`` matches the headers again.

        wasmlab keeps the last match and the ``:authority``, ``:path`` and ``x-forwarded-proto``
        it was made on: when no route reads other headers and those did not change, matching
        again would find the same route, so ``route()`` keeps it (Lua clears the cache on every header edit).
        A weighted route is picked again too: by the stream's same random value, or by its
        ``header_name`` header as it is now."""
        self._route_cached = False
        self.info.weighted_pick = None

    def is_head_request(self) -> bool:
        return self.method == "HEAD"

    def stat(self, name: str) -> None:
        """Count an HCM stat (``http.<stat_prefix>.<name>``)."""
        self.proxy.stat_store.inc(self.hcm.stat(name))

    def guarded(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a task for this stream; a bug in the host resets the stream instead of hanging it."""
        if not self._done:
            run_guarded(fn, args, self._host_error)

    # ---- running the request ------------------------------------------------------------------
    def _request_headers(self, spec: RequestSpec) -> tuple[HeaderMap, str]:
        """The request headers as the filters see them (Envoy's decodeHeaders up to the filter
        chain), and the path verdict: "continue", or "reject"/"redirect" when the path must be
        answered before any filter runs (then the client-address rules are not applied)."""
        config = self.hcm.config
        opts = config.header_options
        headers = HeaderMap(None, REQUEST_HEADERS_INLINE)  # a repeated inline header joins, as in Envoy's codec
        headers.add(":authority", spec.authority)
        headers.add(":path", spec.path)
        headers.add(":method", spec.method)
        headers.add(":scheme", "http")
        for k, v in spec.headers:
            if k != "transfer-encoding":  # the codec takes the (chunked) framing off
                headers.add(k, v)
        connection = headers.get("connection")
        if connection is not None and "close" in [t.strip().lower() for t in connection.split(",")]:
            self.info.should_drain_connection = True  # Envoy's saw_connection_close: answer with close
        path = spec.path
        if spec.method not in HTTP1_METHODS or not (path.isascii() and path.isprintable()) or " " in path:
            return headers, "codec_error"  # Envoy's HTTP/1 parser refuses such a request line (http/codec.py)
        if "#" in path:
            return headers, "reject"  # Envoy 1.40 refuses a #fragment in the path (RFC 3986 3.5)
        if spec.method == "QUERY" and query_refusal(spec.method, headers):
            return headers, "query_missing_content_type"
        if opts.normalize_path or opts.merge_slashes or opts.escaped_slashes_action != "KEEP_UNCHANGED":
            verdict = normalize_path(headers, opts)
            if verdict != "continue":
                return headers, verdict
        if opts.strip_trailing_host_dot:
            strip_trailing_host_dot(headers)
        if opts.strip_host_port:
            strip_host_port(headers, opts.strip_host_port, self.hcm.listener.address.port)
        client = mutate_client_address(headers, opts, self.info)
        if "x-forwarded-proto" not in headers:
            headers.add("x-forwarded-proto", "http")
        if opts.append_x_forwarded_port and "x-forwarded-port" not in headers:
            headers.add("x-forwarded-port", str(self.hcm.listener.address.port))
        if opts.add_user_agent:
            add_user_agent(headers, self.proxy.node.cluster, self.proxy.node.id)
        if opts.via:
            append_via(headers, opts.via)
        add_external_address(headers, opts, client)
        edge = opts.use_remote_address and client is not None  # (client None: an internal request)
        if edge and config.generate_request_id and not opts.preserve_external_request_id and "x-request-id" in headers:
            set_inline(headers, "x-request-id", request_id())  # an edge Envoy does not trust the client's id
        if config.generate_request_id and "x-request-id" not in headers:
            headers.add("x-request-id", request_id())
        return headers, "continue"

    def start(self, spec: RequestSpec) -> None:
        proxy = self.proxy
        rec = proxy.recorder
        hcm = self.hcm
        config = hcm.config
        refused = codec_refusal(spec, config.header_limits)
        if refused is not None:
            refuse_head(self, spec, refused)
            return
        headers, verdict = self._request_headers(spec)
        self.method = spec.method
        self.info.request_headers = headers
        proxy.stat_store.inc(hcm.stat("downstream_rq_total"))
        proxy.stat_store.inc(hcm.stat("downstream_rq_http1_total"))
        if rec.enabled:
            # compact (trace.shapes.STREAM_REQUEST): one flat tuple, the header pairs flattened
            raw = (spec.method, spec.path, len(spec.body), self.stream_id, hcm.listener.name, *chain(*headers))
            rec.emit("stream", "request", raw, None, None, None, None, None, STREAM_REQUEST)
        if verdict != "continue":
            answer_refused(self, verdict, headers, not spec.body and spec.trailers is None)
            return
        # Envoy builds the filter chain once the route is known; a route may disable filters
        route = self.route()
        # most routes configure no filter: look a filter up only when one does
        per_filter = route is not None and bool(
            route.per_filter_config
            or config.route_config.per_filter_config
            or (route.virtual_host is not None and route.virtual_host.per_filter_config)
        )
        dispatcher = self.dispatcher
        filters = []
        failed = None
        for fc in config.http_filters:
            per_route = per_route_config(route, fc.name) if per_filter else None
            if per_route is None:
                if fc.disabled:
                    continue
            elif isinstance(per_route, PerRouteDisabled):
                continue
            try:
                f = fc.factory.create_filter(dispatcher)
            except BaseException as e:  # a native filter's __init__ raised (even SystemExit)
                failed = filter_raised_message(fc.name, "__init__", e)
                break
            if f is not None:
                filters.append((fc.name, f))
        self.fm = fm = FilterManager(self, filters, config.buffer_limit)
        failed = failed or fm.setup_error
        if failed is not None:
            chain_failed(self, fm, headers, not spec.body and spec.trailers is None, failed)
            return
        body = spec.body
        # a request with trailers comes chunked; the HTTP/1 codec drops the trailers unless the
        # HCM enables them, and then ends the body with an empty end-of-stream data frame
        chunked = spec.trailers is not None or any(k == "transfer-encoding" for k, _ in spec.headers)
        trailers = spec.trailers if config.http1_trailers and spec.trailers else None  # none sent: data ends it
        fm.codec_decode_headers(headers, not body and not chunked)
        if body and not fm.destroyed:  # (a reply during the headers ends the stream unread: 0 bytes)
            self.info.bytes_received = len(body)
            fm.codec_decode_data(Buffer(body), False)
        if (body or chunked) and trailers is None and not fm.destroyed:
            fm.codec_decode_data(Buffer(), True)
        if trailers is not None and not fm.destroyed:
            fm.codec_decode_trailers(HeaderMap(trailers))

    # ---- codec side: the response reaches the client -------------------------------------------
    def local_reply_headers(
        self, status: int, body: bytes, modify: Any, grpc_status: int | None = None
    ) -> tuple[HeaderMap, bytes]:
        """Headers and body of a local reply (Envoy ``Utility::prepareLocalReply``): the route's
        response headers, the caller's ``modify``, then the HCM's ``local_reply_config``; a
        body gets ``content-length``, and the body format's ``content-type`` when there is none
        yet, or when the rewrite changed the body but not the ``content-type`` header. A gRPC
        request gets a trailers-only gRPC answer instead (:func:`_grpc_local_reply`)."""
        headers = HeaderMap(None, RESPONSE_HEADERS_INLINE)
        headers.add(":status", str(status))
        route = self.route()
        # Envoy finalizes route headers on local replies only for cluster routes; the router
        # does it itself for direct responses and redirects, and a missing route adds none
        if route is not None and isinstance(route.action, RouteAction):
            for level in self.hcm.config.route_config.header_levels(route, self.info):
                level.apply_response(headers, self.info)
        if modify is not None:
            modify(headers)
        content_type = "text/plain"
        original = body
        custom_type = False  # the rewrite set a content-type header of its own
        rewrite = self.hcm.config.local_reply
        if rewrite is not None:
            before = headers.get("content-type")
            status, body, content_type = rewrite.rewrite(self.info, self.info.request_headers, headers, status, body)
            custom_type = headers.get("content-type") != before
        if is_grpc_request(self.info.request_headers):
            if content_type == "application/json" and body.endswith(b"\n"):
                body = body[:-1]  # the JSON formatter's newline is not part of a grpc-message
            return _grpc_local_reply(headers, status, body, grpc_status, self.is_head_request()), b""
        if body:  # in place: a content-length the modifier added keeps its position (setContentLength)
            headers.set_in_place("content-length", str(len(body)))
            if "content-type" not in headers or (body != original and not custom_type):
                headers.set_in_place("content-type", content_type)
        else:
            # an empty local reply carries neither (Envoy drops what a modifier set; the codec
            # then adds content-length: 0)
            headers.remove("content-length")
            headers.remove("content-type")
        return headers, body

    def codec_encode_headers(self, headers: HeaderMap, end_stream: bool) -> None:
        config = self.hcm.config
        if not _HOP_BY_HOP.isdisjoint(headers.keys()):
            # Envoy's mutateResponseHeaders: these hop-by-hop headers, from the upstream or a
            # filter, are not passed on (filters see them; the upstream's keep-alive never
            # reaches them: upstream.to_wire_response); wasmlab has no upgrade responses
            for name in _HOP_BY_HOP:
                headers.remove(name)
        if "date" not in headers:
            headers.add("date", http_date(self.proxy.clock.wall_ns()))
        sht = config.server_header_transformation
        if sht == "OVERWRITE":
            headers.set_in_place("server", config.server_name)
        elif sht == "APPEND_IF_ABSENT" and "server" not in headers:
            headers.add("server", config.server_name)
        opts = config.header_options
        req = self.info.request_headers  # Envoy's mutateResponseHeaders: the id when asked, or for a forced trace
        if req is not None and (opts.always_set_request_id_in_response or "x-envoy-force-trace" in req):  # noqa: SIM102
            if echoed := req.get("x-request-id"):
                set_inline(headers, "x-request-id", echoed)
        if opts.via:
            append_via(headers, opts.via)
        if self.fm is not None and not self.fm.remote_decode_complete:
            headers.set("connection", "close")
            self.proxy.stat_store.inc(self.hcm.stat("downstream_rq_response_before_rq_complete"))
        elif self.info.should_drain_connection or self.hcm.draining:  # a replaced listener drains
            headers.set("connection", "close")
        try:
            status = int(headers.get(":status") or 0)
        except ValueError:
            status = 0
        # the HTTP/1 codec frames the body itself: an upstream's transfer-encoding is replaced
        if "transfer-encoding" in headers:
            headers.remove("transfer-encoding")
        # (a response to HEAD without a length gets the informational transfer-encoding); the
        # framing header exists on the wire only: the access log's %RESP()% and
        # %RESPONSE_HEADERS_BYTES% see the headers without it, as in Envoy
        wire = headers
        if "content-length" not in headers:
            framing = None
            if end_stream and not self.is_head_request():
                if status >= 200 and status not in _NO_BODY_STATUSES:
                    framing = ("content-length", "0")
            elif status not in _NO_BODY_STATUSES:  # (Envoy 1.40 frames no body for a 204 or a 304)
                framing = ("transfer-encoding", "chunked")
            if framing is not None:
                wire = headers.copy()
                wire.add(*framing)
        self._status = status
        self._resp_headers = wire
        self.info.response_code = status
        self.info.response_headers = headers
        if end_stream:
            self._finish_codec()

    def codec_encode_data(self, data: Buffer, end_stream: bool) -> None:
        # HTTP/1: a response to HEAD, a 204 and a 304 have no body on the wire, whatever filters added
        if not self.is_head_request() and self._status not in _NO_BODY_STATUSES:
            self._resp_body += data.to_bytes()
        if end_stream:
            self._finish_codec()

    def codec_encode_trailers(self, trailers: HeaderMap) -> None:
        # the HTTP/1 codec ends the chunked body without them unless the HCM enables trailers,
        # and a response framed by content-length (a filter added trailers to it) has no place
        # for them: Envoy drops them; the filters' (and access logs') view of the trailers stays
        headers = self._resp_headers
        if self.hcm.config.http1_trailers and headers is not None and "content-length" not in headers:
            self._resp_trailers = trailers
        self.info.response_trailers = trailers
        self._finish_codec()

    def _finish_codec(self) -> None:
        self.info.bytes_sent = len(self._resp_body)

    def on_response_complete(self) -> None:
        """The response reached the client completely: end the stream (Envoy: onStreamComplete)."""
        self._end("complete")

    def reset(self, details: str) -> None:
        """Reset the stream (Envoy resetStream): nothing more reaches the client."""
        if self._done:
            return
        self._reset_details = details
        self.info.response_code_details = details
        if self.proxy.recorder.enabled:
            self.proxy.recorder.record(
                "stream", "reset", {"details": details}, None, {"stream": self.stream_id}, event=False
            )
        self._end("reset")

    def _host_error(self, e: BaseException) -> None:
        """A task of this stream raised (a wasmlab bug): log it, then reset the stream."""
        self.proxy.log("critical", "http", f"host error on stream {self.stream_id}: {describe(e)}{raised_at(e)}")
        self.reset("host_error")

    def fail_filter_exception(self, message: str) -> None:
        fm = self.fm
        if fm is None:
            return
        if not fm.response_started_to_codec:
            fm.send_local_reply(500, b"Internal Server Error", None, "filter_raised_exception")
        else:
            self.reset("filter_raised_exception")

    def waiting_on(self) -> str:
        return self._waiting or "the router (no response yet)"

    def set_waiting(self, what: str) -> None:
        self._waiting = what

    def _end(self, how: str) -> None:
        if self._done:
            return
        self._done = True
        proxy = self.proxy
        fm = self.fm
        info = self.info
        info.end_mono_ns = proxy.clock.monotonic_ns()
        hcm = self.hcm
        status = self._status if how == "complete" else 0
        stats = proxy.stat_store
        if how == "complete" and status:
            if status < 600:  # Envoy counts the five classes only (not 600 and up)
                stats.inc(hcm.stat(_RQ_CLASS_STATS[status // 100]))
            stats.inc(hcm.stat("downstream_rq_completed"))
        else:
            stats.inc(hcm.stat("downstream_rq_tx_reset"))
        if proxy.recorder.enabled:
            proxy.recorder.record(
                "stream",
                "response" if how == "complete" else "reset_complete",
                {"status": status, "details": info.response_code_details or "", "body_size": len(self._resp_body)},
                None,
                {"stream": self.stream_id},
                event=False,
            )
        # access logs, then the filters' access-log hooks, then destroy (Envoy's order)
        for log in hcm.config.access_logs:
            proxy.access_log.write(log, info, self)
        if fm is not None:
            for f in fm.end_filters:
                try:
                    f.log(info)
                except BaseException as e:  # a filter bug must not break the stream end
                    proxy.log("error", "http", filter_raised_message(filter_name(f), "log", e))
            fm.destroy()
            for f in fm.end_filters:
                try:
                    f.on_destroy()
                except BaseException as e:
                    proxy.log("error", "http", filter_raised_message(filter_name(f), "on_destroy", e))
            fm.release()
            self.fm = None
        hcm.streams.discard(self)
        if not hcm.streams and hcm.on_drained is not None:
            hcm.on_drained()
        pending = self.pending
        self.pending = None
        if pending is None:
            return
        pending.stream = None
        # hand the outcome over after this task finishes, so the caller sees a complete trace
        if how == "complete" and self._resp_headers is not None:
            response = Response(
                status & 0xFFFF,  # the status line holds 16 bits (Envoy 1.40 sends 70000 as 4464)
                self._resp_headers.without_pseudo(),
                b"" if 100 <= status & 0xFFFF < 200 else bytes(self._resp_body),  # none after a 1xx
                self._resp_trailers.without_pseudo() if self._resp_trailers is not None else None,
                info.response_code_details or "",
                self.stream_id,
            )
            self.dispatcher.after_task(pending.set, response)
        else:
            partial = None
            if self._resp_headers is not None:
                partial = Response(
                    self._status, self._resp_headers.without_pseudo(), bytes(self._resp_body), stream_id=self.stream_id
                )
            self.dispatcher.after_task(pending.set_reset, self._reset_details or "reset", partial)


def _grpc_local_reply(headers: HeaderMap, status: int, body: bytes, grpc_status: int | None, head: bool) -> HeaderMap:
    """A local reply to a gRPC request, as Envoy sends it: a trailers-only gRPC response
    (``:status`` 200, ``content-type: application/grpc``, ``grpc-status`` -- the caller's, or
    mapped from the HTTP status -- unless a filter set one, the body as a percent-encoded
    ``grpc-message`` (a last newline too, ``%0A``, unless the body format is JSON), no body).
    wasmlab reads the request's headers when it replies; Envoy reads them once before the
    first filter (the same unless a filter changed ``content-type``)."""
    headers.set_in_place(":status", "200")
    headers.set_in_place("content-type", GRPC_CONTENT_TYPE)
    if not headers.get("grpc-status"):
        headers.set_in_place(
            "grpc-status", str(grpc_status if grpc_status is not None else http_to_grpc_status(status))
        )
    if body and not head:
        headers.set_in_place("grpc-message", percent_encode_message(body))
    headers.remove("content-length")
    return headers


#: what Envoy's ``ConnectionManagerUtility::mutateResponseHeaders`` removes from every response
_HOP_BY_HOP = frozenset({"connection", "upgrade", "proxy-connection"})


#: the response status classes Envoy counts (``downstream_rq_2xx``...), by ``status // 100``
_RQ_CLASS_STATS = tuple(f"downstream_rq_{c}xx" for c in range(6))


class HttpConnectionManager:
    """The HCM of one listener: its config and its live streams (per worker)."""

    def __init__(self, proxy: ServerContext, listener: ListenerConfig) -> None:
        assert listener.hcm is not None
        self.proxy = proxy
        self.listener = listener
        self.config: HcmConfig = listener.hcm
        self.streams: set[ActiveStream] = set()
        #: set once a config update replaced this listener: responses say ``connection: close``
        self.draining = False
        #: called (on the stream's worker) when the last stream ends, while this HCM drains
        self.on_drained: Callable[[], None] | None = None
        self._stat_prefix = f"http.{self.config.stat_prefix}."
        self._stat_names: dict[str, str] = {}
        #: the listener's address as the stream info shows it (``downstream_local_address``)
        self.local_address = str(listener.address)

    def stat(self, name: str) -> str:
        """The full name of an HCM stat (``http.<stat_prefix>.<name>``), made once per name."""
        full = self._stat_names.get(name)
        if full is None:
            full = self._stat_names[name] = self._stat_prefix + name
        return full

    def new_stream(self, dispatcher: Dispatcher, spec: RequestSpec, pending: _Pending | None) -> ActiveStream:
        stream = ActiveStream(self, dispatcher, pending)
        self.streams.add(stream)
        if pending is not None:
            pending.stream = stream
        stream.guarded(stream.start, spec)
        return stream

    def reset_streams_on(self, dispatcher: Dispatcher, details: str) -> None:
        for s in list(self.streams):
            if s.dispatcher is dispatcher:
                s.reset(details)
