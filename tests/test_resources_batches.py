"""``request_many`` keeps a bounded number of requests in flight and stops on Ctrl-C (issue 14).

Envoy has no batch call (a load generator keeps N connections busy); these tests check
wasmlab's documented behaviour (README, ``host/batch.py``): at most 64 requests per worker in
flight by default, ``concurrency`` to change it, results in order, and a ``KeyboardInterrupt``
(what Jupyter's interrupt raises) or the batch ``timeout`` cancels what has not started and
resets what is in flight, leaving the proxy usable."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

from helpers import config
from wasmlab import NativeFilter, native_filter
from wasmlab.errors import StreamTimeout
from wasmlab.http import FilterHeadersStatus

IN_FLIGHT = {"now": 0, "max": 0}
_LOCK = threading.Lock()


@native_filter("t_count_in_flight")
class CountInFlight(NativeFilter):
    """Counts streams between their request headers and their end, over every worker."""

    def decode_headers(self, headers, end_stream):
        with _LOCK:
            IN_FLIGHT["now"] += 1
            IN_FLIGHT["max"] = max(IN_FLIGHT["max"], IN_FLIGHT["now"])
        self.counted = True
        return FilterHeadersStatus.Continue

    def on_destroy(self):
        if getattr(self, "counted", False):
            with _LOCK:
                IN_FLIGHT["now"] -= 1


COUNTING = config("""
          - name: wasmlab.native.t_count_in_flight""")


@pytest.fixture(autouse=True)
def _reset():
    IN_FLIGHT.update(now=0, max=0)


def test_default_keeps_64_per_worker_in_flight_and_answers_in_order(proxy_factory):
    p = proxy_factory(COUNTING, workers=2, trace=False)
    out = p.request_many([("GET", f"/item/{i}") for i in range(600)])
    assert [r.json()["path"] for r in out] == [f"/item/{i}" for i in range(600)]
    assert 1 < IN_FLIGHT["max"] <= 2 * 64, IN_FLIGHT  # before: all 600 at once


def test_concurrency_sets_the_bound(proxy_factory):
    p = proxy_factory(COUNTING, workers=2, trace=False)
    out = p.request_many([("GET", "/")] * 100, concurrency=3)
    assert [r.status for r in out] == [200] * 100
    assert IN_FLIGHT["max"] <= 3


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "8"])
def test_concurrency_must_be_a_positive_int(proxy_factory, bad):
    p = proxy_factory(config(), workers=1)
    with pytest.raises(ValueError, match=re.escape("concurrency must be an int >= 1 (requests in flight), got ")):
        p.request_many([("GET", "/")], concurrency=bad)


def test_a_bad_worker_anywhere_in_the_batch_is_refused_before_anything_runs(proxy_factory):
    """Past the in-flight limit a request starts from a worker thread; a bad ``worker`` there used
    to log an unhandled error and leave the batch waiting for its timeout."""
    p = proxy_factory(COUNTING, workers=1, trace=False)
    with pytest.raises(ValueError, match=re.escape("worker must be 0..0, got 5")):
        p.request_many([("GET", "/"), {"method": "GET", "path": "/", "worker": 5}], concurrency=1, timeout=30)
    assert IN_FLIGHT["max"] == 0  # nothing started
    assert not [line for line in p.logs if "unhandled error" in line]
    assert [r.status for r in p.request_many([("GET", "/")] * 3, concurrency=1)] == [200] * 3


def _slow_proxy(proxy_factory, calls):
    p = proxy_factory(COUNTING, workers=2, trace=False)

    def slow(request):
        calls.append(request.path)
        time.sleep(0.01)
        return 200, {}, b"ok"

    p.upstream("backend", slow)
    return p


def test_ctrl_c_stops_the_batch_and_the_proxy_stays_usable(proxy_factory):
    calls: list[str] = []
    p = _slow_proxy(proxy_factory, calls)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            p.request_many([("GET", f"/{i}") for i in range(3000)])  # ~4 s of app time
    finally:
        timer.join()
        signal.signal(signal.SIGINT, previous)
    at_interrupt = len(calls)
    assert p.wait_idle(10.0)
    # what was in flight may still reach the app (at most the 128 in flight), nothing more starts
    assert len(calls) <= at_interrupt + 2 * 64, (at_interrupt, len(calls))
    assert len(calls) < 1000
    assert IN_FLIGHT["now"] == 0  # every stream ended (reset or answered)
    assert p.request("GET", "/after").status == 200
    assert [r.status for r in p.request_many([("GET", "/again")] * 10)] == [200] * 10


def test_an_asynchronous_keyboard_interrupt_lands_too(proxy_factory):
    """``PyThreadState_SetAsyncExc`` only lands while Python code runs: the wait polls."""
    import ctypes

    calls: list[str] = []
    p = _slow_proxy(proxy_factory, calls)
    me = threading.get_ident()

    def interrupt():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(me), ctypes.py_object(KeyboardInterrupt))

    timer = threading.Timer(0.5, interrupt)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            p.request_many([("GET", f"/{i}") for i in range(3000)])
    finally:
        timer.join()
    assert p.wait_idle(10.0)
    assert len(calls) < 1000
    assert p.request("GET", "/after").status == 200


def test_batch_timeout_cancels_the_rest(proxy_factory):
    calls: list[str] = []
    p = _slow_proxy(proxy_factory, calls)
    with pytest.raises(StreamTimeout, match=r"of 3000 requests did not finish in 0.5s"):
        p.request_many([("GET", f"/{i}") for i in range(3000)], timeout=0.5)
    assert p.wait_idle(10.0)
    assert len(calls) < 1000
    assert p.request("GET", "/after").status == 200
