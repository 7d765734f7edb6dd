"""Stats as a script sees them (Envoy 1.38+ ``handle:stats()``: ``StatsScopeWrapper``,
``CounterWrapper``, ``GaugeWrapper``, ``HistogramWrapper``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .luaobject import BaseLuaObject, check_integer, check_number, check_string, export, getter, opt_string, utf8_text

if TYPE_CHECKING:
    pass


class StatsScopeWrapper(BaseLuaObject):
    """``stats()``: counters, gauges and histograms under ``<hcm prefix>lua.[<stat_prefix>.]``."""

    lua_class = "StatsScopeWrapper"
    trace_name = "stats"
    __slots__ = ("prefix",)

    prefix: str

    @export("counter")
    def counter(self, *args: Any) -> CounterWrapper:
        return CounterWrapper(self.h, self.prefix + utf8_text(check_string(args, 1, "counter")))

    @export("gauge")
    def gauge(self, *args: Any) -> GaugeWrapper:
        return GaugeWrapper(self.h, self.prefix + utf8_text(check_string(args, 1, "gauge")))

    @export("histogram")
    def histogram(self, *args: Any) -> HistogramWrapper:
        name = self.prefix + utf8_text(check_string(args, 1, "histogram"))
        unit = opt_string(args, 2, "histogram")
        return HistogramWrapper(self.h, name, utf8_text(unit) if unit is not None else "unspecified")


def _stat_update(lua_name: str, update: Callable[[Any, str, int], Any], argument: bool = True) -> Callable[..., Any]:
    """A counter/gauge method that changes the stat: ``update(stat store, name, n)``, with ``n`` the
    method's integer argument (or 1 when it takes none)."""

    @export(lua_name, 0)
    def method(self: CounterWrapper, *args: Any) -> None:
        update(self.h.stats, self.name, check_integer(args, 1, lua_name) if argument else 1)

    method.__name__ = lua_name
    return method


class CounterWrapper(BaseLuaObject):
    lua_class = "CounterWrapper"
    trace_name = "counter"
    __slots__ = ("name",)

    name: str

    inc = _stat_update("inc", lambda stats, name, n: stats.inc(name), argument=False)
    add = _stat_update("add", lambda stats, name, n: stats.inc(name, n))
    value = getter("value", lambda w: w.h.stats.counter(w.name))


class GaugeWrapper(CounterWrapper):
    lua_class = "GaugeWrapper"
    trace_name = "gauge"
    __slots__ = ()

    inc = _stat_update("inc", lambda stats, name, n: stats.gauge_add(name, 1), argument=False)
    dec = _stat_update("dec", lambda stats, name, n: stats.gauge_add(name, -1), argument=False)
    add = _stat_update("add", lambda stats, name, n: stats.gauge_add(name, n))
    sub = _stat_update("sub", lambda stats, name, n: stats.gauge_add(name, -n))
    set = _stat_update("set", lambda stats, name, n: stats.gauge_set(name, n))
    value = getter("value", lambda w: w.h.stats.gauge(w.name))


class HistogramWrapper(BaseLuaObject):
    """``recordValue(v)``: recorded in the trace (wasmlab's stats keep no histograms)."""

    lua_class = "HistogramWrapper"
    trace_name = "histogram"
    __slots__ = ("name", "unit")

    name: str
    unit: str

    @export("recordValue", 0)
    def record_value(self, *args: Any) -> None:
        check_number(args, 1, "recordValue")
