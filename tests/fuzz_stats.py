"""Counters the fuzz tests fill and the pytest terminal summary prints (one line, see conftest).

The fuzz tests run with a fixed seed (``derandomize``) and a fixed number of examples, so a CI log
shows the same bounded budget every run; this module only counts what they did.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings


def fuzz_settings(examples: int) -> settings:
    """Bounded and reproducible: a fixed seed, no example database, ``examples`` examples."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@dataclass
class FuzzStats:
    #: host function -> calls made from inside a running VM
    hostcalls: Counter[str] = field(default_factory=Counter)
    yaml_docs: int = 0
    pairs_blobs: int = 0
    #: Python exceptions that escaped a host function (answered INTERNAL_FAILURE) or a loader
    escaped: int = 0
    seconds: float = 0.0

    def timed(self) -> _Timer:
        return _Timer(self)

    def summary(self) -> str | None:
        if not (self.hostcalls or self.yaml_docs or self.pairs_blobs):
            return None
        parts = []
        if self.hostcalls:
            per = min(self.hostcalls.values())
            parts.append(
                f"host functions {len(self.hostcalls)} x >={per} calls ({sum(self.hostcalls.values())} in all)"
            )
        if self.yaml_docs:
            parts.append(f"yaml {self.yaml_docs}")
        if self.pairs_blobs:
            parts.append(f"pairs {self.pairs_blobs}")
        return f"fuzz: {', '.join(parts)} in {self.seconds:.1f} s; {self.escaped} exceptions escaped"


class _Timer:
    def __init__(self, stats: FuzzStats) -> None:
        self.stats = stats

    def __enter__(self) -> None:
        self.t0 = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.stats.seconds += time.monotonic() - self.t0


STATS = FuzzStats()
