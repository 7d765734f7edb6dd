"""The client's address with ``use_remote_address: false`` (Envoy's default), compared with real
Envoy 1.40: Envoy's original-IP detection takes it from ``x-forwarded-for`` -- the entry
``xff_num_trusted_hops`` from the right, if it is an IP address -- and the stream's
downstream remote address becomes that IP with port 0 (``[ip]:0`` for IPv6); the *direct*
remote address stays the connection's peer. Lua's ``streamInfo()`` shows both."""

from __future__ import annotations

import pytest

from helpers import config, lua_filter
from wasmlab import Proxy
from wasmlab import envoy as real

pytestmark = pytest.mark.envoy

LUA = lua_filter("""
    function envoy_on_request(h)
      local info = h:streamInfo()
      info:dynamicMetadata():set("a", "r", info:downstreamRemoteAddress())
      info:dynamicMetadata():set("a", "d", info:downstreamDirectRemoteAddress())
    end
    function envoy_on_response(h)
      local m = h:streamInfo():dynamicMetadata():get("a")
      h:headers():add("x-r", m["r"])
      h:headers():add("x-d", m["d"])
    end""")
ROUTES = """
              - match: {prefix: "/"}
                direct_response: {status: 200}"""
XFF = [None, "1.2.3.4, 10.0.0.7", "garbage", "2001:db8::1", "10.0.0.7"]


def _addresses(resp) -> tuple[str, str]:
    """(remote, direct), each without the connection's port (it differs between two proxies);
    an address from x-forwarded-for keeps its ``:0``."""

    def shown(addr: str) -> str:
        return addr if addr.endswith(":0") else addr.rsplit(":", 1)[0]

    return shown(resp.headers.get("x-r")), shown(resp.headers.get("x-d"))


@pytest.mark.parametrize("hops", [0, 1])
def test_the_client_address_comes_from_x_forwarded_for_like_envoy(envoy_bin, hops):
    cfg = config(filters=LUA, routes=ROUTES)
    if hops:
        cfg = cfg.replace(
            "          stat_prefix: ingress", f"          stat_prefix: ingress\n          xff_num_trusted_hops: {hops}"
        )
    reqs = [{"method": "GET", "path": "/", "headers": {"x-forwarded-for": x} if x else {}} for x in XFF]
    with Proxy.from_yaml(cfg, workers=1) as p:
        mine = [_addresses(p.request(**kw)) for kw in reqs]
    with real.run(cfg, workers=1) as e:
        env = [_addresses(e.request(**kw)) for kw in reqs]
    assert mine == env
    expected_remote = ["127.0.0.1", "10.0.0.7:0", "127.0.0.1", "[2001:db8::1]:0", "10.0.0.7:0"]
    if hops:
        expected_remote = ["127.0.0.1", "1.2.3.4:0", "127.0.0.1", "127.0.0.1", "127.0.0.1"]
    assert [r for r, _ in env] == expected_remote
    assert {d for _, d in env} == {"127.0.0.1"}
