"""Lesson checks: small functions that look at a response or a trace and say, in a coloured box,
whether an exercise does what it should — with a hint when it does not.

A failed check also raises ``AssertionError`` so a notebook run by CI (or "Run All") stops there.

    from wasmlab.checks import check_status, check_callback_order
    check_status(r, 403)
    check_callback_order(proxy.trace, ["proxy_on_request_headers", "proxy_on_response_headers"])
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

from .http import Response
from .trace import Trace


class CheckResult:
    def __init__(self, ok: bool, message: str, hint: str | None = None) -> None:
        self.ok = ok
        self.message = message
        self.hint = hint

    def _repr_html_(self) -> str:
        colour, mark = ("#1b7837", "✔ passed") if self.ok else ("#b2182b", "✘ not yet")
        hint = ""
        if self.hint and not self.ok:
            hint = f"<details><summary>hint</summary>{html.escape(self.hint)}</details>"
        return (
            f'<div style="border-left:6px solid {colour};padding:6px 10px;margin:4px 0;background:#f7f7f7">'
            f"<b>{mark}</b> — {html.escape(self.message)}{hint}</div>"
        )

    def __repr__(self) -> str:
        text = f"{'PASSED' if self.ok else 'NOT YET'}: {self.message}"
        if self.hint and not self.ok:
            text += f"\n  hint: {self.hint}"
        return text


def _show(result: CheckResult) -> CheckResult:
    try:
        from IPython.display import display

        display(result)
    except ImportError:
        print(repr(result))
    if not result.ok:
        raise AssertionError(result.message + (f" (hint: {result.hint})" if result.hint else ""))
    return result


def check(condition: bool, ok: str, fail: str, hint: str | None = None) -> CheckResult:
    """The general form: show ``ok`` or ``fail`` (with ``hint``)."""
    return _show(CheckResult(bool(condition), ok if condition else fail, hint))


def check_status(response: Response, expected: int, hint: str | None = None) -> CheckResult:
    return check(
        response.status == expected,
        f"status is {expected}",
        f"status is {response.status}, expected {expected}",
        hint,
    )


def check_header(response: Response, name: str, value: str | None = None, hint: str | None = None) -> CheckResult:
    got = response.headers.get(name)
    if value is None:
        return check(got is not None, f"response has {name}", f"response has no {name} header", hint)
    return check(got == value, f"{name}: {value}", f"{name} is {got!r}, expected {value!r}", hint)


def check_upstream_header(
    response: Response, name: str, value: str | None = None, hint: str | None = None
) -> CheckResult:
    """For the echo upstream: did the upstream receive ``name`` (with ``value``)?"""
    try:
        headers = {k: v for k, v in response.json()["headers"]}
    except Exception:
        return check(False, "", "the response is not the echo app's JSON", hint)
    got = headers.get(name)
    if value is None:
        return check(got is not None, f"the upstream received {name}", f"the upstream did not receive {name}", hint)
    return check(got == value, f"the upstream received {name}: {value}", f"the upstream got {name}={got!r}", hint)


def callback_names(trace: Trace | Iterable[Any], kinds: Sequence[str] = ("callback",)) -> list[str]:
    """Names of the host->VM callbacks (or other kinds) entered, in order."""
    out = []
    for e in trace:
        phase = e.data.get("phase") if isinstance(e.data, dict) else None
        if e.kind in kinds and phase in (None, "enter", "event"):
            out.append(e.name)
    return out


def check_callback_order(trace: Trace | Iterable[Any], expected: Sequence[str], hint: str | None = None) -> CheckResult:
    """The expected callbacks appear in this order (others may be in between)."""
    names = callback_names(trace)
    pos = 0
    for want in expected:
        try:
            pos = names.index(want, pos) + 1
        except ValueError:
            return check(
                False,
                "",
                f"{want} is missing after {expected[: list(expected).index(want)]}; saw {names}",
                hint
                or "Envoy calls headers before body, request before response, and on_log, on_done, on_delete last.",
            )
    return check(True, f"callbacks in Envoy's order: {' → '.join(expected)}", "")
