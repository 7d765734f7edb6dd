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


def wire(s: str) -> bytes:
    """A header value or path as the bytes on the wire: wasmlab holds them as one character per
    byte (latin-1); text a Python filter set with wider characters is taken as UTF-8."""
    try:
        return s.encode("latin-1")
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape")


def as_wire_text(s: str) -> str:
    """Text from the YAML (Unicode) as wasmlab holds header bytes: its UTF-8 bytes, one
    character per byte. Envoy compares the config's UTF-8 bytes with the request's bytes."""
    return s.encode("utf-8", "surrogateescape").decode("latin-1")


def ascii_lower(s: str) -> str:
    """Envoy's ``ignore_case`` (``absl::AsciiStrToLower``): only A-Z are folded."""
    return s.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


class Regex:
    """An RE2 pattern compiled from the config's UTF-8 bytes and run on the request's bytes, as
    Envoy runs it: byte by byte (``.`` is one byte, so a UTF-8 "é" takes two)."""

    __slots__ = ("compiled", "pattern")

    def __init__(self, compiled: Any, pattern: str) -> None:
        self.compiled = compiled
        self.pattern = pattern

    @property
    def programsize(self) -> int:
        return int(self.compiled.programsize)

    def fullmatch(self, s: str) -> bool:
        return self.compiled.fullmatch(wire(s)) is not None

    def sub(self, substitution: str, s: str) -> str:
        """RE2 ``GlobalReplace`` on the bytes, back to wasmlab's text. RE2's rewrite rules, not
        Python's: ``\\0``-``\\9`` are the groups (an unmatched one is empty), ``\\\\`` a
        backslash; a rewrite naming a group the pattern lacks changes nothing, and any other
        escape (``\\q``, ``\\g<1>``) ends that match's replacement where it stands. Empty
        matches right after a match are skipped, one byte on."""
        data = wire(s)
        rewrite = substitution.encode("utf-8", "surrogateescape")
        if _max_group(rewrite) > self.compiled.groups:
            return s
        out = bytearray()
        p, last_end, count, n = 0, -1, 0, len(data)
        while p <= n:
            m = self.compiled.search(data, p)
            if m is None:
                break
            start, end = m.span()
            out += data[p:start]
            if start == end and start == last_end:  # no empty match where the last one ended
                out += data[start : start + 1]
                p = start + 1
                continue
            _rewrite(out, rewrite, m)
            p = last_end = end
            count += 1
        if not count:
            return s
        out += data[p:]
        return bytes(out).decode("latin-1")


def _max_group(rewrite: bytes) -> int:
    """The highest ``\\N`` a rewrite names (RE2 ``MaxSubmatch``)."""
    top, i = 0, 0
    while i < len(rewrite) - 1:
        if rewrite[i] == 0x5C:
            if 0x30 <= rewrite[i + 1] <= 0x39:
                top = max(top, rewrite[i + 1] - 0x30)
            i += 2
        else:
            i += 1
    return top


def _rewrite(out: bytearray, rewrite: bytes, m: Any) -> None:
    """One match's replacement (RE2 ``Rewrite``): stops at an escape RE2 does not know."""
    i, n = 0, len(rewrite)
    while i < n:
        c = rewrite[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        nxt = rewrite[i + 1] if i + 1 < n else -1
        if 0x30 <= nxt <= 0x39:
            out += m.group(nxt - 0x30) or b""
        elif nxt == 0x5C:
            out.append(0x5C)
        else:
            return
        i += 2


@dataclass
class StringMatcher:
    """``envoy.type.matcher.v3.StringMatcher``. ``value`` is held as wire text (see
    :func:`as_wire_text`) so non-ASCII config text compares byte for byte, as in Envoy."""

    kind: str  # exact prefix suffix contains regex
    value: str
    ignore_case: bool = False
    regex: Regex | None = None

    def matches(self, s: str) -> bool:
        if self.kind == "regex":
            assert self.regex is not None
            return self.regex.fullmatch(s)
        if self.ignore_case:
            s = ascii_lower(s)
            v = ascii_lower(self.value)
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
    # measured on Envoy 1.40: a regex runs on bytes (``caf.`` does not match the UTF-8 "café",
    # ``caf..`` does), so patterns are compiled from the config's UTF-8 bytes in Latin-1 mode
    options.encoding = re2.Options.Encoding.LATIN1
    return options


_OPTIONS = _re2_options()


def compile_regex(node: Node) -> Regex:
    """``envoy.type.matcher.v3.RegexMatcher``: ``{regex, google_re2: {}}``, compiled with RE2."""
    node.check_fields("regex google_re2", required=("regex",))
    pattern = node.req("regex").str()
    if not pattern:
        raise node.child("regex").error(
            "Proto constraint validation failed (RegexMatcherValidationError.Regex: value length must be at least "
            "1 characters)"
        )
    try:
        compiled = re2.compile(pattern.encode("utf-8", "surrogateescape"), _OPTIONS)
    except re2.error as e:
        reason = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise node.child("regex").error(f"invalid regex {pattern!r}: {reason} (RE2, Envoy's regex engine)") from None
    size = compiled.programsize
    if size > MAX_PROGRAM_SIZE:
        raise node.child("regex").error(
            f"regex '{pattern}' RE2 program size of {size} > max program size of {MAX_PROGRAM_SIZE} set for "
            "the error level threshold. Increase configured max program size if necessary."
        )
    return Regex(compiled, pattern)


def parse_string_matcher(node: Node) -> StringMatcher:
    node.check_fields("exact prefix suffix contains safe_regex ignore_case")
    ignore = node.req("ignore_case").bool() if node.has("ignore_case") else False
    kinds = [k for k in ("exact", "prefix", "suffix", "contains", "safe_regex") if k in node.value]
    if len(kinds) != 1:
        raise node.error("exactly one of exact, prefix, suffix, contains, safe_regex must be set")
    kind = kinds[0]
    if kind == "safe_regex":
        return StringMatcher("regex", "", ignore, compile_regex(node.req("safe_regex")))
    value = node.req(kind).str()
    if not value and kind != "exact":  # Envoy's proto rule (an empty exact is allowed)
        raise node.child(kind).error(
            f"Proto constraint validation failed (StringMatcherValidationError.{kind.capitalize()}: value length "
            "must be at least 1 characters)"
        )
    return StringMatcher(kind, as_wire_text(value), ignore)


@dataclass
class RangeMatcher:
    """``range_match`` (``Int64Range``): the value, read as a base-10 integer, lies in
    ``[start, end)``; a value that is not an integer does not match."""

    start: int
    end: int

    def matches(self, s: str) -> bool:
        # Envoy parses with absl::SimpleAtoi: surrounding whitespace and a leading sign are allowed
        t = s.strip(" \t\n\v\f\r")
        digits = t[1:] if t[:1] in "+-" else t
        if not digits or not (digits.isascii() and digits.isdigit()):
            return False
        v = int(t)
        return -(2**63) <= v < 2**63 and self.start <= v < self.end


@dataclass
class HeaderMatcher:
    name: str
    matcher: StringMatcher | RangeMatcher | None  # None: present_match
    present: bool = True
    invert: bool = False
    treat_missing_as_empty: bool = False

    def matches(self, headers: HeaderMap) -> bool:
        """Envoy 1.40 (``HeaderUtility::HeaderData``, checked against it): a value matcher matches
        when ANY of the header's values matches (values are not joined); an absent header
        matches nothing, whatever ``invert_match`` says, unless ``treat_missing_header_as_empty``
        (then the value is ``""``). ``present_match`` matches presence (absence when false) and
        is the only matcher ``invert_match`` can turn an absent header into a match for."""
        values = headers.get_all(self.name)
        matcher = self.matcher
        if matcher is None:
            return (bool(values) == self.present) != self.invert
        if not values:
            if not self.treat_missing_as_empty:
                return False
            values = [""]
        return any(matcher.matches(v) for v in values) != self.invert


def parse_header_matcher(node: Node) -> HeaderMatcher:
    node.check_fields(
        "name string_match present_match invert_match exact_match prefix_match suffix_match "
        "contains_match safe_regex_match range_match treat_missing_header_as_empty",
        required=("name",),
    )
    name = node.req("name").header_text("HeaderMatcherValidationError.Name", False).lower()
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
    specifiers = [
        k for k in (*legacy, "string_match", "safe_regex_match", "range_match", "present_match") if node.has(k)
    ]
    if len(specifiers) > 1:  # one protobuf oneof: Envoy cannot even parse the config
        raise node.error(f"only one of {', '.join(specifiers)} may be set (they are one protobuf oneof)")
    if node.has("string_match"):
        return HeaderMatcher(name, parse_string_matcher(node.req("string_match")), True, invert, missing_empty)
    for key, kind in legacy.items():
        if node.has(key):
            value = node.req(key).str()
            if kind != "exact" and not value:
                field = "".join(w.capitalize() for w in key.split("_"))
                raise node.child(key).error(
                    f"Proto constraint validation failed (HeaderMatcherValidationError.{field}: value length must "
                    "be at least 1 characters)"
                )
            if kind == "exact" and not value:  # Envoy: an empty exact_match is a presence match
                return HeaderMatcher(name, None, True, invert, missing_empty)
            return HeaderMatcher(name, StringMatcher(kind, as_wire_text(value)), True, invert, missing_empty)
    if node.has("safe_regex_match"):
        m = StringMatcher("regex", "", False, compile_regex(node.req("safe_regex_match")))
        return HeaderMatcher(name, m, True, invert, missing_empty)
    if node.has("range_match"):
        rn = node.req("range_match").check_fields("start end")
        start = rn.req("start").int(-(2**63), 2**63 - 1) if rn.has("start") else 0
        end = rn.req("end").int(-(2**63), 2**63 - 1) if rn.has("end") else 0
        return HeaderMatcher(name, RangeMatcher(start, end), True, invert, missing_empty)
    present = node.req("present_match").bool() if node.has("present_match") else True
    return HeaderMatcher(name, None, present, invert, missing_empty)


@dataclass
class QueryParameterMatcher:
    name: str
    matcher: StringMatcher | None
    present: bool = True

    def matches(self, query: dict[str, str]) -> bool:
        if self.name not in query:
            return self.matcher is None and not self.present  # present_match: false
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
