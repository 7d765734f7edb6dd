"""Lesson checks: look at what a response or a trace shows and say, in a coloured box, whether an
exercise does what it should — with a hint (that points the way, never the answer) when it does not.

The course's exercises use :class:`Exercise` (see COURSE-CONTRACT / ``notebooks/README.md``)::

    from wasmlab.checks import Exercise
    ex = Exercise("06", "2")
    if ex.answered(predicted):                    # blank (`...`/None) -> "not answered yet", False
        ex.check(predicted == seen, fail="…", hint="…")   # wrong -> red "not yet" + AssertionError
        ex.passed("…")                            # right -> green line

Each exercise run shows exactly one machine-readable record: display data with the MIME type
``application/vnd.wasmlab.check+json`` and the fields ``lesson``, ``exercise``, ``status``
(``blank``|``failed``|``passed``), ``message`` (and ``hint``). ``wasmlab grade`` counts them.
A blank exercise never raises, so "Run All" goes on; a wrong one raises ``AssertionError``.

The older one-shot functions (``check``, ``check_status``, ...) keep working: they show a box and
raise on failure, without a record.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

from .http import Response
from .trace import Trace

MIME = "application/vnd.wasmlab.check+json"
_STYLE = {
    "passed": ("#1b7837", "✔ passed"),
    "failed": ("#b2182b", "✘ not yet"),
    "blank": ("#8c8c8c", "… not answered yet"),
}


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
        f"status is {response.status}, expected {expected!r}",  # !r: '200' (a str) is not 200
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


def is_blank(value: Any) -> bool:
    """``...`` or ``None``, also inside a list, tuple, set or dict (a half-filled prediction)."""
    if value is ... or value is None:
        return True
    if isinstance(value, dict):
        return any(is_blank(v) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return any(is_blank(v) for v in value)
    return False


class Exercise:
    """One exercise run: ``answered`` → ``check``… → ``passed``, one record shown per run."""

    def __init__(self, lesson: str | int, exercise: str | int) -> None:
        self.lesson = f"{int(lesson):02d}" if str(lesson).isdigit() else str(lesson)
        self.exercise = str(exercise)
        self.status: str | None = None
        self._ok: list[str] = []

    @property
    def name(self) -> str:
        return f"{self.lesson}.{self.exercise}"

    def record(self, status: str, message: str, hint: str | None = None) -> dict[str, Any]:
        return {
            "lesson": self.lesson,
            "exercise": self.exercise,
            "status": status,
            "message": message,
            "hint": hint or "",
        }

    def _emit(self, status: str, message: str, hint: str | None = None) -> dict[str, Any]:
        rec = self.record(status, message, hint)
        if self.status is not None:  # one record per run: a second verdict is not shown again
            return rec
        self.status = status
        colour, mark = _STYLE[status]
        tip = f"<details><summary>hint</summary>{html.escape(hint)}</details>" if hint else ""
        box = (
            f'<div style="border-left:6px solid {colour};padding:6px 10px;margin:4px 0;background:#f7f7f7">'
            f"<b>{mark}</b> — Exercise {html.escape(self.name)}: {html.escape(message)}{tip}</div>"
        )
        text = f"{mark.split(' ', 1)[1].upper()}: Exercise {self.name}: {message}" + (
            f"\n  hint: {hint}" if hint else ""
        )
        try:
            from IPython.display import display

            display({"text/html": box, "text/plain": text, MIME: rec}, raw=True)
        except ImportError:
            print(text)
        return rec

    def answered(self, *values: Any) -> bool:
        """False (and a "not answered yet" record) when any value is still ``...``/``None``."""
        if any(is_blank(v) for v in values):
            self._emit("blank", "fill in the answer cell above, run it, then run this check again")
            return False
        return True

    def check(self, condition: Any, ok: str = "", fail: str = "not quite", hint: str | None = None) -> bool:
        """Wrong: a red "not yet" with ``hint``, the record, and ``AssertionError``."""
        if not condition:
            self._emit("failed", fail, hint)
            raise AssertionError(f"Exercise {self.name}: {fail}" + (f" (hint: {hint})" if hint else ""))
        if ok:
            self._ok.append(ok)
        return True

    def check_status(self, response: Response, expected: int, hint: str | None = None) -> bool:
        return self.check(
            response.status == expected,
            f"status is {expected}",
            f"the status is {response.status}, not the one the exercise asks for",
            hint,
        )

    def check_header(self, response: Response, name: str, value: str | None = None, hint: str | None = None) -> bool:
        got = response.headers.get(name)
        if value is None:
            return self.check(got is not None, f"the response has {name}", f"the response has no {name} header", hint)
        return self.check(got == value, f"{name}: {value}", f"{name} is {got!r}, not what the exercise asks for", hint)

    def check_upstream_header(
        self, response: Response, name: str, value: str | None = None, hint: str | None = None
    ) -> bool:
        """For the echo upstream: did the upstream receive ``name`` (with ``value``)?"""
        try:
            got = {k: v for k, v in response.json()["headers"]}.get(name)
        except Exception:
            return self.check(False, fail="the response is not the echo upstream's JSON", hint=hint)
        if value is None:
            return self.check(got is not None, f"the upstream received {name}", f"the upstream got no {name}", hint)
        return self.check(
            got == value,
            f"the upstream received {name}: {value}",
            f"the upstream got {name}={got!r}, not what the exercise asks for",
            hint,
        )

    def check_callback_order(
        self, trace: Trace | Iterable[Any], expected: Sequence[str], hint: str | None = None
    ) -> bool:
        names = callback_names(trace)
        pos = 0
        for i, want in enumerate(expected):
            try:
                pos = names.index(want, pos) + 1
            except ValueError:
                return self.check(
                    False, fail=f"callback {i + 1} of the expected order is not where it should be", hint=hint
                )
        return self.check(True, f"callbacks in Envoy's order: {' → '.join(expected)}")

    def passed(self, message: str | None = None) -> dict[str, Any]:
        """The green line and the ``passed`` record (``message`` defaults to the checks that held)."""
        return self._emit("passed", message or "; ".join(self._ok) or "all checks hold")
