"""What Envoy's ``ConnectionManagerUtility::mutateRequestHeaders`` does to a request's
client-address and ``x-envoy-*`` headers before the filter chain sees it (measured on Envoy 1.40).

* ``x-envoy-internal`` from the client is always removed. A request is *internal* when its one
  client address is in ``internal_address_config.cidr_ranges``: without ``use_remote_address``
  that address is a lone ``x-forwarded-for`` entry (no comma, no trusted hop); with it, the
  connection's peer, and only if the client sent no ``x-forwarded-for``. Without
  ``internal_address_config`` Envoy 1.40 treats no address as internal (a loopback client is
  external). An internal request gets ``x-envoy-internal: true`` (after ``x-forwarded-proto``)
  and keeps every ``x-envoy-*`` header it sent.
* Every *external* request loses the headers only Envoy may set (``cleanInternalHeaders``):
  ``x-envoy-force-trace``, ``x-envoy-ip-tags``, ``x-envoy-original-url``, the retry, timeout,
  hedging and alt-stat-name headers, and the route configuration's ``internal_only_headers``;
  an *edge* request (external at ``use_remote_address: true``) also loses
  ``x-envoy-decorator-operation``, ``x-envoy-downstream-service-cluster``/``-node``,
  ``x-envoy-original-path`` and ``x-envoy-original-host``.
* ``x-forwarded-client-cert`` goes unless ``forward_client_cert_details`` is
  ``ALWAYS_FORWARD_ONLY`` (the other modes keep or set it only on mutual TLS, which wasmlab
  does not have).
* ``use_remote_address: true`` (an edge proxy): the downstream address is appended to
  ``x-forwarded-for`` — for a client on loopback, the machine's own address (``LocalInfo``)
  instead — unless ``skip_xff_append``; the client address is the connection's, or with
  ``xff_num_trusted_hops: N`` the N-th address from the right of the client's
  ``x-forwarded-for``; ``x-envoy-external-address`` carries it for an edge request;
  ``x-forwarded-proto`` is overwritten with the connection's scheme when no hop is trusted.
* Without ``use_remote_address`` nothing is appended (Envoy trusts the client's
  ``x-forwarded-for``).
"""

from __future__ import annotations

import ipaddress
import random
import time
from typing import Any

from ..config.node import HcmHeaderOptions
from ..http import HeaderMap
from ..http.stream_info import StreamInfo
from .local_info import local_address

#: ``cleanInternalHeaders``: what no external client may send
EXTERNAL_STRIPPED_HEADERS = (
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-ip-tags",
    "x-envoy-max-retries",
    "x-envoy-original-url",
    "x-envoy-retriable-header-names",
    "x-envoy-retriable-status-codes",
    "x-envoy-retry-grpc-on",
    "x-envoy-retry-on",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-upstream-rq-timeout-ms",
)
#: ``cleanInternalHeaders`` with ``edge_request``: what an external client may not send to an
#: edge Envoy, besides the above (``x-envoy-original-host`` measured on Envoy 1.40)
EDGE_STRIPPED_HEADERS = (
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
    "x-envoy-original-host",
    "x-envoy-original-path",
)


#: every header :func:`_sanitize` may remove
_SANITIZED = frozenset((*EXTERNAL_STRIPPED_HEADERS, *EDGE_STRIPPED_HEADERS, "x-forwarded-client-cert"))
_HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-connection", "upgrade", "te"))
#: every client header :func:`mutate_client_address` may remove
_CHECKED = _SANITIZED | _HOP_BY_HOP | {"x-envoy-internal"}


def set_inline(headers: HeaderMap, name: str, value: str) -> None:
    """Set a header Envoy keeps as an inline header: an existing one keeps its place."""
    if name not in headers:
        headers.add(name, value)
        return
    first = True
    out = []
    for k, v in headers:
        if k == name:
            if first:
                out.append((k, value))
            first = False
        else:
            out.append((k, v))
    headers.clear()
    for k, v in out:
        headers.add(k, v)


def append_xff(headers: HeaderMap, address: str) -> None:
    """Envoy's ``Utility::appendXff``: add ``address`` to ``x-forwarded-for`` (``,``-joined)."""
    old = headers.get("x-forwarded-for")
    set_inline(headers, "x-forwarded-for", f"{old},{address}" if old else address)


def append_via(headers: HeaderMap, via: str) -> None:
    """Envoy's ``Utility::appendVia`` (the HCM's ``via``, on requests and responses): ``, ``-joined."""
    old = headers.get("via")
    set_inline(headers, "via", f"{old}, {via}" if old else via)


def xff_entries(headers: HeaderMap) -> list[str]:
    """The comma-separated entries of ``x-forwarded-for``, empty ones kept: ``"10.1.2.3,"`` has
    two entries, the last one no address (Envoy's ``getLastAddressFromXFF``, measured)."""
    value = headers.get("x-forwarded-for")
    if not value:
        return []
    return [p.strip() for p in value.split(",")]


_REQUEST_HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-connection", "upgrade"))


def clean_hop_by_hop(headers: HeaderMap) -> None:
    """The hop-by-hop headers Envoy drops from a request before the filters see it:
    ``connection``, ``keep-alive``, ``proxy-connection``, ``upgrade`` (a non-upgrade request), and
    ``te`` unless it names ``trailers`` (then it becomes exactly ``trailers``)."""
    if not _REQUEST_HOP_BY_HOP.isdisjoint(headers.keys()):  # (most requests have none of them)
        for name in _REQUEST_HOP_BY_HOP:
            headers.remove(name)
    te = headers.get("te")
    if te is not None:
        if "trailers" in [t.strip().lower() for t in te.split(",")]:
            set_inline(headers, "te", "trailers")
        else:
            headers.remove("te")


def mutate_client_address(headers: HeaderMap, opts: HcmHeaderOptions, info: StreamInfo) -> str | None:
    """Apply the client-address rules to ``headers`` (``x-forwarded-proto`` not yet added);
    returns the address Envoy takes as the client's, or None for an internal request (then
    :func:`add_external_address` marks it). Without ``use_remote_address``, Envoy's
    original-IP detection takes the client from ``x-forwarded-for`` (the entry
    ``xff_num_trusted_hops`` from the right, if it is an IP address): the stream's
    ``downstream_remote_address`` becomes that IP with port 0; the connection's peer stays the
    *direct* remote address. With ``use_remote_address`` and ``xff_num_trusted_hops`` N > 0,
    the N-th entry from the right (before Envoy appends its own) is the client the same way."""
    remote_ip = info.downstream_direct_remote_address.rsplit(":", 1)[0]
    # speed: one C-level pass over the client's header names finds the few this function may
    # remove (usually none), instead of a scan of the headers for each
    present = _CHECKED.intersection(headers.keys())
    if present:
        if not present.isdisjoint(_HOP_BY_HOP):
            clean_hop_by_hop(headers)
        if "x-envoy-internal" in present:
            headers.remove("x-envoy-internal")
    hops = opts.xff_num_trusted_hops
    if not opts.use_remote_address:
        entries = xff_entries(headers)
        client = remote_ip
        # Envoy's getLastAddressFromXFF: one address only when the header has no comma
        single = len(entries) == 1 and hops == 0
        if len(entries) > hops:
            client = entries[-1 - hops]
            detected = _ip_port_0(client)
            if detected is not None:
                info.downstream_remote_address = detected
            else:
                single = False  # no address: the request cannot be internal
        else:
            single = False
    else:
        single = "x-forwarded-for" not in headers
        client = remote_ip
        if hops > 0:
            entries = xff_entries(headers)
            detected = _ip_port_0(entries[-hops]) if len(entries) >= hops else None
            if detected is not None:  # (an entry that is no IP address leaves the connection's)
                client = entries[-hops]
                info.downstream_remote_address = detected  # the stream's client, as above
        if not opts.skip_xff_append:
            appended = local_address() if remote_ip.startswith("127.") else remote_ip
            append_xff(headers, appended)
        if hops == 0:
            # an edge Envoy trusting no hop does not trust the client's scheme either (measured:
            # with xff_num_trusted_hops > 0 the client's x-forwarded-proto is kept)
            set_inline(headers, "x-forwarded-proto", "http")
    internal = single and _in_ranges(client, opts.internal_ranges)
    if present and not present.isdisjoint(_SANITIZED):
        _sanitize(headers, opts, internal)
    if not internal:
        for name in opts.internal_only_headers:
            headers.remove(name)
    return None if internal else client


def _sanitize(headers: HeaderMap, opts: HcmHeaderOptions, internal: bool) -> None:
    """``x-forwarded-client-cert`` unless ``ALWAYS_FORWARD_ONLY``; for an external request the
    ``x-envoy-*`` headers only Envoy may set (more of them at an edge)."""
    if opts.forward_client_cert != "ALWAYS_FORWARD_ONLY":
        headers.remove("x-forwarded-client-cert")
    if not internal:
        for name in EDGE_STRIPPED_HEADERS if opts.use_remote_address else ():
            headers.remove(name)
        for name in EXTERNAL_STRIPPED_HEADERS:
            headers.remove(name)


def _in_ranges(address: str, ranges: tuple[Any, ...]) -> bool:
    """Envoy's ``isInternalAddress`` with an ``internal_address_config``: in one of its ranges."""
    if not ranges:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == r.version and ip in r for r in ranges)


def _ip_port_0(text: str) -> str | None:
    """``ip:0`` (``[ip]:0`` for IPv6) if ``text`` is an IP address, else None."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return f"[{ip}]:0" if ip.version == 6 else f"{ip}:0"


def add_external_address(headers: HeaderMap, opts: HcmHeaderOptions, client: str | None) -> None:
    """``x-envoy-internal: true`` for an internal request (``client`` None), else
    ``x-envoy-external-address`` for an external request at an edge Envoy (both after
    ``x-forwarded-proto``, as Envoy orders them)."""
    if client is None:
        headers.add("x-envoy-internal", "true")
    elif opts.use_remote_address:
        set_inline(headers, "x-envoy-external-address", client)


def add_user_agent(headers: HeaderMap, cluster: str, node_id: str = "") -> None:
    """``add_user_agent``: ``x-envoy-downstream-service-cluster`` is the node's cluster, and so
    is ``user-agent`` when the client sent none (or an empty one); then
    ``x-envoy-downstream-service-node`` is the node's id, when the bootstrap names one."""
    set_inline(headers, "x-envoy-downstream-service-cluster", cluster)
    if not headers.get("user-agent"):
        set_inline(headers, "user-agent", cluster)
    if node_id:
        set_inline(headers, "x-envoy-downstream-service-node", node_id)


# ---- host and path (ConnectionManagerUtility::maybeNormalizeHost / maybeNormalizePath) -----------
def _host_and_port(host: str) -> tuple[str, str]:
    """``host:port`` split before its ``:port`` (``("example.com", ":80")``; ``("h", "")``
    without a numeric port; an IPv6 literal keeps its brackets)."""
    colon = host.rfind("]:") + 1 if host.startswith("[") else host.rfind(":")
    if colon <= 0 or not host[colon + 1 :].isdigit():
        return host, ""
    return host[:colon], host[colon:]


def strip_trailing_host_dot(headers: HeaderMap) -> None:
    """``strip_trailing_host_dot``: one trailing dot of the host name goes, its port stays
    (``example.com.:80`` is ``example.com:80``; measured on Envoy 1.40). Here the port is
    whatever follows the last ``:`` outside an IPv6 literal's brackets, numeric or not (Envoy's
    ``HeaderUtility::getPortStart``)."""
    host = headers.get(":authority") or ""
    colon = host.rfind(":")
    if colon < 0 or host.rfind("]") > colon:
        colon = len(host)
    name, port = host[:colon], host[colon:]
    if name.endswith("."):
        set_inline(headers, ":authority", name[:-1] + port)


def strip_host_port(headers: HeaderMap, mode: str, listener_port: int) -> None:
    """``strip_any_host_port`` drops any port from ``:authority``; ``strip_matching_host_port``
    only the listener's own port (an IPv6 literal keeps its brackets)."""
    name, port = _host_and_port(headers.get(":authority") or "")
    if port and (mode == "any" or (mode == "matching" and int(port[1:]) == listener_port)):
        set_inline(headers, ":authority", name)


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset("0123456789abcdefABCDEF")


def canonical_path(path: str) -> str | None:
    """Envoy's ``PathUtil::canonicalPath`` (Chromium's URL path canonicalizer) on the path
    before the query: ``%XX`` escapes of unreserved characters are decoded, other escapes kept
    as written, a backslash becomes ``/``, bytes outside printable ASCII and a few unsafe
    characters are escaped, and ``.``/``..`` segments are resolved (``..`` never climbs above
    ``/``). The query is kept as it is. None: the path cannot be canonicalized (``%00``)."""
    bare, sep, query = path.partition("?")
    chars: list[str] = []
    i = 0
    while i < len(bare):
        c = bare[i]
        if c == "%" and i + 2 < len(bare) and bare[i + 1] in _HEX and bare[i + 2] in _HEX:
            decoded = chr(int(bare[i + 1 : i + 3], 16))
            if decoded == "\0":
                return None  # Chromium refuses an escaped NUL: Envoy answers 400
            chars.append(decoded if decoded in _UNRESERVED else bare[i : i + 3])
            i += 3
            continue
        if c == "\\":
            c = "/"
        elif ord(c) <= 0x20 or ord(c) >= 0x7F or c in '"<>`{}|^':
            c = "".join(f"%{b:02X}" for b in c.encode("latin-1", "replace"))
        chars.append(c)
        i += 1
    segments: list[str] = []
    parts = "".join(chars).split("/")
    for n, seg in enumerate(parts[1:], 1):
        last = n == len(parts) - 1
        if seg == ".":
            if last:
                segments.append("")
        elif seg == "..":
            if segments:
                segments.pop()
            if last:
                segments.append("")
        else:
            segments.append(seg)
    prefix = parts[0]
    return prefix + "/" + "/".join(segments) + sep + query


def merge_slashes(path: str) -> str:
    """``merge_slashes``: runs of ``/`` in the path (not the query) become one."""
    bare, sep, query = path.partition("?")
    while "//" in bare:
        bare = bare.replace("//", "/")
    return bare + sep + query


def unescape_slashes(path: str) -> str:
    """``%2F``/``%5C`` (any case) in the path before the query become ``/`` and ``\\``."""
    bare, sep, query = path.partition("?")
    for esc, c in (("%2F", "/"), ("%2f", "/"), ("%5C", "\\"), ("%5c", "\\")):
        bare = bare.replace(esc, c)
    return bare + sep + query


def normalize_path(headers: HeaderMap, opts: HcmHeaderOptions) -> str:
    """Envoy's ``maybeNormalizePath``, before routing: escaped slashes first (``REJECT_REQUEST``
    answers 400, ``UNESCAPE_AND_REDIRECT`` a 307 to the unescaped path, ``UNESCAPE_AND_FORWARD``
    goes on with it), then ``normalize_path``, then ``merge_slashes``. Returns "continue",
    "reject" or "redirect"."""
    path = headers.get(":path")
    if path is None:
        return "continue"
    action = "continue"
    new = path
    if opts.escaped_slashes_action != "KEEP_UNCHANGED":
        unescaped = unescape_slashes(path)
        if unescaped != path:
            if opts.escaped_slashes_action == "REJECT_REQUEST":
                return "reject"
            if opts.escaped_slashes_action == "UNESCAPE_AND_REDIRECT":
                action = "redirect"
            new = unescaped
    if opts.normalize_path:
        canonical = canonical_path(new)
        if canonical is None:
            return "reject"
        new = canonical
    if opts.merge_slashes:
        new = merge_slashes(new)
    if new != path:
        set_inline(headers, ":path", new)
    return action


# ---- generated headers (x-request-id, date) ---------------------------------------------------
def request_id() -> str:
    """A random (version 4) UUID string, as Envoy generates for x-request-id."""
    h = "%032x" % ((random.getrandbits(128) & ~(0xF << 76) & ~(0x3 << 62)) | (0x4 << 76) | (0x2 << 62))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


#: (second, its ``date`` text): the last date formatted (Envoy's date provider likewise formats
#: the date once and reuses it, refreshing it every 500 ms)
_date_cache = (-1, "")


def http_date(wall_ns: int) -> str:
    global _date_cache
    second = wall_ns // 1_000_000_000
    cached = _date_cache  # (one read: another worker may replace it meanwhile)
    if cached[0] != second:
        cached = _date_cache = (second, time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(second)))
    return cached[1]
