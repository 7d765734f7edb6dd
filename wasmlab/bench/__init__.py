"""``wasmlab bench``: named benchmarks, medians over rounds, printed with their spread.

Every figure is measured in this run, side by side (never asserted in tests). ``value`` is the
median over rounds and ``spread`` half the min-max range, in the same unit. Request benchmarks run
with tracing off (``trace=False``) unless the name says otherwise; ``tracing.*`` reports what
tracing costs.

The figures come in families, one function each, listed in ``FAMILIES`` (the default set, in this
order) and ``ON_REQUEST`` (run only with the flag of the same name: ``--vs-envoy``, ``--install``).
``--only TEXT`` runs the families whose name contains TEXT; no match is an error that lists them.
``--quick`` runs the default set with fewer and shorter rounds (a smoke run: noisier figures) and
reports its own wall time as ``bench.quick_s``. A figure name is reported once per run.

Modules: ``core`` (figures, configs, request loops), ``calls``, ``throughput`` (request, tracing,
scaling), ``startup`` (start, memory), ``lua``, ``vs_envoy`` (real Envoy under wrk), ``install``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict

from . import calls, install, lua, startup, throughput, vs_envoy
from .core import BenchError, BenchFn, Result, direct_config, filter_for, kinds_available, rps_many, rps_serial

__all__ = ["FAMILIES", "ON_REQUEST", "BenchError", "Result", "direct_config", "filter_for", "kinds_available"]
__all__ += ["main", "rps_many", "rps_serial"]

#: the default set, in the order it runs: family name -> function
FAMILIES: dict[str, BenchFn] = {
    "call": calls.bench_calls,
    "request": throughput.bench_requests,
    "tracing": throughput.bench_tracing,
    "start": startup.bench_start,
    "memory": startup.bench_memory,
    "scaling": throughput.bench_scaling,
    "lua.guard_cost": lua.bench_lua_guards,
}

#: families run only when the command's flag of the same name is set (``--vs-envoy`` -> ``vs_envoy``)
ON_REQUEST: dict[str, BenchFn] = {
    "vs_envoy": vs_envoy.vs_envoy,
    "install": install.bench_install,
}


def select(args: argparse.Namespace) -> tuple[list[tuple[str, BenchFn]], list[tuple[str, BenchFn]]]:
    """The default families and the requested ones this run measures, ``--only`` applied."""
    defaults = list(FAMILIES.items())
    asked = [(name, fn) for name, fn in ON_REQUEST.items() if getattr(args, name, False)]
    only = getattr(args, "only", None)
    if only is None:
        return defaults, asked
    known = [*FAMILIES, *ON_REQUEST]
    if not any(only in name for name in known):
        raise BenchError(f"--only {only!r} matches no benchmark; the benchmarks are: {', '.join(known)}")
    defaults = [(n, f) for n, f in defaults if only in n]
    asked = [(n, f) for n, f in asked if only in n]
    if not defaults and not asked:
        flags = ", ".join(f"--{n.replace('_', '-')}" for n in ON_REQUEST if only in n)
        raise BenchError(f"--only {only!r} names benchmarks that run only when asked for: add {flags}")
    return defaults, asked


def main(args: argparse.Namespace) -> int:
    defaults, asked = select(args)
    t0 = time.perf_counter()
    results: list[Result] = []
    seen: dict[str, str] = {}

    def report(family: str, r: Result) -> None:
        if r.name in seen:
            raise BenchError(f"figure {r.name!r} is reported twice (by {seen[r.name]!r} and {family!r})")
        seen[r.name] = family
        results.append(r)
        if not args.json:
            print(r.line(), flush=True)

    def run(families: list[tuple[str, BenchFn]]) -> None:
        for name, fn in families:
            if not args.json:
                print(f"# {name}", flush=True)
            for r in fn(args):
                report(name, r)

    run(defaults)
    if args.quick and args.only is None:  # the quick set's own wall time (the interpreter's start-up excluded)
        report("bench", Result("bench.quick_s", time.perf_counter() - t0, "s", 0.0))
    run(asked)
    if args.json:
        json.dump([asdict(r) for r in results], sys.stdout)
        print()
    return 0
