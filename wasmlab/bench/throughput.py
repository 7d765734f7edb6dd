"""``request.*``, ``tracing.*`` and ``scaling.*``: requests through a proxy with one worker or
two, per filter kind, tracing off unless the figure is about tracing.

Kinds: ``direct`` (no filter, a ``direct_response`` route), ``native``/``lua``/``wasm`` (one
add-header filter of that kind), ``lua_unguarded`` (the same Lua filter without the classroom
guards: LuaJIT's JIT on, no count hook). ``many`` keeps 64 requests in flight, ``serial`` sends
one at a time. ``request.direct_response.*_3native`` is the same route behind three native filters.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from .core import (
    Result,
    direct_config,
    filter_for,
    kinds_available,
    native_filters,
    rounds,
    rps_many,
    rps_serial,
    size,
    summarize,
)

#: proxy options of the kinds that are a filter kind measured with other settings
KIND_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "lua_unguarded": ("lua", {"lua_instruction_limit": 0, "lua_memory_limit_mb": 0}),
}


def _workers_tag(workers: int) -> str:
    return f"{workers}worker{'s' if workers > 1 else ''}"


def _measure(
    args: argparse.Namespace, filters: list[dict[str, Any]], workers: int, options: dict[str, Any] | None = None
) -> tuple[list[float], list[float]]:
    """Requests/s with 64 in flight (``rounds`` samples) and one at a time (fewer samples)."""
    from ..host.proxy import Proxy

    n_many, n_serial = size(args, 400, 20000), size(args, 100, 3000)
    with Proxy.from_yaml(direct_config(filters), workers=workers, trace=False, options=options) as proxy:
        rps_many(proxy, size(args, 100, 2000))  # warm up: imports, JIT, caches
        many = [rps_many(proxy, n_many) for _ in range(rounds(args))]
        serial = [rps_serial(proxy, n_serial) for _ in range(max(2, rounds(args) // 2))]
    return many, serial


def bench_requests(args: argparse.Namespace) -> Iterator[Result]:
    kinds = kinds_available()
    if "lua" in kinds:
        kinds.insert(kinds.index("lua") + 1, "lua_unguarded")
    per_request: dict[tuple[str, int], list[float]] = {}
    for workers in (1, 2):
        for kind in kinds:
            base_kind, options = KIND_OPTIONS.get(kind, (kind, {}))
            many, serial = _measure(args, filter_for(base_kind), workers, options)
            per_request[(kind, workers)] = [1e6 / r for r in many]
            yield summarize(f"request.{kind}.many_rps_{_workers_tag(workers)}", many, "req/s")
            yield summarize(f"request.{kind}.serial_rps_{_workers_tag(workers)}", serial, "req/s")
    base = per_request[("direct", 1)]
    for kind in kinds[1:]:
        added = [max(0.0, x - y) for x, y in zip(per_request[(kind, 1)], base, strict=True)]
        yield summarize(f"request.{kind}.added_wall_us_1worker", added, "us")
    # the issue-2 shape: the direct_response route behind 3 native filters (0 filters is request.direct.*)
    for workers in (1, 2):
        many, serial = _measure(args, native_filters(3), workers)
        yield summarize(f"request.direct_response.many_rps_{workers}w_3native", many, "req/s")
        yield summarize(f"request.direct_response.serial_rps_{workers}w_3native", serial, "req/s")


def bench_tracing(args: argparse.Namespace) -> Iterator[Result]:
    """What tracing adds per request (µs of wall time, one worker, 64 in flight), paired round by round."""
    from ..host.proxy import Proxy

    n = size(args, 600, 10000)
    for kind in ("native", "wasm"):
        samples = []
        for _ in range(rounds(args)):
            pair = []
            for trace in (False, True):
                with Proxy.from_yaml(direct_config(filter_for(kind)), workers=1, trace=trace) as proxy:
                    rps_many(proxy, size(args, 100, 500))
                    pair.append(1e6 / rps_many(proxy, n))
            samples.append(pair[1] - pair[0])
        yield summarize(f"tracing.cost_us_per_request.{kind}", samples, "us")


def bench_scaling(args: argparse.Namespace) -> Iterator[Result]:
    """A CPU-bound Wasm filter (``cpu_burn``, 2e6 iterations a request) on 2 workers vs 1:
    wasmtime runs guest code without the GIL, so this is the figure that can scale."""
    from ..host.proxy import Proxy

    n = size(args, 24, 400)
    ratios = []
    tput: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(rounds(args)):
        pair = {}
        for workers in (1, 2):
            with Proxy.from_yaml(direct_config(filter_for("cpu_burn")), workers=workers, trace=False) as proxy:
                rps_many(proxy, size(args, 4, 20), concurrency=8)
                pair[workers] = rps_many(proxy, n, concurrency=8)
            tput[workers].append(pair[workers])
        ratios.append(pair[2] / pair[1])
    yield summarize("scaling.cpu_heavy_wasm.rps_1worker", tput[1], "req/s")
    yield summarize("scaling.cpu_heavy_wasm.rps_2workers", tput[2], "req/s")
    yield summarize("scaling.cpu_heavy_wasm.2v1", ratios, "x")
