"""The proxy log: lines ``[level][logger] message`` with Envoy's logger names.

Envoy's default level is ``info``: debug and trace lines are dropped, as ``proxy_log`` at debug
level is dropped by the host in Envoy. Every kept line is also a ``log`` trace event.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..trace import Recorder

LEVELS = ("trace", "debug", "info", "warning", "error", "critical", "off")
_RANK = {name: i for i, name in enumerate(LEVELS)}
_RANK["warn"] = _RANK["warning"]


def level_rank(level: str) -> int:
    try:
        return _RANK[level]
    except KeyError:
        raise ValueError(f"unknown log level {level!r} (expected one of: {', '.join(LEVELS)})") from None


class ProxyLog:
    """Envoy's ``-l LEVEL`` plus ``--component-log-level logger:level,...``."""

    def __init__(
        self, recorder: Recorder, level: str = "info", capacity: int = 100_000, component_levels: str | None = None
    ) -> None:
        self._recorder = recorder
        self.level = level
        self._rank = level_rank(level)
        self._components: dict[str, int] = {}
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._capacity = capacity
        if component_levels:
            self.set_component_levels(component_levels)

    def set_level(self, level: str) -> None:
        self._rank = level_rank(level)
        self.level = level

    def set_component_levels(self, spec: str) -> None:
        """``"wasm:trace,lua:debug"`` as Envoy's ``--component-log-level`` takes it."""
        for part in spec.split(","):
            name, sep, level = part.strip().partition(":")
            if not sep or not name:
                raise ValueError(f"component log level must look like logger:level, got {part!r}")
            self._components[name] = level_rank(level)

    def rank_of(self, logger: str) -> int:
        return self._components.get(logger, self._rank)

    def enabled(self, level: str, logger: str = "") -> bool:
        return _RANK.get(level, 2) >= self._components.get(logger, self._rank)

    @property
    def rank(self) -> int:
        return self._rank

    def log(self, level: str, logger: str, message: str, record: bool = True) -> None:
        """Keep the line (and record it in the trace unless ``record`` is false)."""
        if _RANK.get(level, 2) < self._components.get(logger, self._rank):
            return
        line = f"[{level}][{logger}] {message}"
        with self._lock:
            self._lines.append(line)
            if len(self._lines) > self._capacity:
                del self._lines[: len(self._lines) - self._capacity]
        if record and self._recorder.enabled:
            self._recorder.record("log", level, {"logger": logger, "message": message})

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def clear(self) -> None:
        with self._lock:
            self._lines.clear()
