"""``wasmlab bench``: named benchmarks, medians over rounds, printed with their spread.

Every figure is measured in this run, side by side (never asserted in tests). ``value`` is the
median over rounds and ``spread`` half the min-max range, in the same unit. Request benchmarks run
with tracing off (``trace=False``) unless the name says otherwise; ``tracing.*`` reports what
tracing costs. ``--vs-envoy`` also runs the same configs through real Envoy under ``wrk`` (Envoy
and wrk pinned to different cores with ``taskset``, loopback, bounded runs), alternating rounds
of wasmlab and Envoy, and reports each filter kind's added CPU cost per request for both (each
process's CPU time over the requests it served), as paired ratios.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .config import builder as b


@dataclass
class Result:
    name: str
    value: float
    unit: str
    spread: float

    def line(self) -> str:
        return f"{self.name:<52} {self.value:>14,.3f} {self.unit:<12} ± {self.spread:,.3f}"


def summarize(name: str, samples: list[float], unit: str) -> Result:
    med = statistics.median(samples)
    return Result(name, med, unit, (max(samples) - min(samples)) / 2 if len(samples) > 1 else 0.0)


BENCHMARKS: list[tuple[str, Callable[[argparse.Namespace], Iterator[Result]]]] = []


def benchmark(name: str) -> Callable[[Callable[[argparse.Namespace], Iterator[Result]]], Any]:
    def deco(fn: Callable[[argparse.Namespace], Iterator[Result]]) -> Any:
        BENCHMARKS.append((name, fn))
        return fn

    return deco


def rounds(args: argparse.Namespace) -> int:
    return 3 if args.quick else 7


def modules_dir() -> Path:
    from .modules import modules_dir as md

    return md()


# ---- configs measured ---------------------------------------------------------------------------
ADD_HEADER_CONFIG = '{"request_headers": {"x-a": "1"}, "response_headers": {"x-b": "2"}}'
LUA_ADD_HEADER = """
function envoy_on_request(handle)
  handle:headers():add("x-a", "1")
end
function envoy_on_response(handle)
  handle:headers():add("x-b", "2")
end
"""


def filter_for(kind: str, n: int = 1) -> list[dict[str, Any]]:
    if kind == "direct":
        return []
    if kind == "native":
        return [b.native("add_header", request_headers={"x-a": "1"}, response_headers={"x-b": "2"})] * n
    if kind == "lua":
        return [b.lua(inline=LUA_ADD_HEADER)] * n
    if kind == "wasm":
        return [_course_module("add_header", ADD_HEADER_CONFIG)] * n
    if kind == "cpu_burn":
        return [_course_module("cpu_burn", '{"iterations": 2000000}')]
    raise ValueError(kind)


def _course_module(name: str, configuration: str) -> dict[str, Any]:
    """The Wasm filter running ``modules/<name>.wasm`` under its own name, root_id and vm_id."""
    return b.wasm(str(modules_dir() / f"{name}.wasm"), name=name, root_id=name, vm_id=name, configuration=configuration)


def direct_config(filters: list[dict[str, Any]] | None = None, port: int = 10000) -> str:
    http_filters = [*(filters or []), b.router()]
    cfg = b.bootstrap(
        [b.http_listener("l0", port, routes=[b.direct_response("/", 200, "direct hello\n")], http_filters=http_filters)]
    )
    return b.to_yaml(cfg)


def native_filters(n: int) -> list[dict[str, Any]]:
    return [
        b.native("add_header", request_headers={f"x-n{i}": "v"}, response_headers={f"x-r{i}": "v"}) for i in range(n)
    ]


def kinds_available() -> list[str]:
    from .filters.registry import http_filter_factory

    kinds = ["direct", "native", "wasm"]
    if http_filter_factory("type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua") is not None:
        kinds.insert(2, "lua")
    return kinds


def rps_serial(proxy: Any, n: int, path: str = "/") -> float:
    req = proxy.request
    t0 = time.perf_counter()
    for _ in range(n):
        req("GET", path)
    return n / (time.perf_counter() - t0)


def rps_many(proxy: Any, n: int, concurrency: int = 64, path: str = "/") -> float:
    reqs = [("GET", path)] * n
    t0 = time.perf_counter()
    proxy.request_many(reqs, concurrency=concurrency, timeout=600)
    return n / (time.perf_counter() - t0)


# ---- per-call costs -------------------------------------------------------------------------------
CALL_WAT = """(module
  (import "env" "host" (func $host (param i32) (result i32)))
  (func (export "inc") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
  (func (export "loop") (param $n i32) (result i32) (local $acc i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $acc (call $host (local.get $acc)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $acc)))"""


def _per_call(fn: Callable[[], None], n: int) -> float:
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / n


@benchmark("call")
def bench_calls(args: argparse.Namespace) -> Iterator[Result]:
    import wasmtime

    from .proxywasm import callseam

    eng = wasmtime.Engine()
    module = wasmtime.Module(eng, CALL_WAT)
    ft = wasmtime.FuncType([wasmtime.ValType.i32()], [wasmtime.ValType.i32()])
    n_fast, n_slow = (20_000, 2_000) if args.quick else (200_000, 20_000)
    for seam_name in ("normal", "fast"):
        seam = callseam.FAST if seam_name == "fast" else callseam.NORMAL
        if seam_name == "fast":
            from .proxywasm import fastpath

            ok, why = fastpath.available()
            if not ok:
                print(f"# fast path unavailable: {why}", file=sys.stderr)
                continue
        store = wasmtime.Store(eng)
        inst = wasmtime.Instance(store, module, [seam.host_func(store, ft, lambda x: x + 1)])
        ex = inst.exports(store)
        inc_fn, loop_fn = ex["inc"], ex["loop"]
        assert isinstance(inc_fn, wasmtime.Func) and isinstance(loop_fn, wasmtime.Func)
        inc = seam.bind_export(store, inc_fn, inc_fn.type(store))
        loop = seam.bind_export(store, loop_fn, loop_fn.type(store))
        n = n_fast if seam_name == "fast" else n_slow

        def calls(inc: Any = inc, n: int = n) -> None:
            for i in range(n):
                inc(i)

        exp = [_per_call(calls, n) for _ in range(rounds(args))]
        host = [_per_call(functools.partial(loop, n), n) for _ in range(rounds(args))]
        yield summarize(f"call.export.{seam_name}_ns", exp, "ns")
        yield summarize(f"call.host.{seam_name}_ns", host, "ns")
    try:
        import lupa.luajit21 as lj

        lua = lj.LuaRuntime()
        f = lua.eval("function(x) return x + 1 end")
        n = n_fast

        def lua_calls() -> None:
            for i in range(n):
                f(i)

        yield summarize("call.lua_ns", [_per_call(lua_calls, n) for _ in range(rounds(args))], "ns")
    except ImportError:
        pass

    class Native:
        def inc(self, x: int) -> int:
            return x + 1

    o = Native()

    def native_calls() -> None:
        for i in range(n_fast):
            o.inc(i)

    yield summarize("call.native_ns", [_per_call(native_calls, n_fast) for _ in range(rounds(args))], "ns")


# ---- per-request costs ---------------------------------------------------------------------------
@benchmark("request")
def bench_requests(args: argparse.Namespace) -> Iterator[Result]:
    from .host.proxy import Proxy

    n_many = 2000 if args.quick else 20000
    n_serial = 300 if args.quick else 3000
    per_request: dict[tuple[str, int], list[float]] = {}
    for workers in (1, 2):
        for kind in kinds_available():
            with Proxy.from_yaml(direct_config(filter_for(kind)), workers=workers, trace=False) as proxy:
                rps_many(proxy, min(2000, n_many))
                many = [rps_many(proxy, n_many) for _ in range(rounds(args))]
                serial = [rps_serial(proxy, n_serial) for _ in range(max(2, rounds(args) // 2))]
            per_request[(kind, workers)] = [1e6 / r for r in many]
            w = f"{workers}worker{'s' if workers > 1 else ''}"
            yield summarize(f"request.{kind}.many_rps_{w}", many, "req/s")
            yield summarize(f"request.{kind}.serial_rps_{w}", serial, "req/s")
            if kind == "direct" and workers == 1:
                yield summarize("request.direct_response.rps_1worker", many, "req/s")
    for kind in kinds_available():
        if kind == "direct":
            continue
        base = per_request[("direct", 1)]
        added = [max(0.0, x - y) for x, y in zip(per_request[(kind, 1)], base, strict=True)]
        yield summarize(f"request.{kind}.added_wall_us_1worker", added, "us")
    # the issue-2 shape: direct_response with 0 and 3 native filters
    for nf in (0, 3):
        for workers in (1, 2):
            with Proxy.from_yaml(direct_config(native_filters(nf)), workers=workers, trace=False) as proxy:
                rps_many(proxy, 500)
                many = [rps_many(proxy, n_many) for _ in range(rounds(args))]
                serial = [rps_serial(proxy, n_serial) for _ in range(max(2, rounds(args) // 2))]
            yield summarize(f"request.direct_response.many_rps_{workers}w_{nf}native", many, "req/s")
            yield summarize(f"request.direct_response.serial_rps_{workers}w_{nf}native", serial, "req/s")


@benchmark("tracing")
def bench_tracing(args: argparse.Namespace) -> Iterator[Result]:
    from .host.proxy import Proxy

    n = 2000 if args.quick else 10000
    for kind in ("native", "wasm"):
        samples = []
        for _ in range(rounds(args)):
            pair = []
            for trace in (False, True):
                with Proxy.from_yaml(direct_config(filter_for(kind)), workers=1, trace=trace) as proxy:
                    rps_many(proxy, 500)
                    pair.append(1e6 / rps_many(proxy, n))
            samples.append(pair[1] - pair[0])
        yield summarize(f"tracing.cost_us_per_request.{kind}", samples, "us")


# ---- start-up ----------------------------------------------------------------------------------------
@benchmark("start")
def bench_start(args: argparse.Namespace) -> Iterator[Result]:
    from .host.proxy import Proxy
    from .proxywasm import module_cache

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
        b.wasm(
            str(modules_dir() / m),
            name=m.split(".")[0],
            root_id=m.split(".")[0],
            vm_id=m.split(".")[0],
            configuration=c,
        )
        for m, c in (
            ("add_header.wasm", ADD_HEADER_CONFIG),
            ("hello.wasm", None),
            ("cpu_burn.wasm", '{"iterations": 10}'),
        )
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


# ---- memory -------------------------------------------------------------------------------------------
def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@benchmark("memory")
def bench_memory(args: argparse.Namespace) -> Iterator[Result]:
    """Run in a fresh interpreter, so earlier benchmarks' heaps do not count."""
    n_small, n_big = (2_000, 20_000) if args.quick else (10_000, 100_000)
    code = f"import json, wasmlab.bench as b; print(json.dumps(b._memory_child({n_small}, {n_big})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"the memory benchmark failed: {out.stderr.strip().splitlines()[-1:]}")
    for name, value, unit in json.loads(out.stdout.strip().splitlines()[-1]):
        yield Result(name, value, unit, 0.0)


def _memory_child(n_small: int, n_big: int) -> list[tuple[str, float, str]]:
    from .host.proxy import Proxy

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
    with Proxy.from_yaml(direct_config(filter_for("wasm")), workers=2, trace=True, trace_capacity=50_000) as p:
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
    tag = f"{n_big // 1000}k"
    out.append((f"memory.rss_{n_small // 1000}k_mb", at_small, "MiB"))
    out.append((f"memory.rss_{tag}_mb", at_big, "MiB"))
    out.append(("memory.rss_growth_100k_pct", (at_big - at_small) / at_small * 100, "%"))
    return out


# ---- scaling ----------------------------------------------------------------------------------------------
@benchmark("scaling")
def bench_scaling(args: argparse.Namespace) -> Iterator[Result]:
    from .host.proxy import Proxy

    n = 100 if args.quick else 400
    ratios = []
    tput: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(rounds(args)):
        pair = {}
        for workers in (1, 2):
            with Proxy.from_yaml(direct_config(filter_for("cpu_burn")), workers=workers, trace=False) as proxy:
                rps_many(proxy, 20, concurrency=8)
                pair[workers] = rps_many(proxy, n, concurrency=8)
            tput[workers].append(pair[workers])
        ratios.append(pair[2] / pair[1])
    yield summarize("scaling.cpu_heavy_wasm.rps_1worker", tput[1], "req/s")
    yield summarize("scaling.cpu_heavy_wasm.rps_2workers", tput[2], "req/s")
    yield summarize("scaling.cpu_heavy_wasm.2v1", ratios, "x")


# ---- side by side with real Envoy ------------------------------------------------------------------------
def _wrk(port: int, seconds: float, cpu: str | None) -> tuple[int, float]:
    """``(requests completed, seconds)`` of one bounded wrk run against 127.0.0.1:port."""
    secs = max(1, round(seconds))
    cmd = ["wrk", "-t1", "-c8", f"-d{secs}s", f"http://127.0.0.1:{port}/"]
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", cpu, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 30).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", out)
    if not m or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk did not get clean answers: {out[-300:]}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
    return int(m.group(1)), float(m.group(2)) * scale


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wasmlab_cpu_us(kind: str, n: int) -> float:
    """CPU µs per request of this whole process (worker, client and helper threads) with 64
    requests in flight on one worker, tracing off."""
    from .host.proxy import Proxy

    with Proxy.from_yaml(direct_config(filter_for(kind)), workers=1, trace=False) as proxy:
        rps_many(proxy, 500)
        gc.collect()
        c0 = time.process_time()
        rps_many(proxy, n)
        return (time.process_time() - c0) / n * 1e6


def _envoy_cpu_us(envoy: str, kind: str, seconds: float, multi: bool) -> float:
    """CPU µs per request of a real Envoy (one worker) under wrk: Envoy's CPU time over the
    requests wrk completed. CPU time, not 1/throughput: one wrk thread does not saturate Envoy."""
    from .envoy.wire import free_port, send_request

    port, admin = free_port(), free_port()
    text = direct_config(filter_for(kind), port=port).replace("port_value: 9901", f"port_value: {admin}")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "envoy.yaml"
        cfg.write_text(text)
        cmd = [envoy, "-c", str(cfg), "--concurrency", "1", "--disable-hot-restart", "--use-dynamic-base-id"]
        cmd += ["-l", "warning"]
        if multi and shutil.which("taskset"):
            cmd = ["taskset", "-c", "0", *cmd]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    if send_request("127.0.0.1", port, "GET", "/", [("host", "localhost")], b"", 1).status == 200:
                        break
                except OSError:
                    time.sleep(0.05)
            else:
                raise RuntimeError(f"Envoy did not answer on 127.0.0.1:{port} for the {kind} config")
            _wrk(port, 1.0, "1" if multi else None)  # warm up
            c0 = _cpu_seconds(proc.pid)
            count, _ = _wrk(port, seconds, "1" if multi else None)
            return (_cpu_seconds(proc.pid) - c0) / count * 1e6
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def vs_envoy(args: argparse.Namespace) -> Iterator[Result]:
    """Alternating rounds, per filter kind: wasmlab in process, then Envoy under wrk. Both sides
    are charged the CPU time their whole process spent per request, so the added cost of a
    filter is (CPU µs per request with it) - (without it), paired round by round."""
    from .envoy.binary import find_envoy

    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    envoy = find_envoy()
    kinds = [k for k in kinds_available() if k in ("direct", "lua", "wasm")]
    seconds = 2.0 if args.quick else 4.0
    n = 3000 if args.quick else 20000
    ours: dict[str, list[float]] = {k: [] for k in kinds}
    theirs: dict[str, list[float]] = {k: [] for k in kinds}
    multi = (os.cpu_count() or 1) > 1
    for _ in range(3 if args.quick else 5):
        for kind in kinds:
            ours[kind].append(_wasmlab_cpu_us(kind, n))
            theirs[kind].append(_envoy_cpu_us(envoy, kind, seconds, multi))
    for kind in kinds:
        if kind == "direct":
            continue
        a = [x - y for x, y in zip(ours[kind], ours["direct"], strict=True)]
        e = [x - y for x, y in zip(theirs[kind], theirs["direct"], strict=True)]
        yield summarize(f"{kind}.added_us_per_request.wasmlab", a, "us")
        yield summarize(f"{kind}.added_us_per_request.envoy", e, "us")
        ratios = [x / y for x, y in zip(a, e, strict=True) if y > 0]
        if ratios:
            yield summarize(f"{kind}.added_cost_ratio.wasmlab_over_envoy", ratios, "x")
    yield summarize("request.direct.cpu_us_per_request.envoy", theirs["direct"], "us")
    yield summarize("request.direct.cpu_us_per_request.wasmlab", ours["direct"], "us")


LUA_ADD_HEADER_N0 = """function envoy_on_request(handle)
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
        ("lua_guarded", [b.lua(LUA_ADD_HEADER_N0)], {}),
        ("lua_unguarded", [b.lua(LUA_ADD_HEADER_N0)], {"lua_instruction_limit": 0, "lua_memory_limit_mb": 0}),
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
    benches = list(BENCHMARKS)
    if getattr(args, "vs_envoy", False):
        benches.append(("vs_envoy", vs_envoy))
    for name, fn in benches:
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
