"""Request and Response: what a client sends to the proxy and what it gets back.

``Request`` is also what an upstream app receives: the HTTP/1.1 request Envoy's router would send
(method, path after rewrites, headers without pseudo-headers with ``host`` taken from
``:authority``, body). ``Response`` is what comes back to the client: an int status, a
``HeaderMap`` without pseudo-headers, the body as bytes and (rarely) trailers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .headers import HeaderItems, HeaderMap


def _body_bytes(body: object, what: str = "body") -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    raise TypeError(f"{what} must be bytes or str, got {type(body).__name__}")


@dataclass
class Request:
    """An HTTP request as an upstream app sees it."""

    method: str
    path: str
    headers: HeaderMap = field(default_factory=HeaderMap)
    body: bytes = b""
    trailers: HeaderMap | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.headers, HeaderMap):
            self.headers = HeaderMap(self.headers)
        self.body = _body_bytes(self.body)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Response:
    """An HTTP response: ``status`` int, ``headers`` (no pseudo-headers), ``body`` bytes."""

    status: int
    headers: HeaderMap = field(default_factory=HeaderMap)
    body: bytes = b""
    trailers: HeaderMap | None = None
    #: Envoy's response code details (``via_upstream``, ``direct_response``, ``wasm_fail_stream``...)
    details: str = ""
    #: the stream that produced it (``proxy.views.timeline(stream=r.stream_id)``); None for a
    #: response an app or real Envoy made
    stream_id: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.headers, HeaderMap):
            self.headers = HeaderMap(self.headers)
        self.body = _body_bytes(self.body)
        if not isinstance(self.status, int) or isinstance(self.status, bool):
            raise TypeError(f"status must be an int, got {type(self.status).__name__}")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def to_dict(self) -> dict[str, Any]:
        """The CLI's JSON shape: body decoded as latin-1, headers as ``[[k, v], ...]``."""
        return {
            "status": self.status,
            "headers": self.headers.to_list(),
            "body": self.body.decode("latin-1"),
        }

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 60 else self.body[:57] + b"..."
        return f"<Response {self.status} headers={len(self.headers)} body={body!r}>"

    @classmethod
    def coerce(cls, value: object) -> Response:
        """Accept a Response or a ``(status, headers, body)`` tuple from an upstream app."""
        if isinstance(value, Response):
            return value
        if isinstance(value, tuple) and len(value) in (2, 3):
            status, headers, *rest = value
            return cls(int(status), HeaderMap(headers), rest[0] if rest else b"")
        raise TypeError(
            f"an upstream app must return a Response or a (status, headers, body) tuple, got {type(value).__name__}"
        )


def make_headers(headers: HeaderItems) -> HeaderMap:
    return headers if isinstance(headers, HeaderMap) else HeaderMap(headers)
