"""Envoy's substitution formatter: ``%COMMAND%`` operators in header values and access logs.

Envoy renders header values such as ``%DOWNSTREAM_REMOTE_ADDRESS%`` and access-log formats such as
``[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%``
with one formatter. We support the operators lessons and common examples use; an unknown operator
is a config error naming the YAML path, as Envoy rejects it at load time.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..http.stream_info import StreamInfo
    from .yaml_source import Node

#: Envoy's default access log format (``DEFAULT_FORMAT`` in substitution_format_string.cc)
DEFAULT_ACCESS_LOG_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n'
)

_OP = re.compile(r"%([A-Z_0-9]+)(?:\(([^)]*)\))?(?::(\d+))?%")


def _without_port(address: str | None) -> str | None:
    return address.rsplit(":", 1)[0] if address else None


def _dash(v: Any) -> str:
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
_NEEDS_ARGUMENT = frozenset({"REQ", "RESP", "TRAILER", "QUERY_PARAM", "ENVIRONMENT", "FILTER_STATE"})


def _check_argument(op: str, arg: str, node: Node) -> None:
    if op == "FILTER_STATE":
        if not arg.split(":", 1)[0]:
            raise node.error("Invalid filter state configuration, key cannot be empty.")
        return
    if not arg:
        raise node.error(f"{op} requires parameters")
    if op in ("REQ", "RESP", "TRAILER") and arg.count("?") > 1:
        raise node.error(f"More than 1 alternative header specified in token: {arg}")


def _check_path_option(arg: str, node: Node) -> None:
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
}


_OPERATORS: dict[str, Callable[[StreamInfo, str], Any]] = {
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
    "FILTER_STATE": lambda i, a: i.filter_state.get(a.split(":")[0]),
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
    **{op: (lambda i, a: None) for op in UNMODELLED | ALWAYS_ABSENT},
}

#: operators whose empty value renders as empty text, not ``-``
_VERBATIM = {"LOCAL_REPLY_BODY", "CUSTOM_FLAGS"}
#: operators that read header bytes (held one character per byte): a log line shows them as the
#: UTF-8 text they are, as Envoy writes the bytes
_WIRE_OPS = {"REQ", "RESP", "TRAILER", "STREAM_INFO_REQ", "PATH", "QUERY_PARAM"}


def wire_to_text(s: str) -> str:
    """Header bytes (one character per byte) as text: decoded as UTF-8, undecodable bytes kept
    as surrogates (written back out as the same bytes)."""
    try:
        return s.encode("latin-1").decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # already text (a Python filter set wider characters)
        return s


#: operators whose value is a number (rendered without quotes in JSON logs)
_NUMERIC = {
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
}


@dataclass
class Formatter:
    """A compiled format string: literal text and operators, rendered per stream."""

    parts: list[str | tuple[str, str, int | None]]
    text: str

    @classmethod
    def compile(cls, text: str, node: Node | None = None) -> Formatter:
        parts: list[str | tuple[str, str, int | None]] = []
        pos = 0
        while True:
            i = text.find("%", pos)
            if i < 0:
                parts.append(text[pos:])
                break
            if text.startswith("%%", i):
                parts.append(text[pos:i] + "%")
                pos = i + 2
                continue
            m = _OP.match(text, i)
            if m is None or m.group(1) not in _OPERATORS:
                op = m.group(1) if m else text[i : i + 30]
                if node is not None:
                    raise node.error(
                        f"Not supported field in StreamInfo: {op} (wasmlab supports "
                        f"{', '.join(sorted(_OPERATORS))}; write %% for a literal %)"
                    )
                parts.append(text[pos : i + 1])
                pos = i + 1
                continue
            parts.append(text[pos:i])
            if m.group(1) == "PATH" and node is not None:
                _check_path_option(m.group(2) or "", node)
            elif m.group(1) in _NEEDS_ARGUMENT and node is not None:
                _check_argument(m.group(1), m.group(2) or "", node)
            if m.group(1) in UNMODELLED and node is not None:
                where = f"{node.path} %{m.group(1)}%"
                if where not in node.source.ignored:
                    node.source.ignored.append(where)  # warned at start: renders as absent
            limit = int(m.group(3)) if m.group(3) else None
            parts.append((m.group(1), m.group(2) or "", limit))
            pos = m.end()
        return cls([p for p in parts if p != ""], text)

    def header_bytes(self) -> Formatter:
        """This format for a header value: its literal text as the YAML's UTF-8 bytes, one
        character per byte, as wasmlab holds header bytes (Envoy copies the UTF-8 bytes into the
        header). Operators' values are left as they are."""

        def raw(p: str) -> str:
            return p.encode("utf-8", "surrogateescape").decode("latin-1")

        return Formatter([raw(p) if isinstance(p, str) else p for p in self.parts], self.text)

    @property
    def is_literal(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    def literal(self) -> str:
        return "".join(p for p in self.parts if isinstance(p, str))

    def format(self, info: StreamInfo, for_header: bool = True, omit_empty: bool = False) -> str:
        """Render for a header value (absent values are empty, header bytes stay bytes) or, with
        ``for_header=False``, for a log line or body (absent values are ``-``, or empty with
        ``omit_empty``; header bytes become UTF-8 text)."""
        if self.is_literal:
            return self.literal()
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            op, arg, limit = p
            value = _OPERATORS[op](info, arg)
            if isinstance(value, dict | list):  # a metadata struct: compact JSON
                value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            plain = for_header or omit_empty or op in _VERBATIM
            s = ("" if value is None else str(value)) if plain else _dash(value)
            if limit is not None:
                s = s[:limit]
            if not for_header and op in _WIRE_OPS:
                s = wire_to_text(s)
            out.append(s)
        return "".join(out)

    def value(self, info: StreamInfo) -> Any:
        """For JSON logs: a lone operator keeps its type (numbers stay numbers, absent -> null)."""
        if len(self.parts) == 1 and not isinstance(self.parts[0], str):
            op, arg, limit = self.parts[0]
            v = _OPERATORS[op](info, arg)
            if op in _NUMERIC and v is not None:
                return v
            if op in _VERBATIM:
                return str(v or "")
            if v is None or v == "":
                return None
            if isinstance(v, dict | list):  # a metadata struct nests in the JSON line
                return v
            s = str(v)[:limit] if limit else str(v)
            return wire_to_text(s) if op in _WIRE_OPS else s
        return self.format(info, for_header=False)


@dataclass(frozen=True)
class Constant:
    """A number or bool in a ``json_format``: logged as itself (Envoy keeps the JSON type)."""

    constant: bool | int | float

    def value(self, info: Any) -> bool | int | float:
        return self.constant


@dataclass(frozen=True)
class LogFormat:
    """A ``SubstitutionFormatString``: text or JSON, and ``omit_empty_values``.

    Envoy renders ``json_format`` as one line with its keys sorted (it is a protobuf
    ``Struct``), numbers as numbers, absent values as ``null`` (left out with
    ``omit_empty_values``), text as UTF-8 (not escaped), and a newline at the end."""

    text: Formatter | None = None
    json: dict[str, Any] | None = None
    omit_empty: bool = False

    def render(self, info: Any) -> str:
        if self.json is not None:
            doc = _render_json(self.json, info, self.omit_empty)
            return json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False) + "\n"
        assert self.text is not None
        return self.text.format(info, for_header=False, omit_empty=self.omit_empty)


def _render_json(spec: dict[str, Any], info: Any, omit_empty: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in spec.items():
        value = _render_json(v, info, omit_empty) if isinstance(v, dict) else v.value(info)
        if value is None and omit_empty:
            continue
        out[k] = value
    return out


# ---- SubstitutionFormatString ------------------------------------------------------------------
def parse_log_format(node: Node) -> LogFormat:
    """``SubstitutionFormatString`` (an access log's ``log_format``, a local reply's body format)."""
    node.check_fields(
        "text_format_source text_format json_format omit_empty_values content_type",
        ignored=("formatters", "json_format_options"),
    )
    omit = node.req("omit_empty_values").bool() if node.has("omit_empty_values") else False
    if node.has("json_format"):
        return LogFormat(None, compile_json(node.req("json_format")), omit)
    if node.has("text_format_source"):
        src = node.req("text_format_source").check_fields("inline_string", required=("inline_string",))
        return LogFormat(Formatter.compile(src.req("inline_string").str(), src.child("inline_string")), None, omit)
    if node.has("text_format"):
        return LogFormat(Formatter.compile(node.req("text_format").str(), node.child("text_format")), None, omit)
    return LogFormat(Formatter.compile(DEFAULT_ACCESS_LOG_FORMAT), None, omit)


def compile_json(node: Node) -> dict[str, Any]:
    """A ``json_format`` struct: each string leaf compiled as a format (a number or bool leaf is
    a constant string format of its text)."""
    out: dict[str, Any] = {}
    for key, child in node.items():
        if isinstance(child.value, dict):
            out[key] = compile_json(child)
        elif isinstance(child.value, bool | int | float):
            out[key] = Constant(child.value)
        else:
            out[key] = Formatter.compile(child.str(), child)
    return out
