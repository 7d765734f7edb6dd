"""``call.*``: what one crossing costs — a guest export called from Python and a host function
called from the guest (wasmtime-py's API and wasmlab's fast path), a call into LuaJIT, and a
Python method call for scale."""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from .core import Result, rounds, size, summarize

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


def bench_calls(args: argparse.Namespace) -> Iterator[Result]:
    import wasmtime

    from ..proxywasm import callseam

    eng = wasmtime.Engine()
    module = wasmtime.Module(eng, CALL_WAT)
    ft = wasmtime.FuncType([wasmtime.ValType.i32()], [wasmtime.ValType.i32()])
    n_fast, n_slow = size(args, 10_000, 200_000), size(args, 1_000, 20_000)
    for seam_name in ("normal", "fast"):
        seam = callseam.FAST if seam_name == "fast" else callseam.NORMAL
        if seam_name == "fast":
            from ..proxywasm import fastpath

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
    yield from _lua_and_native(args, n_fast)


def _lua_and_native(args: argparse.Namespace, n: int) -> Iterator[Result]:
    try:
        import lupa.luajit21 as lj

        f = lj.LuaRuntime().eval("function(x) return x + 1 end")

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
        for i in range(n):
            o.inc(i)

    yield summarize("call.native_ns", [_per_call(native_calls, n) for _ in range(rounds(args))], "ns")
