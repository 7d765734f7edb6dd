"""An in-process gRPC service: unary methods answered by Python functions.

A gRPC call is an HTTP request: ``POST /<package.Service>/<Method>`` with
``content-type: application/grpc``, a body of length-prefixed messages (one byte "compressed"
flag, four bytes big-endian length, the protobuf bytes) and the status in the ``grpc-status``
*trailer* of the response. :func:`grpc_unary_app` turns ``{"/pkg.Svc/Method": handler}`` into an
upstream app (a function from ``Request`` to ``Response``) that wasmlab's clusters and the
real-Envoy bridge's loopback servers both serve.

Where we simplify: a real gRPC server speaks HTTP/2. The bridge serves apps over HTTP/1.1 with
chunked bodies and trailers, which Envoy's gRPC client accepts when the cluster enables trailers
(``http_protocol_options: {enable_trailers: true}``); with ``http2_protocol_options`` real Envoy
would need an HTTP/2 server, which the bridge does not have. Messages are bytes; the two helpers
below encode and decode the one protobuf shape the lessons use (string fields).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from ..http import HeaderMap, Request, Response

GRPC_OK = 0
GRPC_NOT_FOUND = 5
GRPC_PERMISSION_DENIED = 7
GRPC_UNIMPLEMENTED = 12


class GrpcError(Exception):
    """Raised by a handler to answer a non-OK status (``grpc-status``/``grpc-message``)."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def frame(message: bytes) -> bytes:
    """One gRPC message on the wire: flag 0 (not compressed), big-endian length, bytes."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def unframe(body: bytes) -> list[bytes]:
    """The messages of a gRPC body."""
    out = []
    while len(body) >= 5:
        n = struct.unpack(">I", body[1:5])[0]
        out.append(body[5 : 5 + n])
        body = body[5 + n :]
    return out


def pb_string(field: int, text: str | bytes) -> bytes:
    """A protobuf string field: tag (field << 3 | 2), varint length, bytes (lengths < 128)."""
    data = text.encode() if isinstance(text, str) else text
    if len(data) > 127:
        raise ValueError("pb_string: this teaching encoder handles strings under 128 bytes")
    return bytes([field << 3 | 2, len(data)]) + data


def pb_strings(message: bytes) -> dict[int, str]:
    """Decode a message made only of short string fields: ``{field number: text}``."""
    out: dict[int, str] = {}
    i = 0
    while i + 2 <= len(message):
        tag, n = message[i], message[i + 1]
        if tag & 7 != 2 or n > 127:
            raise ValueError(f"pb_strings: not a short string field at byte {i}")
        out[tag >> 3] = message[i + 2 : i + 2 + n].decode(errors="replace")
        i += 2 + n
    return out


Handler = Callable[[bytes], bytes]


def grpc_unary_app(methods: dict[str, Handler]) -> Callable[[Request], Response]:
    """An upstream app serving unary gRPC ``methods`` (path -> handler of one message)."""

    def app(request: Request) -> Response:
        headers = HeaderMap([("content-type", "application/grpc")])
        handler = methods.get(request.path)
        if request.method != "POST" or handler is None:
            return _status(headers, GRPC_UNIMPLEMENTED, f"unknown method {request.path}")
        messages = unframe(request.body)
        try:
            reply = handler(messages[0] if messages else b"")
        except GrpcError as e:
            return _status(headers, e.status, e.message)
        return Response(200, headers, frame(reply), trailers=HeaderMap([("grpc-status", str(GRPC_OK))]))

    return app


def _status(headers: HeaderMap, status: int, message: str) -> Response:
    trailers = HeaderMap([("grpc-status", str(status)), ("grpc-message", message)])
    return Response(200, headers, b"", trailers=trailers)
