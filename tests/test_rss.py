"""Memory stays flat over 50 create/close cycles of a Wasm proxy and of a Lua proxy.

The bound is what the smallest leak we fixed would cost: one wasmtime Store (one Lua state) left
behind per cycle. The test measures that cost here, on this machine, by keeping a few extra
started VMs (Lua states) alive, and asserts that the last 25 cycles grew the resident set by less
than half of 25 such leaks. On main before the fix every closed Wasm proxy stayed alive with its
five Stores: about 350 KiB a cycle, 8.5 MiB over 25. The numbers are printed in the pytest summary
(``measured:`` lines).

Each measurement runs in a fresh Python process: inside the long test session the allocator's free
lists (memory earlier tests gave back) absorb small allocations, so RSS would show neither the cost
of one unit nor a leak of a few (a full run once measured a Lua state at 0 KiB).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CONFIGS
from wasmlab import Proxy
from wasmlab.filters.lua.filter import LuaFilterFactory
from wasmlab.filters.wasm.filter import WasmFilterFactory

CYCLES = 50
PROBES = 40


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def cycles(path: Path) -> list[int]:
    """RSS after each of ``CYCLES`` create / 5 requests / close cycles."""
    out = []
    for _ in range(CYCLES):
        with Proxy.from_yaml(path) as p:
            for _ in range(5):
                p.request("GET", "/")
        del p
        gc.collect()
        out.append(rss_kib())
    return out


def one_leak_kib(path: Path, make: Callable[[Proxy], Callable[[], Any]]) -> float:
    """What one more started VM (Lua state) of this config costs: ``PROBES`` of them kept alive."""
    with Proxy.from_yaml(path) as p:
        p.request("GET", "/")
        build = make(p)
        build()  # the first may allocate once-per-process things
        gc.collect()
        before = rss_kib()
        kept = [build() for _ in range(PROBES)]
        gc.collect()
        cost = (rss_kib() - before) / PROBES
        for vm in kept:
            release = getattr(vm, "destroy", None) or vm.close
            p._server.main.run_sync(release)
    return cost


def wasm_vm(p: Proxy) -> Callable[[], Any]:
    srv = p._server
    factory = next(e for e in p._extensions if isinstance(e, WasmFilterFactory))

    def build() -> Any:
        def on_main() -> Any:
            vm = srv.wasm._new_vm(factory.plugin, "replica", srv.main)
            srv.wasm.start_root(vm, factory.plugin)
            return vm

        return srv.main.run_sync(on_main)

    return build


def lua_state(p: Proxy) -> Callable[[], Any]:
    factory = next(e for e in p._extensions if isinstance(e, LuaFilterFactory))
    return lambda: factory._create_vm(factory.scripts[0], "probe")


MAKERS: dict[str, tuple[Path, Callable[[Proxy], Callable[[], Any]], str]] = {
    "Wasm": (CONFIGS / "wasm" / "add_header.yaml", wasm_vm, "Store"),
    "Lua": (CONFIGS / "lua" / "add_header.yaml", lua_state, "Lua state"),
}


def measure(kind: str) -> dict[str, Any]:
    """The cost of one unit, then RSS over the cycles (run by the test in a fresh process)."""
    path, make, _ = MAKERS[kind]
    with Proxy.from_yaml(path) as warm:  # engine, compiled module, imports
        warm.request("GET", "/")
    del warm
    leak = one_leak_kib(path, make)
    return {"leak": leak, "rss": cycles(path)}


def measured_in_a_fresh_process(kind: str) -> dict[str, Any]:
    here = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(here), os.environ.get("PYTHONPATH")]))}
    code = f"import json, test_rss; print(json.dumps(test_rss.measure({kind!r})))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=here, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert out.returncode == 0, f"the {kind} measurement failed:\n{out.stderr[-3000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", list(MAKERS))
def test_rss_is_flat_over_50_create_close_cycles(kind: str, record_property: Any) -> None:
    unit = MAKERS[kind][2]
    m = measured_in_a_fresh_process(kind)
    leak, rss = m["leak"], m["rss"]
    assert leak > 0, f"one more {unit} costs memory (measured {leak:.1f} KiB)"
    growth = rss[-1] - rss[CYCLES // 2 - 1]
    bound = 0.5 * (CYCLES // 2) * leak
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    record_property(
        "measured",
        f"{kind} proxy, {CYCLES} create/close cycles: RSS {rss[0] / 1024:.1f} -> {rss[CYCLES // 2 - 1] / 1024:.1f} "
        f"-> {rss[-1] / 1024:.1f} MiB; last {CYCLES // 2} cycles grew {growth} KiB (bound {bound:.0f} KiB = half of "
        f"{CYCLES // 2} leaked {unit}s at {leak:.1f} KiB each); load average {load}",
    )
    assert growth < bound, (
        f"{kind}: the last {CYCLES // 2} cycles grew RSS by {growth} KiB; one leaked {unit} per cycle "
        f"would be {2 * bound:.0f} KiB (RSS per cycle: {rss})"
    )
