"""HTTP/1 trailers against real Envoy 1.40: Envoy's HTTP/1 codec drops trailers unless
``http_protocol_options: {enable_trailers: true}`` is set — on the HCM for what the client sends
and what it gets back, on the cluster's ``HttpProtocolOptions`` for what the upstream is sent and
what it answers. A Lua filter logs what the filters see; the app reports what it received.
"""

from __future__ import annotations

import pytest

from helpers import with_trailers
from lua_helpers import Req, assert_both, lua_config
from wasmlab.http import HeaderMap, Response

pytestmark = pytest.mark.envoy

CODE = r"""
function envoy_on_request(h)
  local b = h:body()
  local t = h:trailers()
  h:logInfo("request body " .. tostring(b and b:length()) .. " trailers " .. tostring(t ~= nil))
end
function envoy_on_response(h)
  local b = h:body()
  local t = h:trailers()
  h:logInfo("response body " .. tostring(b and b:length()) .. " trailers " .. tostring(t ~= nil))
end
"""


def _app(req):
    """Reports the request trailers it got; answers trailers on /rt (with a body) and /rte (none)."""
    seen = ",".join(f"{k}={v}" for k, v in req.trailers) if req.trailers else "none"
    body = b"" if req.path == "/rte" else b"answer"
    trailers = HeaderMap([("x-upstream-trailer", "t1")]) if req.path.startswith("/rt") else None
    return Response(200, HeaderMap([("x-seen-trailers", seen)]), body, trailers)


REQUESTS = [
    Req("POST", "/t", b"hello", trailers=[("x-trailer", "tv")]),
    Req("POST", "/t", b"", trailers=[("x-trailer", "tv")]),
    Req("GET", "/rt"),
    Req("GET", "/rte"),
]


def _only_downstream(yaml: str) -> str:
    """``with_trailers`` for the HCM alone (the cluster keeps Envoy's default)."""
    return with_trailers(yaml).split("  clusters:")[0] + "  clusters:" + yaml.split("  clusters:")[1]


def _only_upstream(yaml: str) -> str:
    return yaml.split("  clusters:")[0] + "  clusters:" + with_trailers(yaml).split("  clusters:")[1]


@pytest.mark.parametrize("variant", ["default", "downstream", "upstream"])
def test_trailers_follow_enable_trailers(envoy_bin, variant):
    yaml = lua_config(CODE)
    yaml = {"default": yaml, "downstream": _only_downstream(yaml), "upstream": _only_upstream(yaml)}[variant]
    ours, _ = assert_both(yaml, REQUESTS, apps={"backend": _app})
    logs = ours.script_logs
    down, up = variant == "downstream", variant == "upstream"
    assert any(f"request body 5 trailers {str(down).lower()}" in ln for ln in logs), logs
    assert any(f"response body 6 trailers {str(up).lower()}" in ln for ln in logs), logs
    # what the client gets back needs both the cluster and the HCM: neither variant has both
    assert all(r.trailers is None for r in ours.responses)
    # the app sees request trailers only when both the HCM reads them and the cluster sends them
    assert [r.headers.get("x-seen-trailers") for r in ours.responses] == ["none"] * 4


def test_trailers_need_a_chunked_body(envoy_bin):
    """HTTP/1 trailers travel only after a chunked body: an upstream that answers with a
    ``content-length``, a 204 or a response to HEAD has none for Envoy to read, even with
    trailers enabled."""

    def app(req):
        trailers = HeaderMap([("x-upstream-trailer", "t1")])
        if req.path == "/204":
            return Response(204, HeaderMap(), b"", trailers)
        if req.path == "/head":
            return Response(200, HeaderMap(), b"answer", trailers)
        return Response(200, HeaderMap([("content-length", "6")]), b"answer", trailers)

    reqs = [Req("GET", "/"), Req("GET", "/204"), Req("HEAD", "/head")]
    ours, _ = assert_both(with_trailers(lua_config(CODE)), reqs, apps={"backend": app})
    assert any("response body 6 trailers false" in ln for ln in ours.script_logs), ours.script_logs
    assert all(r.trailers is None for r in ours.responses)


def test_a_chunked_body_without_trailer_lines_ends_with_data(envoy_bin):
    """With trailers enabled, a chunked request whose last chunk carries no trailer lines reaches
    the filters as body data ending the stream, not as an empty trailers map (Envoy's codec makes
    the trailers map only when a trailer line arrives)."""
    ours, _ = assert_both(
        _only_downstream(lua_config(CODE)),
        [Req("POST", "/t", b"hello", trailers=[]), Req("POST", "/t", b"", trailers=[])],
        apps={"backend": _app},
    )
    requests = [ln for ln in ours.script_logs if "request body" in ln]
    assert len(requests) == 2 and all("trailers false" in ln for ln in requests), requests
