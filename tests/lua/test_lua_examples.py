"""The Lua example configs: each passes ``envoy --mode validate`` and teaches what it says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wasmlab import Proxy
from wasmlab.http import HeaderMap, Response

CONFIGS = Path(__file__).resolve().parents[2] / "notebooks" / "configs" / "lua"
EXAMPLES = sorted(CONFIGS.glob("*.yaml"))


def test_there_are_four_examples():
    assert [p.stem for p in EXAMPLES] == ["add_header", "auth_httpcall", "body_rewrite", "rate_limit_per_worker"]


@pytest.mark.envoy
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_passes_envoy_validate(envoy_bin, path):
    from wasmlab.envoy import validate

    ok, message = validate(path)
    assert ok, message


def test_rate_limiter_buckets_are_per_worker():
    with Proxy.from_yaml(CONFIGS / "rate_limit_per_worker.yaml", workers=2) as p:
        statuses = {w: [p.request("GET", "/", worker=w).status for _ in range(4)] for w in (0, 1)}
        # BURST = 3 per bucket, one bucket per worker: 6 requests pass, not 3
        assert statuses == {0: [200, 200, 200, 429], 1: [200, 200, 200, 429]}


def test_auth_example_blocks_and_names_the_user():
    def auth(req):
        ok = req.headers.get("authorization") == "Bearer good"
        return Response(
            200 if ok else 401, HeaderMap([("x-user", "ann")] if ok else []), b"" if ok else b"who are you?\n"
        )

    with Proxy.from_yaml(CONFIGS / "auth_httpcall.yaml", workers=1) as p:
        p.upstream("auth", auth)
        good = p.request("GET", "/x", headers={"authorization": "Bearer good"})
        assert good.status == 200 and ["x-user", "ann"] in good.json()["headers"]
        bad = p.request("GET", "/x", headers={"authorization": "nope"})
        assert (bad.status, bad.body) == (403, b"who are you?\n")
        assert p.request("GET", "/public").status == 200  # LuaPerRoute disabled: no auth call
        p.wait_idle()
        assert "[warning][lua] script log: auth refused: 401" in p.logs


def test_body_rewrite_example():
    with Proxy.from_yaml(CONFIGS / "body_rewrite.yaml", workers=1) as p:
        p.upstream("backend", lambda req: Response(200, HeaderMap(), b"hello " + req.body))
        r = p.request("POST", "/login", body="user=ann&password=secret")
        assert r.body == b"HELLO user=ann&password=***"
        assert r.headers.get("content-length") == str(len(r.body))


def test_add_header_example():
    with Proxy.from_yaml(CONFIGS / "add_header.yaml", workers=1) as p:
        r = p.request("GET", "/x")
        assert r.headers.get("x-lua-response") == "added-by-lua"
        assert ["x-lua-request", "added-by-lua"] in json.loads(r.body)["headers"]
        assert p.request("GET", "/direct").headers.get("x-lua-response") == "added-by-lua"
