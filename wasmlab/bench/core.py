"""What every benchmark family shares: a figure (``Result``), medians with their spread, round and
size counts for full and ``--quick`` runs, the configs measured, and the request loops."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import builder as b
from ..errors import WasmlabError


class BenchError(WasmlabError):
    """A benchmark cannot run or report (unknown ``--only``, a missing tool, a failed child run);
    the command prints it as one line and exits 2."""


@dataclass
class Result:
    name: str
    value: float
    unit: str
    spread: float

    def line(self) -> str:
        return f"{self.name:<52} {self.value:>14,.3f} {self.unit:<12} ± {self.spread:,.3f}"


#: a figure family: it reads the command's arguments and yields its figures
BenchFn = Callable[[argparse.Namespace], Iterator[Result]]


def summarize(name: str, samples: list[float], unit: str) -> Result:
    med = statistics.median(samples)
    return Result(name, med, unit, (max(samples) - min(samples)) / 2 if len(samples) > 1 else 0.0)


def rounds(args: argparse.Namespace) -> int:
    return 3 if args.quick else 7


def size(args: argparse.Namespace, quick: int, full: int) -> int:
    """A count (requests, calls) for this run: ``--quick`` takes the smaller one."""
    return quick if args.quick else full


def modules_dir() -> Path:
    from ..modules import modules_dir as md

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
    if kind == "noop":  # a native filter that adds nothing: what the chain itself costs
        return [b.native("add_header")] * n
    if kind == "lua":
        return [b.lua(inline=LUA_ADD_HEADER)] * n
    if kind == "wasm":
        return [course_module("add_header", ADD_HEADER_CONFIG)] * n
    if kind == "cpu_burn":
        return [course_module("cpu_burn", '{"iterations": 2000000}')]
    raise ValueError(kind)


def course_module(name: str, configuration: str | None) -> dict[str, Any]:
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
    from ..filters.registry import http_filter_factory

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
