"""``envoy.filters.http.router``: the terminal filter that answers from the route table.

What Envoy's router does, and wasmlab copies:

* no route -> 404 local reply (``route_not_found``, no route headers);
* ``direct_response`` -> local reply with the route's status and body (``direct_response``);
  ``redirect`` -> 3xx with ``location``;
* a cluster route -> the request goes upstream with ``x-envoy-expected-rq-timeout-ms`` (unless the
  timeout is 0), then the route/virtual-host/route-config ``request_headers_to_add``, then the
  ``host_rewrite``/``prefix_rewrite``/``regex_rewrite`` (with ``x-envoy-original-path``);
* the upstream response gets ``x-envoy-upstream-service-time`` and the ``response_headers_to_add``
  levels and travels the encoder filters: headers, the body as one frame, then an empty
  end-of-stream frame (what Envoy's HTTP/1 codec produces); a bodyless response ends at headers;
* the route timeout (default 15 s) starts when the request is complete and answers 504
  ``upstream request timeout``; a failed upstream answers 503 with Envoy's reset text.

Simplifications: no retries, no hedging, no shadowing; the request body is collected and handed
to the app at end of stream (the app is a function, not a socket).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...config.local_reply import FormatContext
from ...config.route import DirectResponse, Redirect, RouteAction, split_path
from ...host.conn_manager_utility import set_inline
from ...host.upstream import (
    CONNECT_FAILURE,
    NO_APP,
    PROTOCOL_ERROR,
    ROUTER_CONSUMED_HEADERS,
    charge_upstream_code,
    charge_upstream_result,
    charge_upstream_sent,
    charge_upstream_timeout,
    to_wire_response,
    to_wire_trailers,
)
from ...http import Buffer, FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus, HeaderMap, Request
from ...http.codec import copy_for_upstream, frame_headers_only_request
from ..base import HttpFilterFactory, StreamFilter
from ..registry import register_http_filter

if TYPE_CHECKING:
    from ...config.yaml_source import Node
    from ...host.dispatcher import Dispatcher, Timer
    from ...host.upstream import UpstreamCall, UpstreamResult
    from ...http.stream_info import StreamInfo
    from ..base import FactoryContext

ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


#: no response from the upstream: the router's local reply status, the reset reason in its
#: details, and the response flag (Envoy's UF / UPE / UC)
_TERMINATED = (503, "connection_termination", "UC")
_FAILURES = {
    CONNECT_FAILURE: (503, "remote_connection_failure", "UF"),
    PROTOCOL_ERROR: (502, "protocol_error", "UPE"),
}


@register_http_filter
class RouterFactory(HttpFilterFactory):
    type_url = ROUTER_TYPE
    terminal = True

    def __init__(self, name: str, config: Node, ctx: FactoryContext) -> None:
        super().__init__(name, config, ctx)
        config.check_fields(
            "@type suppress_envoy_headers",
            ignored=(
                "dynamic_stats",
                "start_child_span",
                "upstream_log",
                "strict_check_headers",
                "upstream_http_filters",
                "upstream_log_options",
                "respect_expected_rq_timeout",
                "suppress_grpc_request_failure_code_stats",
            ),
        )
        self.suppress_envoy_headers = (
            config.req("suppress_envoy_headers").bool() if config.has("suppress_envoy_headers") else False
        )

    def create_filter(self, dispatcher: Dispatcher) -> StreamFilter:
        return RouterFilter(self)


class RouterFilter(StreamFilter):
    encoder = False  # the router only decodes; responses start here

    # The state of a request sent upstream, set when it goes there (decode_headers); until then
    # these class values are what an instance reads (a direct response or a redirect needs none
    # of it, so a stream does not store it).
    route: Any = None
    cluster: Any = None
    #: header mutation levels in Envoy's order (a weighted cluster's first)
    levels: list[Any] | tuple[()] = ()
    headers: HeaderMap | None = None
    body: bytearray  # (set with headers)
    trailers: HeaderMap | None = None
    timer: Timer | None = None
    #: the app call in flight: abandoned when the stream gives up on it (timeout, reset)
    upstream_call: UpstreamCall | None = None
    sent_ns = 0
    done = False
    internal = False
    #: the request ended at its headers (no body frame will follow)
    headers_only = False

    def __init__(self, factory: RouterFactory) -> None:
        self.factory = factory

    # ---- decoding ----------------------------------------------------------------------------
    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        cb = self.callbacks
        stream = cb.stream
        route = stream.route()
        proxy = cb.proxy
        if route is None:
            proxy.stat_store.inc(stream.hcm.stat("no_route"))
            stream.info.response_flags = "NR"
            cb.send_local_reply(404, b"", None, "route_not_found")
            return FilterHeadersStatus.StopIteration
        action = route.action
        if isinstance(action, DirectResponse):
            body, content_type = action.body, None
            if action.body_format is not None:
                body, content_type = _formatted_body(action, stream.info)
            self._direct(route, action.status, body, _direct_location(headers, action.status), content_type)
            return FilterHeadersStatus.StopIteration
        if isinstance(action, Redirect):
            self._direct(route, action.response_code, b"", _redirect_uri(headers, action, route.match))
            return FilterHeadersStatus.StopIteration
        assert isinstance(action, RouteAction)
        name, weighted_mutations = action.pick(headers, stream.info)
        cluster = proxy.clusters.get(name)
        if cluster is None:
            stream.info.response_flags = "NC"
            cb.send_local_reply(action.cluster_not_found_code, b"", None, "cluster_not_found")
            return FilterHeadersStatus.StopIteration
        override = stream.info.upstream_override_host
        # (a strict override host the cluster has not: its load balancer finds no host)
        if not cluster.healthy or (override is not None and override[1] and override[0] != cluster.host):
            stats = proxy.stat_store
            stats.inc(f"cluster.{cluster.name}.upstream_cx_none_healthy")
            if not cluster.healthy:
                stats.inc(f"cluster.{cluster.name}.lb_healthy_panic")  # (no host is healthy: panic mode)
            charge_upstream_code(stats, cluster.name, 503, headers.get("x-envoy-internal") == "true")
            stream.info.response_flags = "UH"
            cb.send_local_reply(503, b"no healthy upstream", None, "no_healthy_upstream")
            return FilterHeadersStatus.StopIteration
        self.route = route
        self.cluster = cluster
        info = stream.info
        info.upstream_cluster = cluster.name
        info.upstream_host = cluster.host
        # the router consumes the client's timeout/retry/hedge/stat headers (measured: Envoy 1.40
        # removes them and, for an external request, does not honor them)
        for name in ROUTER_CONSUMED_HEADERS:
            headers.remove(name)
        # Envoy's order: expected timeout header, headers_to_add (route, vhost, route config), rewrites
        if action.timeout > 0 and not self.factory.suppress_envoy_headers:
            headers.set_in_place("x-envoy-expected-rq-timeout-ms", str(round(action.timeout * 1000)))
        self.levels = stream.hcm.config.route_config.header_levels(route)
        if weighted_mutations is not None:
            self.levels = [weighted_mutations, *self.levels]
        for level in self.levels:
            level.apply_request(headers, info)
        _rewrite_host(headers, action, not self.factory.suppress_envoy_headers, info)
        path = headers.get(":path") or "/"
        new_path = _rewrite_path(path, route.match, action, info)
        if new_path is not None:  # a rewrite is configured: Envoy keeps the original, even if equal
            if not self.factory.suppress_envoy_headers:
                headers.set("x-envoy-original-path", path)
            headers.set(":path", new_path)
        vh = route.virtual_host
        if vh is not None and vh.attempt_count_in_request:
            set_inline(headers, "x-envoy-attempt-count", "1")  # the first attempt; no retries here
        self.headers = headers
        self.body = bytearray()
        self.headers_only = end_stream
        if end_stream:
            self._send_upstream()
        return FilterHeadersStatus.StopIteration

    def decode_data(self, data: Buffer, end_stream: bool) -> FilterDataStatus:
        if self.headers is not None:
            self.body += data.to_bytes()
            data.drain(len(data))
            if end_stream:
                self._send_upstream()
        return FilterDataStatus.StopIterationNoBuffer

    def decode_trailers(self, trailers: HeaderMap) -> FilterTrailersStatus:
        if self.headers is not None:
            self.trailers = trailers
            self._send_upstream()
        return FilterTrailersStatus.StopIteration

    # ---- local answers -----------------------------------------------------------------------
    def _direct(
        self, route: Any, status: int, body: bytes, location: str | None, content_type: str | None = None
    ) -> None:
        cb = self.callbacks
        info = cb.stream.info
        levels = cb.stream.hcm.config.route_config.header_levels(route)

        def modify(h: HeaderMap) -> None:
            if location is not None:
                h.add("location", location)
            if content_type is not None and body:
                h.add("content-type", content_type)
            for level in levels:
                level.apply_response(h, info)

        cb.manager.send_local_reply(status, body, modify, "direct_response")

    # ---- upstream ----------------------------------------------------------------------------
    def _send_upstream(self) -> None:
        cb = self.callbacks
        stream = cb.stream
        proxy = cb.proxy
        headers = self.headers
        assert headers is not None and self.cluster is not None
        up_headers = HeaderMap()
        authority = headers.get(":authority")
        if authority is not None:  # (a filter may have removed it: then there is no host line)
            up_headers.add("host", authority)
        broken = copy_for_upstream(headers, up_headers)
        if broken is not None and self.cluster.app is not NO_APP:
            # a filter removed or broke what the HTTP/1 codec needs: Envoy finds out when it
            # writes the headers on the new connection (so the request counts as sent)
            charge_upstream_sent(proxy.stat_store, self.cluster)
            stream.info.response_flags = "DPE"
            details = "filter_removed_required_request_headers{" + broken.replace(" ", "_") + "}"
            cb.send_local_reply(503, broken.encode(), None, details)
            return
        body = bytes(self.body)
        # Envoy's HTTP/1 codec: a request whose headers did not end the stream and carry no length
        # is sent chunked, even if the body turns out empty (a filter may add an empty body)
        if (
            (body or not self.headers_only)
            and "content-length" not in up_headers
            and "transfer-encoding" not in up_headers
        ):
            up_headers.add("transfer-encoding", "chunked")
        elif not body:
            frame_headers_only_request(headers.get(":method") or "GET", up_headers)
        request = Request(headers.get(":method") or "GET", headers.get(":path") or "/", up_headers, body, self.trailers)
        cluster = self.cluster
        self.internal = up_headers.get("x-envoy-internal") == "true"
        charge_upstream_sent(proxy.stat_store, cluster)
        rec = proxy.recorder
        if rec.enabled:
            rec.record(
                "upstream",
                "request",
                {
                    "cluster": cluster.name,
                    "method": request.method,
                    "path": request.path,
                    "headers": tuple(up_headers),
                    "body_size": len(body),
                },
                None,
                {"stream": stream.stream_id},
            )
        timeout = self.route.action.timeout
        dispatcher = cb.dispatcher
        if timeout > 0:
            self.timer = dispatcher.create_timer(lambda: stream.guarded(self._on_timeout), "route_timeout")
            self.timer.enable(timeout)
        stream.set_waiting(f"the router, waiting for cluster '{cluster.name}'")
        self.sent_ns = proxy.clock.monotonic_ns()
        activity = proxy.activity
        activity.begin()

        def done(result: UpstreamResult) -> None:
            dispatcher.post(stream.guarded, self._on_upstream, result)
            activity.end()

        self.upstream_call = proxy.upstream_pool.call(cluster, request, done)

    def _end(self) -> bool:
        """The upstream request ends once, by its answer or its timeout (whichever comes first)."""
        if self.done:
            return False
        self.done = True
        if self.timer is not None:
            self.timer.disable()
        if self.upstream_call is not None:  # a timeout: Envoy resets the upstream request
            self.upstream_call.abandon()
        return True

    def _on_timeout(self) -> None:
        if not self._end():
            return
        cb = self.callbacks
        proxy = cb.proxy
        charge_upstream_timeout(proxy.stat_store, self.cluster.name, self.internal)
        cb.stream.info.response_flags = "UT"
        cb.send_local_reply(504, b"upstream request timeout", None, "upstream_response_timeout")

    def _on_upstream(self, result: UpstreamResult) -> None:
        if not self._end():
            return
        cb = self.callbacks
        stream = cb.stream
        proxy = cb.proxy
        cluster = self.cluster
        rec = proxy.recorder
        charge_upstream_result(proxy.stat_store, cluster.name, result, self.internal)
        if result.response is None:
            failure = result.failure or CONNECT_FAILURE
            status, reason, flag = _FAILURES.get(failure, _TERMINATED)
            stream.info.response_flags = flag
            if rec.enabled:
                rec.record(
                    "upstream",
                    "failure",
                    {"cluster": cluster.name, "reason": failure},
                    None,
                    {"stream": stream.stream_id},
                )
            cb.send_local_reply(status, failure.encode(), None, f"upstream_reset_before_response_started{{{reason}}}")
            return
        # the upstream codec reads a body unless the request *it* sent was a HEAD (a filter may
        # have changed the client's method): a client's HEAD sent as GET gives the filters a body
        head = (self.headers.get(":method") if self.headers is not None else None) == "HEAD"
        headers, body = to_wire_response(result.response, head, result.was_chunked)
        status = result.response.status
        if rec.enabled:
            rec.record(
                "upstream",
                "response",
                {"cluster": cluster.name, "status": status, "headers": tuple(headers), "body_size": len(body)},
                None,
                {"stream": stream.stream_id},
            )
        if not self.factory.suppress_envoy_headers:
            ms = (proxy.clock.monotonic_ns() - self.sent_ns) // 1_000_000
            headers.set_in_place("x-envoy-upstream-service-time", str(max(0, ms)))  # Envoy's inline setter
        # Envoy's onUpstreamHeaders records the status first, and response_headers_to_add
        # formats against the headers being mutated (%RESPONSE_CODE%, %RESP(...)%)
        stream.info.response_code = status
        stream.info.response_headers = headers
        for level in self.levels:
            level.apply_response(headers, stream.info)
        vh = self.route.virtual_host if self.route is not None else None
        if vh is not None and vh.attempt_count_in_response:  # after the response headers_to_add
            set_inline(headers, "x-envoy-attempt-count", "1")
        trailers = result.response.trailers
        # HEAD, 204 and 304 end at the headers; otherwise an empty body ends there unless it came
        # chunked (then an empty end-of-stream data frame follows, or the trailers)
        bodiless = head or status in (204, 304)
        stream.set_waiting("")
        if bodiless or (not body and not trailers and not result.was_chunked):
            cb.encode_headers(headers, True)
            return
        cb.encode_headers(headers, False)
        if body:
            cb.encode_data(Buffer(body), False)
        if trailers:
            cb.encode_trailers(to_wire_trailers(trailers))
        else:
            cb.encode_data(Buffer(), True)

    def on_destroy(self) -> None:
        self.done = True
        if self.timer is not None:
            self.timer.disable()
        if self.upstream_call is not None:  # a reset stream: its app call frees the pool
            self.upstream_call.abandon()


def _redirect_uri(headers: HeaderMap, r: Redirect, match: Any) -> str:
    """The ``location`` of a redirect (Envoy ``Http::Utility::newUri``). The scheme is the
    redirect's, else the request's (``x-forwarded-proto``); the request's host loses its port when
    a ``port_redirect`` replaces it or the scheme changes away from that port's default; the path
    is ``path_redirect`` (the request's query appended unless it has its own), else the request's
    path after the redirect's ``prefix_rewrite``/``regex_rewrite``; ``strip_query`` drops the
    query unless ``path_redirect`` carries one."""
    proto = headers.get("x-forwarded-proto") or headers.get(":scheme") or "http"
    scheme = r.scheme or proto
    port = f":{r.port}" if r.port else ""
    if r.host is not None:
        host = r.host
    else:
        host = headers.get(":authority") or ""
        colon = host.rfind("]:") + 1 if host.startswith("[") else host.rfind(":")
        if colon > 0:
            req_port = host[colon:]
            remove = bool(port) or (
                scheme != proto
                and ((proto == "https" and req_port == ":443") or (proto == "http" and req_port == ":80"))
            )
            if remove:
                host = host[:colon]
    path = headers.get(":path") or "/"
    own_query = r.path is not None and "?" in r.path
    if r.path is not None:
        query = path.find("?")
        new = r.path if own_query or query < 0 else r.path + path[query:]
    else:
        new = _rewrite_path(path, match, r) or path
    if not new.startswith("/"):
        new = "/" + new
    if r.strip_query and not own_query:
        new = new.split("?", 1)[0]
    return f"{scheme}://{host}{port}{new}"


def _rewrite_path(path: str, match: Any, action: RouteAction | Redirect, info: StreamInfo | None = None) -> str | None:
    """The path after the route's rewrite, or None if it configures none (Envoy's
    ``currentUrlPathAfterRewrite``: a configured rewrite gives a path even when it changes
    nothing, and then ``x-envoy-original-path`` is added all the same). A ``path_rewrite``
    format replaces the path and keeps the query; an operator with no value adds nothing to it
    (measured on Envoy 1.40)."""
    if isinstance(action, RouteAction) and action.path_rewrite is not None and info is not None:
        query = split_path(path)[1]
        return action.path_rewrite.format(info) + (("?" + query) if query else "")
    if isinstance(action, RouteAction) and action.path_template_rewrite is not None:
        template, rewrite = action.path_template_rewrite
        bare, query = split_path(path)
        new = template.rewrite(bare, rewrite)
        return path if new is None else new + (("?" + query) if query else "")
    if action.prefix_rewrite is not None and match.kind in ("prefix", "path", "path_separated_prefix"):
        start = path[: len(match.value)]
        if (start if match.case_sensitive else start.lower()) != (
            match.value if match.case_sensitive else match.value.lower()
        ):
            # the route matched the path without its ;parameters (the route configuration's
            # ignore_path_parameters_in_path_matching) and the path as sent does not start
            # with the matched text: Envoy 1.40 forwards it unchanged, without the header
            return None
        if match.kind == "prefix":
            return action.prefix_rewrite + path[len(match.value) :]
        bare, query = split_path(path)
        rest = bare[len(match.value) :]
        return action.prefix_rewrite + rest + (("?" + query) if query else "")
    if action.regex_rewrite is not None:
        pattern, sub = action.regex_rewrite
        bare, query = split_path(path)
        new = pattern.sub(sub, bare)
        return new + (("?" + query) if query else "")
    return None


def _rewrite_host(headers: HeaderMap, action: RouteAction, keep_original: bool, info: StreamInfo) -> None:
    """``host_rewrite_literal``, ``host_rewrite_header`` (only when the header is present and
    not empty) and ``host_rewrite_path_regex`` (on the path without its query) set
    ``:authority``; Envoy's ``auto_host_rewrite`` would use the endpoint's hostname, which a
    STATIC endpoint does not have. Like Envoy's ``Utility::updateAuthority``, the old host is
    appended to ``x-forwarded-host`` when ``append_x_forwarded_host`` is set and kept in
    ``x-envoy-original-host`` unless the router suppresses Envoy headers. A ``host_rewrite``
    format renders an operator with no value as ``-`` (measured on Envoy 1.40)."""
    host = action.host_rewrite_literal
    if action.host_rewrite is not None:
        host = action.host_rewrite.format(info, for_header=False)
    elif action.host_rewrite_header is not None:
        host = headers.get(action.host_rewrite_header)
    elif action.host_rewrite_path_regex is not None:
        pattern, sub = action.host_rewrite_path_regex
        host = pattern.sub(sub, split_path(headers.get(":path") or "")[0])
    if not host:
        return
    old = headers.get(":authority") or ""
    if old:
        if keep_original:
            headers.set("x-envoy-original-host", old)
        if action.append_x_forwarded_host:
            xfh = headers.get("x-forwarded-host")
            set_inline(headers, "x-forwarded-host", f"{xfh},{old}" if xfh else old)
    headers.set(":authority", host)


def _formatted_body(action: DirectResponse, info: StreamInfo) -> tuple[bytes, str | None]:
    """A direct response's ``body_format`` rendered, and the content type the reply gets from it
    before its ``content-length`` (a JSON format's or a ``content_type`` given; a text format
    leaves the local reply's own ``text/plain``, after it, as measured on Envoy 1.40). Envoy
    renders it before the reply's status is recorded (``%RESPONSE_CODE%`` is 0),
    ``%LOCAL_REPLY_BODY%`` being the configured ``body``."""
    fmt = action.body_format
    assert fmt is not None
    ctx = FormatContext(info, HeaderMap(), action.body.decode("utf-8", "surrogateescape"))
    explicit = fmt.content_type if fmt.format.json is not None or fmt.content_type != "text/plain" else None
    return fmt.format.render(ctx).encode("utf-8", "surrogateescape"), explicit


def _direct_location(headers: HeaderMap, status: int) -> str | None:
    """Envoy's router adds ``location`` to a direct response with status 201 or 3xx (RFC 7231
    7.1.2): the request's own URL, scheme from ``x-forwarded-proto``, host as sent (with its
    port), path with its query (``RouteEntryImplBase::newUri`` with no redirect fields)."""
    if status != 201 and not 300 <= status < 400:
        return None
    scheme = headers.get("x-forwarded-proto") or headers.get(":scheme") or "http"
    return f"{scheme}://{headers.get(':authority') or ''}{headers.get(':path') or '/'}"
