"""Envoy's substitution formatter: ``%COMMAND%`` operators in header values and access logs.

Envoy renders header values such as ``%DOWNSTREAM_REMOTE_ADDRESS%`` and access-log formats such as
``[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%``
with one formatter. We support the operators lessons and common examples use; an unknown operator
is a config error naming the YAML path, as Envoy rejects it at load time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .stream_info_formatter import (
    EMPTY_KEPT,
    NEEDS_ARGUMENT,
    NUMERIC,
    OPERATORS,
    STRUCT_OPS,
    UNMODELLED,
    VERBATIM,
    WIRE_OPS,
    check_argument,
    check_common_duration,
    check_path_option,
    dash,
    wire_to_text,
)
from .struct_text import RawJson, dumps_log, struct_json, struct_text
from .struct_value import struct_key, struct_value
from .yaml_source import Node

if TYPE_CHECKING:
    from ..http.stream_info import StreamInfo

#: Envoy's default access log format (``DEFAULT_FORMAT`` in substitution_format_string.cc)
DEFAULT_ACCESS_LOG_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n'
)

_OP = re.compile(r"%([A-Z_0-9]+)(?:\(([^)]*)\))?(?::(\d+))?%")


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
            if m is None or m.group(1) not in OPERATORS:
                op = m.group(1) if m else text[i : i + 30]
                if node is not None:
                    raise node.error(
                        f"Not supported field in StreamInfo: {op} (wasmlab supports "
                        f"{', '.join(sorted(OPERATORS))}; write %% for a literal %)"
                    )
                parts.append(text[pos : i + 1])
                pos = i + 1
                continue
            parts.append(text[pos:i])
            if m.group(1) == "PATH" and node is not None:
                check_path_option(m.group(2) or "", node)
            elif m.group(1) == "COMMON_DURATION" and node is not None:
                check_common_duration(m.group(2) or "", node)
            elif (
                m.group(1) == "QUERY_PARAMS" and node is not None and (m.group(2) or "") not in ("", "ORIG", "DECODED")
            ):
                raise node.error(f"Invalid QUERY_PARAMS option: '{m.group(2)}', only 'ORIG'/'DECODED' are allowed")
            elif m.group(1) in NEEDS_ARGUMENT and node is not None:
                check_argument(m.group(1), m.group(2) or "", node)
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
            value = OPERATORS[op](info, arg)
            if op in STRUCT_OPS:  # a metadata value: Envoy's JSON text of it (struct_text.py)
                s = ("" if for_header or omit_empty else "-") if value is None else struct_text(value)
                out.append(s[:limit] if limit is not None else s)
                continue
            if isinstance(value, RawJson):  # (JSON text already: a filter-state object's proto)
                value = value.text
            if isinstance(value, dict | list):  # a struct: compact JSON
                value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            if for_header or omit_empty or op in VERBATIM:
                s = "" if value is None else str(value)
            elif value == "" and op in EMPTY_KEPT:
                s = ""
            else:
                s = dash(value)
            if limit is not None:
                s = s[:limit]
            if not for_header and op in WIRE_OPS:
                s = wire_to_text(s)
            out.append(s)
        return "".join(out)

    def value(self, info: StreamInfo) -> Any:
        """For JSON logs: a lone operator keeps its type (numbers stay numbers, absent -> null)."""
        if len(self.parts) == 1 and not isinstance(self.parts[0], str):
            op, arg, limit = self.parts[0]
            v = OPERATORS[op](info, arg)
            if op in STRUCT_OPS:  # a metadata value keeps its JSON type ("" stays a string)
                if v is None or isinstance(v, str):
                    return v[:limit] if v and limit else v
                return RawJson(struct_json(v))
            if isinstance(v, RawJson):
                return v
            if op in NUMERIC and v is not None:
                return v
            if op in VERBATIM:
                return str(v or "")
            if v is None or v == "":
                return None
            if isinstance(v, dict | list):  # a metadata struct nests in the JSON line
                return v
            s = str(v)[:limit] if limit else str(v)
            return wire_to_text(s) if op in WIRE_OPS else s
        return self.format(info, for_header=False)


@dataclass(frozen=True)
class Constant:
    """A number, bool or null in a ``json_format``: logged as itself (Envoy keeps the JSON type)."""

    constant: bool | int | float | None

    def value(self, info: Any) -> bool | int | float | None:
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
            return dumps_log(doc) + "\n"
        assert self.text is not None
        return self.text.format(info, for_header=False, omit_empty=self.omit_empty)


def _render_json(spec: dict[str, Any], info: Any, omit_empty: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in spec.items():
        value = _render_json_value(v, info, omit_empty)
        if value is None and omit_empty:
            continue
        out[k] = value
    return out


def _render_json_value(v: Any, info: Any, omit_empty: bool) -> Any:
    if isinstance(v, dict):
        return _render_json(v, info, omit_empty)
    if isinstance(v, list):  # a list keeps its nulls (measured on Envoy 1.40)
        return [_render_json_value(x, info, omit_empty) for x in v]
    return v.value(info)


# ---- SubstitutionFormatString ------------------------------------------------------------------
def parse_log_format(node: Node) -> LogFormat:
    """``SubstitutionFormatString`` (an access log's ``log_format``, a local reply's body format)."""
    node.check_fields(
        "text_format_source text_format json_format omit_empty_values content_type",
        ignored=("formatters", "json_format_options"),
    )
    omit = node.req("omit_empty_values").bool() if node.has("omit_empty_values") else False
    kinds = [k for k in ("text_format", "json_format", "text_format_source") if node.has(k)]
    if len(kinds) > 1:  # one protobuf oneof: Envoy cannot even parse the config
        raise node.error(f"only one of {', '.join(kinds)} may be set (they are one protobuf oneof)")
    if node.has("json_format"):
        return LogFormat(None, compile_json(node.req("json_format")), omit)
    if node.has("text_format_source"):
        src = node.req("text_format_source").check_fields("inline_string", required=("inline_string",))
        return LogFormat(Formatter.compile(src.req("inline_string").str(), src.child("inline_string")), None, omit)
    if node.has("text_format"):
        return LogFormat(Formatter.compile(node.req("text_format").str(), node.child("text_format")), None, omit)
    # (Envoy's SubstitutionFormatString requires its format: omit log_format for the default one)
    raise node.error(
        'Proto constraint validation failed (embedded message failed validation | caused by field: "format", '
        "reason: is required): set text_format_source, text_format or json_format"
    )


def compile_json(node: Node) -> dict[str, Any]:
    """A ``json_format`` struct: each string leaf compiled as a format; a number, bool or null leaf
    is a constant of its JSON type; lists and nested structs keep their shape (Envoy 1.40 renders
    each element of a list as it renders a value)."""
    return {struct_key(key, node.value): _compile_json_value(child) for key, child in node.items()}


def _compile_json_value(child: Node) -> Any:
    v = child.value
    if isinstance(v, dict):
        return compile_json(child)
    if isinstance(v, list):
        return [_compile_json_value(item) for item in child.list()]
    if v is None or isinstance(v, bool | int | float):
        # Envoy reads a float, or an integer past int32, as the string written (struct_value.py)
        v = struct_value(v)
        if not isinstance(v, str):
            return Constant(v)
        return Formatter.compile(v, child)
    return Formatter.compile(child.str(), child)
