"""Upstream apps that never return do not use up the upstream threads (issue 14).

Before, eight stuck apps held all eight upstream threads for good: every later request to any
cluster waited in the queue and got 504. Envoy opens another connection for the next request,
so only the stuck requests time out. wasmlab now abandons an app call when its caller gives up
(route timeout, reset stream) and starts a thread in place of the stuck one
(``host/upstream.py``). Checked against real Envoy 1.40: same statuses, same timeout counters."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import config
from wasmlab import Proxy
from wasmlab import envoy as real
from wasmlab.errors import StreamTimeout

ROUTES = """
              - match: {prefix: "/"}
                route: {cluster: backend, timeout: %s}"""


def _hanging_app(release: threading.Event, entered: list[str]):
    def app(request):
        entered.append(request.path)
        if request.path.startswith("/hang"):
            release.wait(30)
            return 200, {}, b"late"
        return 200, {"content-type": "text/plain"}, b"ok"

    return app


def _statuses(side, paths):
    with ThreadPoolExecutor(len(paths)) as ex:
        return list(ex.map(lambda path: side.request("GET", path, timeout=10).status, paths))


def _stuck_then_fine(side):
    hung = _statuses(side, [f"/hang/{i}" for i in range(10)])
    fine = _statuses(side, [f"/ok/{i}" for i in range(20)])
    stats = side.stats()
    counters = {k: stats.get(k, 0) for k in ("cluster.backend.upstream_rq_timeout", "cluster.backend.upstream_rq_504")}
    return hung, fine, counters


def test_ten_stuck_apps_leave_the_cluster_serving_like_envoy(envoy_bin):
    cfg = config(routes=ROUTES % "0.5s")
    release_p, release_e = threading.Event(), threading.Event()
    entered_p: list[str] = []
    entered_e: list[str] = []
    try:
        with Proxy.from_yaml(cfg, workers=2) as p:
            p.upstream("backend", _hanging_app(release_p, entered_p))
            ours = _stuck_then_fine(p)
            assert p.wait_idle(5.0)  # the stuck calls were abandoned: nothing waits on them
        with real.run(cfg, workers=2, apps={"backend": _hanging_app(release_e, entered_e)}) as e:
            theirs = _stuck_then_fine(e)
    finally:
        release_p.set()
        release_e.set()
    assert ours == theirs
    hung, fine, counters = ours
    assert hung == [504] * 10 and fine == [200] * 20
    assert counters["cluster.backend.upstream_rq_timeout"] == 10
    assert sorted(entered_p) == sorted(entered_e)  # each request reached the app once


def test_without_a_route_timeout_a_reset_stream_frees_its_thread(proxy_factory):
    """``timeout: 0s`` (none): the caller's own ``timeout`` resets the stream, which abandons the
    app call; the pool serves the others and its stuck threads end when the apps return."""
    release = threading.Event()
    entered: list[str] = []
    p = proxy_factory(config(routes=ROUTES % "0s"), workers=2)
    p.upstream("backend", _hanging_app(release, entered))
    try:
        for i in range(10):
            with pytest.raises(StreamTimeout, match=r"held by filter .envoy\.filters\.http\.router."):
                p.request("GET", f"/hang/{i}", timeout=0.2)
        assert [r.status for r in p.request_many([("GET", f"/ok/{i}") for i in range(20)], timeout=10)] == [200] * 20
        pool = p._server.upstream_pool
        assert pool.detached == 10
    finally:
        release.set()
    deadline = time.monotonic() + 10
    while pool.detached and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.detached == 0  # each stuck thread ended when its app returned
    assert p.request("GET", "/ok/again").status == 200


def test_a_slow_app_still_answers_within_its_timeout(proxy_factory):
    """Abandoning is only for calls whose caller gave up: a slow app inside the route timeout
    answers as before, and a queue of them is served by the pool's threads in turn."""
    p = proxy_factory(config(routes=ROUTES % "10s"), workers=2)

    def slow(request):
        time.sleep(0.05)
        return 200, {}, request.path.encode()

    p.upstream("backend", slow)
    out = p.request_many([("GET", f"/s/{i}") for i in range(40)], timeout=30)
    assert [r.body for r in out] == [f"/s/{i}".encode() for i in range(40)]
    assert p._server.upstream_pool.detached == 0


def test_past_the_cap_of_stuck_threads_the_log_says_so(proxy_factory, monkeypatch):
    """At most ``MAX_DETACHED_THREADS`` (256) stuck threads are replaced; past that an abandoned
    call keeps its thread, and the log says so once."""
    import wasmlab.host.upstream as upstream

    monkeypatch.setattr(upstream, "MAX_DETACHED_THREADS", 2)
    release = threading.Event()
    p = proxy_factory(config(routes=ROUTES % "0.2s"), workers=1)
    p.upstream("backend", _hanging_app(release, []))
    try:
        assert [r.status for r in p.request_many([("GET", f"/hang/{i}") for i in range(4)])] == [504] * 4
        assert p._server.upstream_pool.detached == 2
        said = [ln for ln in p.logs if "upstream app calls never returned" in ln]
        assert said == ["[warning][upstream] 2 upstream app calls never returned; the pool has no thread left for them"]
    finally:
        release.set()


CALLOUT = """
function envoy_on_request(h)
  local path = h:headers():get(":path")
  if path:sub(1, 9) == "/callout/" then
    local headers, body = h:httpCall("backend", {[":method"] = "GET", [":path"] = "/hang" .. path,
                                                  [":authority"] = "backend"}, "", 200)
    h:respond({[":status"] = "200"}, headers[":status"])
  end
end
"""


def test_callouts_that_time_out_free_their_threads_too(proxy_factory):
    """A Lua ``httpCall`` (and a Wasm ``proxy_http_call``: the same async client) that times out
    abandons its app call: the stuck apps no longer starve the cluster."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "lua"))
    from lua_helpers import lua_config

    release = threading.Event()
    p = proxy_factory(lua_config(CALLOUT, routes=ROUTES % "1s"), workers=2)
    p.upstream("backend", _hanging_app(release, []))
    try:
        callouts = p.request_many([("GET", f"/callout/{i}") for i in range(10)], timeout=20)
        assert [r.body for r in callouts] == [b"504"] * 10  # the callout's own timeout, Envoy's 504
        assert [r.status for r in p.request_many([("GET", f"/ok/{i}") for i in range(20)])] == [200] * 20
    finally:
        release.set()
