"""Metadata as a script sees it: the route's filter metadata (Envoy ``MetadataMapWrapper``,
``RouteWrapper``, ``VirtualHostWrapper``), the stream's dynamic metadata and filter state
(``DynamicMetadataMapWrapper``, ``FilterStateWrapper``), and the protobuf ``Struct`` <-> Lua value
conversions they share."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from ...http.stream_info import FilterStateObject
from .luaobject import (
    COMMON_LUA,
    NOTHING,
    BaseLuaObject,
    LuaApiError,
    LuaRawError,
    PairsIterator,
    c_string,
    check_string,
    child_getter,
    export,
    lua_type,
    opt_string,
    utf8_bytes,
    utf8_text,
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
        return utf8_bytes(value)
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
        if _has_null_item(v):
            return _table_with_holes(h, v)
        return h.vm.table(v)
    return v


def _has_null_item(v: Any) -> bool:
    """A list with a null somewhere inside ``v`` (Envoy's array then has a hole)."""
    if isinstance(v, list):
        return any(x is None or _has_null_item(x) for x in v)
    if isinstance(v, dict):
        return any(_has_null_item(x) for x in v.values())
    return False


def _table_with_holes(h: HandleDriver, v: Any) -> Any:
    """``lua_value`` for a value holding a list with nulls: lists made with all their slots."""
    if isinstance(v, list):
        return h.vm.list_table([_table_with_holes(h, x) for x in v])
    if isinstance(v, dict):
        t = h.vm.table({})
        for k, x in v.items():
            if x is not None:
                t[k] = _table_with_holes(h, x)
        return t
    return v


#: how deep ``from_lua_value`` follows tables: Envoy's conversion recurses on the Lua stack until
#: LuaJIT's "stack overflow" (a table that holds itself); wasmlab stops sooner, with the same error
MAX_TABLE_DEPTH = 200


def from_lua_value(value: Any, depth: int = 0) -> Any:
    """A Lua value as a protobuf Struct value (Envoy ``MetadataMapHelper::loadValue``)."""
    t = lua_type(value)
    if t == "nil":
        return None
    if t == "number":
        return float(value)
    if t == "boolean":
        return bool(value)
    if t == "string":
        return utf8_text(c_string(value))  # (lua_tostring: up to a NUL)
    if t == "table":
        if depth >= MAX_TABLE_DEPTH:
            raise LuaRawError("stack overflow")
        items = list(value.items())
        length = _list_length(items)
        if length > 0:
            by_index = {int(k): v for k, v in items}
            return [from_lua_value(by_index.get(i), depth + 1) for i in range(1, length + 1)]
        out: dict[str, Any] = {}
        for k, v in items:
            kt = lua_type(k)
            if kt != "string":
                raise LuaApiError(f"unexpected type {kt} in table key (only string keys are supported)")
            out[utf8_text(c_string(k))] = from_lua_value(v, depth + 1)
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


class _StructMapWrapper(BaseLuaObject):
    """Named ``Struct`` values a script reads: ``get(name)`` and ``__pairs``, each value a copy
    converted to Lua. Names cross as UTF-8 (Envoy's keys are the protobuf's UTF-8 strings)."""

    __slots__ = ("fields", "iterator")
    dies_with = ("iterator",)

    fields: dict[str, Any]
    iterator: PairsIterator | None

    @export("get")
    def get(self, *args: Any) -> Any:
        """@param 1 (string): the name. @return its value converted to Lua, or nothing."""
        name = utf8_text(check_string(args, 1, "get"))
        if name not in self.fields:
            return NOTHING
        return lua_value(self.h, self.fields[name])

    @export("__pairs", "iter")
    def pairs(self, *args: Any) -> PairsIterator:
        h = self.h
        items = [(utf8_bytes(k), v) for k, v in list(self.fields.items())]
        return PairsIterator.start(self, ((k, lua_value(h, v)) for k, v in items))


class MetadataMapWrapper(_StructMapWrapper):
    """Read-only metadata: route ``filter_metadata``, ``filterContext()`` (Envoy
    ``MetadataMapWrapper``). Its names are the YAML's UTF-8 text, as the dynamic metadata's are."""

    lua_class = "MetadataMapWrapper"
    cpp_namespace = COMMON_LUA
    trace_name = "metadata"
    __slots__ = ()


class MetadataHolder(BaseLuaObject):
    """An object that hands out one metadata map over its ``fields``: made on first use, in
    ``child``, and dying with its holder."""

    __slots__ = ("fields", "child")
    dies_with = ("child",)

    fields: dict[str, Any]
    child: _StructMapWrapper | None


class RouteWrapper(MetadataHolder):
    """``route()`` / ``virtualHost()``: an object with ``metadata()`` (the filter's own
    ``filter_metadata`` entry, no fallback)."""

    lua_class = "RouteWrapper"
    trace_name = "route"
    __slots__ = ()

    metadata = child_getter("metadata", "child", lambda w: MetadataMapWrapper(w.h, w.fields))


class VirtualHostWrapper(RouteWrapper):
    lua_class = "VirtualHostWrapper"
    trace_name = "virtualHost"
    __slots__ = ()


# ---- stream info -----------------------------------------------------------------------------------
class DynamicMetadataMapWrapper(_StructMapWrapper):
    """``streamInfo():dynamicMetadata()``: namespaces (filter names) of the stream's dynamic
    metadata; ``get`` answers a copy of one namespace as a table."""

    lua_class = "DynamicMetadataMapWrapper"
    trace_name = "dynamicMetadata"
    __slots__ = ()

    @export("set", 0)
    def set(self, *args: Any) -> None:
        """Merge one key into a namespace. @param 1 (string): namespace. @param 2 (string): key.
        @param 3 (any): nil, boolean, number, string or table."""
        if self.iterator is not None:
            raise LuaApiError("dynamic metadata map cannot be modified while iterating")
        name = utf8_text(c_string(check_string(args, 1, "set")))
        key = utf8_text(c_string(check_string(args, 2, "set")))
        value = from_lua_value(args[2] if len(args) > 2 else None)
        self.fields.setdefault(name, {})[key] = value


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
        name = utf8_text(check_string(args, 1, "get"))
        field = opt_string(args, 2, "get")
        if name not in self.state:
            return NOTHING
        value = self.state[name]
        if field is not None:
            if isinstance(value, dict) and utf8_text(field) in value:
                return lua_value(self.h, value[utf8_text(field)])
            return NOTHING
        if isinstance(value, bytes):
            return value
        if isinstance(value, FilterStateObject) and not value.plain:
            return NOTHING
        return utf8_bytes(str(value))

    @export("set", 0)
    def set(self, *args: Any) -> None:
        """@param 1 (string): key. @param 2 (string): object factory (e.g. ``envoy.string``).
        @param 3 (string): serialized value, read by the factory (see ``FILTER_STATE_FACTORIES``)."""
        key = utf8_text(check_string(args, 1, "set"))
        factory = utf8_text(check_string(args, 2, "set"))
        value = utf8_text(check_string(args, 3, "set"))
        read = FILTER_STATE_FACTORIES.get(factory)
        if read is None:
            raise LuaApiError(f"'{factory}' does not have an object factory")
        obj = read(value)
        if obj is None:
            raise LuaApiError(f"failed to create an object '{key}' from value '{value}'")
        form = _PROTO_FORM.get(factory)
        proto = None if form is None else json.dumps(obj, ensure_ascii=False) if form == "string" else obj
        self.state[key] = FilterStateObject.made(obj, proto, not isinstance(obj, _Unserializable))


class _Unserializable(str):
    """A filter-state object without a string form (``get`` answers nothing)."""


def _uint32(v: str) -> str | None:
    """``absl::SimpleAtoi`` into a uint32 (spaces around allowed): the number's text."""
    t = v.strip(" \t\n\v\f\r").removeprefix("+")
    return str(int(t)) if t.isascii() and t.isdecimal() and int(t) < 1 << 32 else None


def _ip(v: str) -> str | None:
    """An IP address without a port, serialized as an address with port 0."""
    import ipaddress

    try:
        a = ipaddress.ip_address(v)
    except ValueError:
        return None
    return f"[{a}]:0" if a.version == 6 else f"{a}:0"


def _ip_port(v: str) -> str | None:
    """``ip:port`` (``[v6]:port``)."""
    import ipaddress

    host, sep, port = v.rpartition(":")
    if not sep or not port.isdecimal() or int(port) > 65535:
        return None
    bracketed = host.startswith("[") and host.endswith("]")
    try:
        a = ipaddress.ip_address(host[1:-1] if bracketed else host)
    except ValueError:
        return None
    if (a.version == 6) != bracketed:
        return None
    return f"[{a}]:{int(port)}" if a.version == 6 else f"{a}:{int(port)}"


#: the filter-state object factories of Envoy 1.40 a script can name in ``filterState():set``,
#: as measured from Lua (name -> reads the value: its string form, or None when Envoy fails to
#: create the object). Another name is refused as Envoy refuses a name with no factory; a
#: factory missing here that Envoy has would be refused too (wasmlab does not know its objects).
FILTER_STATE_FACTORIES: dict[str, Any] = {
    "envoy.string": str,
    "envoy.hashable_string": str,
    "envoy.network.upstream_server_name": str,
    "envoy.network.upstream_subject_alt_names": str,
    "envoy.network.network_namespace": str,
    "envoy.tcp_proxy.cluster": str,
    "envoy.upstream.dynamic_host": str,
    "envoy.network.application_protocols": _Unserializable,
    "envoy.tcp_proxy.disable_tunneling": lambda v: "true" if v == "true" else "false",
    "envoy.upstream.dynamic_port": _uint32,
    "envoy.tcp_proxy.per_connection_idle_timeout_ms": _uint32,
    "envoy.ratelimit.hits_addend": _uint32,
    "envoy.network.ip": _ip,
    "envoy.network.transport_socket.original_dst_address": _ip_port,
    "envoy.filters.listener.original_dst.local_ip": _ip_port,
    "envoy.filters.listener.original_dst.remote_ip": _ip_port,
}

#: what ``%FILTER_STATE(key)%`` and ``:TYPED`` write of a factory's object, the JSON of its proto
#: form (measured): "string" a JSON string, "raw" its text (a number, a bool); a factory not
#: here makes objects without one (logged ``-``, JSON ``null``)
_PROTO_FORM = {
    "envoy.string": "string",
    "envoy.hashable_string": "string",
    "envoy.upstream.dynamic_host": "string",
    "envoy.tcp_proxy.per_connection_idle_timeout_ms": "string",
    "envoy.upstream.dynamic_port": "raw",
    "envoy.ratelimit.hits_addend": "raw",
    "envoy.tcp_proxy.disable_tunneling": "raw",
}
