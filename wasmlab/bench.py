"""``wasmlab bench``: named benchmarks, medians over rounds, printed with their spread.

Every figure is measured in this run (never asserted in tests). ``value`` is the median over
rounds and ``spread`` half the min-max range, in the same unit. Benchmarks run with tracing off
(``trace=False``) unless the name says otherwise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from .config import builder as b


@dataclass
class Result:
    name: str
    value: float
    unit: str
    spread: float

    def line(self) -> str:
        return f"{self.name:<58} {self.value:>12,.2f} {self.unit:<10} ± {self.spread:,.2f}"


def summarize(name: str, samples: list[float], unit: str) -> Result:
    med = statistics.median(samples)
    return Result(name, med, unit, (max(samples) - min(samples)) / 2 if len(samples) > 1 else 0.0)


BENCHMARKS: list[tuple[str, Callable[[argparse.Namespace], Iterator[Result]]]] = []


def benchmark(name: str) -> Callable[[Callable[[argparse.Namespace], Iterator[Result]]], Any]:
    def deco(fn: Callable[[argparse.Namespace], Iterator[Result]]) -> Any:
        BENCHMARKS.append((name, fn))
        return fn

    return deco


def direct_config(filters: list[dict[str, Any]] | None = None) -> str:
    http_filters = [*(filters or []), b.router()]
    cfg = b.bootstrap(
        [
            b.http_listener(
                "l0", 10000, routes=[b.direct_response("/", 200, "direct hello\n")], http_filters=http_filters
            )
        ]
    )
    return b.to_yaml(cfg)


def native_filters(n: int) -> list[dict[str, Any]]:
    return [
        b.native("add_header", request_headers={f"x-n{i}": "v"}, response_headers={f"x-r{i}": "v"}) for i in range(n)
    ]


def rps_serial(proxy: Any, n: int, path: str = "/") -> float:
    req = proxy.request
    t0 = time.perf_counter()
    for _ in range(n):
        req("GET", path)
    return n / (time.perf_counter() - t0)


def rps_many(proxy: Any, n: int, concurrency: int = 64, path: str = "/") -> float:
    reqs = [("GET", path)] * n
    t0 = time.perf_counter()
    proxy.request_many(reqs, concurrency=concurrency)
    return n / (time.perf_counter() - t0)


def rounds(args: argparse.Namespace) -> int:
    return 3 if args.quick else 7


@benchmark("request.direct_response")
def bench_direct(args: argparse.Namespace) -> Iterator[Result]:
    from .host.proxy import Proxy

    n_serial = 500 if args.quick else 3000
    n_many = 1000 if args.quick else 10000
    for nf in (0, 3):
        yaml_text = direct_config(native_filters(nf))
        for workers in (1, 2):
            with Proxy.from_yaml(yaml_text, workers=workers, trace=False) as proxy:
                rps_many(proxy, 200)
                serial = [rps_serial(proxy, n_serial) for _ in range(rounds(args))]
                many = [rps_many(proxy, n_many) for _ in range(rounds(args))]
            tag = f"{workers}worker{'s' if workers > 1 else ''}_{nf}filters"
            yield summarize(f"request.direct_response.serial_rps_{tag}", serial, "req/s")
            yield summarize(f"request.direct_response.many_rps_{tag}", many, "req/s")
            if nf == 0 and workers == 1:
                yield summarize("request.direct_response.rps_1worker", many, "req/s")


def main(args: argparse.Namespace) -> int:
    results: list[Result] = []
    for name, fn in BENCHMARKS:
        if args.only and args.only not in name:
            continue
        if not args.json:
            print(f"# {name}", flush=True)
        for r in fn(args):
            results.append(r)
            if not args.json:
                print(r.line(), flush=True)
    if args.json:
        json.dump([asdict(r) for r in results], sys.stdout)
        print()
    return 0
