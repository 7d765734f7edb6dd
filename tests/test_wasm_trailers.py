"""Proxy-Wasm trailer callbacks against real Envoy 1.40: ``proxy_on_request_trailers`` and
``proxy_on_response_trailers`` run only when the HTTP/1 codec passes trailers
(``enable_trailers`` on the HCM, resp. on the cluster); otherwise the body callbacks end with an
empty end-of-stream call. Compared on the wasm:trace lines (every callback and its arguments).
"""

from __future__ import annotations

import pytest
from wat_plugin import plugin_wat

from wasm_diff import assert_same_run, plugin_yaml, run_both
from wasmlab.http import HeaderMap, Response

pytestmark = pytest.mark.envoy


#: a module that answers every stream callback with Continue (and starts and configures fine)
BODIES = {
    "proxy_on_vm_start": "(return (i32.const 1))",
    "proxy_on_configure": "(return (i32.const 1))",
    "proxy_on_context_create": "",
    **{f"proxy_on_{d}_{part}": "" for d in ("request", "response") for part in ("headers", "body", "trailers")},
}


def _app(req):
    return Response(200, HeaderMap(), b"answer", HeaderMap([("x-upstream-trailer", "t1")]))


@pytest.mark.parametrize("enabled", [False, True], ids=["default", "enable_trailers"])
def test_wasm_trailer_callbacks_follow_enable_trailers(envoy_bin, tmp_path, enabled):
    import wasmtime

    wasm = tmp_path / "p.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(plugin_wat(BODIES)))
    yaml = plugin_yaml(wasm, trailers=enabled)
    requests = [{"method": "POST", "path": "/t", "body": b"hello", "trailers": [("x-trailer", "tv")]}]
    ours, theirs, lines = run_both(yaml, requests, apps={"backend": _app})
    assert_same_run(ours, theirs, lines)
    mine = "\n".join(lines["worker_0"][0])
    assert "proxy_on_request_body" in mine
    assert ("proxy_on_request_trailers" in mine) is enabled
    assert ("proxy_on_response_trailers" in mine) is enabled
