"""Envoy's substitution commands (``source/common/formatter/stream_info_formatter.cc``): what
each ``%COMMAND%`` reads from a stream, and the checks Envoy makes of a command's argument when it
loads the config. :mod:`.formatter` parses format strings and renders them with this table.

In process some values cannot exist (wire bytes, TLS, upstream connections): those commands are
accepted as Envoy accepts them and render as absent (``UNMODELLED`` warns at load, ``ALWAYS_ABSENT``
is what Envoy itself logs for a plaintext HTTP/1 stream).
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..http.stream_info import FilterStateObject
from .struct_text import RawJson

if TYPE_CHECKING:
    from ..http.stream_info import StreamInfo
    from .yaml_source import Node


def _without_port(address: str | None) -> str | None:
    return address.rsplit(":", 1)[0] if address else None


def dash(v: Any) -> str:
    if v is None or v == "":
        return "-"
    return str(v)


_TIME_TOKEN = re.compile(r"%%|%([1-9])f|%f|%E([0-9*]?)([Sfz])|%Z")


def _format_time(wall_ns: int, arg: str, zone: Callable[[float], time.struct_time] = time.gmtime) -> str:
    """A time as ``%START_TIME%`` shows it: ISO 8601 UTC with milliseconds, or ``strftime`` with
    Envoy's (absl's) extensions: ``%f`` nanoseconds (9 digits), ``%1f``..``%9f`` the first
    digits of them, ``%E3S`` seconds with 3 decimals (``%E*S`` as many as needed), ``%Ez``
    ``+00:00``, ``%Z`` ``UTC``. Envoy's start time has microsecond resolution."""
    t = wall_ns / 1e9
    # Envoy's stream start time has microsecond resolution: the last three digits are 0
    ns = f"{wall_ns // 1000 % 1_000_000:06d}000"
    if not arg:
        return time.strftime("%Y-%m-%dT%H:%M:%S", zone(t)) + f".{ns[:3]}Z"
    st = zone(t)

    def token(m: re.Match[str]) -> str:
        whole = m.group(0)
        if whole == "%%":
            return "%%"
        if whole == "%Z":
            return time.strftime("%Z", st) if zone is not time.gmtime else "UTC"
        if m.group(1):
            return ns[: int(m.group(1))]
        if whole == "%f":
            return ns
        digits, kind = m.group(2), m.group(3)
        frac = ns.rstrip("0") if digits == "*" else ns[: int(digits or 0)]
        if kind == "S":
            return f"{st.tm_sec:02d}" + (f".{frac}" if frac else "")
        if kind == "f":
            return frac
        offset = time.strftime("%z", st)  # +hhmm
        return offset[:3] + ":" + offset[3:] + (":00" if digits == "*" else "")

    return time.strftime(_TIME_TOKEN.sub(token, arg), st)


def _start_time(info: StreamInfo, arg: str) -> str:
    return _format_time(info.start_wall_ns, arg)


#: the StreamInfo header map each ``%REQ(...)%``-style command reads
_HEADER_MAPS = {"REQ": "request_headers", "RESP": "response_headers", "TRAILER": "response_trailers"}


def _header_op(which: str) -> Callable[[StreamInfo, str], Any]:
    attr = _HEADER_MAPS[which]

    def get(info: StreamInfo, arg: str) -> Any:
        names = arg.split("?")
        headers = getattr(info, attr)
        if headers is None:
            return None
        for n in names:
            v = headers.get(n.strip().lower())
            if v is not None:
                return v
        return None

    return get


def _lookup(root: dict[str, Any] | None, parts: list[str]) -> Any:
    """``namespace:key:key...`` in a metadata struct; a struct or list stays one (a JSON log
    nests it, text shows it as compact JSON)."""
    value: Any = root
    for p in parts:
        if not isinstance(value, dict):
            return None
        value = value.get(p)
    return value


def _metadata(info: StreamInfo, arg: str) -> Any:
    return _lookup(info.dynamic_metadata, arg.split(":"))


def _filter_state(info: StreamInfo, arg: str) -> Any:
    """``%FILTER_STATE(key[:PLAIN|:TYPED])%``. An object a factory made (a Lua script's
    ``filterState():set``) is written as Envoy writes it: ``PLAIN`` its string form, else the JSON
    of its proto form (``"text"`` quoted, ``8080``; absent without one). Other values (a Wasm
    module's bytes) as they are."""
    key, _, option = arg.partition(":")
    value = info.filter_state.get(key)
    if not isinstance(value, FilterStateObject):
        return value
    if option.startswith("PLAIN"):
        return str(value) if value.plain else None
    return RawJson(value.proto_json) if value.proto_json is not None else None


def _typed_metadata(info: StreamInfo, arg: str) -> Any:
    """``%METADATA(TYPE:namespace:key...)%``: DYNAMIC and ROUTE are known; CLUSTER, HOST,
    LISTENER, VIRTUAL_HOST and UPSTREAM_HOST metadata wasmlab does not keep (absent)."""
    kind, _, rest = arg.partition(":")
    if kind == "DYNAMIC":
        return _metadata(info, rest)
    if kind == "ROUTE":
        return _lookup(info.route_metadata, rest.split(":"))
    return None


def _emit_time(info: StreamInfo, arg: str) -> str:
    return _format_time(time.time_ns(), arg)


def _start_time_local(info: StreamInfo, arg: str) -> str:
    """``%START_TIME_LOCAL%``: the start time in the local zone, ``...T..:..:..mmm+hhmm``."""
    t = info.start_wall_ns / 1e9
    ms = info.start_wall_ns // 1_000_000 % 1000
    if arg:
        return _format_time(info.start_wall_ns, arg, time.localtime)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) + f".{ms:03d}" + time.strftime("%z", time.localtime(t))


def _path(info: StreamInfo, arg: str) -> Any:
    """``%PATH(WQ|NQ[:PATH|:ORIG|:ORIG_OR_PATH])%``: the path with or without its query, from
    ``:path``, ``x-envoy-original-path``, or the original if there is one."""
    headers = info.request_headers
    if headers is None:
        return None
    opts = arg.split(":") if arg else []
    source = opts[1] if len(opts) > 1 else "ORIG_OR_PATH"
    path = headers.get(":path") if source == "PATH" else headers.get("x-envoy-original-path")
    if source == "ORIG_OR_PATH" and path is None:
        path = headers.get(":path")
    if path is None:
        return None
    return path.split("?", 1)[0] if opts[:1] == ["NQ"] else path


#: commands Envoy refuses at load without an argument (``%REQ()%``), in its words
NEEDS_ARGUMENT = frozenset({"REQ", "RESP", "TRAILER", "QUERY_PARAM", "ENVIRONMENT", "FILTER_STATE"})


def check_argument(op: str, arg: str, node: Node) -> None:
    if op == "FILTER_STATE":
        if not arg.split(":", 1)[0]:
            raise node.error("Invalid filter state configuration, key cannot be empty.")
        return
    if not arg:
        raise node.error(f"{op} requires parameters")
    if op in ("REQ", "RESP", "TRAILER") and arg.count("?") > 1:
        raise node.error(f"More than 1 alternative header specified in token: {arg}")


def check_path_option(arg: str, node: Node) -> None:
    """Envoy refuses other ``%PATH(...)%`` options at load, in these words."""
    opts = arg.split(":") if arg else []
    if opts and opts[0] not in ("WQ", "NQ"):
        raise node.error(f"Invalid PATH option: '{opts[0]}', only 'WQ'/'NQ' are allowed")
    if len(opts) > 1 and opts[1] not in ("ORIG", "PATH", "ORIG_OR_PATH"):
        raise node.error(f"Invalid PATH option: '{opts[1]}', only 'ORIG'/'PATH'/'ORIG_OR_PATH' are allowed")


def _query_param(info: StreamInfo, arg: str) -> Any:
    """``%QUERY_PARAM(name)%``: the first value of a query parameter, percent-decoded."""
    from urllib.parse import unquote

    headers = info.request_headers
    query = (headers.get(":path") or "").partition("?")[2] if headers is not None else ""
    for part in query.split("&"):
        k, eq, v = part.partition("=")
        if k == arg:
            return unquote(v, encoding="latin-1") if eq else ""
    return None


def _header_bytes(attr: str) -> Callable[[StreamInfo, str], int]:
    def size(info: StreamInfo, arg: str) -> int:
        headers = getattr(info, attr)
        return headers.byte_size() if headers is not None else 0

    return size


def _upstream(value: Callable[[StreamInfo], Any], otherwise: Any = None) -> Callable[[StreamInfo, str], Any]:
    """An upstream command: its value once the router chose an upstream host, else ``otherwise``."""
    return lambda i, a: value(i) if i.upstream_host else otherwise


#: Envoy's long response flag names (``%RESPONSE_FLAGS_LONG%``) for the flags wasmlab sets
_LONG_FLAGS = {
    "NR": "NoRouteFound",
    "NC": "NoClusterFound",
    "UH": "NoHealthyUpstream",
    "UF": "UpstreamConnectionFailure",
    "UC": "UpstreamConnectionTermination",
    "UT": "UpstreamRequestTimeout",
    "RL": "RateLimited",
    "DC": "DownstreamConnectionTermination",
    "LR": "LocalReset",
}


def _flags_long(info: StreamInfo, arg: str) -> str:
    flags = info.response_flags
    if flags in ("", "-"):
        return "-"
    return ",".join(_LONG_FLAGS.get(f, f) for f in flags.split(","))


def _unique_id(info: StreamInfo, arg: str) -> str:
    import uuid

    return str(uuid.uuid4())


#: commands Envoy accepts whose value wasmlab cannot know in process (wire byte counts, upstream
#: connection details, TLS): they render as absent, and the config is warned about them
UNMODELLED = {
    "UPSTREAM_LOCAL_ADDRESS",
    "UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
    "UPSTREAM_LOCAL_PORT",
    "UPSTREAM_CONNECTION_ID",
    "UPSTREAM_WIRE_BYTES_SENT",
    "UPSTREAM_WIRE_BYTES_RECEIVED",
    "UPSTREAM_HEADER_BYTES_SENT",
    "UPSTREAM_HEADER_BYTES_RECEIVED",
    "DOWNSTREAM_WIRE_BYTES_SENT",
    "DOWNSTREAM_WIRE_BYTES_RECEIVED",
    "DOWNSTREAM_HEADER_BYTES_SENT",
    "DOWNSTREAM_HEADER_BYTES_RECEIVED",
    # accepted by Envoy 1.40 (envoy --mode validate), not kept by wasmlab
    "CEL",
    "UPSTREAM_FILTER_STATE",
    "DOWNSTREAM_LOCAL_DNS_SAN",
    "DOWNSTREAM_LOCAL_ADDRESS_ENDPOINT_ID",
    "UPSTREAM_LOCAL_CLOSE_REASON",
    "UPSTREAM_DETECTED_CLOSE_TYPE",
    "DOWNSTREAM_DETECTED_CLOSE_TYPE",
}
#: commands whose value is absent for a plaintext, untraced, non-gRPC HTTP/1 stream in wasmlab
#: (as in Envoy for such a stream)
ALWAYS_ABSENT = {
    "TRACE_ID",
    "CONNECTION_TERMINATION_DETAILS",
    "VIRTUAL_CLUSTER_NAME",
    "DOWNSTREAM_HANDSHAKE_DURATION",
    "DOWNSTREAM_TRANSPORT_FAILURE_REASON",
    "UPSTREAM_TRANSPORT_FAILURE_REASON",
    "ROUNDTRIP_DURATION",
    "GRPC_STATUS",
    "GRPC_STATUS_NUMBER",
    "FILTER_CHAIN_NAME",
    "CLUSTER_METADATA",
    "UPSTREAM_METADATA",
    "DOWNSTREAM_TLS_VERSION",
    "DOWNSTREAM_TLS_CIPHER",
    "DOWNSTREAM_TLS_SESSION_ID",
    "DOWNSTREAM_PEER_URI_SAN",
    "DOWNSTREAM_PEER_SUBJECT",
    "DOWNSTREAM_PEER_ISSUER",
    "DOWNSTREAM_PEER_FINGERPRINT_256",
    "DOWNSTREAM_PEER_CERT",
    "DOWNSTREAM_LOCAL_URI_SAN",
    "DOWNSTREAM_LOCAL_SUBJECT",
    "UPSTREAM_TLS_VERSION",
    "UPSTREAM_PEER_URI_SAN",
    "UPSTREAM_PEER_SUBJECT",
    # TLS and connection-close details, absent for a plaintext stream the connection of which
    # is open (accepted before fidelity pass 5 only by Envoy)
    *"""DOWNSTREAM_LOCAL_EMAIL_SAN DOWNSTREAM_LOCAL_IP_SAN DOWNSTREAM_LOCAL_OTHERNAME_SAN DOWNSTREAM_PEER_CERT_V_START
    DOWNSTREAM_PEER_CERT_V_END DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_1 DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_256
    DOWNSTREAM_PEER_CHAIN_SERIALS DOWNSTREAM_PEER_DNS_SAN DOWNSTREAM_PEER_EMAIL_SAN DOWNSTREAM_PEER_FINGERPRINT_1
    DOWNSTREAM_PEER_IP_SAN DOWNSTREAM_PEER_OTHERNAME_SAN DOWNSTREAM_PEER_SERIAL TLS_JA3_FINGERPRINT TLS_JA4_FINGERPRINT
    UPSTREAM_LOCAL_DNS_SAN UPSTREAM_LOCAL_IP_SAN UPSTREAM_LOCAL_URI_SAN UPSTREAM_PEER_CERT UPSTREAM_PEER_CERT_V_START
    UPSTREAM_PEER_CERT_V_END UPSTREAM_PEER_DNS_SAN UPSTREAM_PEER_IP_SAN UPSTREAM_PEER_ISSUER UPSTREAM_TLS_CIPHER
    UPSTREAM_TLS_SESSION_ID DOWNSTREAM_LOCAL_CLOSE_REASON""".split(),
}

#: ``%COMMON_DURATION(START:END:PRECISION)%`` time points: the downstream ones are known for
#: every stream, the upstream ones once the router sent the request upstream (wasmlab does
#: not time the wire: a point is the stream's start while the request travels, its end after)
_DOWNSTREAM_POINTS = {"DS_RX_BEG": False, "DS_RX_END": False, "DS_TX_BEG": True, "DS_TX_END": True}
_UPSTREAM_POINTS = {
    "US_CX_BEG": False,
    "US_CX_END": False,
    "US_HS_END": False,
    "US_TX_BEG": False,
    "US_TX_END": False,
    "US_RX_BEG": True,
    "US_RX_END": True,
}
_PRECISION_NS = {"ms": 1_000_000, "us": 1_000, "ns": 1}


def check_common_duration(arg: str, node: Node) -> None:
    """Envoy refuses a ``COMMON_DURATION`` without two points or with another precision, in these
    words (a point it does not know is a custom timing: accepted, and never set here)."""
    parts = arg.split(":")
    if len(parts) not in (2, 3) or not all(parts[:2]):
        points = ", ".join([*_DOWNSTREAM_POINTS, *_UPSTREAM_POINTS])
        raise node.error(f"Invalid common duration configuration: {arg}. (START:END[:ms|us|ns], the points {points})")
    if len(parts) == 3 and parts[2] not in _PRECISION_NS:
        raise node.error(f"Invalid common duration precision: {parts[2]}. (ms, us or ns)")


def _common_duration(info: StreamInfo, arg: str) -> int | None:
    parts = arg.split(":")
    unit = _PRECISION_NS[parts[2]] if len(parts) == 3 else 1_000_000
    times = []
    for point in parts[:2]:
        at_end = _DOWNSTREAM_POINTS.get(point)
        if at_end is None:
            if not info.upstream_host or point not in _UPSTREAM_POINTS:
                return None  # (a custom timing: no filter here records one)
            at_end = _UPSTREAM_POINTS[point]
        t = info.end_mono_ns if at_end else info.start_mono_ns
        if t is None:
            return None
        times.append(t)
    return max(0, times[1] - times[0]) // unit


_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
#: what ``%QUERY_PARAMS(DECODED)%`` decodes: printable ASCII but for these (measured on Envoy 1.40
#: with every escape from %00 to %7F; space, controls and non-ASCII bytes stay escaped)
_DECODED_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - frozenset('"<>\\^{|}')


def _query_params(info: StreamInfo, arg: str) -> Any:
    """``%QUERY_PARAMS%``: the request's query string, without its ``?``; ``(DECODED)`` decodes
    the escapes of printable ASCII characters but a few (``%41`` is ``A``, ``%2F`` is ``/``,
    ``%20``, ``%3C`` and ``%C3%A9`` stay)."""
    headers = info.request_headers
    query = (headers.get(":path") or "").partition("?")[2] if headers is not None else ""
    if arg == "DECODED":

        def unreserved(m: re.Match[str]) -> str:
            c = chr(int(m.group(1), 16))
            return c if c in _DECODED_CHARS else m.group(0)

        query = _PERCENT.sub(unreserved, query)
    return query or None


OPERATORS: dict[str, Callable[[StreamInfo, str], Any]] = {
    "START_TIME": _start_time,
    "REQ": _header_op("REQ"),
    "RESP": _header_op("RESP"),
    "TRAILER": _header_op("TRAILER"),
    "PROTOCOL": lambda i, a: i.protocol,
    "RESPONSE_CODE": lambda i, a: i.response_code if i.response_code is not None else 0,
    "RESPONSE_CODE_DETAILS": lambda i, a: i.response_code_details or "",
    "RESPONSE_FLAGS": lambda i, a: i.response_flags,
    "BYTES_RECEIVED": lambda i, a: i.bytes_received,
    "BYTES_SENT": lambda i, a: i.bytes_sent,
    "DURATION": lambda i, a: i.duration_ms(),
    "REQUEST_DURATION": lambda i, a: i.duration_ms(),
    "UPSTREAM_HOST": lambda i, a: i.upstream_host,
    "UPSTREAM_CLUSTER": lambda i, a: i.upstream_cluster,
    "ROUTE_NAME": lambda i, a: i.route_name,
    "DOWNSTREAM_REMOTE_ADDRESS": lambda i, a: i.downstream_remote_address,
    "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": lambda i, a: i.downstream_remote_address.rsplit(":", 1)[0],
    "DOWNSTREAM_REMOTE_PORT": lambda i, a: i.downstream_remote_address.rsplit(":", 1)[1],
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS": lambda i, a: i.downstream_direct_remote_address,
    "DOWNSTREAM_LOCAL_ADDRESS": lambda i, a: i.downstream_local_address,
    "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": lambda i, a: i.downstream_local_address.rsplit(":", 1)[0],
    "DOWNSTREAM_LOCAL_PORT": lambda i, a: i.downstream_local_address.rsplit(":", 1)[1],
    "HOSTNAME": lambda i, a: socket.gethostname(),
    "REQUESTED_SERVER_NAME": lambda i, a: "",
    "CONNECTION_ID": lambda i, a: i.connection_id,
    "STREAM_ID": lambda i, a: i.stream_id,
    "DYNAMIC_METADATA": lambda i, a: _metadata(i, a),
    "FILTER_STATE": lambda i, a: _filter_state(i, a),
    # a local reply's body, only while ``local_reply_config`` formats it (local_reply.FormatContext)
    "LOCAL_REPLY_BODY": lambda i, a: getattr(i, "local_reply_body", ""),
    "METADATA": _typed_metadata,
    "STREAM_INFO_REQ": _header_op("REQ"),
    "EMIT_TIME": _emit_time,
    "START_TIME_LOCAL": _start_time_local,
    "PATH": _path,
    "QUERY_PARAM": _query_param,
    "ENVIRONMENT": lambda i, a: os.environ.get(a.split(":")[0]),
    "REQUEST_HEADERS_BYTES": _header_bytes("request_headers"),
    "RESPONSE_HEADERS_BYTES": _header_bytes("response_headers"),
    "RESPONSE_TRAILERS_BYTES": _header_bytes("response_trailers"),
    "UPSTREAM_CLUSTER_RAW": lambda i, a: i.upstream_cluster,
    "UPSTREAM_REMOTE_ADDRESS": lambda i, a: i.upstream_host,
    "UPSTREAM_HOST_NAME": lambda i, a: i.upstream_host,
    "UPSTREAM_HOST_NAME_WITHOUT_PORT": lambda i, a: _without_port(i.upstream_host),
    "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": lambda i, a: _without_port(i.upstream_host),
    "UPSTREAM_REMOTE_PORT": lambda i, a: i.upstream_host.rsplit(":", 1)[1] if i.upstream_host else None,
    "UPSTREAM_PROTOCOL": _upstream(lambda i: "HTTP/1.1"),
    "UPSTREAM_REQUEST_ATTEMPT_COUNT": _upstream(lambda i: 1, 0),
    # timings after the request reached the upstream (wasmlab does not time the wire: the
    # response duration is the stream's, the transmit durations 0)
    "RESPONSE_DURATION": _upstream(lambda i: i.duration_ms()),
    "REQUEST_TX_DURATION": _upstream(lambda i: 0),
    "RESPONSE_TX_DURATION": _upstream(lambda i: 0),
    "RESPONSE_FLAGS_LONG": _flags_long,
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT": lambda i, a: i.downstream_direct_remote_address.rsplit(":", 1)[0],
    "DOWNSTREAM_DIRECT_REMOTE_PORT": lambda i, a: i.downstream_direct_remote_address.rsplit(":", 1)[1],
    "UNIQUE_ID": _unique_id,
    "ACCESS_LOG_TYPE": lambda i, a: getattr(i, "access_log_type", "NotSet"),
    "BYTES_RETRANSMITTED": lambda i, a: 0,
    "PACKETS_RETRANSMITTED": lambda i, a: 0,
    "CUSTOM_FLAGS": lambda i, a: "",
    "DOWNSTREAM_DIRECT_LOCAL_ADDRESS": lambda i, a: i.downstream_local_address,
    "DOWNSTREAM_DIRECT_LOCAL_ADDRESS_WITHOUT_PORT": lambda i, a: i.downstream_local_address.rsplit(":", 1)[0],
    "DOWNSTREAM_DIRECT_LOCAL_PORT": lambda i, a: i.downstream_local_address.rsplit(":", 1)[1],
    "QUERY_PARAMS": _query_params,
    "COMMON_DURATION": _common_duration,
    "UPSTREAM_CONNECTION_POOL_READY_DURATION": _upstream(lambda i: 0),
    # an upstream address names no internal-listener endpoint: empty (not absent) once there is one
    "UPSTREAM_REMOTE_ADDRESS_ENDPOINT_ID": _upstream(lambda i: ""),
    **{op: (lambda i, a: None) for op in UNMODELLED | ALWAYS_ABSENT},
}

#: operators that read a metadata value (a protobuf ``Value``), written as Envoy writes one
STRUCT_OPS = {"DYNAMIC_METADATA", "METADATA"}
#: operators whose empty value renders as empty text, not ``-``
VERBATIM = {"LOCAL_REPLY_BODY", "CUSTOM_FLAGS"}
#: operators whose empty value is empty text in a log line, while an absent one is ``-``
EMPTY_KEPT = {"UPSTREAM_REMOTE_ADDRESS_ENDPOINT_ID"}
#: operators that read header bytes (held one character per byte): a log line shows them as the
#: UTF-8 text they are, as Envoy writes the bytes
WIRE_OPS = {"REQ", "RESP", "TRAILER", "STREAM_INFO_REQ", "PATH", "QUERY_PARAM"}


def wire_to_text(s: str) -> str:
    """Header bytes (one character per byte) as text: decoded as UTF-8, undecodable bytes kept
    as surrogates (written back out as the same bytes)."""
    try:
        return s.encode("latin-1").decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # already text (a Python filter set wider characters)
        return s


#: operators whose value is a number (rendered without quotes in JSON logs)
NUMERIC = {
    "RESPONSE_CODE",
    "BYTES_RECEIVED",
    "BYTES_SENT",
    "DURATION",
    "REQUEST_DURATION",
    "RESPONSE_DURATION",
    "REQUEST_TX_DURATION",
    "RESPONSE_TX_DURATION",
    "REQUEST_HEADERS_BYTES",
    "RESPONSE_HEADERS_BYTES",
    "RESPONSE_TRAILERS_BYTES",
    "UPSTREAM_REQUEST_ATTEMPT_COUNT",
    "BYTES_RETRANSMITTED",
    "PACKETS_RETRANSMITTED",
    "COMMON_DURATION",
    "UPSTREAM_CONNECTION_POOL_READY_DURATION",
}
