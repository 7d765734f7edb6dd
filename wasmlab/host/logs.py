"""The proxy log: lines ``[level][logger] message`` with Envoy's logger names.

Envoy's default level is ``info``: debug and trace lines are dropped, as ``proxy_log`` at debug
level is dropped by the host in Envoy. Every kept line is also a ``log`` trace event.

Envoy writes its log to a file or stderr and keeps nothing; wasmlab keeps the lines in memory for
``proxy.logs``, so it bounds them (proxy options, ``host/options.py``): a message longer than
``log_line_limit_kb`` is cut, with a marker saying how much (counter ``wasmlab.log.lines_cut``),
and the oldest lines go once the kept ones pass ``log_memory_limit_mb`` or 100,000 lines
(counter ``wasmlab.log.lines_evicted``).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..trace import Recorder
    from .stats import Stats

LEVELS = ("trace", "debug", "info", "warning", "error", "critical", "off")
_RANK = {name: i for i, name in enumerate(LEVELS)}
_RANK["warn"] = _RANK["warning"]


def level_rank(level: str) -> int:
    try:
        return _RANK[level]
    except KeyError:
        raise ValueError(f"unknown log level {level!r} (expected one of: {', '.join(LEVELS)})") from None


def cut_message(message: str, limit: int | None) -> str:
    """``message`` within ``limit`` characters, with a marker naming what was cut."""
    if limit is None or len(message) <= limit:
        return message
    return f"{message[:limit]}... [wasmlab cut {len(message) - limit} characters: log_line_limit_kb]"


class ProxyLog:
    """Envoy's ``-l LEVEL`` plus ``--component-log-level logger:level,...``."""

    def __init__(
        self,
        recorder: Recorder,
        level: str = "info",
        capacity: int = 100_000,
        component_levels: str | None = None,
        memory_limit: int | None = None,
        line_limit: int | None = None,
        stats: Stats | None = None,
    ) -> None:
        self._recorder = recorder
        self.level = level
        self._rank = level_rank(level)
        self._components: dict[str, int] = {}
        self._lines: deque[str] = deque()
        self._lock = threading.Lock()
        self._capacity = capacity
        #: bytes (characters) the kept lines may hold, None = no limit
        self._memory_limit = memory_limit
        self._held = 0
        #: longest message kept, None = no limit
        self.line_limit = line_limit
        self._stats = stats
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
        limit = self.line_limit
        if limit is not None and len(message) > limit:
            message = cut_message(message, limit)
            if self._stats is not None:
                self._stats.inc("wasmlab.log.lines_cut")
        line = f"[{level}][{logger}] {message}"
        evicted = 0
        with self._lock:
            lines = self._lines
            lines.append(line)
            self._held += len(line)
            cap = self._memory_limit
            while len(lines) > self._capacity or (cap is not None and self._held > cap and len(lines) > 1):
                self._held -= len(lines.popleft())
                evicted += 1
        if evicted and self._stats is not None:
            self._stats.inc("wasmlab.log.lines_evicted", evicted)
        if record and self._recorder.enabled:
            self._recorder.record("log", level, {"logger": logger, "message": message})

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def clear(self) -> None:
        with self._lock:
            self._lines.clear()
            self._held = 0
