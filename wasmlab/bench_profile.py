"""``wasmlab bench --profile KIND``: where the CPU time of one request goes, item by item.

Envoy has nothing like it (its per-request costs are read with ``perf``); this is wasmlab's own
tool for the question "why does a filter cost what it costs here". How the numbers are made:

1. **The total is measured, not profiled**: CPU time of the whole process (``time.process_time``)
   over many requests, 1 worker, 64 in flight, tracing as the kind says; the same for a
   configuration without the filter (``direct``), alternating, medians. ``added`` is the
   difference — the figure ``--vs-envoy`` reports.
2. **The split comes from cProfile** (its own fast clock) on the worker thread and on the client
   (main) thread; time blocked waiting (a lock, the task queue, a sleep) is left out. Each
   function's *own* time (not what it calls) is charged to one item by its module and name
   (:data:`ITEMS`); a builtin's (``list.append``, ``len``, a ctypes call...) is charged to the
   item of its caller, caller by caller. Guest Wasm code runs inside the ctypes call of the
   export, so it counts as "Wasm: guest calls".
3. **The profiler's own cost is taken out**, in two steps. cProfile adds a cost per call,
   measured here on an empty Python function and on a builtin (``c_py``/``c_c``): each function's
   own time loses ``calls x c``. And while a profiler is set, CPython 3.11 runs every bytecode on
   its slower tracing path, so what is left is still 2-3x the real time: it is scaled down
   uniformly to the measured total (the scale is printed). Both steps keep the proportions
   between items; small, very frequently called functions stay slightly over-charged. Garbage
   collection is timed with ``gc.callbacks`` and shown as an "of which" line (it runs inside
   whatever allocated).

The table gives per item: µs per request, its share, calls per request (counted, so exact even
on a loaded machine: the most reliable column to compare two versions by), ``added``: how much
more the item costs than in the same split of a request without the filter (two profiled runs:
on a loaded machine their difference is noisy, items the filter does not touch show it), and
``+calls``: how many more calls (exact).

Profiling shifts costs a little between neighbours (a caller/callee split of the per-call cost)
but not between items that do different work, which is what the table is for.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import re
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .bench import skeleton
from .bench.floor import TARGETS_US, Floor
from .bench.floor import measure as measure_floor

#: the kinds --profile takes: a filter kind, ``-traced`` for tracing on
KINDS = (
    "direct",
    "noop",
    "native",
    "lua",
    "wasm",
    "direct-traced",
    "noop-traced",
    "native-traced",
    "lua-traced",
    "wasm-traced",
)

#: (pattern on "relative/module/path.py:function", item); the first match wins
ITEMS: list[tuple[str, str]] = [
    (r"^trace/|:(record_filter|traced)$", "trace records"),
    (r"^host/proxy\.py:|^threading\.py:|^functools|^queue\.py", "client: submit, wait, hand back"),
    (r"^host/dispatcher\.py:", "dispatcher hand-off (task queue)"),
    (r"^host/filter_manager\.py:(__init__|release|destroy)$", "filter chain: create / release"),
    (r"^host/filter_callbacks\.py:__init__$|^host/active_filter\.py:__init__$", "filter chain: create / release"),
    (r"^config/route\.py:per_route_config$", "filter chain: create / release"),
    (r":(create_filter|set_callbacks|_create_filter)$", "filter chain: create / release"),
    (r"^host/(filter_manager|active_filter|filter_callbacks|filter_trace)\.py:", "filter chain: walk"),
    (r"^host/hcm\.py:(__init__|new_stream|start|route|guarded)$", "stream: setup, request headers"),
    (r"^http/stream_info\.py:|^host/conn_manager_utility\.py:", "stream: setup, request headers"),
    (r"^config/(route|matchers)", "stream: setup, request headers"),
    (r"^filters/native/router\.py:", "router / direct_response"),
    (r"^host/hcm\.py:|^http/message\.py:|^host/(stats|access_log)\.py:", "response out: codec, stats, end of stream"),
    (r"^http/headers\.py:|^proxywasm/pairs\.py:", "header maps"),
    (r"^filters/native/", "native filter's own code"),
    (
        r"^proxywasm/vm\.py:(new_context|add_context|remove_context|next_context_id|__init__)$",
        "Wasm: stream context create/delete",
    ),
    (r"^proxywasm/manager\.py:", "Wasm: stream context create/delete"),
    (
        r"^proxywasm/<guest call |^proxywasm/vm\.py:(invoke|call|_invoke_nested_or_traced)$",
        "Wasm: guest calls (crossing + guest code)",
    ),
    (r"^proxywasm/fastpath\.py:cb$|^proxywasm/hostcalls/|^proxywasm/fastpath\.py:", "Wasm: host calls"),
    (r"^proxywasm/", "Wasm: other ABI host"),
    (r"^filters/wasm/", "Wasm: filter glue (status, maps, policy)"),
    (r"^filters/lua/handle_driver\.py:|^filters/lua/runtime\.py:", "Lua: coroutine runs (crossing + script)"),
    (r"^filters/lua/(wrappers|handle)", "Lua: handle API calls"),
    (r"^filters/lua/", "Lua: filter glue"),
    (r"^lupa", "Lua: coroutine runs (crossing + script)"),
]
_COMPILED = [(re.compile(p), item) for p, item in ITEMS]


#: builtins that block (a thread waiting for work or for a lock is idle, not busy)
_BLOCKING = re.compile(r"acquire|SimpleQueue' objects>|time\.sleep|_thread\.lock|disable' of '_lsprof")


def item_of(where: str) -> str:
    for rx, item in _COMPILED:
        if rx.search(where):
            return item
    return "other"


def _where(code: tuple[str, int, str]) -> str:
    """``wasmlab/host/hcm.py:start`` -> ``host/hcm.py:start``; stdlib files by their base name."""
    filename, _, name = code
    if "/wasmlab/" in filename:
        return filename.rsplit("/wasmlab/", 1)[1] + ":" + name
    if "/lupa/" in filename or "lupa" in name:
        return "lupa:" + name
    return filename.rsplit("/", 1)[-1] + ":" + name


@dataclass
class Breakdown:
    kind: str
    total_us: float  # measured CPU µs per request, the whole process
    direct_us: float  # the same without the filter
    scale: float  # measured total / corrected profile total
    gc_us: float
    items: dict[str, float] = field(default_factory=dict)  # item -> µs per request
    top: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    calibration_ns: tuple[float, float] = (0.0, 0.0)
    calls: dict[str, float] = field(default_factory=dict)  # item -> calls per request (counted)
    added: dict[str, float] = field(default_factory=dict)  # item -> µs more than without the filter
    added_calls: dict[str, float] = field(default_factory=dict)  # item -> calls more (counted)
    floor: Floor | None = None  # noop, lua, wasm: the floor of this design (bench/floor.py)
    in_context: skeleton.InContext | None = None  # noop, lua, wasm: the same work where it runs

    def table(self) -> str:
        added = self.total_us - self.direct_us
        lines = [
            f"# wasmlab bench --profile {self.kind}: CPU per request, 1 worker, 64 in flight",
            f"# measured: {self.total_us:.1f} us/request; without the filter (direct): {self.direct_us:.1f} us;"
            f" added: {added:.1f} us",
            "# split by cProfile (own time per function, waits left out); per-call cost removed"
            f" (python {self.calibration_ns[0]:.0f} ns, builtin {self.calibration_ns[1]:.0f} ns),"
            f" then scaled x{self.scale:.2f} to the measured total",
            f"{'item':<44} {'us/req':>8} {'share':>6} {'calls':>6} {'added':>7} {'+calls':>6}  largest parts",
        ]
        for item, us in sorted(self.items.items(), key=lambda kv: -kv[1]):
            tops = ", ".join(f"{w.split('/')[-1]} {v:.2f}" for w, v in self.top.get(item, [])[:3])
            share = us / self.total_us * 100
            grew = f"{self.added[item]:>+7.2f} {self.added_calls[item]:>+6.1f}" if item in self.added else " " * 14
            lines.append(f"{item:<44} {us:>8.2f} {share:>5.0f}% {self.calls.get(item, 0):>6.1f} {grew}  {tops}")
        lines.append(f"{'  of which garbage collection':<44} {self.gc_us:>8.2f}")
        if self.floor is not None:
            lines += self.floor.lines()
        if self.in_context is not None:
            lines += self.in_context.lines()
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "total_us": self.total_us,
            "direct_us": self.direct_us,
            "added_us": self.total_us - self.direct_us,
            "scale": self.scale,
            "gc_us": self.gc_us,
            "items": self.items,
            "calls_per_request": self.calls,
            "added_by_item": self.added,
            "added_calls_by_item": self.added_calls,
            "top": {k: v[:5] for k, v in self.top.items()},
            "floor": self.floor.to_dict() if self.floor is not None else None,
            "in_context": self.in_context.to_dict() if self.in_context is not None else None,
        }


# ---- measuring -----------------------------------------------------------------------------------
def _config(kind: str) -> tuple[str, bool]:
    from . import bench
    from .config import builder as b

    base, _, traced = kind.partition("-")
    filters = [b.native("add_header")] if base == "noop" else bench.filter_for(base)
    return bench.direct_config(filters), traced == "traced"


def cpu_us_per_request(kind: str, n: int) -> float:
    """Measured CPU µs per request of the whole process (1 worker, 64 in flight)."""
    from . import bench
    from .host.proxy import Proxy

    text, traced = _config(kind)
    with Proxy.from_yaml(text, workers=1, trace=traced) as proxy:
        bench.rps_many(proxy, 500)
        gc.collect()
        c0 = time.process_time()
        bench.rps_many(proxy, n)
        return (time.process_time() - c0) / n * 1e6


def _calibrate() -> tuple[float, float]:
    """cProfile's own cost per call (ns) of a Python function and of a builtin, this machine."""

    def empty() -> None:
        pass

    def py_loop(k: int) -> None:
        for _ in range(k):
            empty()

    def c_loop(k: int, x: list[int] = [1]) -> None:  # noqa: B006 - read only
        for _ in range(k):
            len(x)

    out = []
    for loop in (py_loop, c_loop):
        k = 100_000
        samples = []
        for _ in range(5):
            t0 = time.perf_counter_ns()
            loop(k)
            plain = time.perf_counter_ns() - t0
            prof = cProfile.Profile()
            t0 = time.perf_counter_ns()
            prof.enable()
            loop(k)
            prof.disable()
            samples.append((time.perf_counter_ns() - t0 - plain) / k)
        out.append(max(0.0, statistics.median(samples)))
    return out[0], out[1]


def _profiled_run(kind: str, n: int) -> tuple[list[Any], float]:
    """cProfile stats of ``n`` requests (worker + client thread) and GC seconds."""
    from . import bench
    from .host.proxy import Proxy

    text, traced = _config(kind)
    gc_time = [0.0, 0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_time[1] = time.perf_counter()
        else:
            gc_time[0] += time.perf_counter() - gc_time[1]

    with Proxy.from_yaml(text, workers=1, trace=traced) as proxy:
        bench.rps_many(proxy, 500)
        worker = proxy._server.workers[0]
        profs = [cProfile.Profile() for _ in range(2)]
        gc.collect()
        gc.callbacks.append(on_gc)
        try:
            worker.run_sync(profs[0].enable)
            profs[1].enable()
            bench.rps_many(proxy, n)
            profs[1].disable()
            worker.run_sync(profs[0].disable)
        finally:
            gc.callbacks.remove(on_gc)
    stats = []
    for p in profs:
        p.create_stats()
        stats.append(p.stats)  # set by create_stats()
    return stats, gc_time[0]


def _split(
    stats_list: list[Any], n: int, c_py: float, c_c: float, calls: dict[str, float] | None = None
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Corrected own time (ns per request) by item, and by function within each item; ``calls``
    gets the calls per request of each item (exact: counted, not timed)."""
    items: dict[str, float] = defaultdict(float)
    parts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, float] = defaultdict(float) if calls is None else calls
    for stats in stats_list:
        for code, (_cc, ncalls, tottime, _ct, callers) in stats.items():
            builtin = code[0] == "~"
            if builtin and _BLOCKING.search(code[2]):
                continue  # waiting, not working
            cost = c_c if builtin else c_py
            if builtin and callers:
                # a builtin's time belongs to what called it, caller by caller
                for caller, (_c2, ncalls2, tt2, _ct2) in callers.items():
                    w = _where(caller)
                    ns = max(0.0, tt2 * 1e9 - ncalls2 * cost) / n
                    items[item_of(w)] += ns
                    parts[item_of(w)][w] += ns
                    counts[item_of(w)] += ncalls2 / n
                continue
            w = _where(code)
            ns = max(0.0, tottime * 1e9 - ncalls * cost) / n
            items[item_of(w)] += ns
            parts[item_of(w)][w] += ns
            counts[item_of(w)] += ncalls / n
    return items, parts


def profile(kind: str, n: int = 3000, rounds: int = 3, context_rounds: int = 12) -> Breakdown:
    if kind not in KINDS:
        raise ValueError(f"unknown profile kind {kind!r}; known: {', '.join(KINDS)}")
    direct = "direct-traced" if kind.endswith("-traced") else "direct"
    totals, directs = [], []
    for _ in range(rounds):  # alternating, so a change in machine load hits both alike
        totals.append(cpu_us_per_request(kind, n))
        directs.append(cpu_us_per_request(direct, n))
    total = statistics.median(totals)
    c_py, c_c = _calibrate()
    stats, gc_s = _profiled_run(kind, n)
    calls: dict[str, float] = defaultdict(float)
    items_ns, parts_ns = _split(stats, n, c_py, c_c, calls)
    scale = total * 1000 / (sum(items_ns.values()) or 1.0)
    items = {name: v / 1000 * scale for name, v in items_ns.items() if v * scale >= 5}
    top = {
        name: sorted(((w, v / 1000 * scale) for w, v in ws.items()), key=lambda t: -t[1])[:5]
        for name, ws in parts_ns.items()
    }
    direct_us = statistics.median(directs)
    result = Breakdown(kind, total, direct_us, scale, gc_s / n * 1e6, items, top, (c_py, c_c))
    result.calls = {name: calls[name] for name in items}
    if kind != direct:
        # the same split without the filter: what each item grows by when the filter is added
        d_stats, _ = _profiled_run(direct, n)
        d_calls: dict[str, float] = defaultdict(float)
        d_items, _ = _split(d_stats, n, c_py, c_c, d_calls)
        d_scale = direct_us * 1000 / (sum(d_items.values()) or 1.0)
        result.added = {name: us - d_items.get(name, 0.0) / 1000 * d_scale for name, us in items.items()}
        result.added_calls = {name: calls[name] - d_calls.get(name, 0.0) for name in items}
    result.floor = _floor(kind, stats, n, total - direct_us)
    result.in_context = skeleton.measure(kind, n=2000, rounds=context_rounds)
    return result


def _floor(kind: str, stats: list[Any], n: int, added_us: float) -> Floor | None:
    """The floor of this design for the kinds issue 16 sets a target for (bench/floor.py)."""
    from .host.proxy import Proxy

    if kind not in TARGETS_US:
        return None
    text, traced = _config(kind)
    with Proxy.from_yaml(text, workers=1, trace=traced) as proxy:
        return measure_floor(kind, proxy, stats, n, added_us)


def main(args: argparse.Namespace) -> int:
    """The ``--profile KIND`` entry point of ``wasmlab bench``."""
    kind = args.profile
    if kind not in KINDS:
        print(f"wasmlab bench: unknown --profile kind {kind!r}; known: {', '.join(KINDS)}", file=sys.stderr)
        return 2
    n = 1500 if args.quick else 4000
    result = profile(kind, n, rounds=1 if args.quick else 3, context_rounds=4 if args.quick else 12)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(result.table())
    return 0
