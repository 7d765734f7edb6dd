"""Envoy's substitution formatter: ``%COMMAND%`` operators in header values and access logs.

Envoy renders header values such as ``%DOWNSTREAM_REMOTE_ADDRESS%`` and access-log formats such as
``[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%``
with one formatter. We support the operators lessons and common examples use; an unknown operator
is a config error naming the YAML path, as Envoy rejects it at load time.
"""

from __future__ import annotations

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


def _dash(v: Any) -> str:
    if v is None or v == "":
        return "-"
    return str(v)


def _start_time(info: StreamInfo, arg: str) -> str:
    t = info.start_wall_ns / 1e9
    if arg:
        us = info.start_wall_ns // 1000 % 1_000_000
        ms = info.start_wall_ns // 1_000_000 % 1000
        fmt = arg.replace("%f", f"{us:06d}").replace("%3f", f"{ms:03d}")
        return time.strftime(fmt, time.gmtime(t))
    ms = info.start_wall_ns // 1_000_000 % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}Z"


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


_OPERATORS: dict[str, Callable[[StreamInfo, str], Any]] = {
    "START_TIME": _start_time,
    "REQ": _header_op("REQ"),
    "RESP": _header_op("RESP"),
    "TRAILER": _header_op("TRAILER"),
    "PROTOCOL": lambda i, a: i.protocol,
    "RESPONSE_CODE": lambda i, a: i.response_code if i.response_code is not None else 0,
    "RESPONSE_CODE_DETAILS": lambda i, a: i.response_code_details,
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
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS": lambda i, a: i.downstream_remote_address,
    "DOWNSTREAM_LOCAL_ADDRESS": lambda i, a: i.downstream_local_address,
    "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": lambda i, a: i.downstream_local_address.rsplit(":", 1)[0],
    "DOWNSTREAM_LOCAL_PORT": lambda i, a: i.downstream_local_address.rsplit(":", 1)[1],
    "HOSTNAME": lambda i, a: socket.gethostname(),
    "REQUESTED_SERVER_NAME": lambda i, a: "",
    "CONNECTION_ID": lambda i, a: i.connection_id,
    "STREAM_ID": lambda i, a: i.stream_id,
    "DYNAMIC_METADATA": lambda i, a: _metadata(i, a),
    "FILTER_STATE": lambda i, a: i.filter_state.get(a.split(":")[0]),
}

#: operators Envoy 1.40 accepts (each checked with ``envoy --mode validate``) whose values wasmlab
#: does not keep: a format using one loads with a warning, and the operator is absent ("-" in a
#: text log, null in JSON, empty in a header), never a refused config
ENVOY_ONLY_OPERATORS = frozenset(
    """START_TIME_LOCAL REQUEST_HEADERS_BYTES RESPONSE_HEADERS_BYTES RESPONSE_TRAILERS_BYTES
    UPSTREAM_WIRE_BYTES_SENT UPSTREAM_WIRE_BYTES_RECEIVED UPSTREAM_HEADER_BYTES_SENT
    UPSTREAM_HEADER_BYTES_RECEIVED DOWNSTREAM_WIRE_BYTES_SENT DOWNSTREAM_WIRE_BYTES_RECEIVED
    DOWNSTREAM_HEADER_BYTES_SENT DOWNSTREAM_HEADER_BYTES_RECEIVED UPSTREAM_PROTOCOL
    CONNECTION_TERMINATION_DETAILS REQUEST_TX_DURATION RESPONSE_DURATION RESPONSE_TX_DURATION
    DOWNSTREAM_HANDSHAKE_DURATION ROUNDTRIP_DURATION RESPONSE_FLAGS_LONG UPSTREAM_HOST_NAME
    UPSTREAM_HOST_NAME_WITHOUT_PORT UPSTREAM_CLUSTER_RAW UPSTREAM_LOCAL_ADDRESS
    UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT UPSTREAM_LOCAL_PORT UPSTREAM_REMOTE_ADDRESS
    UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT UPSTREAM_REMOTE_PORT UPSTREAM_REQUEST_ATTEMPT_COUNT
    UPSTREAM_TRANSPORT_FAILURE_REASON UPSTREAM_CONNECTION_ID DOWNSTREAM_TRANSPORT_FAILURE_REASON
    DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT DOWNSTREAM_DIRECT_REMOTE_PORT DOWNSTREAM_PEER_URI_SAN
    DOWNSTREAM_LOCAL_URI_SAN DOWNSTREAM_PEER_SUBJECT DOWNSTREAM_TLS_VERSION DOWNSTREAM_PEER_FINGERPRINT_256
    UPSTREAM_TLS_VERSION UPSTREAM_PEER_SUBJECT VIRTUAL_CLUSTER_NAME LOCAL_REPLY_BODY FILTER_CHAIN_NAME
    ACCESS_LOG_TYPE UNIQUE_ID TRACE_ID GRPC_STATUS GRPC_STATUS_NUMBER EMIT_TIME PATH CUSTOM_FLAGS
    UPSTREAM_FILTER_STATE DOWNSTREAM_LOCAL_DNS_SAN ENVIRONMENT CLUSTER_METADATA UPSTREAM_METADATA METADATA
    CEL QUERY_PARAM DOWNSTREAM_LOCAL_ADDRESS_ENDPOINT_ID UPSTREAM_LOCAL_CLOSE_REASON
    UPSTREAM_DETECTED_CLOSE_TYPE DOWNSTREAM_DETECTED_CLOSE_TYPE""".split()
)


def _absent(info: StreamInfo, arg: str) -> None:
    return None


#: operators whose value is a number (rendered without quotes in JSON logs)
_NUMERIC = {"RESPONSE_CODE", "BYTES_RECEIVED", "BYTES_SENT", "DURATION", "REQUEST_DURATION"}


def _metadata(info: StreamInfo, arg: str) -> Any:
    parts = arg.split(":")
    value: Any = info.dynamic_metadata.get(parts[0])
    for p in parts[1:]:
        if not isinstance(value, dict):
            return None
        value = value.get(p)
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, separators=(",", ":"))
    return value


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
            if m is not None and m.group(1) in ENVOY_ONLY_OPERATORS:
                where = f"{node.path}: %{m.group(1)}%" if node is not None else ""
                if node is not None and where not in node.source.ignored:
                    node.source.ignored.append(where)  # the proxy warns about it at start
                parts += [text[pos:i], (m.group(1), m.group(2) or "", None)]
                pos = m.end()
                continue
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

    def format(self, info: StreamInfo, for_header: bool = True) -> str:
        if self.is_literal:
            return self.literal()
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            op, arg, limit = p
            value = _OPERATORS.get(op, _absent)(info, arg)
            s = ("" if value is None else str(value)) if for_header else _dash(value)
            if limit is not None:
                s = s[:limit]
            out.append(s)
        return "".join(out)

    def value(self, info: StreamInfo) -> Any:
        """For JSON logs: a lone operator keeps its type (numbers stay numbers, absent -> null)."""
        if len(self.parts) == 1 and not isinstance(self.parts[0], str):
            op, arg, limit = self.parts[0]
            v = _OPERATORS.get(op, _absent)(info, arg)
            if op in _NUMERIC and v is not None:
                return v
            if v is None or v == "":
                return None
            s = str(v)
            return s[:limit] if limit else s
        return self.format(info, for_header=False)
