"""The matchers a route uses (Envoy ``StringMatcher``, ``HeaderMatcher``,
``QueryParameterMatcher`` from ``config/route/v3`` and ``type/matcher/v3``), and the path/query
splitting they need. Every ``safe_regex`` is compiled with RE2 (the ``google-re2`` binding), the
engine Envoy uses: matching takes linear time whatever the pattern and input (Python's ``re``
backtracks: ``(a+)+b`` on 40 ``a``s would hold the GIL for hours), and patterns RE2 cannot run
(backreferences, lookarounds) are refused with RE2's own message, as Envoy refuses them.
Envoy also refuses a pattern whose compiled program is larger than 100 (its default
``re2.max_program_size.error_level``); wasmlab applies the same bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

from ..http import HeaderMap
from .yaml_source import Node


@dataclass
class StringMatcher:
    kind: str  # exact prefix suffix contains regex
    value: str
    ignore_case: bool = False
    regex: Any = None  # a compiled RE2 pattern

    def matches(self, s: str) -> bool:
        if self.kind == "regex":
            assert self.regex is not None
            return self.regex.fullmatch(s) is not None
        if self.ignore_case:
            s = s.lower()
            v = self.value.lower()
        else:
            v = self.value
        if self.kind == "exact":
            return s == v
        if self.kind == "prefix":
            return s.startswith(v)
        if self.kind == "suffix":
            return s.endswith(v)
        return v in s


#: Envoy's default ``re2.max_program_size.error_level``
MAX_PROGRAM_SIZE = 100


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern on stderr
    return options


_OPTIONS = _re2_options()


def compile_regex(node: Node) -> Any:
    """``envoy.type.matcher.v3.RegexMatcher``: ``{regex, google_re2: {}}``, compiled with RE2."""
    node.check_fields("regex google_re2", required=("regex",))
    pattern = node.req("regex").str()
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as e:
        reason = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise node.child("regex").error(f"invalid regex {pattern!r}: {reason} (RE2, Envoy's regex engine)") from None
    size = compiled.programsize
    if size > MAX_PROGRAM_SIZE:
        raise node.child("regex").error(
            f"regex '{pattern}' RE2 program size of {size} > max program size of {MAX_PROGRAM_SIZE} set for "
            "the error level threshold. Increase configured max program size if necessary."
        )
    return compiled


def parse_string_matcher(node: Node) -> StringMatcher:
    node.check_fields("exact prefix suffix contains safe_regex ignore_case")
    ignore = node.req("ignore_case").bool() if node.has("ignore_case") else False
    kinds = [k for k in ("exact", "prefix", "suffix", "contains", "safe_regex") if k in node.value]
    if len(kinds) != 1:
        raise node.error("exactly one of exact, prefix, suffix, contains, safe_regex must be set")
    kind = kinds[0]
    if kind == "safe_regex":
        return StringMatcher("regex", "", ignore, compile_regex(node.req("safe_regex")))
    return StringMatcher(kind, node.req(kind).str(), ignore)


@dataclass
class HeaderMatcher:
    name: str
    matcher: StringMatcher | None  # None: present_match
    present: bool = True
    invert: bool = False
    treat_missing_as_empty: bool = False

    def matches(self, headers: HeaderMap) -> bool:
        values = headers.get_all(self.name)
        if not values:
            if self.treat_missing_as_empty and self.matcher is not None:
                result = self.matcher.matches("")
            else:
                result = self.matcher is None and not self.present
        elif self.matcher is None:
            result = self.present
        else:
            result = self.matcher.matches(",".join(values))
        return result != self.invert


def parse_header_matcher(node: Node) -> HeaderMatcher:
    node.check_fields(
        "name string_match present_match invert_match exact_match prefix_match suffix_match "
        "contains_match safe_regex_match treat_missing_header_as_empty",
        required=("name",),
    )
    name = node.req("name").str(allow_empty=False).lower()
    invert = node.req("invert_match").bool() if node.has("invert_match") else False
    missing_empty = (
        node.req("treat_missing_header_as_empty").bool() if node.has("treat_missing_header_as_empty") else False
    )
    legacy = {
        "exact_match": "exact",
        "prefix_match": "prefix",
        "suffix_match": "suffix",
        "contains_match": "contains",
    }
    if node.has("string_match"):
        return HeaderMatcher(name, parse_string_matcher(node.req("string_match")), True, invert, missing_empty)
    for key, kind in legacy.items():
        if node.has(key):
            return HeaderMatcher(name, StringMatcher(kind, node.req(key).str()), True, invert, missing_empty)
    if node.has("safe_regex_match"):
        m = StringMatcher("regex", "", False, compile_regex(node.req("safe_regex_match")))
        return HeaderMatcher(name, m, True, invert, missing_empty)
    present = node.req("present_match").bool() if node.has("present_match") else True
    return HeaderMatcher(name, None, present, invert, missing_empty)


@dataclass
class QueryParameterMatcher:
    name: str
    matcher: StringMatcher | None
    present: bool = True

    def matches(self, query: dict[str, str]) -> bool:
        if self.name not in query:
            return False
        if self.matcher is None:
            return self.present
        return self.matcher.matches(query[self.name])


def parse_query_matcher(node: Node) -> QueryParameterMatcher:
    node.check_fields("name string_match present_match", required=("name",))
    name = node.req("name").str(allow_empty=False)
    if node.has("string_match"):
        return QueryParameterMatcher(name, parse_string_matcher(node.req("string_match")))
    present = node.req("present_match").bool() if node.has("present_match") else True
    return QueryParameterMatcher(name, None, present)


def split_path(path: str) -> tuple[str, str]:
    """``/a/b?x=1#f`` -> (``/a/b``, ``x=1``)."""
    path = path.split("#", 1)[0]
    if "?" in path:
        p, q = path.split("?", 1)
        return p, q
    return path, ""


def parse_query(q: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in q.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        out.setdefault(k, v)
    return out
