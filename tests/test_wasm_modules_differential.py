"""Every teaching module, same YAML and requests on wasmlab and real Envoy 1.40: the same responses
and the same wasm:trace lines (callbacks, host calls, arguments, results, log lines) per thread."""

from __future__ import annotations

import time

import pytest

from conftest import CONFIGS
from wasm_diff import assert_same_run, run_both
from wasmlab import Response

pytestmark = pytest.mark.envoy
WASM = CONFIGS / "wasm"
BASIC = [
    {"method": "GET", "path": "/hello", "headers": [("user-agent", "t")]},
    {"method": "POST", "path": "/post", "body": "hello world, hello!"},
    {"method": "GET", "path": "/direct"},
    {"method": "HEAD", "path": "/hello"},
]


@pytest.mark.parametrize("name", ["hello", "add_header", "body_rewrite", "cpu_burn"])
def test_module_matches_envoy(envoy_bin, name):
    ours, theirs, lines = run_both(WASM / f"{name}.yaml", BASIC)
    assert_same_run(ours, theirs, lines)


def test_hello_wat_matches_envoy(envoy_bin, tmp_path):
    text = (WASM / "hello.yaml").read_text().replace("modules/hello.wasm", "modules/hello_wat.wasm")
    path = WASM / "_hello_wat_test.yaml"
    path.write_text(text)
    try:
        ours, theirs, lines = run_both(path, BASIC)
    finally:
        path.unlink()
    assert_same_run(ours, theirs, lines)


def test_rate_limiter_matches_envoy(envoy_bin):
    reqs = [{"method": "GET", "path": "/r"}] * 8
    ours, theirs, lines = run_both(WASM / "rate_limiter.yaml", reqs)
    assert_same_run(ours, theirs, lines)
    assert [r.status for r in ours] == [200] * 5 + [429] * 3


def auth_app(req):
    token = req.headers.get("authorization") or ""
    if token == "Bearer slow":
        time.sleep(1.5)
    if token == "Bearer good":
        return Response(200, {"content-type": "text/plain"}, b"yes\n")
    return Response(403, {"content-type": "text/plain"}, b"no\n")


def test_http_auth_allows_and_denies_like_envoy(envoy_bin):
    reqs = [
        {"method": "GET", "path": "/a", "headers": {"authorization": "Bearer good"}},
        {"method": "GET", "path": "/b", "headers": {"authorization": "Bearer bad"}},
        {"method": "GET", "path": "/c"},
        {"method": "GET", "path": "/d", "headers": {"authorization": "Bearer slow"}},
    ]
    ours, theirs, lines = run_both(WASM / "http_auth.yaml", reqs, apps={"auth": auth_app}, settle=1.0)
    assert_same_run(ours, theirs, lines)
    assert [r.status for r in ours] == [200, 403, 403, 403]
    assert ["x-auth", "ok"] in ours[0].json()["headers"]


def test_stats_service_queue_flow_matches_envoy(envoy_bin):
    reqs = [{"method": "GET", "path": f"/r/{i}"} for i in range(6)] + [{"method": "GET", "path": "/direct"}]
    ours, theirs, lines = run_both(WASM / "stats_service.yaml", reqs, compare_threads=("worker_0",), settle=1.5)
    assert_same_run(ours, theirs, lines)
