"""The least a filter of each kind can do in wasmlab's real chain, for ``wasmlab bench --profile``.

:mod:`.floor` times the work a filter of a kind cannot avoid in tight loops: a lower bound, with
warm caches and nothing around it. This module measures the same work where it really runs, in
two ways, so that the profile can say whether the cost above the floor is glue wasmlab could still
cut or the price of that work in a running proxy.

* **A skeleton filter side by side.** A *skeleton* is a subclass of the real filter that keeps of
  each callback only what a filter of the kind must do, and skips everything that makes it
  Envoy's filter (used here only; it is not a filter anyone should run):

  - ``noop``: two header callbacks that return Continue (the no-op native filter still reads its
    config);
  - ``wasm``: per stream a context; the request- and response-headers guest calls, with whatever
    host calls the module makes there; the context removed at the end. No failure policy, no
    stream state, no route-cache clearing after a header edit, no body or log callbacks;
  - ``lua``: per hook the script's state, one run of the hook, the header adds it wrote down applied.
    No stats, debug log, route-cache clearing, handles or error handling.

  The filterless config, the real filter and the skeleton run in one process, in interleaved
  rounds, each charged the CPU time of the whole process per request (as ``--vs-envoy`` does).
  If even the skeleton adds more than the issue's target, the target is out of reach in this
  design, whatever glue is cut.
* **The unavoidable steps timed in context**: in one more run of the skeleton a timer reads the
  clock around each step (its own cost, measured, is taken off): what a guest call, a hook run or
  making the filter costs inside a request, against its tight-loop cost in the floor.
"""

from __future__ import annotations

import statistics
import time
import types
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..filters.base import StreamFilter
from ..filters.lua.filter import LuaFilter
from ..filters.lua.luaobject import UNBORN, _ids
from ..filters.lua.runtime import RUN_REQUEST_UNTRACED, RUN_RESPONSE_UNTRACED
from ..filters.wasm.filter import WasmHttpFilter
from ..http import FilterHeadersStatus
from .core import direct_config, filter_for, rps_many
from .floor import TARGET_FIGURES, TARGETS_US

_CONTINUE = FilterHeadersStatus.Continue
MAKE_FILTER = "the filter object, from its factory"
_clock = time.perf_counter_ns
#: step -> ns summed over the timed run; None when nothing is timed
_timing: dict[str, float] | None = None


def _took(step: str, since: int) -> None:
    if _timing is not None:
        _timing[step] += _clock() - since


class NoopSkeleton(StreamFilter):
    """Two header callbacks that return Continue."""

    def decode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        return _CONTINUE

    def encode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        return _CONTINUE


class WasmSkeleton(WasmHttpFilter):
    """A stream context and the two header guest calls (the bench's module exports both)."""

    __slots__ = ()

    def decode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        t = _clock()
        handle = self.dispatcher.slots[self.plugin.slot]
        vm = handle.vm
        ctx = self.ctx = vm.new_context(handle.root, self.plugin, "http", self)
        _took("a stream context (made, registered)", t)
        self.request_headers = headers
        t = _clock()
        vm.invoke(vm.funcs["proxy_on_request_headers"], ctx, "proxy_on_request_headers", (ctx.id, len(headers), 0))
        _took("the 2 header guest calls, with their host calls", t)
        return _CONTINUE

    def encode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        ctx = self.ctx
        vm = ctx.vm
        self.response_headers = headers
        t = _clock()
        vm.invoke(vm.funcs["proxy_on_response_headers"], ctx, "proxy_on_response_headers", (ctx.id, len(headers), 0))
        _took("the 2 header guest calls, with their host calls", t)
        return _CONTINUE

    decode_data = StreamFilter.decode_data
    encode_data = StreamFilter.encode_data
    log = StreamFilter.log

    def on_destroy(self) -> None:
        ctx = self.ctx
        ctx.vm.remove_context(ctx)
        ctx.filter = None
        self.ctx = None

    def request_headers_edited(self, key: str | None) -> None:
        pass  # Envoy clears the route cache here


class LuaSkeleton(LuaFilter):
    """One run per hook, and the adds it wrote down."""

    def decode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        return self._run(True, headers, end_stream)

    def encode_headers(self, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        return self._run(False, headers, end_stream)

    def _run(self, decoder: bool, headers: Any, end_stream: bool) -> FilterHeadersStatus:
        t = _clock()
        setup = self.factory.hook_setup(self.callbacks.route, self.dispatcher)
        assert setup is not None, "the bench's Lua route runs a script"
        vm, per_route = setup
        lua_id = next(_ids)
        from ..filters.lua.filter import _adopt_unborn

        UNBORN[lua_id] = (_adopt_unborn, self, decoder, per_route, vm, headers, end_stream)
        try:
            r = vm.run(RUN_REQUEST_UNTRACED if decoder else RUN_RESPONSE_UNTRACED, lua_id)
        finally:
            UNBORN.pop(lua_id)
        _took("the 2 hook runs (state lookup, coroutine run)", t)
        t = _clock()
        if r.__class__ is tuple:
            for i in range(2, len(r), 2):
                headers.add_lowered(r[i].decode("latin-1").lower(), r[i + 1].decode("latin-1"))
        _took("the header adds the hooks wrote down", t)
        return _CONTINUE

    decode_data = StreamFilter.decode_data
    encode_data = StreamFilter.encode_data
    log = StreamFilter.log
    on_destroy = StreamFilter.on_destroy


_SKELETONS: dict[str, Callable[[Any, Any], StreamFilter]] = {
    "noop": lambda factory, dispatcher: NoopSkeleton(),
    "wasm": lambda factory, dispatcher: WasmSkeleton(factory, dispatcher),
    "lua": lambda factory, dispatcher: LuaSkeleton(factory, dispatcher),
}


@dataclass
class InContext:
    kind: str
    target_us: float
    direct_us: float
    real_added: list[float]
    skeleton_added: list[float]
    steps_us: dict[str, float] = field(default_factory=dict)  # step -> µs per request, in context
    copies: int = 1  # filters of the kind in the chain; every figure is per filter

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
            " process CPU per request" + (f", per filter of {self.copies} in the chain" if self.copies > 1 else ""),
            f"  {'this filter':<74} {real:>7.2f} us  ± {real_s:.2f}",
            f"  {'a skeleton doing only the unavoidable work (bench/skeleton.py)':<74} {skel:>7.2f} us  ± {skel_s:.2f}",
            "# the skeleton's steps, each timed where it runs (the timer's own cost taken off):",
        ]
        out += [f"  {step:<74} {us:>7.2f} us" for step, us in self.steps_us.items()]
        out.append(f"  {'(not timed: the chain places and the walk; the cost around the filter)':<74}")
        if skel > self.target_us:
            verdict = (
                f"even the skeleton adds {skel:.2f} us > the target {self.target_us:g} us: out of reach in this"
                f" design; of this filter's {real:.2f} us, {max(0.0, real - skel):.2f} us is glue a cut could reach"
            )
        else:
            verdict = (
                f"the skeleton adds {skel:.2f} us <= the target {self.target_us:g} us: the"
                f" {max(0.0, real - skel):.2f} us above it is glue that could still be cut"
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


#: filters in the measured chains: the no-op's few µs are lost in the noise of one request's ~35,
#: so its chains hold 8 and every figure is divided by 8 (the added cost of one filter, as a slope)
COPIES = {"noop": 8}
#: how many times each step is timed per request
_READINGS: dict[str, dict[str, int]] = {
    "noop": {},
    "wasm": {"the 2 header guest calls, with their host calls": 2, "a stream context (made, registered)": 1},
    "lua": {"the 2 hook runs (state lookup, coroutine run)": 2, "the header adds the hooks wrote down": 2},
}


def _with_skeletons(proxy: Any, kind: str) -> None:
    """Make ``proxy``'s filters of ``kind`` skeletons (its factories only, not the class's)."""
    skeleton = _SKELETONS[kind]

    def make(factory: Any, dispatcher: Any) -> StreamFilter:
        t = _clock()
        f = skeleton(factory, dispatcher)
        _took(MAKE_FILTER, t)
        return f

    for hcm in proxy._server.hcms.values():
        for fc in hcm.config.http_filters:
            if "router" not in fc.name:
                fc.factory.create_filter = types.MethodType(make, fc.factory)


def _cpu_us(proxy: Any, n: int) -> float:
    c0 = time.process_time()
    rps_many(proxy, n)
    return (time.process_time() - c0) / n * 1e6


def _timer_cost_ns() -> float:
    k = 100_000
    t = _clock()
    for _ in range(k):
        _took("x", _clock())
    return (_clock() - t) / k


def measure(kind: str, n: int = 2000, rounds: int = 12) -> InContext | None:
    """The skeleton of ``kind`` (``noop``, ``wasm``, ``lua``; None for any other) side by side
    with the real filter and the filterless request, and its steps timed in context."""
    global _timing
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
        # the timed run: each step's clock readings, less the timer's own cost per reading
        cost = _timer_cost_ns()
        _timing = defaultdict(float)
        try:
            rps_many(skeleton, n)
            timed = dict(_timing)
        finally:
            _timing = None
    readings = {MAKE_FILTER: copies, **_READINGS[kind]}  # per request
    steps = {step: max(0.0, ns - readings.get(step, 1) * n * cost) / n / 1000 / copies for step, ns in timed.items()}
    return InContext(
        kind,
        TARGETS_US[kind],
        statistics.median(cpu["direct"]),
        [(a - b) / copies for a, b in zip(cpu["real"], cpu["direct"], strict=True)],
        [(a - b) / copies for a, b in zip(cpu["skeleton"], cpu["direct"], strict=True)],
        steps,
        copies,
    )
