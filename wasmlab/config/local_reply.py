"""``local_reply_config`` of the HTTP connection manager (Envoy ``LocalReply::LocalReplyImpl``):
rewrite every local reply (no route, direct responses, redirects, upstream failures, a filter's
``send_local_reply``) before it is sent.

Envoy's ``rewrite`` (checked against Envoy 1.40): the reply's status is recorded, then the first
mapper whose ``filter`` passes replaces the body with its ``body`` (taken literally, no
``%COMMAND%``s), adds its ``headers_to_add`` (formatted while the status is still the original
one), then sets its ``status_code``. The body is then formatted with that mapper's
``body_format_override`` or else the config's ``body_format`` (default: ``%LOCAL_REPLY_BODY%`` as
``text/plain``); ``json_format`` renders its keys sorted, numbers as numbers, absent values as
``null``, and ends with a newline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..http import HeaderMap
from .data_source import parse_data_source
from .formatter import Formatter, LogFormat, parse_log_format
from .header_parser import HeaderValueOption, apply_header_options, parse_header_value_option
from .log_filter import LogFilter, parse_log_filter
from .yaml_source import Node

if TYPE_CHECKING:
    from ..http.stream_info import StreamInfo


class FormatContext:
    """A stream's info as the local-reply formatters see it: the reply's own headers and body
    (``%RESP(...)%``, ``%LOCAL_REPLY_BODY%``) over the stream's ``StreamInfo``."""

    def __init__(self, info: StreamInfo, response_headers: HeaderMap, body: str) -> None:
        self._info = info
        self.response_headers = response_headers
        self.local_reply_body = body

    def __getattr__(self, name: str) -> Any:
        return getattr(self._info, name)


@dataclass(frozen=True)
class BodyFormat:
    """A body format: a ``SubstitutionFormatString`` and the content type it implies."""

    format: LogFormat
    content_type: str = "text/plain"


DEFAULT_BODY_FORMAT = BodyFormat(LogFormat(Formatter.compile("%LOCAL_REPLY_BODY%")))


def parse_body_format(node: Node) -> BodyFormat:
    """A ``SubstitutionFormatString`` used as a body (``text_format``, ``text_format_source``,
    ``json_format``; ``content_type`` overrides the implied one)."""
    fmt = parse_log_format(node)
    ct = "application/json" if fmt.json is not None else "text/plain"
    if node.has("content_type"):
        ct = node.req("content_type").str()
    return BodyFormat(fmt, ct)


@dataclass
class ResponseMapper:
    filter: LogFilter
    status_code: int | None = None
    body: bytes | None = None
    headers_to_add: list[HeaderValueOption] = field(default_factory=list)
    body_format: BodyFormat | None = None


@dataclass
class LocalReplyConfig:
    mappers: list[ResponseMapper] = field(default_factory=list)
    body_format: BodyFormat = field(default_factory=lambda: DEFAULT_BODY_FORMAT)

    def rewrite(
        self, info: StreamInfo, request_headers: HeaderMap | None, headers: HeaderMap, status: int, body: bytes
    ) -> tuple[int, bytes, str]:
        """Envoy ``LocalReplyImpl::rewrite``: the (status, body, content type) to send; the
        mapper's headers are added to ``headers``, whose ``:status`` follows."""
        headers.set(":status", str(status))
        info.response_code = status
        request = request_headers if request_headers is not None else HeaderMap()
        fmt = self.body_format
        for m in self.mappers:
            if not m.filter(info, request):
                continue
            if m.body is not None:
                body = m.body
            apply_header_options(m.headers_to_add, headers, FormatContext(info, headers, ""))  # type: ignore[arg-type]
            if m.status_code is not None and m.status_code != status:
                status = m.status_code
                headers.set(":status", str(status))
                info.response_code = status
            fmt = m.body_format or fmt
            break
        if fmt is DEFAULT_BODY_FORMAT:
            return status, body, fmt.content_type
        ctx = FormatContext(info, headers, body.decode("utf-8", "surrogateescape"))
        return status, fmt.format.render(ctx).encode("utf-8", "surrogateescape"), fmt.content_type


def parse_local_reply_config(node: Node) -> LocalReplyConfig:
    node.check_fields("mappers body_format")
    cfg = LocalReplyConfig()
    if node.has("body_format"):
        cfg.body_format = parse_body_format(node.req("body_format"))
    for mn in node.req("mappers").list() if node.has("mappers") else []:
        mn.check_fields("filter status_code body body_format_override headers_to_add", required=("filter",))
        m = ResponseMapper(parse_log_filter(mn.req("filter")))
        if mn.has("status_code"):
            sc = mn.req("status_code")
            m.status_code = sc.req("value").int(200, 599) if isinstance(sc.value, dict) else sc.int(200, 599)
        if mn.has("body"):
            m.body = parse_data_source(mn.req("body"))
        if mn.has("body_format_override"):
            m.body_format = parse_body_format(mn.req("body_format_override"))
        if mn.has("headers_to_add"):
            m.headers_to_add = [parse_header_value_option(h) for h in mn.req("headers_to_add").list()]
        cfg.mappers.append(m)
    return cfg
