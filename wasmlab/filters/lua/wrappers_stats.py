"""Stats as a script sees them (Envoy 1.38+ ``handle:stats()``: ``StatsScopeWrapper``,
``CounterWrapper``, ``GaugeWrapper``, ``HistogramWrapper``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .luaobject import BaseLuaObject, check_integer, check_number, check_string, export, opt_string, text

if TYPE_CHECKING:
    from .handle_driver import HandleDriver


class StatsScopeWrapper(BaseLuaObject):
    """``stats()``: counters, gauges and histograms under ``<hcm prefix>lua.[<stat_prefix>.]``."""

    lua_class = "StatsScopeWrapper"
    trace_name = "stats"
    __slots__ = ("prefix",)

    def __init__(self, h: HandleDriver, prefix: str) -> None:
        super().__init__(h)
        self.prefix = prefix

    @export("counter")
    def counter(self, *args: Any) -> CounterWrapper:
        return CounterWrapper(self.h, self.prefix + text(check_string(args, 1, "counter")))

    @export("gauge")
    def gauge(self, *args: Any) -> GaugeWrapper:
        return GaugeWrapper(self.h, self.prefix + text(check_string(args, 1, "gauge")))

    @export("histogram")
    def histogram(self, *args: Any) -> HistogramWrapper:
        name = self.prefix + text(check_string(args, 1, "histogram"))
        unit = opt_string(args, 2, "histogram")
        return HistogramWrapper(self.h, name, text(unit) if unit is not None else "unspecified")


class CounterWrapper(BaseLuaObject):
    lua_class = "CounterWrapper"
    trace_name = "counter"
    __slots__ = ("name",)

    def __init__(self, h: HandleDriver, name: str) -> None:
        super().__init__(h)
        self.name = name

    @export("inc", 0)
    def inc(self, *args: Any) -> None:
        self.h.stats.inc(self.name)

    @export("add", 0)
    def add(self, *args: Any) -> None:
        self.h.stats.inc(self.name, check_integer(args, 1, "add"))

    @export("value")
    def value(self, *args: Any) -> int:
        return self.h.stats.counter(self.name)


class GaugeWrapper(CounterWrapper):
    lua_class = "GaugeWrapper"
    trace_name = "gauge"
    __slots__ = ()

    @export("inc", 0)
    def inc(self, *args: Any) -> None:
        self.h.stats.gauge_add(self.name, 1)

    @export("dec", 0)
    def dec(self, *args: Any) -> None:
        self.h.stats.gauge_add(self.name, -1)

    @export("add", 0)
    def add(self, *args: Any) -> None:
        self.h.stats.gauge_add(self.name, check_integer(args, 1, "add"))

    @export("sub", 0)
    def sub(self, *args: Any) -> None:
        self.h.stats.gauge_add(self.name, -check_integer(args, 1, "sub"))

    @export("set", 0)
    def set(self, *args: Any) -> None:
        self.h.stats.gauge_set(self.name, check_integer(args, 1, "set"))

    @export("value")
    def value(self, *args: Any) -> int:
        return self.h.stats.gauge(self.name)


class HistogramWrapper(BaseLuaObject):
    """``recordValue(v)``: recorded in the trace (wasmlab's stats keep no histograms)."""

    lua_class = "HistogramWrapper"
    trace_name = "histogram"
    __slots__ = ("name", "unit")

    def __init__(self, h: HandleDriver, name: str, unit: str) -> None:
        super().__init__(h)
        self.name = name
        self.unit = unit

    @export("recordValue", 0)
    def record_value(self, *args: Any) -> None:
        check_number(args, 1, "recordValue")
