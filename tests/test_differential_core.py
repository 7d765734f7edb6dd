"""Differential tests: the same YAML and requests through wasmlab and through real Envoy 1.40.

``wasmlab request --json`` and ``wasmlab envoy request --json`` must agree on status, headers
(in order) and body; ``date``, ``x-request-id`` and ``x-envoy-upstream-service-time`` are compared
by presence (and ``x-request-id`` inside echoed JSON bodies too).
"""

from __future__ import annotations

import json
import time

import pytest

from conftest import CONFIGS
from helpers import UpstreamLog, assert_same, assert_same_upstreams, recorded_apps
from wasmlab import Proxy, Response, cli
from wasmlab import envoy as real

pytestmark = pytest.mark.envoy


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    capsys.readouterr()
    assert cli.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


CASES = [
    ("hello.yaml", "GET", "/direct", []),
    ("hello.yaml", "GET", "/hello", []),
    ("hello.yaml", "HEAD", "/direct", []),
    ("hello.yaml", "GET", "/h", ["-H", "x-a: 1", "-H", "X-B: 2", "-H", "x-a: 3", "-H", "User-Agent: t"]),
    ("hello.yaml", "GET", "/r", ["-H", "x-request-id: abc", "-H", "x-forwarded-proto: https"]),
    ("hello.yaml", "POST", "/post", ["--body", "0123456789"]),
    ("routing.yaml", "GET", "/exact?x=1", []),
    ("routing.yaml", "GET", "/items/12", []),
    ("routing.yaml", "GET", "/items/ab", []),
    ("routing.yaml", "GET", "/beta", ["-H", "x-beta: on"]),
    ("routing.yaml", "GET", "/beta", []),
    ("routing.yaml", "GET", "/api/x/y?q=1", []),
    ("routing.yaml", "GET", "/old?a=1", []),
    ("routing.yaml", "GET", "/gone", []),
    ("routing.yaml", "GET", "/", ["-H", "host: api.example.com"]),
    ("routing.yaml", "GET", "/", ["-H", "host: v2.api.example.com"]),
    ("header_mutation.yaml", "GET", "/direct", []),
    ("header_mutation.yaml", "GET", "/x", ["-H", "x-replaced: c", "-H", "x-if-absent: c", "-H", "x-secret: s"]),
    ("timeout.yaml", "GET", "/notimeout", []),
]


@pytest.mark.parametrize(("cfg", "method", "path", "extra"), CASES, ids=[f"{c[0]}:{c[1]} {c[2]}" for c in CASES])
def test_cli_json_agrees_with_real_envoy(envoy_bin, capsys, cfg, method, path, extra):
    args = [str(CONFIGS / cfg), method, path, *extra, "--json"]
    ours = run_cli(capsys, "request", *args)
    theirs = run_cli(capsys, "envoy", "request", *args)
    assert_same(ours, theirs, f"{cfg} {method} {path}")
    assert {e["kind"] for e in ours["trace"]} >= {"stream"}


_UPSTREAM_LOGS: list[tuple[UpstreamLog, UpstreamLog]] = []


@pytest.fixture(autouse=True)
def _same_upstream_requests():
    """After each test: every upstream got the same requests from wasmlab as from Envoy."""
    _UPSTREAM_LOGS.clear()
    yield
    for ours, theirs in _UPSTREAM_LOGS:
        assert_same_upstreams(ours, theirs)


def both(cfg: str, workers: int = 1, apps: dict | None = None):
    ours, theirs = UpstreamLog(), UpstreamLog()
    _UPSTREAM_LOGS.append((ours, theirs))
    p = Proxy.from_yaml(CONFIGS / cfg, workers=workers)
    for name, app in recorded_apps(CONFIGS / cfg, apps, ours).items():
        p.upstream(name, app)
    e = real.run(CONFIGS / cfg, workers=workers, apps=recorded_apps(CONFIGS / cfg, apps, theirs))
    return p, e


def test_local_ratelimit_429s_and_stats_match(envoy_bin):
    p, e = both("local_ratelimit.yaml")
    with p, e:
        for i in range(5):
            a, b = p.request("GET", "/a"), e.request("GET", "/a")
            assert_same(a, b, f"request {i + 1}")
            assert a.status == (200 if i < 3 else 429)
        ours, theirs = p.stats(), e.stats()
    for name in ("enabled", "ok", "rate_limited", "enforced"):
        key = f"http_local_rate_limiter.http_local_rate_limit.{name}"
        assert ours[key] == theirs[key], key
    assert ours["http.ingress.downstream_rq_4xx"] == theirs["http.ingress.downstream_rq_4xx"] == 2


def test_route_timeout_504(envoy_bin):
    def slow(req):
        time.sleep(1.5)
        return Response(200, {}, b"late")

    p, e = both("timeout.yaml", apps={"slow": slow})
    with p, e:
        a, b = p.request("GET", "/slow"), e.request("GET", "/slow")
        assert_same(a, b, "route timeout")
        assert (a.status, a.body) == (504, b"upstream request timeout")
        assert_same(p.request("GET", "/fast"), e.request("GET", "/fast"), "fast route")


@pytest.mark.parametrize("app", ["raises", "nothing-listening"])
def test_upstream_failures_503(envoy_bin, app):
    def boom(req):
        raise RuntimeError("upstream bug")

    p, e = both("hello.yaml", apps={"backend": boom if app == "raises" else None})
    with p, e:
        a, b = p.request("GET", "/x"), e.request("GET", "/x")
    assert_same(a, b, app)
    assert a.status == 503


def test_custom_upstream_app_is_served_identically(envoy_bin):
    def app(req):
        return Response(
            201, [("Content-Type", "text/plain"), ("X-Up", "1"), ("Server", "app")], f"{req.method} {req.path}\n"
        )

    p, e = both("hello.yaml", apps={"backend": app})
    with p, e:
        for method, path in [("GET", "/a?b=c"), ("DELETE", "/x"), ("HEAD", "/y")]:
            assert_same(p.request(method, path), e.request(method, path), f"{method} {path}")
        empty = lambda req: Response(204, {}, b"")  # noqa: E731
        p.upstream("backend", empty)
        e.upstream("backend", empty)
        assert_same(p.request("GET", "/"), e.request("GET", "/"), "204 from upstream")


def test_stats_names_match_envoys(envoy_bin):
    p, e = both("routing.yaml")
    with p, e:
        for path in ["/exact", "/gone", "/items/1"]:
            p.request("GET", path)
            e.request("GET", path)
        ours, theirs = p.stats(), e.stats()
    for key in [
        "http.ingress.downstream_rq_total",
        "http.ingress.downstream_rq_2xx",
        "http.ingress.downstream_rq_4xx",
        "http.ingress.downstream_rq_completed",
        "cluster.backend.upstream_rq_total",
        "cluster.backend.upstream_rq_200",
    ]:
        assert ours.get(key) == theirs.get(key), key


def _upstream_stats(stats: dict[str, int]) -> dict[str, int]:
    return {
        k: v
        for k, v in stats.items()
        if k.startswith("cluster.")
        and v
        and ("upstream_rq_" in k or "upstream_cx_connect_fail" in k or "upstream_cx_none_healthy" in k)
        and "pending" not in k  # connection-pool detail wasmlab does not model
    }


def _slow(req):
    time.sleep(0.8)
    return Response(200, {}, b"late")


def _boom(req):
    raise RuntimeError("upstream bug")


LUA_AUTH = CONFIGS / "lua" / "auth_httpcall.yaml"


@pytest.mark.parametrize(
    ("cfg", "apps", "path", "headers"),
    [
        ("hello.yaml", {}, "/x", {}),
        ("hello.yaml", {"backend": _boom}, "/x", {}),
        ("hello.yaml", {"backend": None}, "/x", {}),
        ("timeout.yaml", {"slow": _slow}, "/slow", {}),
        # the same outcomes for a call made by a filter (Lua httpCall through the async client)
        (LUA_AUTH, {}, "/", {"authorization": "Bearer good"}),
        (LUA_AUTH, {"auth": _boom}, "/", {"authorization": "Bearer good"}),
        (LUA_AUTH, {"auth": None}, "/", {"authorization": "Bearer good"}),
    ],
    ids=["ok", "reset", "refused", "timeout", "callout-ok", "callout-reset", "callout-refused"],
)
def test_upstream_cluster_stats_match_envoys(envoy_bin, cfg, apps, path, headers):
    """Per-code, internal/external, completed, timeout and connect-failure counters of
    ``cluster.<name>.*``, for the router's requests and for callouts alike."""
    p, e = both(cfg, apps=apps)
    with p, e:
        a, b = p.request("GET", path, headers=headers), e.request("GET", path, headers=headers)
        assert a.status == b.status
        time.sleep(1.0)  # a late answer after a timeout must not be counted either
        ours, theirs = _upstream_stats(p.stats()), _upstream_stats(e.stats())
    assert ours == theirs
    assert ours, "no upstream stats at all"


def test_an_envoy_run_keeps_its_log_after_the_block(envoy_bin):
    """A lesson compares after ``with envoy.run(...)`` ended: the trace and logs are still there."""
    with real.run(CONFIGS / "wasm" / "hello.yaml", component_log_level="wasm:trace") as e:
        assert e.request("GET", "/").status == 200
        during = [ev.name for ev in e.trace if ev.kind == "callback"]
    after = [ev.name for ev in e.trace if ev.kind == "callback"]
    assert "proxy_on_request_headers" in during and after[: len(during)] == during
    assert any("wasm log" in line for line in e.logs)
