"""What Envoy's gRPC helpers decide about plain HTTP messages (``source/common/grpc/common.cc``,
``source/common/grpc/status.cc``, ``Http::Utility::PercentEncoding``).

* a request is gRPC when it has a ``:path`` and its ``content-type`` is exactly
  ``application/grpc`` or starts with ``application/grpc+`` (``application/grpc-web`` is not);
* an HTTP status without a ``grpc-status`` maps to a gRPC status (``httpToGrpcStatus``);
* a ``grpc-message`` header carries text percent-encoded: bytes below space, from ``~`` up,
  and ``%`` itself become ``%XX``.
"""

from __future__ import annotations

from .headers import HeaderMap

GRPC_CONTENT_TYPE = "application/grpc"

#: Envoy's ``Grpc::Utility::httpToGrpcStatus``; any other status is 2 (Unknown)
_HTTP_TO_GRPC = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}


def is_grpc_request(headers: HeaderMap | None) -> bool:
    """Envoy ``Grpc::Common::isGrpcRequestHeaders``."""
    if headers is None or ":path" not in headers:
        return False
    ct = headers.get("content-type") or ""
    return ct == GRPC_CONTENT_TYPE or ct.startswith(GRPC_CONTENT_TYPE + "+")


def http_to_grpc_status(code: int) -> int:
    """Envoy ``Grpc::Utility::httpToGrpcStatus``."""
    return _HTTP_TO_GRPC.get(code, 2)


def percent_encode_message(text: bytes) -> str:
    """Envoy ``Http::Utility::PercentEncoding::encode`` with ``%`` reserved (a ``grpc-message``)."""
    return "".join(chr(b) if 0x20 <= b < 0x7E and b != 0x25 else f"%{b:02X}" for b in text)
