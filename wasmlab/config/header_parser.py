"""Header mutations of a route, virtual host or route configuration (Envoy ``Router::HeaderParser``:
``request_headers_to_add``/``_remove``, ``response_headers_to_add``/``_remove``).

Each ``HeaderValueOption`` carries a value that may hold ``%COMMAND%`` formatters (evaluated per
stream against its ``StreamInfo``) and an ``append_action``; Envoy's ``keep_empty_value`` false
drops an option whose value formats to the empty string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..http import HeaderMap
from .formatter import Formatter
from .yaml_source import Node

if TYPE_CHECKING:
    from ..http.stream_info import StreamInfo

APPEND_ACTIONS = (
    "APPEND_IF_EXISTS_OR_ADD",
    "ADD_IF_ABSENT",
    "OVERWRITE_IF_EXISTS_OR_ADD",
    "OVERWRITE_IF_EXISTS",
)


@dataclass
class HeaderValueOption:
    key: str
    value: Formatter
    append_action: str = "APPEND_IF_EXISTS_OR_ADD"
    keep_empty_value: bool = False

    def apply(self, headers: HeaderMap, info: StreamInfo | None) -> None:
        """Apply this one option on its own (header_mutation applies its list one by one)."""
        apply_header_options([self], headers, info)


def apply_header_options(options: list[HeaderValueOption], headers: HeaderMap, info: StreamInfo | None) -> None:
    """Envoy's ``HeaderParser::evaluateHeaders``: every value is computed against the headers as
    they were, then all overwrites are applied, then all appends (so an overwrite listed after an
    append still lands first)."""
    to_overwrite: list[tuple[str, str]] = []
    to_add: list[tuple[str, str]] = []
    for opt in options:
        value = opt.value.format(info) if info is not None else opt.value.literal()
        if not value and not opt.keep_empty_value:
            continue
        action = opt.append_action
        if action == "APPEND_IF_EXISTS_OR_ADD":
            to_add.append((opt.key, value))
        elif action == "ADD_IF_ABSENT":
            if opt.key not in headers:
                to_add.append((opt.key, value))
        elif action == "OVERWRITE_IF_EXISTS_OR_ADD" or opt.key in headers:
            to_overwrite.append((opt.key, value))
    for k, v in to_overwrite:
        headers.set(k, v)
    for k, v in to_add:
        headers.add(k, v)


@dataclass
class HeaderMutations:
    """One level's ``*_headers_to_add`` and ``*_headers_to_remove``."""

    request_add: list[HeaderValueOption] = field(default_factory=list)
    request_remove: list[str] = field(default_factory=list)
    response_add: list[HeaderValueOption] = field(default_factory=list)
    response_remove: list[str] = field(default_factory=list)

    def apply_request(self, headers: HeaderMap, info: StreamInfo | None) -> None:
        for name in self.request_remove:
            headers.remove(name)
        apply_header_options(self.request_add, headers, info)

    def apply_response(self, headers: HeaderMap, info: StreamInfo | None) -> None:
        for name in self.response_remove:
            headers.remove(name)
        apply_header_options(self.response_add, headers, info)


#: Envoy's ``HTTP_HEADER_NAME``/``HTTP_HEADER_VALUE`` rule with ``strict: false`` (``HeaderValue``)
_HEADER_TEXT_PATTERN = r"^[^\x00\n\r]*$"


def _check_header_text(node: Node, text: str, field: str) -> None:
    """Envoy refuses NUL, CR and LF in a configured header name or value (they would let a config
    split one header line into two on the wire); the message is its validator's."""
    if any(c in text for c in "\x00\r\n"):
        raise node.error(
            f'HeaderValueValidationError.{field}: value does not match regex pattern "{_HEADER_TEXT_PATTERN}"'
        )


def parse_header_value_option(node: Node) -> HeaderValueOption:
    node.check_fields("header append append_action keep_empty_value", required=("header",))
    h = node.req("header").check_fields("key value raw_value", required=("key",))
    key = h.req("key").str(allow_empty=False)
    _check_header_text(h.child("key"), key, "Key")
    if key.lower() != key and key.startswith(":"):
        raise h.error("header names must be lower case")
    value = h.get("value")
    # measured: Envoy's header parser reads ``value`` only; a ``raw_value`` alone adds nothing
    text = value.str() if value is not None else ""
    if value is not None:
        _check_header_text(value, text, "Value")
    action = "APPEND_IF_EXISTS_OR_ADD"
    if node.has("append") and node.has("append_action"):
        raise node.error("'append' and 'append_action' are mutually exclusive")
    if node.has("append"):
        action = "APPEND_IF_EXISTS_OR_ADD" if node.req("append").bool_value() else "OVERWRITE_IF_EXISTS_OR_ADD"
    if node.has("append_action"):
        action = node.req("append_action").enum(APPEND_ACTIONS)
    keep = node.req("keep_empty_value").bool() if node.has("keep_empty_value") else False
    fmt = Formatter.compile(text, h.child("value") if h.has("value") else h).header_bytes()
    return HeaderValueOption(key.lower(), fmt, action, keep)


def _protected(name: str) -> bool:
    """Pseudo-headers and ``host``, which a route's header mutations may not touch."""
    return name.startswith(":") or name.lower() == "host"


def _options(node: Node) -> list[HeaderValueOption]:
    out = []
    for x in node.list():
        opt = parse_header_value_option(x)
        if _protected(opt.key):
            raise x.error(":-prefixed or host headers may not be modified")
        out.append(opt)
    return out


def _removals(node: Node) -> list[str]:
    field = "".join(w.capitalize() for w in node.path.rsplit(".", 1)[-1].split("_"))
    where = f"{_message(node)}ValidationError.{field}"
    out = []
    for i, x in enumerate(node.list()):
        name = x.header_text(f"{where}[{i}]", False)
        if _protected(name):
            raise x.error(":-prefixed or host headers may not be removed")
        out.append(name.lower())
    return out


#: the protobuf message whose ``*_headers_to_add`` a node holds, by the field it is in
_MESSAGES = {
    "routes": "Route",
    "virtual_hosts": "VirtualHost",
    "route_config": "RouteConfiguration",
    "clusters": "ClusterWeight",  # a weighted cluster's entry
}


def _message(field: Node) -> str:
    """The protobuf message that holds the header list ``field`` (for Envoy's validation words)."""
    holder = field.path.rsplit(".", 1)[0]
    return _MESSAGES.get(re.sub(r"\[\d+\]$", "", holder.rsplit(".", 1)[-1]), "Route")


def parse_mutations(node: Node) -> HeaderMutations:
    """A route's, virtual host's or route configuration's header mutations; like Envoy, they may
    not add, set or remove pseudo-headers or ``host``, nor add more than 1000 headers a list."""
    m = HeaderMutations()
    for key in ("request_headers_to_add", "response_headers_to_add"):
        n = node.get(key)
        if n is not None and isinstance(n.value, list) and len(n.value) > 1000:
            message = _message(n)
            field = "".join(w.capitalize() for w in key.split("_"))
            raise n.error(
                f"Proto constraint validation failed ({message}ValidationError.{field}: value must contain no more "
                "than 1000 item(s))"
            )
    if (n := node.get("request_headers_to_add")) is not None:
        m.request_add = _options(n)
    if (n := node.get("response_headers_to_add")) is not None:
        m.response_add = _options(n)
    if (n := node.get("request_headers_to_remove")) is not None:
        m.request_remove = _removals(n)
    if (n := node.get("response_headers_to_remove")) is not None:
        m.response_remove = _removals(n)
    return m


MUTATION_FIELDS = (
    "request_headers_to_add",
    "request_headers_to_remove",
    "response_headers_to_add",
    "response_headers_to_remove",
)
