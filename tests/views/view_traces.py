"""Traces of real runs for the view tests (session fixtures: each proxy runs once).

Import the fixtures a test module needs: ``from view_traces import wasm_trace, ...``.
"""

from __future__ import annotations

import time

import pytest

from conftest import CONFIGS, FIXTURES
from wasm_diff import plugin_yaml
from wasmlab import Proxy, Response, Trace

TRAP_WASM = FIXTURES / "wasm" / "trap_in_request_headers.wasm"


def run(config: object, requests: list[dict], workers: int = 2, clock: str = "real", apps=None, advance=0.0) -> Trace:
    with Proxy.from_yaml(config, workers=workers, clock=clock) as p:
        for name, app in (apps or {}).items():
            p.upstream(name, app)
        for kw in requests:
            p.request(**kw)
        p.wait_idle()
        if advance:
            p.advance(advance)
            p.wait_idle()
    return p.trace


@pytest.fixture(scope="session")
def native_trace() -> Trace:
    return run(CONFIGS / "hello.yaml", [{"method": "GET", "path": "/hello", "worker": w} for w in (0, 1)])


@pytest.fixture(scope="session")
def ratelimit_trace() -> Trace:
    return run(CONFIGS / "local_ratelimit.yaml", [{"method": "GET", "path": "/", "worker": 0} for _ in range(4)])


@pytest.fixture(scope="session")
def wasm_trace() -> Trace:
    return run(CONFIGS / "wasm" / "hello.yaml", [{"method": "GET", "path": "/hello", "worker": w} for w in (0, 1)])


@pytest.fixture(scope="session")
def service_trace() -> Trace:
    reqs = [{"method": "GET", "path": f"/r/{i}", "worker": i % 2} for i in range(4)]
    return run(CONFIGS / "wasm" / "stats_service.yaml", reqs, clock="virtual", advance=1.0)


@pytest.fixture(scope="session")
def rate_limiter_trace() -> Trace:
    reqs = [{"method": "GET", "path": f"/r/{i}", "worker": i % 2} for i in range(7)]
    return run(CONFIGS / "wasm" / "rate_limiter.yaml", reqs, clock="virtual")


def _auth_app(req):
    return Response(200, [("x-user", "bob")], b"ok")


@pytest.fixture(scope="session")
def callout_trace() -> Trace:
    req = {"method": "GET", "path": "/hello", "headers": {"authorization": "Bearer ok"}, "worker": 0}
    return run(CONFIGS / "wasm" / "http_auth.yaml", [req], apps={"auth": _auth_app})


@pytest.fixture(scope="session")
def trap_trace() -> Trace:
    reqs = [{"method": "GET", "path": "/trap", "worker": 0}, {"method": "GET", "path": "/ok", "worker": 1}]
    return run(plugin_yaml(TRAP_WASM), reqs)


@pytest.fixture(scope="session")
def reload_trace() -> Trace:
    reqs = [{"method": "GET", "path": p, "worker": 0} for p in ("/trap", "/ok")]
    with Proxy.from_yaml(plugin_yaml(TRAP_WASM, failure_policy="FAIL_RELOAD"), workers=1, clock="virtual") as p:
        for kw in reqs:
            p.request(**kw)
            p.advance(2.0)  # past the reload backoff
        p.wait_idle()
    return p.trace


@pytest.fixture(scope="session")
def lua_trace() -> Trace:
    req = {"method": "GET", "path": "/hello", "headers": {"authorization": "Bearer ok"}, "worker": 0}
    return run(CONFIGS / "lua" / "auth_httpcall.yaml", [req], apps={"auth": _auth_app})


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


__all__ = [
    "callout_trace",
    "lua_trace",
    "native_trace",
    "rate_limiter_trace",
    "ratelimit_trace",
    "reload_trace",
    "service_trace",
    "trap_trace",
    "wait_for",
    "wasm_trace",
]
