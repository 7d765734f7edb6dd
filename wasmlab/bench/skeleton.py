"""The least a filter of each kind can do in wasmlab's real chain, for ``wasmlab bench --profile``.

:mod:`.floor` times the work a filter of a kind cannot avoid in tight loops: a lower bound, with
warm caches and nothing around it. This module measures the same work where it really runs, in
two ways, so that the profile can say whether the cost above the floor is glue wasmlab could still
cut or the price of that work in a running proxy.

* **A skeleton filter side by side.** A *skeleton* is a subclass of the real filter that keeps of
  each callback only what a filter of the kind must do, and skips everything that makes it
  Envoy's filter (used here only; it is not a filter anyone should run):

  - ``noop``: two header callbacks that return Continue (the no-op native filter still reads its
    config; a filter that overrides neither callback costs less: the walk skips it);
  - ``wasm``: per stream a context; the request- and response-headers guest calls, with whatever
    host calls the module makes there; the context removed at the end. No failure policy, no
    stream state, no route-cache clearing after a header edit, no body or log callbacks;
  - ``lua``: per hook the script's state, one run of the hook, the header adds it wrote down applied.
    No stats, debug log, route-cache clearing, handles or error handling.

  The filterless config, the real filter and the skeleton run in one process, in interleaved
  rounds, each charged the CPU time of the whole process per request (as ``--vs-envoy`` does).
  If even the skeleton adds more than the issue's target, cutting all the rest of the filter
  (glue, and the Envoy rules it keeps, such as clearing the route cache after a header edit)
  would not meet the target.
* **The unavoidable steps timed in context**: in three more runs a timed variant of the skeleton
  reads the thread's CPU clock around each step (the reads' own cost, measured, is taken off):
  what the guest calls or the hook runs cost inside a request, against their tight-loop cost in the
  floor (making the filter object, ~0.1–0.2 µs, is not timed: the clock reads cost about as
  much). The skeletons measured side by side read no clock.
"""

from __future__ import annotations

import statistics
import time
import types
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..filters.base import StreamFilter
from ..filters.lua.filter import LuaFilter, _adopt_unborn
from ..filters.lua.luaobject import UNBORN, _ids
from ..filters.lua.runtime import RUN_REQUEST_UNTRACED, RUN_RESPONSE_UNTRACED
from ..filters.wasm.filter import WasmHttpFilter
from ..http import FilterHeadersStatus
from .core import direct_config, filter_for, rps_many
from .floor import TARGET_FIGURES, TARGETS_US

_CONTINUE = FilterHeadersStatus.Continue
#: the steps' clock: this thread's CPU time (the targets are CPU time; waiting is not counted)
_clock = time.thread_time_ns
#: step -> ns summed by the timed skeletons
_steps: dict[str, int] = defaultdict(int)
WASM_CONTEXT = "a stream context (made, registered)"
WASM_CALLS = "the 2 header guest calls, with their host calls"
LUA_RUNS = "the 2 hook runs (state lookup, coroutine run)"
LUA_ADDS = "the header adds the hooks wrote down"


# ---- the skeletons, as measured side by side: no clock reads -----------------------------------
class NoopSkeleton(StreamFilter):
    """Two header callbacks that return Continue."""

    def decode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        return _CONTINUE

    def encode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        return _CONTINUE


class WasmSkeleton(WasmHttpFilter):
    """A stream context and the two header guest calls (the bench's module exports both, and
    neither ``proxy_on_context_create`` nor the log and done callbacks)."""

    __slots__ = ()

    def decode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        handle = self.dispatcher.slots[self.plugin.slot]
        vm = handle.vm
        ctx = self.ctx = vm.new_context(handle.root, self.plugin, "http", self)
        self.request_headers = headers
        vm.invoke(vm.funcs["proxy_on_request_headers"], ctx, "proxy_on_request_headers", (ctx.id, len(headers), 0))
        return _CONTINUE

    def encode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        ctx = self.ctx
        assert ctx is not None
        vm = ctx.vm
        self.response_headers = headers
        vm.invoke(vm.funcs["proxy_on_response_headers"], ctx, "proxy_on_response_headers", (ctx.id, len(headers), 0))
        return _CONTINUE

    decode_data = StreamFilter.decode_data
    encode_data = StreamFilter.encode_data
    log = StreamFilter.log

    def on_destroy(self) -> None:
        ctx = self.ctx
        assert ctx is not None
        ctx.vm.remove_context(ctx)
        ctx.filter = None
        self.ctx = None

    def request_headers_edited(self, key: str | None) -> None:
        pass  # Envoy clears the route cache here


class LuaSkeleton(LuaFilter):
    """One run per hook (the state found as the real filter finds it), the adds it wrote down."""

    def decode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        self._adds(headers, self._run(True, headers, end_stream))
        return _CONTINUE

    def encode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        self._adds(headers, self._run(False, headers, end_stream))
        return _CONTINUE

    def _run(self, decoder: bool, headers: Any, end_stream: bool) -> Any:
        factory, route, dispatcher = self.factory, self.callbacks.route, self.dispatcher
        last_route, last_dispatcher, setup = factory.last_setup
        if route is not last_route or dispatcher is not last_dispatcher:
            setup = factory.hook_setup(route, dispatcher)
        assert setup is not None, "the bench's Lua route runs a script"
        vm, per_route = setup
        lua_id = next(_ids)
        UNBORN[lua_id] = (_adopt_unborn, self, decoder, per_route, vm, headers, end_stream)
        try:
            return vm.run(RUN_REQUEST_UNTRACED if decoder else RUN_RESPONSE_UNTRACED, lua_id)
        finally:
            UNBORN.pop(lua_id)

    @staticmethod
    def _adds(headers: Any, r: Any) -> None:
        if r.__class__ is tuple:
            for i in range(2, len(r), 2):
                headers.add_lowered(r[i].decode("latin-1").lower(), r[i + 1].decode("latin-1"))

    decode_data = StreamFilter.decode_data
    encode_data = StreamFilter.encode_data
    log = StreamFilter.log
    on_destroy = StreamFilter.on_destroy


# ---- the same with the clock read around each step (a separate run) ------------------------------
class TimedWasmSkeleton(WasmSkeleton):
    __slots__ = ()

    def decode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        t = _clock()
        handle = self.dispatcher.slots[self.plugin.slot]
        vm = handle.vm
        ctx = self.ctx = vm.new_context(handle.root, self.plugin, "http", self)
        _steps[WASM_CONTEXT] += _clock() - t
        self.request_headers = headers
        t = _clock()
        vm.invoke(vm.funcs["proxy_on_request_headers"], ctx, "proxy_on_request_headers", (ctx.id, len(headers), 0))
        _steps[WASM_CALLS] += _clock() - t
        return _CONTINUE

    def encode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        ctx = self.ctx
        assert ctx is not None
        vm = ctx.vm
        self.response_headers = headers
        t = _clock()
        vm.invoke(vm.funcs["proxy_on_response_headers"], ctx, "proxy_on_response_headers", (ctx.id, len(headers), 0))
        _steps[WASM_CALLS] += _clock() - t
        return _CONTINUE


class TimedLuaSkeleton(LuaSkeleton):
    def decode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        return self._timed(True, headers, end_stream)

    def encode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        return self._timed(False, headers, end_stream)

    def _timed(self, decoder: bool, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        t = _clock()
        r = self._run(decoder, headers, end_stream)
        t2 = _clock()
        self._adds(headers, r)
        t3 = _clock()
        _steps[LUA_RUNS] += t2 - t
        _steps[LUA_ADDS] += t3 - t2
        return _CONTINUE


#: kind -> (the skeleton, its timed variant, the clock readings each step gets per request)
_SKELETONS: dict[str, tuple[type[StreamFilter], type[StreamFilter], dict[str, int]]] = {
    "noop": (NoopSkeleton, NoopSkeleton, {}),
    "wasm": (WasmSkeleton, TimedWasmSkeleton, {WASM_CONTEXT: 1, WASM_CALLS: 2}),
    "lua": (LuaSkeleton, TimedLuaSkeleton, {LUA_RUNS: 2, LUA_ADDS: 2}),
}
#: filters in the measured chains: the no-op's few µs are lost in the noise of one request's ~35,
#: so its chains hold 8 and its figures are the average per filter of the eight
COPIES = {"noop": 8}


@dataclass
class InContext:
    kind: str
    target_us: float
    direct_us: float
    real_added: list[float]
    skeleton_added: list[float]
    steps_us: dict[str, float] = field(default_factory=dict)  # step -> µs per request, in context
    copies: int = 1  # filters of the kind in the chain; every figure is the average per filter

    @staticmethod
    def _median(xs: list[float]) -> tuple[float, float]:
        if len(xs) >= 4:
            q1, _, q3 = statistics.quantiles(xs, n=4)
            return statistics.median(xs), (q3 - q1) / 2
        return statistics.median(xs), (max(xs) - min(xs)) / 2

    def lines(self) -> list[str]:
        real, real_s = self._median(self.real_added)
        skel, skel_s = self._median(self.skeleton_added)
        out = [
            f"# in context ({TARGET_FIGURES[self.kind]}, target {self.target_us:g} us): the filterless"
            f" request {self.direct_us:.1f} us; added, {len(self.real_added)} interleaved rounds,"
            " process CPU per request"
            + (f", the average per filter of {self.copies} in one chain" if self.copies > 1 else ""),
            f"  {'this filter':<74} {real:>7.2f} us  ± {real_s:.2f}",
            f"  {'a skeleton doing only the unavoidable work (bench/skeleton.py)':<74} {skel:>7.2f} us  ± {skel_s:.2f}",
            "# the skeleton's steps, each timed in CPU where it runs (median of the timed runs; the"
            " clock reads' own cost taken off):",
        ]
        out += [f"  {step:<74} {us:>7.2f} us" for step, us in self.steps_us.items()]
        out.append(f"  {'(not timed: the chain places and the walk, and the cost around the filter)':<74}")
        beyond = max(0.0, real - skel)
        if skel > self.target_us:
            verdict = (
                f"the skeleton adds {skel:.2f} us, over the target {self.target_us:g} us: cutting everything"
                f" the filter does beyond it ({beyond:.2f} us, Envoy's own rules among it) would not meet the target"
            )
        else:
            verdict = (
                f"the skeleton adds {skel:.2f} us <= the target {self.target_us:g} us: the {beyond:.2f} us"
                " the filter adds beyond it decides"
            )
        out.append(f"# {verdict}")
        return out

    def to_dict(self) -> dict[str, Any]:
        real, real_s = self._median(self.real_added)
        skel, skel_s = self._median(self.skeleton_added)
        return {
            "target_us": self.target_us,
            "direct_us": self.direct_us,
            "real_added_us": real,
            "real_added_spread_us": real_s,
            "skeleton_added_us": skel,
            "skeleton_added_spread_us": skel_s,
            "steps_us": self.steps_us,
            "copies": self.copies,
        }


def _with_skeletons(proxy: Any, kind: str, timed: bool = False) -> None:
    """Make ``proxy``'s filters of ``kind`` skeletons (its factories only, not the class's); with
    ``timed``, the timed variant."""
    plain, timed_cls, _ = _SKELETONS[kind]
    cls: Any = timed_cls if timed else plain
    args = kind != "noop"  # (the no-op skeleton takes no arguments)

    def make(factory: Any, dispatcher: Any) -> StreamFilter:
        return cls(factory, dispatcher) if args else cls()

    for hcm in proxy._server.hcms.values():
        for fc in hcm.config.http_filters:
            if "router" not in fc.name:
                fc.factory.create_filter = types.MethodType(make, fc.factory)


def _cpu_us(proxy: Any, n: int) -> float:
    c0 = time.process_time()
    rps_many(proxy, n)
    return (time.process_time() - c0) / n * 1e6


def _reading_cost_ns() -> float:
    """What one timed step adds by itself: two clock reads and the sum."""
    k = 20_000
    scratch: dict[str, int] = defaultdict(int)
    t0 = _clock()
    for _ in range(k):
        t = _clock()
        scratch["x"] += _clock() - t
    return (_clock() - t0) / k


def per_filter(samples: list[float], base: list[float], copies: int) -> list[float]:
    """Each round's added µs per filter: (with the filters - without) / filters in the chain."""
    return [(a - b) / copies for a, b in zip(samples, base, strict=True)]


def measure(kind: str, n: int = 2000, rounds: int = 12, timed_runs: int = 3) -> InContext | None:
    """The skeleton of ``kind`` (``noop``, ``wasm``, ``lua``; None for any other) side by side
    with the real filter and the filterless request, then its steps timed in context."""
    if kind not in _SKELETONS:
        return None
    from ..host.proxy import Proxy

    copies = COPIES.get(kind, 1)
    with (
        Proxy.from_yaml(direct_config([], port=10000), workers=1, trace=False) as direct,
        Proxy.from_yaml(direct_config(filter_for(kind, copies), port=10001), workers=1, trace=False) as real,
        Proxy.from_yaml(direct_config(filter_for(kind, copies), port=10002), workers=1, trace=False) as skeleton,
    ):
        _with_skeletons(skeleton, kind)
        proxies = {"direct": direct, "real": real, "skeleton": skeleton}
        for p in proxies.values():
            rps_many(p, 500)  # warm up
        cpu: dict[str, list[float]] = {k: [] for k in proxies}
        names = list(proxies)
        for r in range(rounds):
            for i in range(len(names)):
                k = names[(r + i) % len(names)]
                cpu[k].append(_cpu_us(proxies[k], n))
        # the timed runs: each step's CPU, less the readings' own cost
        _with_skeletons(skeleton, kind, timed=True)
        rps_many(skeleton, 500)
        readings = _SKELETONS[kind][2]
        runs: dict[str, list[float]] = defaultdict(list)
        for _ in range(timed_runs):
            cost = skeleton._server.workers[0].run_sync(_reading_cost_ns)
            _steps.clear()
            rps_many(skeleton, n)
            for step, ns in _steps.items():
                runs[step].append(max(0.0, ns - readings.get(step, 1) * n * cost) / n / 1000 / copies)
        _steps.clear()
    return InContext(
        kind,
        TARGETS_US[kind],
        statistics.median(cpu["direct"]),
        per_filter(cpu["real"], cpu["direct"], copies),
        per_filter(cpu["skeleton"], cpu["direct"], copies),
        {step: statistics.median(v) for step, v in runs.items()},
        copies,
    )
