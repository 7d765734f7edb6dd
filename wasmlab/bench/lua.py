"""``lua.guard_cost.*``: what the classroom guards cost a script — one hook run (a trivial hook,
coroutine start to end) and a numeric loop of 1e6 iterations, with the guards (interpreter + count
hook) and without (LuaJIT's JIT). What they cost per request is ``request.lua_unguarded.*`` next
to ``request.lua.*``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from typing import Any

from .core import Result, rounds, size, summarize


def bench_lua_guards(args: argparse.Namespace) -> Iterator[Result]:
    from ..filters.lua.runtime import Guards, new_state

    for label, guards in (("guarded", Guards()), ("unguarded", Guards(0, 0))):
        rt, driver = new_state(guards, b"", b"")
        trivial = driver.body(rt.eval(b"function() local x = 1 end"))
        loop = driver.body(rt.eval(b"function() local s = 0 for i = 1, 1000000 do s = s + i % 7 end end"))
        n = size(args, 2000, 20000)
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
