"""What Envoy's HTTP/1 codec (``source/common/http/http1/``) decides about request methods,
measured on Envoy 1.40:

* downstream, its parser knows a fixed set of methods (those of the classic http-parser, all
  upper case); any other (``FOO``, ``get``, ``UPDATE``, ``M-SEARCH``...) is refused with the
  codec's ``400 Bad Request`` before any filter runs. ``CONNECT`` is left out here: Envoy
  accepts it only in authority form (``host:port``), which wasmlab does not route (a CONNECT
  with a path gets the same 400 as on Envoy);
* upstream, it refuses to write a request a filter broke -- no ``:method`` (or ``:path``), a
  header name that is not an RFC 7230 token, a value with CR, LF or NUL -- and the router
  answers 503 with the codec's message (:func:`request_error`);
* upstream, a request whose headers end the stream and carry no length gets
  ``content-length: 0`` at the end of its header block, unless its method is one that should
  not have a body (RFC 7230 section 3.3.2): GET, HEAD, DELETE, TRACE, CONNECT. (A request that
  may still get a body is sent chunked: the router does that.)"""

from __future__ import annotations

from .headers import HeaderMap

#: the methods Envoy's HTTP/1 parser accepts from a client (probed one by one on Envoy 1.40)
HTTP1_METHODS = frozenset(
    "ACL BIND CHECKOUT COPY DELETE GET HEAD LINK LOCK MERGE MKACTIVITY MKCALENDAR MKCOL MOVE NOTIFY"
    " OPTIONS PATCH POST PROPFIND PROPPATCH PURGE PUT REBIND REPORT SEARCH SOURCE SUBSCRIBE TRACE"
    " UNBIND UNLINK UNLOCK UNSUBSCRIBE".split()
)

#: methods whose bodiless requests go out without ``content-length: 0``
BODILESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "TRACE", "CONNECT"})


def frame_headers_only_request(method: str, headers: HeaderMap) -> None:
    """``content-length: 0`` for a headers-only request, as the codec writes it."""
    if method not in BODILESS_METHODS and "content-length" not in headers and "transfer-encoding" not in headers:
        headers.add("content-length", "0")


#: RFC 7230 ``tchar``: what a header name may be made of
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def request_error(headers: HeaderMap) -> str | None:
    """Why Envoy's HTTP/1 codec would refuse to write these request headers upstream, in its
    words (``missing required header: :method``, ``invalid header name: <name>``, ``invalid
    header value for: <name>``), or None."""
    method = headers.get(":method")
    if method is None:
        return "missing required header: :method"
    if method != "CONNECT" and headers.get(":path") is None:
        return "missing required header: :path"
    for name, value in headers:
        if name[:1] != ":" and not (name and _TOKEN.issuperset(name)):
            return f"invalid header name: {name}"
        if "\r" in value or "\n" in value or "\0" in value:
            return f"invalid header value for: {name}"
    return None
