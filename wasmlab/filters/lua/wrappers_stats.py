"""Stats as a script sees them (Envoy 1.38+ ``handle:stats()``: ``StatsScopeWrapper``,
``CounterWrapper``, ``GaugeWrapper``, ``HistogramWrapper``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .luaobject import BaseLuaObject, LuaApiError, check_number, check_string, export, getter, opt_string, utf8_text

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
        unit_name = utf8_text(unit) if unit is not None else "unspecified"
        if unit_name not in _HISTOGRAM_UNITS:
            raise LuaApiError(
                f"invalid histogram unit '{unit_name}', expected 'ms', 'milliseconds', 'microseconds', "
                "'nanoseconds', 'bytes', or 'unspecified'"
            )
        return HistogramWrapper(self.h, name, unit_name)


_HISTOGRAM_UNITS = ("ms", "milliseconds", "microseconds", "nanoseconds", "bytes", "unspecified")
_U64 = 1 << 64


def _amount(args: tuple[Any, ...], lua_name: str, what: str) -> int:
    """The method's number argument as Envoy takes it: a negative one (or NaN) is an error
    (``counter add amount must be non-negative``), a fraction is truncated."""
    n = check_number(args, 1, lua_name)
    if not n >= 0:
        raise LuaApiError(f"{what} must be non-negative")
    return int(n) if n < _U64 else _U64 - 1


def _gauge_add(stats: Any, name: str, delta: int) -> None:
    """Envoy's gauges are uint64: going below 0 (``dec()`` at 0) wraps to 2^64 - 1."""
    v = stats.gauge_add(name, delta)
    if not 0 <= v < _U64:
        stats.gauge_add(name, _U64 if v < 0 else -_U64)


def _stat_update(lua_name: str, update: Callable[[Any, str, int], Any], what: str | None = None) -> Callable[..., Any]:
    """A counter/gauge method that changes the stat: ``update(stat store, name, n)``, with ``n`` the
    method's argument (``what`` names it in the error for a negative one), or 1 when it takes none."""

    @export(lua_name, 0)
    def method(self: CounterWrapper, *args: Any) -> None:
        update(self.h.stats, self.name, _amount(args, lua_name, what) if what else 1)

    method.__name__ = lua_name
    return method


class CounterWrapper(BaseLuaObject):
    lua_class = "CounterWrapper"
    trace_name = "counter"
    __slots__ = ("name",)

    name: str

    inc = _stat_update("inc", lambda stats, name, n: stats.inc(name))
    add = _stat_update("add", lambda stats, name, n: stats.inc(name, n), "counter add amount")
    value = getter("value", lambda w: float(w.h.stats.counter(w.name)))  # (a uint64 as a Lua number)


class GaugeWrapper(CounterWrapper):
    lua_class = "GaugeWrapper"
    trace_name = "gauge"
    __slots__ = ()

    inc = _stat_update("inc", lambda stats, name, n: _gauge_add(stats, name, 1))
    dec = _stat_update("dec", lambda stats, name, n: _gauge_add(stats, name, -1))
    add = _stat_update("add", lambda stats, name, n: _gauge_add(stats, name, n), "gauge add amount")
    sub = _stat_update("sub", lambda stats, name, n: _gauge_add(stats, name, -n), "gauge sub amount")
    set = _stat_update("set", lambda stats, name, n: stats.gauge_set(name, n), "gauge set value")
    value = getter("value", lambda w: float(w.h.stats.gauge(w.name)))


class HistogramWrapper(BaseLuaObject):
    """``recordValue(v)``: recorded in the trace (wasmlab's stats keep no histograms)."""

    lua_class = "HistogramWrapper"
    trace_name = "histogram"
    __slots__ = ("name", "unit")

    name: str
    unit: str

    @export("recordValue", 0)
    def record_value(self, *args: Any) -> None:
        _amount(args, "recordValue", "histogram value")
