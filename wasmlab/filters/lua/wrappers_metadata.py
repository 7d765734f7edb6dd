"""Metadata as a script sees it: the route's filter metadata (Envoy ``MetadataMapWrapper``,
``RouteWrapper``, ``VirtualHostWrapper``), the stream's dynamic metadata and filter state
(``DynamicMetadataMapWrapper``, ``FilterStateWrapper``), and the protobuf ``Struct`` <-> Lua value
conversions they share."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .luaobject import (
    COMMON_LUA,
    NOTHING,
    BaseLuaObject,
    LuaApiError,
    PairsIterator,
    check_string,
    child_getter,
    export,
    lua_type,
    opt_string,
    text,
    wire,
)

if TYPE_CHECKING:
    from .handle_driver import HandleDriver


def to_lua_value(value: Any) -> Any:
    """A protobuf Struct value (from YAML or dynamic metadata) as lupa can turn into Lua: strings
    as bytes, numbers as doubles, lists and dicts recursively (Envoy ``MetadataMapHelper::setValue``)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes):
        return value
    if isinstance(value, dict):
        return {to_lua_value(str(k)): to_lua_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_lua_value(v) for v in value]
    return str(value).encode()


def lua_value(h: HandleDriver, value: Any) -> Any:
    """A Python Struct value as a Lua value (tables built in the handle's VM)."""
    v = to_lua_value(value)
    if isinstance(v, dict | list):
        return h.vm.table(v)
    return v


def from_lua_value(value: Any) -> Any:
    """A Lua value as a protobuf Struct value (Envoy ``MetadataMapHelper::loadValue``)."""
    t = lua_type(value)
    if t == "nil":
        return None
    if t == "number":
        return float(value)
    if t == "boolean":
        return bool(value)
    if t == "string":
        return value.decode("utf-8", "surrogateescape")
    if t == "table":
        items = list(value.items())
        length = _list_length(items)
        if length > 0:
            by_index = {int(k): v for k, v in items}
            return [from_lua_value(by_index.get(i)) for i in range(1, length + 1)]
        out: dict[str, Any] = {}
        for k, v in items:
            kt = lua_type(k)
            if kt != "string":
                raise LuaApiError(f"unexpected type {kt} in table key (only string keys are supported)")
            out[k.decode("utf-8", "surrogateescape")] = from_lua_value(v)
        return out
    raise LuaApiError(f"unexpected type '{t}' in dynamicMetadata")


def _list_length(items: list[tuple[Any, Any]]) -> int:
    """The list length if every key is a whole number >= 1 (the largest), else -1."""
    top = 0.0
    for k, _ in items:
        if lua_type(k) != "number":
            return -1
        f = float(k)
        if not (math.floor(f) == f and f >= 1):
            return -1
        top = max(top, f)
    return int(top)


class MetadataMapWrapper(BaseLuaObject):
    """Read-only metadata: route ``filter_metadata``, ``filterContext()`` (Envoy
    ``MetadataMapWrapper``)."""

    lua_class = "MetadataMapWrapper"
    cpp_namespace = COMMON_LUA
    trace_name = "metadata"
    __slots__ = ("fields", "iterator")
    dies_with = ("iterator",)

    fields: dict[str, Any]
    iterator: PairsIterator | None

    @export("get")
    def get(self, *args: Any) -> Any:
        """@param 1 (string): key. @return the value converted to Lua, or nothing."""
        key = text(check_string(args, 1, "get"))
        if key not in self.fields:
            return NOTHING
        return lua_value(self.h, self.fields[key])

    @export("__pairs", "iter")
    def pairs(self, *args: Any) -> PairsIterator:
        h = self.h
        return PairsIterator.start(self, ((wire(k), lua_value(h, v)) for k, v in list(self.fields.items())))


class RouteWrapper(BaseLuaObject):
    """``route()`` / ``virtualHost()``: an object with ``metadata()`` (the filter's own
    ``filter_metadata`` entry, no fallback)."""

    lua_class = "RouteWrapper"
    trace_name = "route"
    __slots__ = ("fields", "child")
    dies_with = ("child",)

    fields: dict[str, Any]
    child: MetadataMapWrapper | None

    metadata = child_getter("metadata", "child", lambda w: MetadataMapWrapper(w.h, w.fields))


class VirtualHostWrapper(RouteWrapper):
    lua_class = "VirtualHostWrapper"
    trace_name = "virtualHost"
    __slots__ = ()


# ---- stream info -----------------------------------------------------------------------------------
class DynamicMetadataMapWrapper(BaseLuaObject):
    """``streamInfo():dynamicMetadata()``: namespaces of the stream's dynamic metadata."""

    lua_class = "DynamicMetadataMapWrapper"
    trace_name = "dynamicMetadata"
    __slots__ = ("metadata", "iterator")
    dies_with = ("iterator",)

    metadata: dict[str, Any]
    iterator: PairsIterator | None

    @export("get")
    def get(self, *args: Any) -> Any:
        """@param 1 (string): namespace (filter name). @return a copy as a table, or nothing."""
        name = check_string(args, 1, "get").decode("utf-8", "surrogateescape")
        if name not in self.metadata:
            return NOTHING
        return lua_value(self.h, self.metadata[name])

    @export("set", 0)
    def set(self, *args: Any) -> None:
        """Merge one key into a namespace. @param 1 (string): namespace. @param 2 (string): key.
        @param 3 (any): nil, boolean, number, string or table."""
        if self.iterator is not None:
            raise LuaApiError("dynamic metadata map cannot be modified while iterating")
        name = check_string(args, 1, "set").decode("utf-8", "surrogateescape")
        key = check_string(args, 2, "set").decode("utf-8", "surrogateescape")
        value = from_lua_value(args[2] if len(args) > 2 else None)
        self.metadata.setdefault(name, {})[key] = value

    @export("__pairs", "iter")
    def pairs(self, *args: Any) -> PairsIterator:
        h = self.h
        items = [(k.encode("utf-8", "surrogateescape"), v) for k, v in list(self.metadata.items())]
        return PairsIterator.start(self, ((k, lua_value(h, v)) for k, v in items))


class ConnectionDynamicMetadataMapWrapper(DynamicMetadataMapWrapper):
    """Connection-level dynamic metadata: read-only (``get``, ``__pairs``)."""

    lua_class = "ConnectionDynamicMetadataMapWrapper"
    trace_name = "connectionDynamicMetadata"
    __slots__ = ()

    set = None  # type: ignore[assignment]


class FilterStateWrapper(BaseLuaObject):
    """``streamInfo():filterState()``: ``get(name[, field])`` and ``set(key, factory, value)``."""

    lua_class = "FilterStateWrapper"
    trace_name = "filterState"
    __slots__ = ("state",)

    state: dict[str, Any]

    @export("get")
    def get(self, *args: Any) -> Any:
        """@param 1 (string): object name. @param 2 (string, optional): field. @return its string
        form, or nothing."""
        name = text(check_string(args, 1, "get"))
        field = opt_string(args, 2, "get")
        if name not in self.state:
            return NOTHING
        value = self.state[name]
        if field is not None:
            if isinstance(value, dict) and text(field) in value:
                return lua_value(self.h, value[text(field)])
            return NOTHING
        if isinstance(value, bytes):
            return value
        return wire(str(value))

    @export("set", 0)
    def set(self, *args: Any) -> None:
        """@param 1 (string): key. @param 2 (string): object factory (e.g. ``envoy.string``).
        @param 3 (string): serialized value."""
        key = text(check_string(args, 1, "set"))
        check_string(args, 2, "set")
        value = check_string(args, 3, "set")
        self.state[key] = text(value)
