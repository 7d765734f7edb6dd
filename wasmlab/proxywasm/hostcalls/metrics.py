"""Metrics: ``proxy_define_metric`` and friends, visible in ``proxy.stats()`` as ``wasmcustom.<name>``.

Ids encode the type in their low 2 bits, numbered per type and per VM as Envoy numbers them
(counters 4, 8, 12...; gauges 5, 9...; histograms 6, 10...). The stat itself is process-wide by
name, so every worker's VM adds to the same counter. Counters only grow (a non-positive
increment is BAD_ARGUMENT; ``record`` adds); gauges add or set; histograms take samples and have no readable value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..types import MetricType, WasmResult
from . import hostcall

if TYPE_CHECKING:
    from ..vm import WasmVm

OK = WasmResult.OK
BAD = WasmResult.BAD_ARGUMENT
PREFIX = "wasmcustom."


@hostcall("proxy_define_metric", 4)
def proxy_define_metric(vm: WasmVm, mtype: int, nptr: int, nlen: int, id_out: int) -> Any:
    name = vm.memory.read(nptr, nlen)
    if name is None:  # Envoy reads the name before it looks at the type
        return WasmResult.INVALID_MEMORY_ACCESS
    if mtype > 2:
        return BAD
    mid = (next(vm._metric_ids[mtype]) << 2) | mtype
    stat = PREFIX + name.decode("latin-1") if name else PREFIX[:-1]  # Envoy: no dot before no name
    vm.metrics[mid] = (mtype, stat)
    if mtype == MetricType.COUNTER:
        vm.proxy.stat_store.inc(stat, 0)
    elif mtype == MetricType.GAUGE:
        vm.proxy.stat_store.gauge_add(stat, 0)
    if not vm.memory.write_u32(id_out, mid):
        return WasmResult.INVALID_MEMORY_ACCESS
    return OK, {"name": stat, "metric_id": mid, "type": MetricType(mtype).name.lower()}


def _metric_call(
    name: str, params: str | int, types: frozenset[int] = frozenset({0, 1, 2})
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a host call that acts on one metric: its first argument is the metric id, and
    ``fn(vm, mtype, stat, *rest)`` gets the metric it names. As in Envoy, the id's type bits
    are read first: a type the call does not take (``types``) is BAD_ARGUMENT, defined or not;
    an unknown id of a type it takes is NOT_FOUND."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @hostcall(name, params)
        def call(vm: WasmVm, mid: int, *rest: int) -> Any:
            if mid & 3 not in types:
                return BAD
            m = vm.metrics.get(mid)
            if m is None:
                return WasmResult.NOT_FOUND
            return fn(vm, *m, *rest)

        call.__name__ = name
        return fn

    return deco


@_metric_call("proxy_increment_metric", "i32 i64", frozenset({0, 1}))
def proxy_increment_metric(vm: WasmVm, mtype: int, stat: str, delta: int) -> Any:
    if mtype == MetricType.COUNTER:
        if delta <= 0:
            return BAD
        vm.proxy.stat_store.inc(stat, delta)
    elif mtype == MetricType.GAUGE:
        vm.proxy.stat_store.gauge_add(stat, delta)
    else:
        return BAD
    return (OK, {"name": stat, "delta": delta}) if vm.rec.enabled else OK


@_metric_call("proxy_record_metric", "i32 i64", frozenset({0, 1, 2, 3}))
def proxy_record_metric(vm: WasmVm, mtype: int, stat: str, value: int) -> Any:
    value &= 0xFFFFFFFFFFFFFFFF
    if mtype == MetricType.COUNTER:
        vm.proxy.stat_store.inc(stat, value)
    elif mtype == MetricType.GAUGE:
        vm.proxy.stat_store.gauge_set(stat, value)
    else:
        vm.proxy.wasm.record_histogram(stat, value)
    return (OK, {"name": stat, "value": value}) if vm.rec.enabled else OK


@_metric_call("proxy_get_metric", 2, frozenset({0, 1}))
def proxy_get_metric(vm: WasmVm, mtype: int, stat: str, out: int) -> Any:
    if mtype == MetricType.HISTOGRAM:
        return BAD
    store = vm.proxy.stat_store
    value = store.counter(stat) if mtype == MetricType.COUNTER else store.gauge(stat)
    return (OK if vm.memory.write_u64(out, value) else WasmResult.INVALID_MEMORY_ACCESS), {"name": stat, "value": value}
