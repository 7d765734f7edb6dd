"""The floor under a filter kind's added cost, for ``wasmlab bench --profile noop|lua|wasm``.

``--profile`` says where a request's CPU goes; this says how low the added cost could go in
wasmlab's design at all. It times, in tight loops in the same process and run, only the work a
filter of that kind cannot avoid here:

* the per-stream objects: the filter's place in the chain, which is also its callbacks object
  (Envoy makes two, ``ActiveStreamDecoderFilter`` and ``ActiveStreamEncoderFilter``; wasmlab one
  for both directions), and the filter object its factory makes;
* the filter's own work: for the no-op native filter its two header callbacks; for Wasm the
  crossings one request makes (guest calls and host calls, counted exactly in the profiled run,
  each at the cost of one fast-path crossing measured now); for Lua one guarded hook run per hook
  the request starts (counted the same way).

The sum is a lower bound: a tight loop runs with warm caches and no chain, header map, stats or
trace work around it. If the floor is already above the issue's target, the target is out of
reach without changing what the host is (Python objects per stream, ctypes crossings, guarded
LuaJIT states); if it is below, the rest is glue that could still be cut.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: the issue-16 targets, µs a filter of the kind adds per request (``--vs-envoy``'s figure)
TARGETS_US = {"noop": 1.5, "wasm": 10.0, "lua": 8.0}
TARGET_FIGURES = {
    "noop": "request.native.added_cpu_us",
    "wasm": "wasm.added_us_per_request.wasmlab",
    "lua": "lua.added_us_per_request.wasmlab",
}


@dataclass
class Floor:
    kind: str
    parts: list[tuple[str, float]]  # (what, µs per request)
    target_us: float
    added_us: float  # the measured added cost (the profile's)

    @property
    def total_us(self) -> float:
        return sum(us for _, us in self.parts)

    def lines(self) -> list[str]:
        out = [
            f"# floor of this design ({TARGET_FIGURES[self.kind]}): unavoidable work timed in tight loops,"
            " a lower bound (warm caches, nothing around it)"
        ]
        out += [f"  {what:<74} {us:>7.2f} us" for what, us in self.parts]
        out.append(f"  {'floor':<74} {self.total_us:>7.2f} us")
        if self.total_us > self.target_us:
            verdict = (
                f"the floor alone is {self.total_us:.2f} us > the target {self.target_us:g} us:"
                " out of reach in this design on this machine"
            )
        else:
            verdict = (
                f"the floor {self.total_us:.2f} us is under the target {self.target_us:g} us: of the"
                f" {self.added_us:.2f} us added, {max(0.0, self.added_us - self.total_us):.2f} us is glue above it"
            )
        out.append(f"# {verdict}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "parts_us": dict(self.parts),
            "floor_us": self.total_us,
            "target_us": self.target_us,
            "target_figure": TARGET_FIGURES[self.kind],
        }


def _cpu_us(fn: Callable[[], None], n: int, rounds: int = 5) -> float:
    """Median CPU µs of one ``fn()`` (this thread's CPU time over ``n`` calls)."""
    samples = []
    for _ in range(rounds):
        t0 = time.thread_time_ns()
        for _ in range(n):
            fn()
        samples.append((time.thread_time_ns() - t0) / n / 1000)
    return statistics.median(samples)


def count_calls(stats_list: list[Any], n: int, module: str, names: tuple[str, ...]) -> float:
    """Calls per request of ``module``'s functions ``names`` in cProfile stats (exact counts).
    ``module`` is a path suffix (``proxywasm/vm.py``), or a folder and a name prefix ending in
    ``*`` for generated code (``proxywasm/hostcalls/<host call*``)."""
    want_folder, _, want_start = module[:-1].rpartition("/")
    total = 0
    for stats in stats_list:
        for (filename, _line, name), (_cc, ncalls, *_rest) in stats.items():
            if name not in names:
                continue
            path = filename.replace("\\", "/")
            if module.endswith("*"):
                folder, _, base = path.rpartition("/")
                hit = folder.endswith(want_folder) and base.startswith(want_start)
            else:
                hit = path.endswith(module)
            if hit:
                total += ncalls
    return total / n


def measure(kind: str, proxy: Any, stats_list: list[Any], n: int, added_us: float) -> Floor | None:
    """The floor of ``kind`` (``noop``, ``lua`` or ``wasm``; None for any other), measured on
    ``proxy`` (running that kind's config); ``stats_list``: the profiled run of ``n`` requests."""
    base = kind.partition("-")[0]
    if base not in TARGETS_US or kind != base:
        return None
    from ..host.active_filter import ActiveFilter, traits_of
    from ..http import HeaderMap

    server = proxy._server
    dispatcher = server.workers[0]
    hcm = next(iter(server.hcms.values()))
    factory = next(fc.factory for fc in hcm.config.http_filters if "router" not in fc.name)
    sample = factory.create_filter(dispatcher)
    traits = traits_of(sample)

    def places() -> None:
        ActiveFilter(None, sample, "f", 0, traits)  # type: ignore[arg-type]

    parts = [
        ("the filter's place in the chain, also its callbacks (1 object per stream)", _cpu_us(places, 20_000)),
        ("the filter object from its factory", _cpu_us(lambda: factory.create_filter(dispatcher), 20_000)),
    ]
    if base == "noop":
        headers = HeaderMap([(":method", "GET"), (":path", "/"), (":authority", "a"), ("x-request-id", "1")])

        def callbacks() -> None:
            sample.decode_headers(headers, True)
            sample.encode_headers(headers, True)

        parts.append(("its decode_headers and encode_headers", _cpu_us(callbacks, 20_000)))
    elif base == "wasm":
        guest = count_calls(stats_list, n, "proxywasm/vm.py", ("invoke", "_invoke_nested_or_traced"))
        # a host call enters Python in a crossing generated per arity (fastpath._host_factory)
        host = count_calls(stats_list, n, "proxywasm/hostcalls/<host call*", ("cb",))
        export_us, host_us = _crossing_us()
        parts.append(
            (f"{guest:.0f} guest calls x {export_us * 1000:.0f} ns (one fast-path export call)", guest * export_us)
        )
        parts.append((f"{host:.0f} host calls x {host_us * 1000:.0f} ns (one fast-path host call)", host * host_us))
    else:
        runs = count_calls(stats_list, n, "filters/lua/runtime.py", ("run",))
        hook_us = _hook_run_us()
        parts.append((f"{runs:.0f} hook runs x {hook_us:.2f} us (one guarded run of a trivial hook)", runs * hook_us))
    return Floor(kind, parts, TARGETS_US[base], added_us)


def _crossing_us() -> tuple[float, float]:
    """One fast-path guest export call and one host call, µs (as ``call.export.fast_ns``)."""
    import wasmtime

    from ..proxywasm import callseam, fastpath
    from .calls import CALL_WAT

    ok, _why = fastpath.available()
    seam = callseam.FAST if ok else callseam.NORMAL
    eng = wasmtime.Engine()
    store = wasmtime.Store(eng)
    ft = wasmtime.FuncType([wasmtime.ValType.i32()], [wasmtime.ValType.i32()])
    inst = wasmtime.Instance(store, wasmtime.Module(eng, CALL_WAT), [seam.host_func(store, ft, lambda x: x + 1)])
    ex = inst.exports(store)
    inc_fn, loop_fn = ex["inc"], ex["loop"]
    assert isinstance(inc_fn, wasmtime.Func) and isinstance(loop_fn, wasmtime.Func)
    inc = seam.bind_export(store, inc_fn, inc_fn.type(store))
    loop = seam.bind_export(store, loop_fn, loop_fn.type(store))
    export_us = _cpu_us(lambda: inc(1), 20_000)
    k = 20_000
    host_us = _cpu_us(lambda: loop(k), 1) / k
    return export_us, host_us


def _hook_run_us() -> float:
    """One run of a trivial hook, coroutine start to end, with the classroom guards (as
    ``lua.guard_cost.hook_run_guarded``)."""
    from ..filters.lua.runtime import Guards, new_state
    from .lua import _run_to_end

    rt, driver = new_state(Guards(), b"", b"")
    trivial = driver.body(rt.eval(b"function() local x = 1 end"))
    return _cpu_us(lambda: _run_to_end(trivial.coroutine()), 5_000)
