"""URI templates: a route's ``path_match_policy`` (``envoy.path.match.uri_template``) and a
route action's ``path_rewrite_policy`` (``envoy.path.rewrite.uri_template``).

A template is ``/``-separated segments, each a literal, ``*`` (one segment), ``**`` (any number
of segments), or a variable ``{name}``/``{name=*}``/``{name=**}``/``{name=a/*}`` that captures
what it matches (at most 5); a segment may end in a literal suffix (``/{file}.mpd``). Envoy
compiles it to an RE2 pattern over the path without its query, with ``*`` as one or more
characters of ``[a-zA-Z0-9-._~%!$&'()+,;:@=*]`` and ``**`` as any number of those or ``/``. A
rewrite template is literals and ``{name}`` references to the match's variables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .yaml_source import Node

MATCH_TYPE = "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig"
REWRITE_TYPE = "type.googleapis.com/envoy.extensions.path.rewrite.uri_template.v3.UriTemplateRewriteConfig"

_LITERAL = "a-zA-Z0-9\\-._~%!$&'()+,;:@="
# what ``*`` and ``**`` match: the literal characters and, measured on Envoy 1.40, ``*`` itself
_ONE = f"[{_LITERAL}*]+"
_ANY = f"[{_LITERAL}*/]*"
_LITERAL_RE = re.compile(f"[{_LITERAL}]+")
_VARIABLE_RE = re.compile(r"\{([a-zA-Z][a-zA-Z0-9_]*)(?:=([^}]*))?\}")


class _Invalid(ValueError):
    """A template Envoy refuses; the message is Envoy's reason."""


def _operator(op: str, text: str) -> str:
    if op == "*":
        return _ONE
    if op == "**":
        return _ANY
    if op == "":
        raise _Invalid('Invalid literal: ""')
    if _LITERAL_RE.fullmatch(op):
        return re.escape(op)
    raise _Invalid(f'Invalid pattern: "{text}"')


def _segment(seg: str, names: list[str], text: str) -> str:
    m = _VARIABLE_RE.match(seg)
    if m is None:
        op, suffix = (seg, "") if not seg.startswith("**") else ("**", seg[2:])
        body = _operator(op, text)
    else:
        name = m.group(1)
        if name in names:
            raise _Invalid(f'Repeated variable name: "{name}"')
        names.append(name)
        body = f"(?P<{name}>" + "/".join(_operator(p, text) for p in (m.group(2) or "*").split("/")) + ")"
        suffix = seg[m.end() :]
    if suffix:
        if not _LITERAL_RE.fullmatch(suffix):
            raise _Invalid(f'Invalid pattern: "{text}"')
        body += re.escape(suffix)
    return body


def _split(text: str) -> list[str]:
    """Split at the ``/`` outside ``{...}`` (a variable's own pattern may hold ``/``)."""
    out, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "/" and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return out


@dataclass
class UriTemplate:
    """A compiled ``path_template``: ``matches`` the path (no query), ``captures`` its variables."""

    template: str
    pattern: re.Pattern[str]
    names: list[str]

    def matches(self, bare_path: str) -> bool:
        return self.pattern.fullmatch(bare_path) is not None

    def rewrite(self, bare_path: str, rewrite: str) -> str | None:
        m = self.pattern.fullmatch(bare_path)
        if m is None:
            return None
        return _VARIABLE_RE.sub(lambda v: m.group(v.group(1)), rewrite)


def compile_template(text: str, node: Node) -> UriTemplate:
    """Compile a ``path_template``; a template Envoy refuses is a config error in its words."""
    names: list[str] = []
    try:
        if not text.startswith("/"):
            raise _Invalid(f'Invalid pattern: "{text}"')
        body = "/".join(_segment(s, names, text) for s in _split(text[1:]))
        if len(names) > 5:
            raise _Invalid("Exceeded variable count limit (5)")
    except _Invalid as e:
        raise node.error(f"path_match_policy.path_template {text} is invalid: {e}") from None
    return UriTemplate(text, re.compile("/" + body), names)


def parse_path_match_policy(node: Node) -> UriTemplate:
    """``path_match_policy: {name, typed_config: UriTemplateMatchConfig{path_template}}``."""
    node.check_fields("name typed_config", required=("typed_config",))
    tc = node.req("typed_config").check_fields("@type path_template", required=("path_template",))
    if tc.req("@type").str() != MATCH_TYPE:
        raise tc.child("@type").error(f"unsupported path matcher (wasmlab supports {MATCH_TYPE.split('/', 1)[1]})")
    return compile_template(tc.req("path_template").str(), tc.child("path_template"))


def parse_path_rewrite_policy(node: Node, match: UriTemplate | None) -> str:
    """``path_rewrite_policy``: the rewrite template; every variable it names must be one of the
    route's ``path_match_policy`` (Envoy refuses the config otherwise)."""
    node.check_fields("name typed_config", required=("typed_config",))
    tc = node.req("typed_config").check_fields("@type path_template_rewrite", required=("path_template_rewrite",))
    if tc.req("@type").str() != REWRITE_TYPE:
        raise tc.child("@type").error(f"unsupported path rewriter (wasmlab supports {REWRITE_TYPE.split('/', 1)[1]})")
    rewrite = tc.req("path_template_rewrite").str()
    if match is None:
        raise node.error(
            "unable to use envoy.path.rewrite.uri_template.uri_template_rewriter extension without "
            "envoy.path.match.uri_template.uri_template_matcher extension"
        )
    for v in _VARIABLE_RE.finditer(rewrite):
        if v.group(1) not in match.names:
            raise tc.child("path_template_rewrite").error(
                f"mismatch between variables in path_match_policy {match.template} and path_rewrite_policy {rewrite}"
            )
    return rewrite
