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


LUA_ADD_HEADER = """function envoy_on_request(handle)
  handle:headers():add("x-n0", "v")
end
function envoy_on_response(handle)
  handle:headers():add("x-r0", "v")
end
"""


@benchmark("request.lua_add_header")
def bench_lua(args: argparse.Namespace) -> Iterator[Result]:
    """Requests/s through one add-header filter: native Python vs Lua (with the classroom guards,
    i.e. interpreter + count hook, and without them, i.e. LuaJIT's JIT on), 1 and 2 workers.
    A Wasm ``add_header`` module joins this table once Proxy-Wasm has landed."""
    from .host.proxy import Proxy

    n_many = 1000 if args.quick else 10000
    variants: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
        ("native", native_filters(1), {}),
        ("lua_guarded", [b.lua(LUA_ADD_HEADER)], {}),
        ("lua_unguarded", [b.lua(LUA_ADD_HEADER)], {"lua_instruction_limit": 0, "lua_memory_limit_mb": 0}),
    ]
    for workers in (1, 2):
        for label, filters, options in variants:
            with Proxy.from_yaml(direct_config(filters), workers=workers, trace=False, options=options) as proxy:
                rps_many(proxy, 200)
                many = [rps_many(proxy, n_many) for _ in range(rounds(args))]
            tag = f"{workers}worker{'s' if workers > 1 else ''}"
            yield summarize(f"request.lua_add_header.{label}_rps_{tag}", many, "req/s")


@benchmark("lua.guard_cost")
def bench_lua_guards(args: argparse.Namespace) -> Iterator[Result]:
    """What the classroom guards cost a script: one hook start (a trivial hook) and a numeric loop
    of 1e6 iterations, with the guards (interpreter + count hook) and without (JIT)."""
    from .filters.lua.runtime import Guards, new_state

    for label, guards in (("guarded", Guards()), ("unguarded", Guards(0, 0))):
        rt, driver = new_state(guards, b"", b"")
        trivial = driver.body(rt.eval(b"function() local x = 1 end"))
        loop = driver.body(rt.eval(b"function() local s = 0 for i = 1, 1000000 do s = s + i % 7 end end"))
        n = 2000 if args.quick else 20000
        starts, loops = [], []
        for _ in range(rounds(args)):
            t0 = time.perf_counter()
            for _ in range(n):
                _run_to_end(trivial.coroutine())
            starts.append((time.perf_counter() - t0) / n * 1e6)
            t0 = time.perf_counter()
            _run_to_end(loop.coroutine())
            loops.append((time.perf_counter() - t0) * 1e3)
        yield summarize(f"lua.guard_cost.hook_run_{label}", starts, "us")
        yield summarize(f"lua.guard_cost.loop_1e6_{label}", loops, "ms")


def _run_to_end(thread: Any) -> None:
    try:
        thread.send(None)
    except StopIteration:
        pass


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
