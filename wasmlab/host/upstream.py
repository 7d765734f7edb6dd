"""Clusters and the in-process upstream apps that answer for them.

In Envoy a cluster is a set of endpoints the router connects to. In wasmlab each cluster is
served by a Python *app*: a callable taking a :class:`~wasmlab.http.Request` (what an HTTP/1.1
upstream would receive) and returning a :class:`~wasmlab.http.Response` or a
``(status, headers, body)`` tuple. The default app echoes the request as JSON. The real-Envoy
bridge serves the very same app objects over loopback, so both sides talk to the same upstream.

Apps run on a small pool of upstream threads, not on the worker: a slow app must not stop the
worker's timers (route timeouts fire while the app sleeps, as with a real upstream server). When
the caller gives up on an app call (a route or callout timeout, a reset stream) Envoy resets that
upstream request and the next request opens another connection; Python cannot stop the app's
thread, so the pool stops counting it and starts another (:class:`UpstreamPool`): apps that never
return cannot use up the pool.
What the client then sees mirrors Envoy: an app that raises is a connection reset (503
``upstream connect error or disconnect/reset before headers. reset reason: connection
termination``); a cluster with no app is a refused connection (``... remote connection failure``);
a cluster without endpoints has no healthy upstream (503 ``no healthy upstream``).
Trailers cross the cluster's codec: HTTP/1 drops them both ways unless the cluster's
``HttpProtocolOptions`` set ``enable_trailers`` (HTTP/2 clusters keep them;
``ClusterConfig.keeps_trailers``). Where we simplify: an HTTP/2 cluster's app still sees the
request as HTTP/1.1 would deliver it.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import describe, raised_at
from ..http import HeaderMap, Request, Response
from ..http.inline_headers import RESPONSE_HEADERS_INLINE, RESPONSE_TRAILERS_INLINE
from .lifecycle import report_task_error

if TYPE_CHECKING:
    from ..config.bootstrap import ClusterConfig

App = Callable[[Request], Any]

CONNECT_FAILURE = "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
CONNECTION_TERMINATION = (
    "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
)
PROTOCOL_ERROR = "upstream connect error or disconnect/reset before headers. reset reason: protocol error"


def wire_status(status: int) -> int | None:
    """The status Envoy's HTTP/1 codec reads from an app's status line, or None when it refuses
    the response as a protocol error. Measured on Envoy 1.40 (tests/test_robustness_sweep.py):
    the code is kept in 16 bits (100000 arrives as 34464), and below 100 (0, 99, 65536) the
    codec resets the upstream stream; the router answers 502 ``protocol_error``."""
    code = status % 65536
    return code if code >= 100 else None


def charge_upstream_code(stats: Any, cluster: str, status: int, internal: bool) -> None:
    """Envoy's router ``chargeUpstreamCode``: per-code, per-class and completed counters, once
    plain and once under ``internal.`` (the request carried ``x-envoy-internal: true``, as async
    client calls do) or ``external.``."""
    side = "internal" if internal else "external"
    for prefix in (f"cluster.{cluster}.", f"cluster.{cluster}.{side}."):
        if 100 <= status < 600:
            stats.inc(f"{prefix}upstream_rq_{status}")
            stats.inc(f"{prefix}upstream_rq_{status // 100}xx")
        else:  # a code outside HTTP's classes: Envoy charges it as unknown
            stats.inc(f"{prefix}upstream_rq_unknown")
        stats.inc(f"{prefix}upstream_rq_completed")


def charge_upstream_sent(stats: Any, cluster: Cluster) -> None:
    """``upstream_rq_total`` counts requests that got a connection: not those to an endpoint
    with nothing listening (Envoy 1.40 counts only ``upstream_cx_connect_fail`` for them)."""
    if cluster.app is not NO_APP:
        stats.inc(f"cluster.{cluster.name}.upstream_rq_total")


def charge_upstream_failure(stats: Any, cluster: str, failure: str, internal: bool) -> None:
    """No response: a refused connection counts ``upstream_cx_connect_fail``; either way Envoy's
    router charges the 503 it answers with (a reset is not ``upstream_rq_rx_reset`` for HTTP/1)."""
    if failure == CONNECT_FAILURE:
        stats.inc(f"cluster.{cluster}.upstream_cx_connect_fail")
    elif failure == PROTOCOL_ERROR:
        stats.inc(f"cluster.{cluster}.upstream_cx_protocol_error")
        charge_upstream_code(stats, cluster, 502, internal)
        return
    charge_upstream_code(stats, cluster, 503, internal)


def charge_upstream_timeout(stats: Any, cluster: str, internal: bool) -> None:
    stats.inc(f"cluster.{cluster}.upstream_rq_timeout")
    charge_upstream_code(stats, cluster, 504, internal)


def charge_upstream_result(stats: Any, cluster: str, result: UpstreamResult, internal: bool) -> None:
    """What came back from the upstream, charged as Envoy's router does: the response's code, or
    for no response the 503 the router answers with (see :func:`charge_upstream_failure`)."""
    if result.response is None:
        charge_upstream_failure(stats, cluster, result.failure or CONNECTION_TERMINATION, internal)
    else:
        charge_upstream_code(stats, cluster, result.response.status, internal)


def echo_app(request: Request) -> Response:
    """The default upstream: echo the request as JSON ``{method, path, headers, body}``."""
    body = json.dumps(
        {
            "method": request.method,
            "path": request.path,
            "headers": request.headers.to_list(),
            "body": request.body.decode("latin-1"),
        }
    ).encode()
    return Response(200, HeaderMap([("content-type", "application/json")]), body)


class _NoApp:
    """Marks a cluster whose endpoint has nothing listening (``proxy.upstream(name, None)``)."""

    def __repr__(self) -> str:
        return "<nothing listening>"


NO_APP = _NoApp()


class Cluster:
    """One configured cluster and the app that serves it."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.name = config.name
        #: an HTTP app (Request in) or, for a tcp_proxy cluster, a TCP app (bytes in, host/tcp.py)
        self.app: Callable[[Any], Any] | _NoApp | None = echo_app if config.endpoints else None

    @property
    def healthy(self) -> bool:
        return self.app is not None

    @property
    def host(self) -> str:
        if self.config.endpoints:
            return str(self.config.endpoints[0])
        return "127.0.0.1:0"


class UpstreamResult:
    """What came back from an app: a response, or a failure reason. ``was_chunked``: the app
    answered trailers the cluster's HTTP/1 codec dropped; the response was still framed chunked
    (``transfer-encoding: chunked``, and a body that ends with an empty data frame)."""

    __slots__ = ("response", "failure", "was_chunked")

    def __init__(self, response: Response | None, failure: str | None) -> None:
        self.response = response
        self.failure = failure
        self.was_chunked = False

    def http1_framing(self, head: bool, enable_trailers: bool) -> None:
        """What an HTTP/1 upstream codec delivers (Envoy ``Http1::ClientConnectionImpl``): trailers
        follow a chunked body only (not a ``content-length`` one, nor a response without a body:
        HEAD, 204, 304), and only with ``enable_trailers``."""
        r = self.response
        if r is None or r.trailers is None:
            return
        chunked = bool(r.trailers) and r.status not in (204, 304) and "content-length" not in r.headers
        if chunked and enable_trailers and not head:
            return
        self.response = Response(r.status, r.headers, r.body, None, r.details)
        self.was_chunked = chunked


def to_wire_response(response: Response, head: bool, chunked: bool = False) -> tuple[HeaderMap, bytes]:
    """The response headers Envoy would read from the upstream's HTTP/1.1 bytes.

    Names lower-cased (the codec does that), a repeated inline header (``cache-control``,
    ``content-type``, ``via``...) joined into one ``a,b`` entry (the codec adds each line to a
    response header map, :mod:`wasmlab.http.inline_headers`), ``content-length`` added when the app gave neither a
    length nor chunked encoding, ``transfer-encoding: chunked`` when it has trailers (our loopback
    server does the same on the wire) or had them (``chunked``: the codec dropped them), no body
    for HEAD or 204/304, no ``keep-alive``.
    """
    headers = HeaderMap(None, RESPONSE_HEADERS_INLINE)
    headers.add(":status", str(response.status))
    for k, v in response.headers:
        headers.add(k, v)
    if "keep-alive" in headers:  # the codec consumes it (measured: filters never see it)
        headers.remove("keep-alive")
    body = response.body
    if response.status in (204, 304) or 100 <= response.status < 200:
        body = b""
        headers.remove("content-length")
    elif (response.trailers or chunked) and "content-length" not in headers:
        if "transfer-encoding" not in headers:  # trailers travel only in chunked encoding
            headers.add("transfer-encoding", "chunked")
    elif "content-length" not in headers and "transfer-encoding" not in headers:
        headers.add("content-length", str(len(body)))
    if head:
        body = b""
    return headers, body


def to_wire_trailers(trailers: HeaderMap) -> HeaderMap:
    """The response trailers Envoy's HTTP/1 codec reads after a chunked body: a response-trailer
    map, where a repeated ``grpc-status`` or ``grpc-message`` is one ``a,b`` entry."""
    out = HeaderMap(None, RESPONSE_TRAILERS_INLINE)
    for k, v in trailers:
        out.add(k, v)
    return out


class UpstreamCall:
    """One app call handed to the pool. ``done`` is called exactly once: with the app's result,
    or — if the caller gives up first (:meth:`abandon`: a route timeout, a reset stream) — at
    once with a connection termination, and the app's late answer is dropped."""

    __slots__ = ("_pool", "job", "settled", "running", "detached", "abandoned")

    def __init__(self, pool: UpstreamPool, job: Callable[[bool], None]) -> None:
        self._pool = pool
        #: ``job(skip)`` runs the app (``skip`` False) or only settles the call (``skip`` True)
        self.job = job
        self.settled = False
        self.running = False
        self.detached = False
        #: the caller gave up on it (:meth:`abandon`)
        self.abandoned = False

    def abandon(self) -> None:
        """The caller no longer waits: it sees a dropped connection at once, and the app's answer
        is dropped. A thread stuck in the app stops counting against the pool (a new thread takes
        its place); a call still queued reaches the app all the same (Envoy wrote the request
        before the stream went away), on a thread that does not count against the pool either."""
        self._pool._abandon(self)


#: threads serving upstream apps when no app is stuck (Envoy: connections to the endpoints)
POOL_THREADS = 8
#: at most this many threads may be left running apps that never returned; past it an abandoned
#: call keeps its thread and the pool can run out (the log says so once)
MAX_DETACHED_THREADS = 256


class UpstreamPool:
    """Threads on which upstream apps run: ``threads`` of them, plus one more for every call its
    caller abandoned while the app was still running (Python cannot stop a thread; Envoy would
    just close that connection and open another). A stuck app so holds no slot once its route
    timeout fired or its stream was reset, and its thread ends when the app returns. A call
    never waits behind another while fewer than ``threads`` are counted (as each request to an
    Envoy cluster may open its own connection): a queued call no idle thread will take starts a
    thread."""

    def __init__(self, log: Callable[[str, str, str], None], threads: int = POOL_THREADS) -> None:
        self._log = log
        self._size = threads
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[UpstreamCall] = deque()
        self._counted = 0  # threads counted against ``threads`` (idle or running a live call)
        self._idle = 0
        self._detached = 0  # threads left in an abandoned app call
        self._warned = False
        self._closed = False
        #: every thread of the pool, detached ones included (``owns_current_thread``, ``close``)
        self._all: set[threading.Thread] = set()
        self._names = itertools.count()

    @property
    def detached(self) -> int:
        """Threads still inside an app call whose caller gave up."""
        return self._detached

    def call(self, cluster: Cluster, request: Request, done: Callable[[UpstreamResult], None]) -> UpstreamCall:
        """Run the app on an upstream thread; ``done`` is called (there, or on the thread that
        abandons the call) exactly once with the result."""

        config = cluster.config
        if not config.keeps_trailers and request.trailers is not None:  # the HTTP/1 codec ends the body without them
            request = Request(request.method, request.path, request.headers, request.body, None)

        def job(skip: bool) -> None:
            result = UpstreamResult(None, CONNECTION_TERMINATION) if skip else self._invoke(cluster, request)
            if not config.http2:
                result.http1_framing(request.method == "HEAD", config.http1_trailers)
            if self._settle(handle):
                done(result)

        handle = UpstreamCall(self, job)
        self._submit(handle)
        return handle

    def submit(self, fn: Callable[[], None], dropped: Callable[[], object] | None = None) -> UpstreamCall:
        """Run ``fn`` on an upstream thread (a TCP app's turn); it is not abandoned. If the pool
        is closed ``fn`` never runs and ``dropped`` is called instead (the caller's cleanup)."""

        def job(skip: bool) -> None:
            if self._settle(handle):
                if not skip:
                    fn()
                elif dropped is not None:
                    dropped()

        handle = UpstreamCall(self, job)
        self._submit(handle)
        return handle

    def _submit(self, handle: UpstreamCall) -> None:
        with self._cond:
            if not self._closed:
                self._queue.append(handle)
                # ``_idle`` still counts a waiter notified but not yet awake: each one takes one
                # queued call, and a call beyond them gets a thread of its own while one may start
                if len(self._queue) > self._idle and self._counted < self._size:
                    self._spawn()
                else:
                    self._cond.notify()
                return
        handle.job(True)  # closed: the call fails at once as a dropped connection

    def _spawn(self) -> None:
        self._counted += 1
        t = threading.Thread(target=self._loop, name=f"upstream_{next(self._names)}", daemon=True)
        self._all.add(t)
        t.start()

    def _settle(self, handle: UpstreamCall) -> bool:
        with self._cond:
            if handle.settled:
                return False
            handle.settled = True
            return True

    def _loop(self) -> None:
        handle: UpstreamCall | None = None
        try:
            while True:
                with self._cond:
                    if handle is not None:
                        handle.running = False
                        if handle.detached:  # a replacement took this thread's place meanwhile
                            return
                    while not self._queue and not self._closed:
                        self._idle += 1
                        self._cond.wait()
                        self._idle -= 1
                    if not self._queue:  # closed and drained
                        handle = None
                        return
                    handle = self._queue.popleft()
                    skip = handle.settled
                    if skip and handle.abandoned and not self._closed and self._detached < MAX_DETACHED_THREADS:
                        # Envoy sent this request before its stream went away (a stream whose
                        # router sent twice ends on the first answer): the app gets it too, and
                        # this thread leaves the pool's count, as if stuck in it, so an app that
                        # never returns cannot use up the pool this way either
                        skip = False
                        handle.detached = True
                        self._detached += 1
                        self._counted -= 1
                        if len(self._queue) > self._idle:
                            self._spawn()
                    handle.running = not skip
                self._run(handle, skip)
        finally:  # however the thread ends, it leaves the pool's counts
            with self._cond:
                if handle is not None and handle.detached:
                    self._detached -= 1
                else:
                    self._counted -= 1
                if handle is not None:
                    handle.running = False
                self._all.discard(threading.current_thread())

    def _run(self, handle: UpstreamCall, skip: bool) -> None:
        """Run one call's job. A job that raises is a wasmlab bug (a ``done`` callback; apps'
        errors are caught in :meth:`_invoke`): logged as the dispatchers log theirs, the call is
        settled as a dropped connection if it was not yet, and the thread serves on."""
        try:
            handle.job(skip)
        except BaseException as e:
            report_task_error(self._log, threading.current_thread().name, e)
            if not skip:
                self._run(handle, True)

    def _abandon(self, handle: UpstreamCall) -> None:
        with self._cond:
            if handle.settled:
                return
            handle.abandoned = True
            if handle.running and not handle.detached:
                if self._detached < MAX_DETACHED_THREADS:
                    handle.detached = True
                    self._detached += 1
                    self._counted -= 1
                    if len(self._queue) > self._idle and not self._closed:
                        self._spawn()
                elif not self._warned:
                    self._warned = True
                    self._log(
                        "warning",
                        "upstream",
                        f"{self._detached} upstream app calls never returned; the pool has no thread left for them",
                    )
        # settle it now: the caller sees a dropped connection, the app's late answer is dropped
        # (a queued call is settled too: the thread that pops it runs the app and drops its answer)
        handle.job(True)

    def _invoke(self, cluster: Cluster, request: Request) -> UpstreamResult:
        app = cluster.app
        if app is None or isinstance(app, _NoApp):
            return UpstreamResult(None, CONNECT_FAILURE)
        try:
            response = Response.coerce(app(request))
        except BaseException as e:  # sys.exit() in an app too: it must not end the pool's thread
            self._log("error", "upstream", f"app for cluster '{cluster.name}' raised {describe(e)}{raised_at(e)}")
            return UpstreamResult(None, CONNECTION_TERMINATION)
        if not 100 <= response.status < 65536:  # not a status line Envoy's codec reads as it is
            code = wire_status(response.status)
            if code is None:
                self._log(
                    "error",
                    "upstream",
                    f"app for cluster '{cluster.name}' answered status {response.status}: "
                    "Envoy's HTTP/1 codec refuses a status below 100 (a protocol error)",
                )
                return UpstreamResult(None, PROTOCOL_ERROR)
            response.status = code
        return UpstreamResult(response, None)

    def _threads(self) -> list[threading.Thread]:
        """Every thread of the pool now, detached ones included."""
        with self._cond:
            return list(self._all)

    def owns_current_thread(self) -> bool:
        return threading.current_thread() in self._all

    def close(self, timeout: float = 2.0) -> None:
        """Refuse new calls, drop queued ones unanswered (their workers are gone), and join the
        threads (an app still running after ``timeout`` keeps its thread until it returns; that
        is logged)."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
            threads = list(self._all)
        deadline = time.monotonic() + timeout
        me = threading.current_thread()
        for t in threads:
            if t is not me:
                t.join(max(0.0, deadline - time.monotonic()))
        busy = [t.name for t in threads if t.is_alive() and t is not me]
        if busy:
            self._log(
                "warning",
                "upstream",
                f"an upstream app still runs on {', '.join(busy)} after the proxy closed; "
                "the thread ends when the app returns",
            )


#: request headers Envoy's router reads and removes before forwarding, its own
#: and the async client's (``FilterUtility::finalTimeout``,
#: ``RetryStateImpl``, hedging, ``x-envoy-upstream-alt-stat-name``)
ROUTER_CONSUMED_HEADERS = (
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-max-retries",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-stream-duration-ms",
)
