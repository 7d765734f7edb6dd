"""What Envoy's HTTP/1 codec (``source/common/http/http1/``) decides about request methods,
measured on Envoy 1.40:

* downstream, its parser knows a fixed set of methods (those of the classic http-parser, all
  upper case, and ``QUERY`` since Envoy 1.40); any other (``FOO``, ``get``, ``UPDATE``,
  ``M-SEARCH``...) is refused with the codec's ``400 Bad Request`` before any filter runs. A
  ``QUERY`` without a (non-empty) ``content-type`` is refused by the HCM instead, as RFC 10008
  requires: 400 with no body, details ``query_missing_content_type`` (:func:`query_refusal`).
  ``CONNECT`` is left out here: Envoy accepts it only in authority form (``host:port``), which
  wasmlab does not route (a CONNECT with a path gets the same 400 as on Envoy);
* upstream, it refuses to write a request a filter broke -- no ``:method`` (or ``:path``), a
  header name that is not an RFC 7230 token, a value with a control character other than tab
  -- and the router (or the async client of a callout) answers 503 with the codec's message
  (:func:`copy_for_upstream`);
* upstream, a request whose headers end the stream and carry no length gets
  ``content-length: 0`` at the end of its header block, unless its method is one that should
  not have a body (RFC 7230 section 3.3.2): GET, HEAD, DELETE, TRACE, CONNECT. (A request that
  may still get a body is sent chunked: the router does that.)"""

from __future__ import annotations

import re

from .headers import HeaderMap

#: the methods Envoy's HTTP/1 parser accepts from a client (probed one by one on Envoy 1.40)
HTTP1_METHODS = frozenset(
    "ACL BIND CHECKOUT COPY DELETE GET HEAD LINK LOCK MERGE MKACTIVITY MKCALENDAR MKCOL MOVE NOTIFY"
    " OPTIONS PATCH POST PROPFIND PROPPATCH PURGE PUT QUERY REBIND REPORT SEARCH SOURCE SUBSCRIBE TRACE"
    " UNBIND UNLINK UNLOCK UNSUBSCRIBE".split()
)


def codec_error_details(method: str, path: str) -> str:
    """The response code details of the codec's 400 for a request line it refuses (measured on
    Envoy 1.40): ``http1.invalid_url`` for a ``CONNECT`` with a path, ``http1.invalid_characters``
    for a control character in the path, else ``http1.codec_error`` (an unknown method, a byte
    outside ASCII in the path)."""
    if method == "CONNECT":
        return "http1.invalid_url"
    if method in HTTP1_METHODS and path.isascii() and not path.isprintable():
        return "http1.invalid_characters"
    return "http1.codec_error"


def query_refusal(method: str, headers: HeaderMap) -> str | None:
    """Envoy 1.40 refuses a ``QUERY`` request without ``content-type`` (an empty one counts as
    none; measured) before any filter runs: the details of its 400, or None."""
    if method == "QUERY" and not headers.get("content-type"):
        return "query_missing_content_type"
    return None


#: methods whose bodiless requests go out without ``content-length: 0``
BODILESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "TRACE", "CONNECT"})


def frame_headers_only_request(method: str, headers: HeaderMap) -> None:
    """``content-length: 0`` for a headers-only request, as the codec writes it."""
    if method not in BODILESS_METHODS and "content-length" not in headers and "transfer-encoding" not in headers:
        headers.add("content-length", "0")


#: RFC 7230 ``tchar``: what a header name may be made of (Envoy writes an empty name as it is)
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
#: what a header value may not hold: control characters other than tab (nghttp2's rule)
_BAD_VALUE = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
#: names already checked (they repeat from request to request): name -> valid
_NAME_OK: dict[str, bool] = {}


def _name_ok(name: str) -> bool:
    ok = _NAME_OK.get(name)
    if ok is None:
        ok = not name or _TOKEN.issuperset(name)
        if len(_NAME_OK) < 4096:
            _NAME_OK[name] = ok
    return ok


def _c_escape(text: str) -> str:
    """A name as Envoy's messages show it (``absl::CEscape``: ``\\t``, ``\\n``, octal)."""
    named = {"\t": "\\t", "\n": "\\n", "\r": "\\r", '"': '\\"', "'": "\\'", "\\": "\\\\"}
    return "".join(named.get(c) or (c if " " <= c < "\x7f" else f"\\{ord(c) & 0xFF:03o}") for c in text)


def copy_for_upstream(headers: HeaderMap, out: HeaderMap) -> str | None:
    """Add ``headers``' regular headers to ``out`` as the app reads them off the wire (values
    without the spaces and tabs around them, RFC 7230 OWS), checking what Envoy's HTTP/1
    codec checks before it writes a request (``checkRequiredRequestHeaders``, then
    ``checkValidRequestHeaders``). Returns its refusal, in its words, or None: ``missing
    required header: :method`` (or ``:path``), ``invalid header name: <name>``, ``invalid
    header value for: <name>``. One pass over the headers: this runs for every request."""
    method = path = False
    invalid = None
    for name, value in headers:
        if name[:1] == ":":
            if name == ":method":
                method = True
            elif name == ":path":
                path = True
            continue
        if invalid is None:
            if not _name_ok(name):
                invalid = f"invalid header name: {_c_escape(name)}"
            elif not value.isprintable() and _BAD_VALUE.search(value) is not None:
                invalid = f"invalid header value for: {_c_escape(name)}"
        out.add(name, value.strip(" \t"))
    if not method:
        return "missing required header: :method"
    if not path and headers.get(":method") != "CONNECT":
        return "missing required header: :path"
    return invalid
