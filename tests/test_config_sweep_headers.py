"""Header configs compared with real Envoy 1.40: ``headers_to_add`` at three levels, header
mutations routes may not make, ``value`` against ``raw_value`` and weighted clusters' mutations.
The same YAML and requests on both; the client's responses and what every upstream received must
agree. Each probe found a disagreement that is now fixed; the docstrings say what Envoy does.
"""

from __future__ import annotations

from typing import Any

import pytest

from helpers import CAFE, both, config, get
from wasmlab import Proxy, Response
from wasmlab import envoy as real
from wasmlab.errors import ConfigError

pytestmark = pytest.mark.envoy


# ---- headers_to_add at three levels ---------------------------------------------------------------
def _hv(key: str, value: str, extra: str = "") -> str:
    more = f"\n                  {extra}" if extra else ""
    return f'\n                - header: {{key: "{key}", value: "{value}"}}{more}'


HEADER_ROUTES = (
    """
              - match: {prefix: "/a"}
                route: {cluster: backend}
                request_headers_to_add:"""
    + _hv("x-lvl", "route")
    + _hv("x-ow", "route-ow", "append_action: OVERWRITE_IF_EXISTS_OR_ADD")
    + _hv("x-empty", "", "keep_empty_value: true")
    + _hv("x-empty2", "")
    + _hv("x-fmt", "%REQ(x-in)%|%REQ(x-missing)%|%PROTOCOL%|%UPSTREAM_CLUSTER%")
    + _hv("x-fmt2", "%REQ(x-missing)%")
    + _hv("x-fmt3", "%REQ(x-missing)%", "keep_empty_value: true")
    + _hv("x-utf", "caf\\u00e9-%REQ(x-in)%")
    + _hv("x-trunc", "%REQ(x-in):2%")
    + _hv("x-ia", "new", "append_action: ADD_IF_ABSENT")
    + _hv("x-oie", "new", "append_action: OVERWRITE_IF_EXISTS")
    + _hv("x-oie2", "new", "append_action: OVERWRITE_IF_EXISTS")
    + """
                request_headers_to_remove: ["x-rm"]
                response_headers_to_add:"""
    + _hv("x-resp", "route")
    + _hv("x-status", "%RESPONSE_CODE%")
    + _hv("x-upst", "%RESP(content-type)%")
    + _hv("content-type", "text/override", "append_action: OVERWRITE_IF_EXISTS_OR_ADD")
    + _hv("x-flags", "%RESPONSE_FLAGS%")
    + _hv("x-pct", "100%%")
    + """
                response_headers_to_remove: ["x-up"]
              - match: {prefix: "/d"}
                name: droute
                direct_response: {status: 200, body: {inline_string: "d"}}
                response_headers_to_add:"""
    + _hv("x-resp", "droute")
    + _hv("x-rname", "%ROUTE_NAME%")
    + _hv("x-status", "%RESPONSE_CODE%")
    + _hv("x-ct", "%RESP(content-type)%")
    + """
              - match: {prefix: "/"}
                route: {cluster: backend}"""
)
VHOST_HEADERS = """
              request_headers_to_add:
              - header: {key: x-lvl, value: vhost}
              - header: {key: x-ow, value: vh-ow}
              response_headers_to_add:
              - header: {key: x-resp, value: vhost}
              - header: {key: x-vh-only, value: "%REQ(:path)%"}
              response_headers_to_remove: [x-up2]
              routes:"""
RC_HEADERS = """
            request_headers_to_add:
            - header: {key: x-lvl, value: rc}
            response_headers_to_add:
            - header: {key: x-resp, value: rc}
              append_action: ADD_IF_ABSENT
            - header: {key: x-rc, value: "%START_TIME(%Y)%"}
            virtual_hosts:"""


def _upstream_with_headers(req: Any) -> Response:
    return Response(200, [("content-type", "text/plain"), ("x-up", "1"), ("x-up2", "2")], "ok")


def test_headers_to_add_at_three_levels_like_envoy(envoy_bin):
    """Route, virtual host and route-configuration mutations with every append action,
    ``keep_empty_value`` and formatters; ``%RESPONSE_CODE%`` and ``%RESP(...)%`` in
    ``response_headers_to_add`` see the upstream's response (old code: ``0`` and nothing)."""
    cfg = config(routes=HEADER_ROUTES).replace("\n              routes:", VHOST_HEADERS, 1)
    cfg = cfg.replace("\n            virtual_hosts:", RC_HEADERS, 1)
    reqs = [get("/a", **{"x-in": "val", "x-rm": "1", "x-ow": "client", "x-ia": "client", "x-oie": "client"})]
    reqs += [get("/a"), get("/a", **{"x-in": CAFE}), get("/d"), get("/zz")]
    mine, _ = both(cfg, reqs, apps={"backend": _upstream_with_headers})
    assert mine[0].headers.get_all("x-status") == ["200"]
    assert mine[0].headers.get("x-upst") == "text/plain"


@pytest.mark.parametrize(
    ("field", "value", "verb"),
    [
        ("request_headers_to_remove", "[':path']", "removed"),
        ("request_headers_to_remove", "['Host']", "removed"),
        ("response_headers_to_remove", "[':status']", "removed"),
        ("request_headers_to_add", "[{header: {key: ':authority', value: x}}]", "modified"),
        ("request_headers_to_add", "[{header: {key: host, value: x}}]", "modified"),
        ("response_headers_to_add", "[{header: {key: ':status', value: '201'}}]", "modified"),
    ],
)
def test_route_header_mutations_may_not_touch_pseudo_headers_or_host(envoy_bin, tmp_path, field, value, verb):
    """Envoy refuses these at load (old code accepted them)."""
    path = tmp_path / "bad.yaml"
    route = '\n              - match: {prefix: "/"}\n                route: {cluster: backend}'
    path.write_text(config(routes=f"{route}\n                {field}: {value}"))
    message = f":-prefixed or host headers may not be {verb}"
    ok, envoy_message = real.validate(path)
    assert not ok and message in envoy_message
    with pytest.raises(ConfigError, match=f"{field}\\[0\\]: {message}"):
        Proxy.from_yaml(path)


def test_header_value_comes_from_value_not_raw_value_like_envoy(envoy_bin):
    """Envoy's header parser reads ``value``: a ``raw_value`` alone adds nothing, ``value``
    wins over it; names are lower-cased, any name characters kept (old code used raw_value)."""
    routes = """
              - match: {prefix: "/"}
                direct_response: {status: 200}
                response_headers_to_add:
                - header: {key: x-raw, raw_value: 'eHl6'}
                - header: {key: x-raw-kept, raw_value: 'eHl6'}
                  keep_empty_value: true
                - header: {key: x-both, value: 'a', raw_value: 'eHl6'}
                - header: {key: X-Upper, value: 'u'}"""
    mine, _ = both(config(routes=routes), [get("/")])
    assert "x-raw" not in mine[0].headers and mine[0].headers["x-both"] == "a"


def test_a_weighted_clusters_header_mutations_come_first_like_envoy(envoy_bin):
    """A weighted cluster's own ``*_headers_to_add``/``_remove`` are applied before the route's
    and the virtual host's (old code: accepted with a warning, no effect)."""
    routes = """
              - match: {prefix: "/wc"}
                route:
                  weighted_clusters:
                    clusters:
                    - name: backend
                      weight: 1
                      request_headers_to_add:
                      - header: {key: x-lvl, value: wc}
                      - header: {key: x-only, value: "%UPSTREAM_CLUSTER%"}
                      response_headers_to_add: [{header: {key: x-r, value: wc}}]
                      request_headers_to_remove: [x-rm]
                request_headers_to_add: [{header: {key: x-lvl, value: route}}]
                response_headers_to_add: [{header: {key: x-r, value: route}}]"""
    vh = "              request_headers_to_add: [{header: {key: x-lvl, value: vh}}]\n              routes:"
    cfg = config(routes=routes).replace("              routes:", vh, 1)
    mine, _ = both(cfg, [get("/wc", **{"x-rm": "1"})])
    assert mine[0].headers.get_all("x-r") == ["wc", "route"]
