"""The objects a script reaches through the handle: one class per Envoy wrapper, and the registry
that numbers them for every Lua state.

Same names and methods as Envoy 1.40 (``filters/http/lua/wrappers.h`` and
``filters/common/lua/wrappers.h``), checked against the real binary: every class below lists its
exported methods with :func:`export`; the ``log*`` six come from the base class. Doc comments use
Envoy's shape: ``@param N (type)`` for Lua arguments (``self`` not counted).

=============================  ==========================================================
module                         wrappers
=============================  ==========================================================
:mod:`.wrappers_headers`       ``HeaderMapWrapper``, ``HeaderMapIterator``, ``BufferWrapper``
:mod:`.wrappers_metadata`      ``MetadataMapWrapper``, ``RouteWrapper``, ``VirtualHostWrapper``,
                               ``DynamicMetadataMapWrapper``, ``FilterStateWrapper``
:mod:`.wrappers_stream_info`   ``StreamInfoWrapper``, ``ConnectionStreamInfoWrapper``,
                               ``ConnectionWrapper``
:mod:`.wrappers_stats`         ``StatsScopeWrapper``, ``CounterWrapper``, ``GaugeWrapper``,
                               ``HistogramWrapper``
here                           ``PublicKeyWrapper`` (``importPublicKey()``'s result)
=============================  ==========================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .luaobject import BaseLuaObject, PairsIterator, getter
from .wrappers_headers import BufferWrapper, HeaderMapIterator, HeaderMapWrapper
from .wrappers_metadata import (
    ConnectionDynamicMetadataMapWrapper,
    DynamicMetadataMapWrapper,
    FilterStateWrapper,
    MetadataMapWrapper,
    RouteWrapper,
    VirtualHostWrapper,
    from_lua_value,
    to_lua_value,
)
from .wrappers_stats import CounterWrapper, GaugeWrapper, HistogramWrapper, StatsScopeWrapper
from .wrappers_stream_info import ConnectionStreamInfoWrapper, ConnectionWrapper, StreamInfoWrapper

if TYPE_CHECKING:
    pass

__all__ = [
    "BufferWrapper",
    "ConnectionDynamicMetadataMapWrapper",
    "ConnectionStreamInfoWrapper",
    "ConnectionWrapper",
    "CounterWrapper",
    "DynamicMetadataMapWrapper",
    "FilterStateWrapper",
    "GaugeWrapper",
    "HeaderMapIterator",
    "HeaderMapWrapper",
    "HistogramWrapper",
    "MetadataMapWrapper",
    "PublicKeyWrapper",
    "RouteWrapper",
    "StatsScopeWrapper",
    "StreamInfoWrapper",
    "VirtualHostWrapper",
    "all_classes",
    "from_lua_value",
    "to_lua_value",
]


# ---- crypto ------------------------------------------------------------------------------------------
class PublicKeyWrapper(BaseLuaObject):
    """``importPublicKey()``'s result: ``get()`` gives the key handle string, or nil."""

    lua_class = "PublicKeyWrapper"
    trace_name = "publicKey"
    __slots__ = ("key",)

    key: bytes

    get = getter("get", lambda w: w.key or None)


def all_classes() -> list[type[BaseLuaObject]]:
    """Every class a Lua state must know (Envoy ``registerType<...>()`` in ``PerLuaCodeSetup``),
    in the order that numbers them in Lua (``lua_number``; the handle is number 1)."""
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _all_classes()
        for number, cls in enumerate(_CLASSES, 1):
            cls.lua_number = number
    return _CLASSES


_CLASSES: list[type[BaseLuaObject]] | None = None


def _all_classes() -> list[type[BaseLuaObject]]:
    from .handle import StreamHandleWrapper

    return [
        StreamHandleWrapper,
        HeaderMapWrapper,
        HeaderMapIterator,
        PairsIterator,
        BufferWrapper,
        MetadataMapWrapper,
        RouteWrapper,
        VirtualHostWrapper,
        StreamInfoWrapper,
        DynamicMetadataMapWrapper,
        ConnectionDynamicMetadataMapWrapper,
        FilterStateWrapper,
        ConnectionWrapper,
        ConnectionStreamInfoWrapper,
        StatsScopeWrapper,
        CounterWrapper,
        GaugeWrapper,
        HistogramWrapper,
        PublicKeyWrapper,
    ]
