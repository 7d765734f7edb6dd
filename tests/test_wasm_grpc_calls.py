"""Proxy-Wasm unary gRPC calls (``proxy_grpc_call``) on wasmlab and real Envoy 1.40: what the
gRPC upstream receives (headers in Envoy's order, ``grpc-timeout``, a chunked body, no
``x-forwarded-for``) and what the module sees of each kind of answer — the callback, the
status, the message ``proxy_get_status`` reads, the reply in the gRPC receive buffer.

Before this file wasmlab sent ``content-length`` and ``x-forwarded-for`` and no
``grpc-timeout``, kept the first of several messages, mapped a non-200 answer's status from
HTTP even when it carried ``grpc-status``, and gave messages without the call's details
(Envoy: ``grpc-message{via_upstream}``, the details alone when there is no message).
"""

from __future__ import annotations

import struct
import time
from typing import Any

import pytest
import wasmtime
from wasm_probe import OUT, Op, buf, buf_status, hpairs, probe_wat, status

from wasm_diff import assert_same_run, plugin_yaml, run_both
from wasmlab import Response
from wasmlab.proxywasm import pairs

GET = {"method": "GET", "path": "/x", "timeout": 5}
TRAILERS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
GRPC_CLUSTER = (
    "  clusters:\n  - name: grpc\n    type: STATIC\n"
    f"    typed_extension_protocol_options: {{{TRAILERS}: {{'@type': type.googleapis.com/{TRAILERS}, "
    "explicit_http_config: {http_protocol_options: {enable_trailers: true}}}}\n"
    "    load_assignment: {cluster_name: grpc, endpoints: "
    "[{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9000}}}}]}]}\n"
)


def _frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


GRPC = {"content-type": "application/grpc"}
#: the request's message -> how the app answers it
ANSWERS: dict[bytes, Any] = {
    b"ok": lambda: Response(200, {**GRPC, "x-init": "i"}, _frame(b"pong"), trailers=[("grpc-status", "0")]),
    b"two": lambda: Response(200, GRPC, _frame(b"hi") + _frame(b"yo"), trailers=[("grpc-status", "0")]),
    b"error": lambda: Response(200, GRPC, b"", trailers=[("grpc-status", "5"), ("grpc-message", "not%20found")]),
    b"trailers_only": lambda: Response(200, {**GRPC, "grpc-status": "7", "grpc-message": "denied"}, b""),
    b"http_503": lambda: Response(503, {"content-type": "text/plain"}, b"down"),
    b"http_404_with_status": lambda: Response(404, {**GRPC, "grpc-status": "9", "grpc-message": "fp"}, b""),
    b"no_status": lambda: Response(200, GRPC, b"", trailers=[("x", "y")]),
    b"no_message": lambda: Response(200, GRPC, b"", trailers=[("grpc-status", "0")]),
}


def _app(request: Any) -> Response:
    message = request.body[5:]
    if message == b"slow":
        time.sleep(1.0)
        message = b"ok"
    return ANSWERS[message]()


def _grpc_call(message: bytes, timeout_ms: int) -> Op:
    metadata = pairs.encode([("x-md", "1"), ("X-Up", "U")])
    args = [b"grpc", b"pkg.Echo", b"Say", metadata, message, timeout_ms, OUT]
    return Op(f"grpc_call {message.decode()}", "proxy_grpc_call", args, ["u32"])


def _config(tmp_path: Any, message: bytes, timeout_ms: int) -> str:
    callbacks = {
        "proxy_on_request_headers": [_grpc_call(message, timeout_ms)],
        "proxy_on_grpc_receive": [buf(5, 0, 100), buf_status(5), hpairs(4)],
        "proxy_on_grpc_close": [status(), buf(5, 0, 10), hpairs(5)],
    }
    wasm = tmp_path / "grpc_probe.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(probe_wat(callbacks)))
    return plugin_yaml(wasm).replace("  clusters:\n", GRPC_CLUSTER)


CASES = {
    **{name.decode(): (name, 2000, True) for name in ANSWERS},
    "timeout": (b"slow", 300, True),
    "no_timeout": (b"no_message", 0, True),  # grpc-timeout: 0m
    "nothing_listening": (b"ok", 2000, False),
}


@pytest.mark.envoy
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_grpc_call_and_its_answer_like_envoy(envoy_bin, tmp_path, case):
    message, timeout_ms, served = CASES[case]
    apps = {"grpc": _app if served else None}
    ours, theirs, lines = run_both(_config(tmp_path, message, timeout_ms), [GET], apps=apps, settle=1.2)
    assert_same_run(ours, theirs, lines)
