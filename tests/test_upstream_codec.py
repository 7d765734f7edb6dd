"""What Envoy's HTTP/1 codec does to a request a filter changed on its way upstream, compared
with real Envoy 1.40: a removed ``:method``, a header name that is not a token or a value with
CR/LF makes the router answer 503 with the codec's message (the upstream gets nothing); a removed
``:authority`` leaves no ``host`` line; the upstream reads values without surrounding spaces."""

from __future__ import annotations

import pytest

from helpers import UpstreamLog, assert_same, assert_same_upstreams, config, recorded_apps
from wasmlab import Proxy
from wasmlab import envoy as real

pytestmark = pytest.mark.envoy

LUA = """
          - name: envoy.filters.http.lua
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
              default_source_code:
                inline_string: |
                  function envoy_on_request(h)
                    local p = h:headers():get("x-do")
                    if p == "nomethod" then h:headers():remove(":method")
                    elseif p == "space" then h:headers():add("bad name", "v")
                    elseif p == "crlf" then h:headers():add("x-v", "a\\r\\nb")
                    elseif p == "noauth" then h:headers():remove(":authority")
                    elseif p == "trim" then h:headers():add("x-t", "  a b\\t ")
                    end
                  end"""

CASES = ["nomethod", "space", "crlf", "noauth", "trim", "none"]
STATS = (
    "cluster.backend.upstream_rq_total",
    "cluster.backend.upstream_rq_completed",
    "http.ingress.downstream_rq_5xx",
    "http.ingress.downstream_rq_2xx",
)


def test_requests_a_filter_broke_are_refused_by_the_upstream_codec_like_envoy(envoy_bin):
    cfg = config(filters=LUA)
    reqs = [{"method": "GET", "path": "/x", "headers": {"x-do": d}} for d in CASES]
    ours, theirs = UpstreamLog(), UpstreamLog()
    with Proxy.from_yaml(cfg, workers=1) as p:
        for name, app in recorded_apps(cfg, None, ours).items():
            p.upstream(name, app)
        mine = [p.request(**kw) for kw in reqs]
        p.wait_idle(5)
        my_stats = {k: p.stats().get(k, 0) for k in STATS}
    with real.run(cfg, workers=1, apps=recorded_apps(cfg, None, theirs)) as e:
        env = [e.request(**kw) for kw in reqs]
        env_stats = {k: e.stats().get(k, 0) for k in STATS}
    for i, (a, b) in enumerate(zip(mine, env, strict=True)):
        assert_same(a, b, f"request {i} {reqs[i]}")
    assert_same_upstreams(ours, theirs)
    assert [r.status for r in env] == [503, 503, 503, 200, 200, 200]
    assert env[0].body == b"missing required header: :method"
    assert my_stats == env_stats
