"""Envoy's access-log filters (``envoy.config.accesslog.v3.AccessLogFilter``): the ``filter`` of an
access log and of a ``local_reply_config`` mapper.

Implemented: ``status_code_filter``, ``duration_filter``, ``header_filter``,
``response_flag_filter``, ``not_health_check_filter`` (wasmlab has no health checks, so it always
passes), ``traceable_filter`` (wasmlab does no tracing, so it never passes), ``runtime_filter``
(its ``percent_sampled``, drawn with Python's ``random``; no runtime overrides) and
``and_filter``/``or_filter``. The others (``grpc_status_filter``, ``metadata_filter``,
``log_type_filter``, ``extension_filter``) are accepted with a warning and pass every stream.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..http import HeaderMap
from .matchers import parse_header_matcher
from .yaml_source import Node

if TYPE_CHECKING:
    from ..http.stream_info import StreamInfo

#: a compiled filter: (stream info, request headers) -> whether the entry passes
LogFilter = Callable[["StreamInfo", HeaderMap], bool]

_UNMODELLED = ("grpc_status_filter", "metadata_filter", "log_type_filter", "extension_filter")
_KINDS = (
    "status_code_filter duration_filter header_filter response_flag_filter not_health_check_filter "
    "traceable_filter runtime_filter and_filter or_filter"
)


def _comparison(node: Node, what: str) -> Callable[[int], bool]:
    """``ComparisonFilter``: ``op`` (EQ, GE, LE, NE) against ``value.default_value`` (the
    ``runtime_key`` names a runtime override wasmlab does not have)."""
    node.check_fields("comparison", required=("comparison",))
    c = node.req("comparison").check_fields("op value", required=("value",))
    op = c.req("op").enum(("EQ", "GE", "LE", "NE")) if c.has("op") else "EQ"
    v = c.req("value").check_fields("default_value runtime_key")
    limit = v.req("default_value").uint32() if v.has("default_value") else 0
    ops: dict[str, Callable[[int], bool]] = {
        "EQ": lambda x: x == limit,
        "GE": lambda x: x >= limit,
        "LE": lambda x: x <= limit,
        "NE": lambda x: x != limit,
    }
    return ops[op]


def _fraction(node: Node | None) -> float:
    if node is None:
        return 0.0
    node.check_fields("numerator denominator")
    num = node.req("numerator").uint32() if node.has("numerator") else 0
    den = node.req("denominator").enum(("HUNDRED", "TEN_THOUSAND", "MILLION")) if node.has("denominator") else "HUNDRED"
    return min(1.0, num / {"HUNDRED": 100, "TEN_THOUSAND": 10_000, "MILLION": 1_000_000}[den])


def parse_log_filter(node: Node) -> LogFilter:
    """Compile one ``AccessLogFilter`` (exactly one of its kinds is set)."""
    node.check_fields(_KINDS, ignored=_UNMODELLED)
    kinds = [k for k in (*_KINDS.split(), *_UNMODELLED) if k in node.value]
    if len(kinds) != 1:
        raise node.error(f"exactly one filter kind must be set, got {', '.join(kinds) or 'none'}")
    kind = kinds[0]
    child = node.req(kind)
    if kind == "status_code_filter":
        cmp = _comparison(child, kind)
        return lambda info, req: cmp(info.response_code or 0)
    if kind == "duration_filter":
        cmp = _comparison(child, kind)
        return lambda info, req: cmp(info.duration_ms() or 0)
    if kind == "header_filter":
        child.check_fields("header", required=("header",))
        hm = parse_header_matcher(child.req("header"))
        return lambda info, req: hm.matches(req)
    if kind == "response_flag_filter":
        child.check_fields("flags")
        flags = {f.str(allow_empty=False) for f in child.req("flags").list()} if child.has("flags") else set()
        return lambda info, req: _has_flag(info.response_flags, flags)
    if kind in ("and_filter", "or_filter"):
        child.check_fields("filters", required=("filters",))
        subs = [parse_log_filter(f) for f in child.req("filters").list()]
        if len(subs) < 2:
            raise child.child("filters").error("value must contain at least 2 item(s)")
        if kind == "and_filter":
            return lambda info, req: all(f(info, req) for f in subs)
        return lambda info, req: any(f(info, req) for f in subs)
    if kind == "runtime_filter":
        child.check_fields("runtime_key percent_sampled use_independent_randomness", required=("runtime_key",))
        share = _fraction(child.get("percent_sampled"))
        return lambda info, req: random.random() < share
    if kind == "traceable_filter":
        return lambda info, req: False
    return lambda info, req: True  # not_health_check_filter, and the unmodelled kinds (warned)


def _has_flag(flags: str, wanted: set[str]) -> bool:
    """``response_flag_filter``: any of ``wanted`` is set (any flag at all when empty)."""
    present = set() if flags in ("", "-") else set(flags.split(","))
    return bool(present & wanted) if wanted else bool(present)
