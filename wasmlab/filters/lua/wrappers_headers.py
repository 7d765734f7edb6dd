"""Header maps and body buffers as a script sees them (Envoy ``HeaderMapWrapper``,
``HeaderMapIterator`` in ``filters/http/lua/wrappers.h``; ``BufferWrapper`` in
``filters/common/lua/wrappers.h``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...http import Buffer, HeaderMap
from ...http.inline_headers import NO_INLINE, REQUEST_HEADERS_INLINE, RESPONSE_HEADERS_INLINE, slot_name
from .luaobject import (
    COMMON_LUA,
    NOTHING,
    OBJECTS,
    BaseLuaObject,
    LuaApiError,
    PairsIterator,
    c_string,
    check_int32,
    check_number,
    check_string,
    export,
    text,
    wire,
)

if TYPE_CHECKING:
    from .handle_driver import HandleDriver


# ---- Envoy's inline headers ------------------------------------------------------------------------
# The names with a slot in each kind of Envoy map, and what adding one does, are in
# ``wasmlab.http.inline_headers``: a wrapper carries the set of the map it wraps (the map may be
# one wasmlab made without it) and adds through ``HeaderMap.add_inline``.


def envoy_add(headers: HeaderMap, inline: frozenset[str], key: str, value: str) -> None:
    """Envoy ``HeaderMapImpl::addCopy`` of a lower-cased name: an inline name that is present
    takes ``,value`` on its first entry; anything else is a new entry."""
    if key in inline:
        headers.add_inline(key, value)
    else:
        headers.add_lowered(key, value)


# ---- headers -------------------------------------------------------------------------------------
class HeaderMapWrapper(BaseLuaObject):
    """Request/response headers or trailers (Envoy ``HeaderMapWrapper``).

    ``owner`` is the handle whose own headers these are (Envoy's ``CheckModifiableCb``:
    ``owner.headers_modifiable()`` says whether the map may still change and, on the request
    path, clears the route cache), or None for a map that stays modifiable. ``inline``: the
    inline names of this kind of map (``REQUEST_HEADERS_INLINE``, ...).
    """

    lua_class = "HeaderMapWrapper"
    trace_name = "headers"
    __slots__ = ("headers", "owner", "iterator", "inline")
    dies_with = ("iterator",)

    def __init__(
        self, h: HandleDriver, headers: HeaderMap, owner: HandleDriver | None, inline: frozenset[str] = NO_INLINE
    ) -> None:
        self.dead = False
        self._ud = None
        self.lua_id = 0
        self.h = h
        self.headers = headers
        self.owner = owner
        self.iterator: HeaderMapIterator | None = None
        self.inline = inline

    def check_modifiable(self) -> None:
        if self.iterator is not None:
            raise LuaApiError("header map cannot be modified while iterating")
        if self.owner is not None and not self.owner.headers_modifiable():
            raise LuaApiError("header map can no longer be modified")

    @export("add", 0, fast=lambda thunk: _fast_add(thunk))
    def add(self, *args: Any) -> None:
        """Add a header: another entry if the name exists, or for an inline name (see
        ``envoy_add``) ``,value`` on the present one.
        @param 1 (string): header name. @param 2 (string): value."""
        key = c_string(check_string(args, 1, "add"))
        value = c_string(check_string(args, 2, "add"))
        self.check_modifiable()
        envoy_add(self.headers, self.inline, text(key).lower(), text(value))

    def _name(self, args: tuple[Any, ...], function: str) -> str:
        """Argument 1 as the name Envoy looks up (lower-cased; ``host`` → ``:authority`` in a request map)."""
        return slot_name(self.inline, text(check_string(args, 1, function)).lower())

    @export("get", fast=lambda thunk: _fast_get(thunk))
    def get(self, *args: Any) -> Any:
        """@param 1 (string): header name. @return all values joined with ',' or nothing."""
        values = self.headers.get_all(self._name(args, "get"))
        return wire(",".join(values)) if values else NOTHING

    @export("getAtIndex")
    def get_at_index(self, *args: Any) -> Any:
        """@param 1 (string): name. @param 2 (number): 0-based index. @return the value or nothing."""
        key = self._name(args, "getAtIndex")
        # Envoy: `const int index = luaL_checknumber(...)`, a double cast to int: NaN, infinities
        # and numbers outside int32 become INT_MIN on x86 (so nothing is found)
        n = check_number(args, 2, "getAtIndex")
        index = int(n) if -(2**31) < n < 2**31 else -(2**31)
        values = self.headers.get_all(key)
        if 0 <= index < len(values):
            return wire(values[index])
        return NOTHING

    @export("getNumValues")
    def get_num_values(self, *args: Any) -> int:
        """@param 1 (string): name. @return how many entries have that name."""
        return len(self.headers.get_all(self._name(args, "getNumValues")))

    @export("replace", 0)
    def replace(self, *args: Any) -> None:
        """Remove every entry of the name and add one (Envoy ``setCopy``).
        @param 1 (string): name. @param 2 (string)."""
        key = slot_name(self.inline, text(c_string(check_string(args, 1, "replace"))).lower())
        value = c_string(check_string(args, 2, "replace"))
        self.check_modifiable()
        self.headers.set(key, text(value))

    @export("remove", 0)
    def remove(self, *args: Any) -> None:
        """Remove every entry of the name. @param 1 (string): name."""
        key = slot_name(self.inline, text(c_string(check_string(args, 1, "remove"))).lower())
        self.check_modifiable()
        self.headers.remove(key)

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
        return HeaderMapIterator.start(self, list(self.headers))


# The common calls on a header map in one step each (see ``export``): a live map, string
# arguments, no iteration in progress (recorded like the generic thunk records them); anything
# else goes to the generic thunk.
# A handle's own map that Lua handed out but the host has not made yet (number -handle, see
# ``materialize``) is used through its handle, without making it: it cannot be iterating yet.
def _map_of(obj_id: int) -> tuple[HeaderMap, frozenset[str], HandleDriver] | None:
    """``(headers, inline names, handle)`` of a live, not iterating map numbered ``obj_id``, or None."""
    obj = OBJECTS.get(obj_id)
    if obj is None:
        if obj_id >= 0:
            return None
        h = OBJECTS.get(-obj_id)
        if h is None or h.own_headers_id != obj_id:  # type: ignore[attr-defined]
            return None
        return h.headers, REQUEST_HEADERS_INLINE if h.decoder else RESPONSE_HEADERS_INLINE, h  # type: ignore[attr-defined, return-value]
    if obj.dead or obj.iterator is not None:  # type: ignore[attr-defined]
        return None
    return obj.headers, obj.inline, obj.h  # type: ignore[attr-defined]


def _fast_add(thunk: Callable[..., Any]) -> Callable[..., Any]:
    objects = OBJECTS

    def add(obj_id: int, *args: Any) -> Any:
        # _map_of(obj_id), unrolled: this is the one handle method almost every script calls
        obj = objects.get(obj_id)
        if obj is not None:
            if obj.dead or obj.iterator is not None:  # type: ignore[attr-defined]
                return thunk(obj_id, *args)  # the generic thunk raises the right error
            headers, owner, h = obj.headers, obj.owner, obj.h  # type: ignore[attr-defined]
            inline = obj.inline  # type: ignore[attr-defined]
        else:
            # a negative number: the handle's own map during its first run (prelude.lua's
            # own_headers), held by the handle itself
            h = objects.get(-obj_id) if obj_id < 0 else None  # type: ignore[assignment]
            if h is None or h.own_headers_id != obj_id:
                return thunk(obj_id, *args)
            headers, owner = h.headers, h
            inline = REQUEST_HEADERS_INLINE if h.decoder else RESPONSE_HEADERS_INLINE
        if len(args) < 2 or args[0].__class__ is not bytes or args[1].__class__ is not bytes:
            return thunk(obj_id, *args)
        # (the int 0: a NUL byte, tested without the TypeError a bytes operand raises inside)
        if 0 in args[0] or 0 in args[1]:
            return thunk(obj_id, *args)  # (the generic add reads them up to the NUL)
        if owner is not None:
            # owner.headers_modifiable(), inlined
            if owner.headers_continued:
                return thunk(obj_id, *args)  # the generic thunk raises "can no longer be modified"
            if owner.decoder:
                filt = owner.filter
                if filt.factory.config.clear_route_cache:
                    filt.callbacks.clear_route_cache()
        key = args[0].decode("latin-1").lower()
        if key in inline:
            headers.add_inline(key, args[1].decode("latin-1"))
        else:
            headers.add_lowered(key, args[1].decode("latin-1"))
        if h.rec.enabled:
            h.trace_call("headers:add", args, None, None)
        return 0

    return add


def _fast_get(thunk: Callable[..., Any]) -> Callable[..., Any]:
    def get(obj_id: int, *args: Any) -> Any:
        found = _map_of(obj_id)
        if found is None or not args or args[0].__class__ is not bytes:
            return thunk(obj_id, *args)
        values = found[0].get_all(slot_name(found[1], args[0].decode("latin-1").lower()))
        value = wire(",".join(values)) if values else None
        h = found[2]
        if h.rec.enabled:
            h.trace_call("headers:get", args, value, None)
        return 3 if value is None else (0, value)

    return get


class HeaderMapIterator(PairsIterator):
    lua_class = "HeaderMapIterator"
    __slots__ = ()

    def __init__(self, h: HandleDriver, parent: HeaderMapWrapper, entries: list[tuple[str, str]]) -> None:
        super().__init__(h, parent, ((wire(k), wire(v)) for k, v in entries))


# ---- body ----------------------------------------------------------------------------------------
class BufferWrapper(BaseLuaObject):
    """A body buffer or one body chunk (Envoy ``BufferWrapper``)."""

    lua_class = "BufferWrapper"
    cpp_namespace = COMMON_LUA
    trace_name = "buffer"
    __slots__ = ("headers", "data")

    headers: HeaderMap
    data: Buffer

    @export("length")
    def length(self, *args: Any) -> int:
        """@return the size in bytes."""
        return len(self.data)

    @export("getBytes")
    def get_bytes(self, *args: Any) -> bytes:
        """@param 1 (number): 0-based index. @param 2 (number): length. @return the bytes."""
        index = check_int32(args, 1, "getBytes")
        length = check_int32(args, 2, "getBytes")
        if index < 0 or length < 0 or index + length > len(self.data):
            raise LuaApiError("index/length must be >= 0 and (index + length) must be <= buffer size")
        return self.data.slice(index, length)

    @export("setBytes")
    def set_bytes(self, *args: Any) -> int:
        """Replace the content and set the stream's content-length. @param 1 (string): new bytes.
        @return the new length.

        Envoy sets ``content-length`` on the map even when the headers already went out (a body
        chunk): the wire keeps the old value. wasmlab's codec reads the map it was handed later,
        so the length is set only while the headers are held (a simplification: a script that
        reads ``content-length`` back after streaming sees the old value here).

        Envoy empties the buffer before it reads the argument: after a bad one (``nil``, a table)
        the body is empty and ``content-length`` keeps its old value."""
        self.data.set(b"")
        value = check_string(args, 1, "setBytes")
        self.data.set(value)
        if not self.h.headers_continued:
            self.headers.set_in_place("content-length", str(len(self.data)))  # Envoy's setContentLength
        return len(self.data)
