"""``start.*`` and ``memory.*``: how long a VM takes to be ready (cold compile, from the disk
cache, from memory; a proxy with 4 workers and 3 Wasm plugins), what one more VM costs in RSS,
and whether a proxy that keeps serving with tracing on levels off (the trace ring is bounded)."""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from .core import (
    ADD_HEADER_CONFIG,
    BenchError,
    Result,
    course_module,
    direct_config,
    filter_for,
    modules_dir,
    rounds,
    size,
    summarize,
)


def bench_start(args: argparse.Namespace) -> Iterator[Result]:
    from ..host.proxy import Proxy
    from ..proxywasm import module_cache

    code = (modules_dir() / "add_header.wasm").read_bytes()
    cold, disk, mem = [], [], []
    for _ in range(rounds(args)):
        with tempfile.TemporaryDirectory() as tmp:
            old = os.environ.get("WASMLAB_CACHE_DIR")
            os.environ["WASMLAB_CACHE_DIR"] = tmp
            try:
                module_cache.clear_memory_cache()
                cold.append(module_cache.compile_code(code).seconds * 1000)
                module_cache.clear_memory_cache()
                disk.append(module_cache.compile_code(code).seconds * 1000)
                mem.append(module_cache.compile_code(code).seconds * 1000)
            finally:
                if old is None:
                    os.environ.pop("WASMLAB_CACHE_DIR", None)
                else:
                    os.environ["WASMLAB_CACHE_DIR"] = old
    yield summarize("start.vm.cold_compile_ms", cold, "ms")
    yield summarize("start.vm.disk_cache_ms", disk, "ms")
    yield summarize("start.vm.memory_cache_ms", mem, "ms")
    plugins = [
        course_module("add_header", ADD_HEADER_CONFIG),
        course_module("hello", None),
        course_module("cpu_burn", '{"iterations": 10}'),
    ]
    text = direct_config(plugins)
    Proxy.from_yaml(text, workers=4, trace=False).close()  # warm the module cache
    starts = []
    for _ in range(rounds(args)):
        t0 = time.perf_counter()
        p = Proxy.from_yaml(text, workers=4, trace=False)
        starts.append(time.perf_counter() - t0)
        p.close()
    yield summarize("start.4workers_3plugins_s", starts, "s")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def bench_memory(args: argparse.Namespace) -> Iterator[Result]:
    """Run in a fresh interpreter, so earlier benchmarks' heaps do not count."""
    # --quick: a smaller trace ring, so it is full (and RSS should level off) in a shorter run
    n_small, n_big, ring = size(args, 1_000, 10_000), size(args, 5_000, 100_000), size(args, 5_000, 50_000)
    code = f"import json, wasmlab.bench.startup as s; print(json.dumps(s.memory_child({n_small}, {n_big}, {ring})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise BenchError(f"the memory benchmark failed: {out.stderr.strip().splitlines()[-1:]}")
    for name, value, unit in json.loads(out.stdout.strip().splitlines()[-1]):
        yield Result(name, value, unit, 0.0)


def memory_child(n_small: int, n_big: int, ring: int = 50_000) -> list[tuple[str, float, str]]:
    from ..host.proxy import Proxy

    out: list[tuple[str, float, str]] = []
    # memory per VM: RSS before and after a proxy with many workers (one VM replica each)
    with Proxy.from_yaml(direct_config(filter_for("wasm")), workers=8, trace=False):
        pass  # first-time costs (code, caches, thread-local runtime state) are not per VM
    gc.collect()
    r0 = rss_mb()
    p = Proxy.from_yaml(direct_config(filter_for("wasm")), workers=8, trace=False)
    gc.collect()
    r1 = rss_mb()
    vms = 3 + 8  # base, canary (dropped), main, 8 replicas: 10 alive
    p.close()
    out.append(("memory.per_vm_kb", (r1 - r0) * 1024 / (vms - 1), "KiB"))
    # a proxy that keeps serving, with tracing on (the ring is bounded): RSS must level off
    with Proxy.from_yaml(direct_config(filter_for("wasm")), workers=2, trace=True, trace_capacity=ring) as p:
        done = 0
        while done < n_small:
            p.request_many([("GET", "/")] * 1000, concurrency=64)
            done += 1000
        gc.collect()
        at_small = rss_mb()
        while done < n_big:
            p.request_many([("GET", "/")] * 1000, concurrency=64)
            done += 1000
        gc.collect()
        at_big = rss_mb()
    out.append((f"memory.rss_{n_small // 1000}k_mb", at_small, "MiB"))
    out.append((f"memory.rss_{n_big // 1000}k_mb", at_big, "MiB"))
    # named for the full run (10k -> 100k requests, 50k-event ring); --quick: 1k -> 5k, 5k-event ring
    out.append(("memory.rss_growth_100k_pct", (at_big - at_small) / at_small * 100, "%"))
    return out
