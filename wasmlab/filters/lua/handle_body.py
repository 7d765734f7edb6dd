"""The handle's headers, body and trailers (Envoy ``StreamHandleWrapper`` ``headers``, ``body``,
``bodyChunks``, ``trailers``, ``requestHeaders``): what a script reads and edits of its own stream.

``body()``, the ``bodyChunks()`` iterator and ``trailers()`` may make the script wait (see
:mod:`.handle_driver`)."""

from __future__ import annotations

from typing import Any

from ...http.inline_headers import REQUEST_HEADERS_INLINE
from .handle_driver import HandleDriver, State
from .luaobject import NOTHING, OBJECTS, YIELD, LuaApiError, check_type, export
from .wrappers_headers import HeaderMapWrapper


class HeadersBodyApi(HandleDriver):
    """``handle:headers()``, ``body()``, ``bodyChunks()``, ``trailers()``, ``requestHeaders()``."""

    @export("headers", fast=lambda thunk: _fast_headers(thunk))
    def lua_headers(self, *args: Any) -> HeaderMapWrapper:
        """@return the request (or response) headers; editable until they are forwarded."""
        return self.own_headers()

    @export("requestHeaders")
    def lua_request_headers(self, *args: Any) -> Any:
        """@return the request headers (on the response path too), or nothing."""
        rh = self.cb.request_headers()
        if rh is None:
            return NOTHING
        return self._child("request_headers", lambda: HeaderMapWrapper(self, rh, None, REQUEST_HEADERS_INLINE))

    @export("body")
    def lua_body(self, *args: Any) -> Any:
        """@param 1 (boolean, optional): always_wrap_body. @return the whole body (waits for it), or
        nothing when the stream has no body."""
        always_wrap = False
        if args:
            always_wrap = bool(check_type(args, 1, "body", "boolean"))
        if self.end_stream:
            if not self.buffered_body and self.saw_body:
                raise LuaApiError("cannot call body() after body has been streamed")
            return self._body(always_wrap)
        if self.saw_body:
            raise LuaApiError("cannot call body() after body streaming has started")
        self.envoy_log("yielding for full body")
        self.state = State.WAIT_FOR_BODY
        self.buffered_body = True
        return YIELD

    @export("bodyChunks")
    def lua_body_chunks(self, *args: Any) -> Any:
        """@return an iterator: each call waits for the next data frame and returns it, nil at the end."""
        if self.saw_body:
            raise LuaApiError("cannot call bodyChunks after body processing has begun")
        return self.vm.closure(_body_iterator, self.register())

    @export("trailers")
    def lua_trailers(self, *args: Any) -> Any:
        """@return the trailers (waits for the end of the stream), or nothing if there are none."""
        if self.end_stream and self.trailers is None:
            self.envoy_log("end stream. no trailers")
            return NOTHING
        if self.trailers is not None:
            return self._trailers_wrapper()
        self.envoy_log("yielding for trailers")
        self.state = State.WAIT_FOR_TRAILERS
        return YIELD


def _fast_headers(thunk: Any) -> Any:
    """``handle:headers()`` in one step (see ``export``): a live handle."""
    objects: dict[int, Any] = OBJECTS  # the number of a handle: its thunk is the handle's

    def headers(obj_id: int, *args: Any) -> Any:
        h = objects.get(obj_id)
        if h is None or h.dead:
            return thunk(obj_id, *args)
        obj = h.children.get("headers") or h.own_headers()
        if h.rec.enabled:
            h.trace_call("handle:headers", args, obj, None)
        return 6, HeaderMapWrapper.lua_number, obj.lua_id or obj.register()

    return headers


def _body_iterator(handle_id: int) -> tuple[Any, ...]:
    """One step of the bodyChunks() iterator (a Lua closure over the handle, as in Envoy)."""
    h = OBJECTS.get(handle_id)
    if not isinstance(h, HandleDriver) or h.dead:
        return 1, b"object used outside of proper scope"
    h.trace_call("handle:bodyChunks<iterator>", (), None, None)
    if h.end_stream:
        h.envoy_log("body complete. no more body chunks")
        return (3,)
    h.envoy_log("yielding for next body chunk")
    h.state = State.WAIT_FOR_BODY_CHUNK
    return (2,)
