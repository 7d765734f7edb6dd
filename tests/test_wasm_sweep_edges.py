"""Proxy-Wasm host calls at their edges, on wasmlab and real Envoy 1.40 (the probes of
:mod:`wasm_probe`, compared by :mod:`wasm_diff`): what a module sees of a local reply it sent
with empty details, of a callout's response without trailers, and what a callout's upstream
receives when the module's headers carry their own ``content-length``.

Each test failed on wasmlab before its fix; the docstrings say what wasmlab answered then.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_wasm_sweep import _config
from wasm_probe import buf, hdr, hpairs, hsize, http_call, local, prop

from wasm_diff import assert_same_run, run_both
from wasmlab import Response
from wasmlab.http import HeaderMap

GET = {"method": "GET", "path": "/x", "timeout": 5}


def _worker_logs(lines: dict[str, tuple[list[str], list[str]]]) -> list[str]:
    """wasmlab's ``wasm log`` lines on the worker (equal to Envoy's once the run compared)."""
    return [ln for ln in lines["worker_0"][0] if ln.startswith("wasm log")]


# ---- local replies ----------------------------------------------------------------------------------
EMPTY_DETAILS = {
    "proxy_on_request_headers": [local(403, "", "denied")],
    "proxy_on_log": [prop("response.code_details"), prop("response.code")],
}


@pytest.mark.envoy
def test_a_local_reply_with_empty_details_has_found_empty_details_like_envoy(envoy_bin, tmp_path):
    """Envoy sets the stream's response code details to what the module gave, empty too:
    ``response.code_details`` is then found with no bytes (wasmlab answered NOT_FOUND, as for
    details never set)."""
    ours, theirs, lines = run_both(_config(tmp_path, EMPTY_DETAILS), [GET])
    assert_same_run(ours, theirs, lines)
    assert any("prop response.code_details rc=0 len=0" in ln for ln in _worker_logs(lines))


# ---- http callouts ----------------------------------------------------------------------------------
def _callout_app(request: Any) -> Response:
    """A callout upstream that answers with trailers (kept when the cluster enables them)."""
    headers = HeaderMap([("content-type", "text/plain")])
    return Response(200, headers, b"callout body", HeaderMap([("x-t", "1")]))


CALLOUT_TRAILERS = {
    "proxy_on_request_headers": [http_call("backend", [(":method", "GET"), (":path", "/c"), (":authority", "cb")])],
    "proxy_on_http_call_response": [hpairs(7), hsize(7), hdr(7, "x-t"), hdr(7, "nosuch"), buf(4, 0, 100)],
}


@pytest.mark.envoy
@pytest.mark.parametrize("trailers", [False, True], ids=["no_trailers", "trailers"])
def test_a_callout_response_without_trailers_has_no_trailer_map_like_envoy(envoy_bin, tmp_path, trailers):
    """Without trailers (HTTP/1 drops them unless the cluster enables them) Envoy has no trailer
    map: its pairs read as empty, a value's lookup is BAD_ARGUMENT (wasmlab answered NOT_FOUND
    from an empty map). With trailers, the lookup finds them, a missing name NOT_FOUND."""
    config = _config(tmp_path, CALLOUT_TRAILERS, trailers=trailers)
    ours, theirs, lines = run_both(config, [GET], apps={"backend": _callout_app}, settle=0.5)
    assert_same_run(ours, theirs, lines)
    want = 'hdr 7 x-t rc=0 len=1 "1"' if trailers else "hdr 7 x-t rc=2 len=0"
    assert any(want in ln for ln in _worker_logs(lines))


CALLOUT_LENGTH = [(":method", "POST"), (":path", "/c"), (":authority", "cb"), ("content-length", "99"), ("x-a", "1")]


@pytest.mark.envoy
def test_a_callout_body_sets_the_content_length_like_envoy(envoy_bin, tmp_path):
    """Envoy sets ``content-length`` from the body over the one the module's headers gave (in
    its place); wasmlab sent the module's 99 with a 3-byte body. ``run_both`` compares what the
    callout's upstream received."""
    callbacks = {"proxy_on_request_headers": [http_call("backend", CALLOUT_LENGTH, body=b"abc")]}
    ours, theirs, lines = run_both(_config(tmp_path, callbacks), [GET], settle=0.5)
    assert_same_run(ours, theirs, lines)
