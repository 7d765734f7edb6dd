"""Stats: Envoy-named counters and gauges (``http.<prefix>.downstream_rq_2xx``, ``wasmcustom.x``).

Counters are kept per thread (no lock on the hot path) and summed when read; gauges are set
under a lock. ``proxy.stats()`` returns a plain dict of every stat seen, like Envoy's ``/stats``
(only stats that were touched appear; Envoy also lists zeros).
"""

from __future__ import annotations

import threading

_U64 = 0xFFFFFFFFFFFFFFFF  #: Envoy's counters and gauges are uint64


class Stats:
    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[dict[str, int]] = []
        self._all_lock = threading.Lock()
        self._gauges: dict[str, int] = {}
        self._gauge_lock = threading.Lock()

    def _mine(self) -> dict[str, int]:
        d = getattr(self._local, "d", None)
        if d is None:
            d = self._local.d = {}
            with self._all_lock:
                self._all.append(d)
        return d

    def inc(self, name: str, n: int = 1) -> None:
        d = getattr(self._local, "d", None) or self._mine()
        d[name] = d.get(name, 0) + n

    def gauge_set(self, name: str, value: int) -> None:
        with self._gauge_lock:
            self._gauges[name] = value & _U64

    def gauge_add(self, name: str, delta: int) -> int:
        """Add ``delta`` (negative: subtract) to a gauge. Envoy's gauges are uint64: below zero
        one wraps around (``/stats`` then shows 18446744073709551615 for -1)."""
        with self._gauge_lock:
            v = (self._gauges.get(name, 0) + delta) & _U64
            self._gauges[name] = v
            return v

    def gauge(self, name: str) -> int:
        with self._gauge_lock:
            return self._gauges.get(name, 0)

    def counter(self, name: str) -> int:
        """The counter ``name`` summed over the threads, as Envoy's uint64 (it wraps past 2**64 - 1).
        A gauge of the same name is another stat (Envoy keeps counters and gauges apart)."""
        with self._all_lock:
            dicts = list(self._all)
        return sum(d.get(name, 0) for d in dicts) & _U64

    def snapshot(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._all_lock:
            dicts = list(self._all)
        for d in dicts:
            for _ in range(50):
                try:
                    items = list(d.items())
                    break
                except RuntimeError:  # another thread added a key meanwhile
                    continue
            else:
                items = list(d.copy().items())
            for k, v in items:
                out[k] = out.get(k, 0) + v
        with self._gauge_lock:
            out.update(self._gauges)
        return dict(sorted(out.items()))
