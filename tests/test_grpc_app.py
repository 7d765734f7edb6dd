"""The in-process gRPC service helper (host/grpc_app.py): framing, the two protobuf helpers and
the statuses a unary app answers."""

from __future__ import annotations

import pytest

from wasmlab.host.grpc_app import GrpcError, frame, grpc_unary_app, pb_string, pb_strings, unframe
from wasmlab.http import HeaderMap, Request


def _post(path: str, message: bytes) -> Request:
    return Request("POST", path, HeaderMap([("content-type", "application/grpc")]), frame(message))


def test_frames_and_strings_round_trip():
    msg = pb_string(1, "alice") + pb_string(2, "x")
    assert msg[:2] == b"\x0a\x05" and pb_strings(msg) == {1: "alice", 2: "x"}
    assert unframe(frame(b"ab") + frame(b"")) == [b"ab", b""]
    with pytest.raises(ValueError):
        pb_strings(b"\x08\x01")  # a varint field: not what these helpers decode


def test_unary_app_answers_ok_error_and_unknown_method():
    def check(message: bytes) -> bytes:
        if pb_strings(message)[1] == "eve":
            raise GrpcError(7, "blocked")
        return pb_string(1, "allow")

    app = grpc_unary_app({"/wasmlab.Quota/Check": check})
    ok = app(_post("/wasmlab.Quota/Check", pb_string(1, "alice")))
    assert ok.status == 200 and unframe(ok.body) == [pb_string(1, "allow")]
    assert dict(ok.trailers)["grpc-status"] == "0"
    denied = app(_post("/wasmlab.Quota/Check", pb_string(1, "eve")))
    assert denied.body == b"" and dict(denied.trailers) == {"grpc-status": "7", "grpc-message": "blocked"}
    unknown = app(_post("/wasmlab.Quota/Other", b""))
    assert dict(unknown.trailers)["grpc-status"] == "12"
