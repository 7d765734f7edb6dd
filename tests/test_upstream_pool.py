"""The upstream thread pool (``host/upstream.py``) keeps its promise under bursts and bugs.

Envoy opens a connection per concurrent upstream request (up to the circuit breakers), so a fast
request never waits behind a slow one on another connection. wasmlab runs apps on up to eight
threads; these tests pin down that a queued call gets a thread while one may still be started,
that a call whose job raises (a ``done`` callback bug, an app's ``BaseException``) neither kills
its thread nor leaves the call unanswered, and that a call submitted after ``close`` is settled.
No wall-clock asserts: events prove which call started while which was still blocked.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from conftest import CONFIGS
from helpers import config, static_cluster
from wasmlab import Proxy
from wasmlab.host.upstream import CONNECTION_TERMINATION, UpstreamPool, UpstreamResult
from wasmlab.http import Request

WAIT = 10.0  # generous: only a broken pool waits this long


def _pool(threads: int = 8) -> tuple[UpstreamPool, list[str]]:
    logs: list[str] = []
    return UpstreamPool(lambda level, name, msg: logs.append(f"[{level}][{name}] {msg}"), threads), logs


def _one_idle_thread(pool: UpstreamPool) -> None:
    """Start one pool thread and wait until it waits for work again."""
    ran = threading.Event()
    pool.submit(ran.set)
    assert ran.wait(WAIT)
    while True:
        with pool._cond:
            if pool._idle == 1:
                return
        threading.Event().wait(0.001)


def _cluster(app: Any) -> Any:
    conf = SimpleNamespace(name="c", keeps_trailers=False, http2=False, http1_trailers=False)
    return SimpleNamespace(name="c", config=conf, app=app)


def test_a_fast_call_does_not_queue_behind_a_slow_one_while_a_thread_may_start() -> None:
    pool, _ = _pool()
    _one_idle_thread(pool)
    release, fast = threading.Event(), threading.Event()
    try:
        pool.submit(lambda: release.wait(WAIT))  # both submits notify the one idle thread
        pool.submit(fast.set)
        assert fast.wait(WAIT), "the fast call waited for the slow one"
    finally:
        release.set()
        pool.close()


def test_a_job_that_raises_is_logged_and_keeps_its_thread() -> None:
    pool, logs = _pool(threads=1)  # one death would leave no thread at all

    def boom() -> None:
        raise RuntimeError("boom")

    try:
        for _ in range(3):
            pool.submit(boom)
        ran = threading.Event()
        pool.submit(ran.set)
        assert ran.wait(WAIT), "the pool lost its thread to a raising job"
        with pool._cond:
            assert pool._counted == 1 and len(pool._all) == 1
        said = "unhandled error on upstream_0: RuntimeError: boom at test_upstream_pool.py:"
        bugs = [ln for ln in logs if said in ln]
        assert len(bugs) == 3 and all(ln.startswith("[critical][main] ") for ln in bugs), logs
    finally:
        pool.close()


def test_an_app_raising_a_base_exception_answers_a_dropped_connection() -> None:
    """``sys.exit()`` in an app is no ``Exception``: the call still ends (connection
    termination, as for any app that raises, logged the same way) and the thread serves on."""
    pool, logs = _pool(threads=1)

    def app(request: Request) -> Any:
        raise SystemExit(3)

    answers: list[UpstreamResult] = []
    got = threading.Event()
    try:
        pool.call(_cluster(app), Request("GET", "/", None, b""), lambda r: (answers.append(r), got.set()))
        assert got.wait(WAIT), "the call was never answered"
        assert answers[0].response is None and answers[0].failure == CONNECTION_TERMINATION
        assert any("app for cluster 'c' raised SystemExit: 3 at test_upstream_pool.py:" in ln for ln in logs), logs
        ran = threading.Event()
        pool.submit(ran.set)
        assert ran.wait(WAIT)
    finally:
        pool.close()


def test_a_done_callback_that_raises_is_called_once_and_the_pool_serves_on() -> None:
    pool, logs = _pool(threads=1)
    calls: list[UpstreamResult] = []

    def done(result: UpstreamResult) -> None:
        calls.append(result)
        raise ValueError("bug in done")

    try:
        pool.call(_cluster(lambda request: (200, {}, b"ok")), Request("GET", "/", None, b""), done)
        ran = threading.Event()
        pool.submit(ran.set)
        assert ran.wait(WAIT)
        assert len(calls) == 1 and calls[0].response is not None and calls[0].response.status == 200
        assert any("unhandled error on upstream_0: ValueError: bug in done" in ln for ln in logs)
    finally:
        pool.close()


def test_a_call_submitted_after_close_is_settled_at_once() -> None:
    pool, _ = _pool()
    pool.close()
    ran, dropped = [], []
    handle = pool.submit(lambda: ran.append(1), dropped=lambda: dropped.append(1))
    assert handle.settled and ran == [] and dropped == [1]
    answers: list[UpstreamResult] = []
    call = pool.call(_cluster(lambda request: (200, {}, b"")), Request("GET", "/", None, b""), answers.append)
    assert call.settled and [a.failure for a in answers] == [CONNECTION_TERMINATION]


def test_tcp_data_after_the_pool_closed_leaves_no_work_counted() -> None:
    """A TCP chunk handed to a closed pool never reaches the app; the work the connection
    counted for it ends, so ``wait_idle`` (and ``close``) do not wait for it."""
    with Proxy.from_yaml(CONFIGS / "wasm" / "tcp_logger.yaml", workers=1) as p:
        c = p.connect()
        c.send("warm")
        assert c.recv_exactly(4) == b"warm"
        p._server.upstream_pool.close()
        c.send("late")
        assert p.wait_idle(WAIT)


ROUTES = """
              - match: {prefix: "/slow"}
                route: {cluster: slow, timeout: 0s}
              - match: {prefix: "/"}
                route: {cluster: backend, timeout: 0s}"""
CLUSTERS = static_cluster("backend", 8081) + static_cluster("slow", 8082)


def test_a_fast_route_answers_while_a_slow_app_blocks_on_one_worker() -> None:
    """End to end: one worker hands a slow and a fast request to the pool in one loop turn
    while one upstream thread is idle; the fast app runs while the slow one is still blocked
    (Envoy: two connections, neither waits for the other)."""
    release, slow_in, fast_in = threading.Event(), threading.Event(), threading.Event()

    def slow(request: Request) -> Any:
        slow_in.set()
        release.wait(WAIT)
        return 200, {}, b"slow"

    def fast(request: Request) -> Any:
        fast_in.set()
        return 200, {}, b"fast"

    with Proxy.from_yaml(config(routes=ROUTES, clusters=CLUSTERS), workers=1) as p:
        p.upstream("slow", slow)
        p.upstream("backend", lambda request: (200, {}, b"warm"))
        assert p.request("GET", "/warm").body == b"warm"  # one upstream thread, now idle
        p.upstream("backend", fast)
        out: list[Any] = []
        t = threading.Thread(target=lambda: out.extend(p.request_many([("GET", "/slow"), ("GET", "/fast")])))
        t.start()
        try:
            assert fast_in.wait(WAIT), "the fast app waited for the slow one"
        finally:
            release.set()
            t.join(WAIT)
        assert [r.body for r in out] == [b"slow", b"fast"]


def test_a_call_abandoned_while_queued_still_reaches_the_app() -> None:
    """Envoy writes an upstream request when the router sends it; a stream that goes away
    before the app ran (a router that sent twice ends on the first answer) does not unsend it.
    The caller is answered at once with a dropped connection, the app still gets the request
    and its answer is dropped."""
    pool, _ = _pool(threads=1)
    release, seen = threading.Event(), threading.Event()
    answers: list[UpstreamResult] = []
    slow_path = []

    def app(request: Request) -> Any:
        if request.path == "/slow":
            slow_path.append(request.path)
            release.wait(WAIT)
        else:
            seen.set()
        return SimpleNamespace(status=200, headers=[], body=b"", trailers=None)

    try:
        pool.call(_cluster(app), Request("GET", "/slow", [], b""), lambda r: None)
        while not slow_path:  # the one thread is busy in the slow call
            threading.Event().wait(0.001)
        queued = pool.call(_cluster(app), Request("GET", "/queued", [], b""), answers.append)
        queued.abandon()
        assert [a.failure for a in answers] == [CONNECTION_TERMINATION]  # answered at once
        release.set()
        assert seen.wait(WAIT), "the abandoned call never reached the app"
        assert len(answers) == 1  # the app's late answer was dropped
    finally:
        release.set()
        pool.close()


def test_activity_never_calls_a_proxy_idle_while_a_posted_follow_up_is_pending(monkeypatch) -> None:
    """``wait_idle`` reads two counters; a task that posts follow-up work (begin) and then ends
    (end) between the two reads must not look idle. Reading ``begun`` first did: a WasmService's
    tick then ran before the queue_ready tasks the workers had posted (a rare CI failure)."""
    from wasmlab.host import dispatcher as d

    activity = d.Activity()
    activity.begin()  # a task is running
    real, between = d._peek, []

    def peek(counter: Any) -> int:
        value = real(counter)
        if not between:  # between the two reads: the task posts a follow-up, then ends
            between.append(True)
            activity.begin()
            activity.end()
        return value

    monkeypatch.setattr(d, "_peek", peek)
    assert activity.busy >= 1  # the follow-up has not run
