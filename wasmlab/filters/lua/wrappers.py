"""The objects a script reaches through the handle: one class per Envoy wrapper.

Same names and methods as Envoy 1.40 (``filters/http/lua/wrappers.h`` and
``filters/common/lua/wrappers.h``), checked against the real binary: every class below lists its
exported methods with :func:`export`; the ``log*`` six come from the base class. Doc comments use
Envoy's shape: ``@param N (type)`` for Lua arguments (``self`` not counted).

Simplification: no TLS, so ``ssl()`` / ``downstreamSslConnection()`` are always nil and the SSL
wrapper is not needed; connection-level dynamic metadata is always empty.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ...http import Buffer, HeaderMap
from .luaobject import (
    COMMON_LUA,
    NOTHING,
    OBJECTS,
    BaseLuaObject,
    LuaApiError,
    check_integer,
    check_number,
    check_string,
    export,
    lua_type,
    opt_string,
    text,
    wire,
)

if TYPE_CHECKING:
    from .handle import StreamHandleWrapper


def set_in_place(headers: HeaderMap, name: str, value: str) -> None:
    """Envoy's inline-header setters (``setContentLength``): the first entry keeps its place and
    takes the value, later ones go; absent, it is added."""
    entries = headers._entries
    for i, (k, _) in enumerate(entries):
        if k == name:
            entries[i] = (name, value)
            for j in range(len(entries) - 1, i, -1):
                if entries[j][0] == name:
                    del entries[j]
            return
    headers.add(name, value)


# ---- headers -------------------------------------------------------------------------------------
class HeaderMapWrapper(BaseLuaObject):
    """Request/response headers or trailers (Envoy ``HeaderMapWrapper``).

    ``owner`` is the handle whose own headers these are (Envoy's ``CheckModifiableCb``:
    ``owner.headers_modifiable()`` says whether the map may still change and, on the request
    path, clears the route cache), or None for a map that stays modifiable.
    """

    lua_class = "HeaderMapWrapper"
    trace_name = "headers"
    __slots__ = ("headers", "owner", "iterator")
    dies_with = ("iterator",)

    def __init__(self, h: StreamHandleWrapper, headers: HeaderMap, owner: StreamHandleWrapper | None) -> None:
        self.dead = False
        self._ud = None
        self.lua_id = 0
        self.h = h
        self.headers = headers
        self.owner = owner
        self.iterator: HeaderMapIterator | None = None

    def check_modifiable(self) -> None:
        if self.iterator is not None:
            raise LuaApiError("header map cannot be modified while iterating")
        if self.owner is not None and not self.owner.headers_modifiable():
            raise LuaApiError("header map can no longer be modified")

    @export("add", 0, fast=lambda thunk: _fast_add(thunk))
    def add(self, *args: Any) -> None:
        """Add a header (another entry if the name exists).
        @param 1 (string): header name. @param 2 (string): value."""
        key = check_string(args, 1, "add")
        value = check_string(args, 2, "add")
        self.check_modifiable()
        self.headers.add(text(key).lower(), text(value))

    @export("get", fast=lambda thunk: _fast_get(thunk))
    def get(self, *args: Any) -> Any:
        """@param 1 (string): header name. @return all values joined with ',' or nothing."""
        key = text(check_string(args, 1, "get")).lower()
        values = self.headers.get_all(key)
        return wire(",".join(values)) if values else NOTHING

    @export("getAtIndex")
    def get_at_index(self, *args: Any) -> Any:
        """@param 1 (string): name. @param 2 (number): 0-based index. @return the value or nothing."""
        key = text(check_string(args, 1, "getAtIndex")).lower()
        index = check_integer(args, 2, "getAtIndex")
        values = self.headers.get_all(key)
        if 0 <= index < len(values):
            return wire(values[index])
        return NOTHING

    @export("getNumValues")
    def get_num_values(self, *args: Any) -> int:
        """@param 1 (string): name. @return how many entries have that name."""
        key = text(check_string(args, 1, "getNumValues")).lower()
        return len(self.headers.get_all(key))

    @export("replace", 0)
    def replace(self, *args: Any) -> None:
        """Remove every entry of the name and add one. @param 1 (string): name. @param 2 (string)."""
        key = check_string(args, 1, "replace")
        value = check_string(args, 2, "replace")
        self.check_modifiable()
        self.headers.set(text(key).lower(), text(value))

    @export("remove", 0)
    def remove(self, *args: Any) -> None:
        """Remove every entry of the name. @param 1 (string): name."""
        key = check_string(args, 1, "remove")
        self.check_modifiable()
        self.headers.remove(text(key).lower())

    @export("setHttp1ReasonPhrase", 0)
    def set_http1_reason_phrase(self, *args: Any) -> None:
        """Set the HTTP/1 status-line text. @param 1 (string): phrase.

        wasmlab models no status line, so this is recorded on the stream info only."""
        phrase = check_string(args, 1, "setHttp1ReasonPhrase")
        self.check_modifiable()
        self.h.filter.http1_reason_phrase = text(phrase)

    @export("__pairs", "iter")
    def pairs(self, *args: Any) -> HeaderMapIterator:
        """``for k, v in pairs(headers)``: one (name, value) per entry, in map order."""
        if self.iterator is not None:
            raise LuaApiError("cannot create a second iterator before completing the first")
        self.iterator = HeaderMapIterator(self.h, self, list(self.headers))
        return self.iterator


# The common calls on a header map in one step each (see ``export``): a live map, string
# arguments, no iteration in progress (recorded like the generic thunk records them); anything
# else goes to the generic thunk.
# A handle's own map that Lua handed out but the host has not made yet (number -handle, see
# ``materialize``) is used through its handle, without making it: it cannot be iterating yet.
def _map_of(obj_id: int) -> tuple[HeaderMap, StreamHandleWrapper | None, StreamHandleWrapper] | None:
    """``(headers, owner, handle)`` of a live, not iterating map numbered ``obj_id``, or None."""
    obj = OBJECTS.get(obj_id)
    if obj is None:
        if obj_id >= 0:
            return None
        h = OBJECTS.get(-obj_id)
        if h is None or h.own_headers_id != obj_id:  # type: ignore[attr-defined]
            return None
        return h.headers, h, h  # type: ignore[attr-defined, return-value]
    if obj.dead or obj.iterator is not None:  # type: ignore[attr-defined]
        return None
    return obj.headers, obj.owner, obj.h  # type: ignore[attr-defined]


def _fast_add(thunk: Callable[..., Any]) -> Callable[..., Any]:
    objects = OBJECTS

    def add(obj_id: int, *args: Any) -> Any:
        obj = objects.get(obj_id)
        if obj is not None and not obj.dead and obj.iterator is None:  # type: ignore[attr-defined]
            headers, owner, h = obj.headers, obj.owner, obj.h  # type: ignore[attr-defined]
        else:
            found = _map_of(obj_id)
            if found is None:
                return thunk(obj_id, *args)
            headers, owner, h = found
        if len(args) < 2 or args[0].__class__ is not bytes or args[1].__class__ is not bytes:
            return thunk(obj_id, *args)
        if owner is not None:
            # owner.headers_modifiable(), inlined
            if owner.headers_continued:
                return thunk(obj_id, *args)  # the generic thunk raises "can no longer be modified"
            if owner.decoder:
                filt = owner.filter
                if filt.factory.config.clear_route_cache:
                    filt.callbacks.clear_route_cache()
        headers.add(args[0].decode("latin-1"), args[1].decode("latin-1"))  # add() lower-cases
        if h.rec.enabled:
            h.trace_call("headers:add", args, None, None)
        return 0

    return add


def _fast_get(thunk: Callable[..., Any]) -> Callable[..., Any]:
    def get(obj_id: int, *args: Any) -> Any:
        found = _map_of(obj_id)
        if found is None or not args or args[0].__class__ is not bytes:
            return thunk(obj_id, *args)
        values = found[0].get_all(args[0].decode("latin-1"))  # get_all() lower-cases
        value = wire(",".join(values)) if values else None
        h = found[2]
        if h.rec.enabled:
            h.trace_call("headers:get", args, value, None)
        return 3 if value is None else (0, value)

    return get


class _Iterator(BaseLuaObject):
    """A pairs() iterator over a snapshot; it ends its parent's iteration when done."""

    lua_class = "Iterator"
    trace_name = "iterator"
    __slots__ = ("parent", "items")

    def __init__(self, h: StreamHandleWrapper, parent: Any, items: Iterator[tuple[Any, Any]]) -> None:
        super().__init__(h)
        self.parent = parent
        self.items = items

    def lua_next(self) -> tuple[Any, ...]:
        if self.dead:
            return 1, b"object used outside of proper scope"
        try:
            k, v = next(self.items)
        except StopIteration:
            self.parent.iterator = None
            return (3,)
        except LuaApiError as e:
            return 1, str(e).encode()
        return 0, k, v


class HeaderMapIterator(_Iterator):
    lua_class = "HeaderMapIterator"
    __slots__ = ()

    def __init__(self, h: StreamHandleWrapper, parent: HeaderMapWrapper, entries: list[tuple[str, str]]) -> None:
        super().__init__(h, parent, ((wire(k), wire(v)) for k, v in entries))


# ---- body ----------------------------------------------------------------------------------------
class BufferWrapper(BaseLuaObject):
    """A body buffer or one body chunk (Envoy ``BufferWrapper``)."""

    lua_class = "BufferWrapper"
    cpp_namespace = COMMON_LUA
    trace_name = "buffer"
    __slots__ = ("data", "headers")

    def __init__(self, h: StreamHandleWrapper, headers: HeaderMap, data: Buffer) -> None:
        super().__init__(h)
        self.data = data
        self.headers = headers

    @export("length")
    def length(self, *args: Any) -> int:
        """@return the size in bytes."""
        return len(self.data)

    @export("getBytes")
    def get_bytes(self, *args: Any) -> bytes:
        """@param 1 (number): 0-based index. @param 2 (number): length. @return the bytes."""
        index = check_integer(args, 1, "getBytes")
        length = check_integer(args, 2, "getBytes")
        if index < 0 or length < 0 or index + length > len(self.data):
            raise LuaApiError("index/length must be >= 0 and (index + length) must be <= buffer size")
        return self.data.slice(index, length)

    @export("setBytes")
    def set_bytes(self, *args: Any) -> int:
        """Replace the content and set the stream's content-length. @param 1 (string): new bytes.
        @return the new length."""
        value = check_string(args, 1, "setBytes")
        self.data.set(value)
        set_in_place(self.headers, "content-length", str(len(self.data)))
        return len(self.data)


# ---- metadata --------------------------------------------------------------------------------------
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


def lua_value(h: StreamHandleWrapper, value: Any) -> Any:
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

    def __init__(self, h: StreamHandleWrapper, fields: dict[str, Any]) -> None:
        super().__init__(h)
        self.fields = fields
        self.iterator: _Iterator | None = None

    @export("get")
    def get(self, *args: Any) -> Any:
        """@param 1 (string): key. @return the value converted to Lua, or nothing."""
        key = text(check_string(args, 1, "get"))
        if key not in self.fields:
            return NOTHING
        return lua_value(self.h, self.fields[key])

    @export("__pairs", "iter")
    def pairs(self, *args: Any) -> _Iterator:
        if self.iterator is not None:
            raise LuaApiError("cannot create a second iterator before completing the first")
        h = self.h
        self.iterator = _Iterator(h, self, ((wire(k), lua_value(h, v)) for k, v in list(self.fields.items())))
        return self.iterator


class RouteWrapper(BaseLuaObject):
    """``route()`` / ``virtualHost()``: an object with ``metadata()`` (the filter's own
    ``filter_metadata`` entry, no fallback)."""

    lua_class = "RouteWrapper"
    trace_name = "route"
    __slots__ = ("fields", "child")
    dies_with = ("child",)

    def __init__(self, h: StreamHandleWrapper, fields: dict[str, Any]) -> None:
        super().__init__(h)
        self.fields = fields
        self.child: MetadataMapWrapper | None = None

    @export("metadata")
    def metadata(self, *args: Any) -> MetadataMapWrapper:
        if self.child is None:
            self.child = MetadataMapWrapper(self.h, self.fields)
        return self.child


class VirtualHostWrapper(RouteWrapper):
    lua_class = "VirtualHostWrapper"
    trace_name = "virtualHost"
    __slots__ = ()


# ---- stream info -----------------------------------------------------------------------------------
class DynamicMetadataMapWrapper(BaseLuaObject):
    """``streamInfo():dynamicMetadata()``: namespaces of the stream's dynamic metadata."""

    lua_class = "DynamicMetadataMapWrapper"
    trace_name = "dynamicMetadata"
    __slots__ = ("metadata", "iterator", "writable")
    dies_with = ("iterator",)

    def __init__(self, h: StreamHandleWrapper, metadata: dict[str, Any], writable: bool = True) -> None:
        super().__init__(h)
        self.metadata = metadata
        self.writable = writable
        self.iterator: _Iterator | None = None

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
    def pairs(self, *args: Any) -> _Iterator:
        if self.iterator is not None:
            raise LuaApiError("cannot create a second iterator before completing the first")
        h = self.h
        items = [(k.encode("utf-8", "surrogateescape"), v) for k, v in list(self.metadata.items())]
        self.iterator = _Iterator(h, self, ((k, lua_value(h, v)) for k, v in items))
        return self.iterator


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

    def __init__(self, h: StreamHandleWrapper, state: dict[str, Any]) -> None:
        super().__init__(h)
        self.state = state

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


class ConnectionWrapper(BaseLuaObject):
    """``connection()``: only ``ssl()`` (nil: wasmlab listeners are plaintext)."""

    lua_class = "ConnectionWrapper"
    cpp_namespace = COMMON_LUA
    trace_name = "connection"
    __slots__ = ()

    @export("ssl")
    def ssl(self, *args: Any) -> Any:
        return None


class ConnectionStreamInfoWrapper(BaseLuaObject):
    """``connectionStreamInfo()``: the connection's dynamic metadata (read-only)."""

    lua_class = "ConnectionStreamInfoWrapper"
    trace_name = "connectionStreamInfo"
    __slots__ = ("metadata", "child")
    dies_with = ("child",)

    def __init__(self, h: StreamHandleWrapper, metadata: dict[str, Any]) -> None:
        super().__init__(h)
        self.metadata = metadata
        self.child: ConnectionDynamicMetadataMapWrapper | None = None

    @export("dynamicMetadata")
    def dynamic_metadata(self, *args: Any) -> ConnectionDynamicMetadataMapWrapper:
        if self.child is None:
            self.child = ConnectionDynamicMetadataMapWrapper(self.h, self.metadata, writable=False)
        return self.child

    @export("dynamicTypedMetadata")
    def dynamic_typed_metadata(self, *args: Any) -> Any:
        check_string(args, 1, "dynamicTypedMetadata")
        return None


class StreamInfoWrapper(BaseLuaObject):
    """``streamInfo()`` (Envoy ``StreamInfoWrapper``)."""

    lua_class = "StreamInfoWrapper"
    trace_name = "streamInfo"
    __slots__ = ("info", "dm", "fs")
    dies_with = ("dm", "fs")

    def __init__(self, h: StreamHandleWrapper, info: Any) -> None:
        super().__init__(h)
        self.info = info
        self.dm: DynamicMetadataMapWrapper | None = None
        self.fs: FilterStateWrapper | None = None

    @export("protocol")
    def protocol(self, *args: Any) -> bytes:
        return wire(self.info.protocol)

    @export("downstreamLocalAddress")
    def downstream_local_address(self, *args: Any) -> bytes:
        return wire(self.info.downstream_local_address)

    @export("downstreamDirectLocalAddress")
    def downstream_direct_local_address(self, *args: Any) -> bytes:
        return wire(self.info.downstream_local_address)

    @export("downstreamRemoteAddress")
    def downstream_remote_address(self, *args: Any) -> bytes:
        return wire(self.info.downstream_remote_address)

    @export("downstreamDirectRemoteAddress")
    def downstream_direct_remote_address(self, *args: Any) -> bytes:
        return wire(self.info.downstream_remote_address)

    @export("requestedServerName")
    def requested_server_name(self, *args: Any) -> bytes:
        return b""

    @export("routeName")
    def route_name(self, *args: Any) -> bytes:
        return wire(self.info.route_name or "")

    @export("virtualClusterName")
    def virtual_cluster_name(self, *args: Any) -> bytes:
        return b""

    @export("downstreamSslConnection")
    def downstream_ssl_connection(self, *args: Any) -> Any:
        return None

    @export("dynamicMetadata")
    def dynamic_metadata(self, *args: Any) -> DynamicMetadataMapWrapper:
        if self.dm is None:
            self.dm = DynamicMetadataMapWrapper(self.h, self.info.dynamic_metadata)
        return self.dm

    @export("dynamicTypedMetadata")
    def dynamic_typed_metadata(self, *args: Any) -> Any:
        """@param 1 (string): filter name. @return nil (wasmlab has no typed metadata)."""
        check_string(args, 1, "dynamicTypedMetadata")
        return None

    @export("filterState")
    def filter_state(self, *args: Any) -> FilterStateWrapper:
        if self.fs is None:
            self.fs = FilterStateWrapper(self.h, self.info.filter_state)
        return self.fs

    @export("drainConnectionUponCompletion", 0)
    def drain_connection_upon_completion(self, *args: Any) -> None:
        """HTTP/1: the response gets ``connection: close``."""
        self.info.should_drain_connection = True


# ---- stats (Envoy 1.38+: handle:stats()) -------------------------------------------------------------
class StatsScopeWrapper(BaseLuaObject):
    """``stats()``: counters, gauges and histograms under ``<hcm prefix>lua.[<stat_prefix>.]``."""

    lua_class = "StatsScopeWrapper"
    trace_name = "stats"
    __slots__ = ("prefix",)

    def __init__(self, h: StreamHandleWrapper, prefix: str) -> None:
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

    def __init__(self, h: StreamHandleWrapper, name: str) -> None:
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

    def __init__(self, h: StreamHandleWrapper, name: str, unit: str) -> None:
        super().__init__(h)
        self.name = name
        self.unit = unit

    @export("recordValue", 0)
    def record_value(self, *args: Any) -> None:
        check_number(args, 1, "recordValue")


# ---- crypto ------------------------------------------------------------------------------------------
class PublicKeyWrapper(BaseLuaObject):
    """``importPublicKey()``'s result: ``get()`` gives the key handle string, or nil."""

    lua_class = "PublicKeyWrapper"
    trace_name = "publicKey"
    __slots__ = ("key",)

    def __init__(self, h: StreamHandleWrapper, key: bytes) -> None:
        super().__init__(h)
        self.key = key

    @export("get")
    def get(self, *args: Any) -> Any:
        return self.key if self.key else None


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
        _Iterator,
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
