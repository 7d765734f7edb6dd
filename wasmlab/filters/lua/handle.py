"""The stream handle: what ``envoy_on_request(handle)`` / ``envoy_on_response(handle)`` get.

Envoy's ``StreamHandleWrapper`` (``filters/http/lua/lua_filter.cc``) is one class; here it is put
together from the coroutine driver (:mod:`.handle_driver`: state, death, trace, resuming on the
filter callbacks) and one mixin per family of Lua methods, so each file reads as one part of
Envoy's exported-method table:

=========================  =====================================================================
module                     Lua methods
=========================  =====================================================================
:mod:`.handle_body`        ``headers``, ``requestHeaders``, ``body``, ``bodyChunks``, ``trailers``
:mod:`.handle_info`        ``metadata``, ``route``, ``virtualHost``, ``filterContext``,
                           ``streamInfo``, ``connectionStreamInfo``, ``connection``, ``stats``,
                           ``clearRouteCache``, ``setUpstreamOverrideHost``
:mod:`.handle_http`        ``respond``, ``httpCall``
:mod:`.handle_util`        ``base64Escape``, ``base64Decode``, ``timestamp``, ``timestampString``,
                           ``importPublicKey``, ``verifySignature``
(every object)             the six ``log*`` methods (:class:`.luaobject.BaseLuaObject`)
=========================  =====================================================================
"""

from __future__ import annotations

from .handle_body import HeadersBodyApi
from .handle_driver import RUNNING, State
from .handle_http import HttpApi
from .handle_info import StreamInfoApi
from .handle_util import UtilityApi

__all__ = ["RUNNING", "State", "StreamHandleWrapper"]


class StreamHandleWrapper(HeadersBodyApi, StreamInfoApi, HttpApi, UtilityApi):
    """``request_handle`` / ``response_handle``."""

    lua_class = "StreamHandleWrapper"
    trace_name = "handle"
