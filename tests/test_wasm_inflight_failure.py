"""A stream that began before its VM failed: its later callbacks meet the failed VM.

Envoy checks the plugin's failed state before anything else in every stream callback
(``CHECK_FAIL_HTTP``: ``failStream``, then return), so whether the module exports the callback
does not matter any more. wasmlab frees a failed VM's Store when the next stream finds it
(``WasmVm.release``), which empties the VM's live exports; the stream already in flight must still
be failed, not let through as if the module exported nothing.

Timeline, one worker, FAIL_CLOSED: S1 ``/slow`` passes its request headers and waits on the
upstream (held by the test), ``/trap`` traps (the second call of ``proxy_on_request_headers``),
``/ok`` finds the failed VM (503; wasmlab frees the Store here), then S1's response arrives.
"""

from __future__ import annotations

import gc
import threading
from typing import Any

import pytest
import wasmtime
from wat_plugin import plugin_wat

from helpers import assert_same
from wasm_diff import plugin_yaml
from wasmlab import Proxy
from wasmlab import envoy as real
from wasmlab.host.upstream import Response
from wasmlab.proxywasm.vm import Trapped, WasmVm

#: traps in proxy_on_request_headers from its second call on (address 800 is a free flag)
SECOND_TRAPS = "(if (i32.load (i32.const 800)) (then unreachable)) (i32.store (i32.const 800) (i32.const 1))"
VARIANTS: dict[str, dict[str, str]] = {
    # S1's response headers reach the failed VM: 503 wasm_fail_stream (the response has not started)
    "response_headers": {"proxy_on_request_headers": SECOND_TRAPS, "proxy_on_response_headers": ""},
    # only a body callback: Envoy still fails S1 at its response headers (the failed check comes
    # before the export check), so the body is never let through either
    "response_body_only": {"proxy_on_request_headers": SECOND_TRAPS, "proxy_on_response_body": ""},
}


def _config(tmp_path: Any, variant: str) -> str:
    path = tmp_path / f"{variant}.wasm"
    path.write_bytes(wasmtime.wat2wasm(plugin_wat(VARIANTS[variant])))
    return plugin_yaml(path, failure_policy="FAIL_CLOSED")


def _outcome(fn: Any, path: str) -> Any:
    try:
        return fn("GET", path, timeout=10)
    except Exception as e:  # a reset stream is an answer
        return f"error {type(e).__name__}"


def _run(target: Any, entered: threading.Event, gate: threading.Event) -> list[Any]:
    """S1 held on the upstream, then /trap and /ok, then S1's response is let go."""
    first: list[Any] = []
    t = threading.Thread(target=lambda: first.append(_outcome(target.request, "/slow")))
    t.start()
    assert entered.wait(10), "S1 never reached the upstream"
    later = [_outcome(target.request, "/trap"), _outcome(target.request, "/ok")]
    gate.set()
    t.join(15)
    assert first, "S1 got no answer"
    return [first[0], *later]


def _held_upstream(entered: threading.Event, gate: threading.Event) -> Any:
    def app(request: Any) -> Response:
        if request.path == "/slow":
            entered.set()
            gate.wait(10)
        return Response(200, [("content-type", "text/plain")], b"upstream body\n")

    return app


def _ours(config: str) -> tuple[list[Any], list[str]]:
    entered, gate = threading.Event(), threading.Event()
    with Proxy.from_yaml(config, workers=1, upstreams={"backend": _held_upstream(entered, gate)}) as p:
        return _run(p, entered, gate), p.logs


def _status(r: Any) -> Any:
    return r if isinstance(r, str) else (r.status, r.details)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_stream_in_flight_is_failed_by_the_released_vm(tmp_path, variant):
    got, logs = _ours(_config(tmp_path, variant))
    failed = (503, "wasm_fail_stream")
    assert [_status(r) for r in got] == [failed, failed, failed], "S1 was let through"
    assert got[0].body == b""
    assert sum("Function: proxy_on_request_headers failed" in ln for ln in logs) == 1


def test_a_released_vm_still_knows_its_exports_and_refuses_calls(tmp_path):
    """After ``release`` the live exports are gone (nothing can jump into the freed Store), but
    what the module exports still comes from its info, and a call raises ``Trapped``."""
    with Proxy.from_yaml(_config(tmp_path, "response_headers"), workers=1) as p:
        assert [p.request("GET", path).status for path in ("/a", "/trap", "/ok")] == [200, 503, 503]
        vms = [
            o for o in gc.get_objects() if isinstance(o, WasmVm) and o.proxy is p._server and o.failed and o.released
        ]
        assert len(vms) == 1, "the failed VM was released when /ok found it"
        vm = vms[0]
        assert vm.funcs == {}
        assert vm.exports("proxy_on_response_headers") and not vm.exports("proxy_on_request_body")
        assert vm.runs("proxy_on_request_body"), "a failed VM fails every stream callback"
        for name in ("proxy_on_response_headers", "proxy_on_request_body"):
            with pytest.raises(Trapped):
                vm.call(None, name, 1, 0, 0)


@pytest.mark.envoy
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_stream_in_flight_across_a_trap_matches_envoy(envoy_bin, tmp_path, variant):
    config = _config(tmp_path, variant)
    ours, _ = _ours(config)
    entered, gate = threading.Event(), threading.Event()
    e = real.run(config, workers=1, apps={"backend": _held_upstream(entered, gate)})
    try:
        theirs = _run(e, entered, gate)
    finally:
        gate.set()
        e.close()
    e.__exit__(None, None, None)
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if isinstance(a, str) or isinstance(b, str):
            assert isinstance(a, str) and isinstance(b, str), f"request {i}: {a!r} vs {_status(b)!r}"
            continue
        assert_same(a, b, f"request {i}")
