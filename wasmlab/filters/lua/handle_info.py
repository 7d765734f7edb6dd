"""What the handle tells about the stream and its route (Envoy ``StreamHandleWrapper``
``metadata``, ``route``, ``virtualHost``, ``filterContext``, ``streamInfo``, ``connection``,
``connectionStreamInfo``, ``stats``, ``clearRouteCache``, ``setUpstreamOverrideHost``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .handle_driver import HandleDriver
from .luaobject import BaseLuaObject, LuaApiError, check_string, check_type, export, text
from .wrappers import (
    ConnectionStreamInfoWrapper,
    ConnectionWrapper,
    MetadataMapWrapper,
    RouteWrapper,
    StatsScopeWrapper,
    StreamInfoWrapper,
    VirtualHostWrapper,
)


def _child(lua_name: str, make: Callable[[Any], BaseLuaObject], doc: str | None = None) -> Callable[..., Any]:
    """A handle method that answers one object per run, made by ``make(handle)`` on first use and
    dying when the script yields (``HandleDriver._child``)."""

    @export(lua_name)
    def get(self: HandleDriver, *args: Any) -> Any:
        return self._child(lua_name, lambda: make(self))

    get.__doc__ = doc
    get.__name__ = f"lua_{lua_name}"
    return get


class StreamInfoApi(HandleDriver):
    """The handle's metadata, stream info, connection and stats objects; each is made once per run."""

    lua_metadata = _child(
        "metadata",
        lambda h: MetadataMapWrapper(h, h.cb.metadata()),
        "@return the route's filter_metadata for this filter's name (or envoy.filters.http.lua).",
    )
    lua_route = _child("route", lambda h: RouteWrapper(h, h.cb.route_metadata()))
    lua_virtual_host = _child("virtualHost", lambda h: VirtualHostWrapper(h, h.cb.virtual_host_metadata()))
    lua_filter_context = _child("filterContext", lambda h: MetadataMapWrapper(h, h.cb.filter_context()))
    lua_stream_info = _child("streamInfo", lambda h: StreamInfoWrapper(h, h.stream_info))
    lua_connection_stream_info = _child("connectionStreamInfo", lambda h: ConnectionStreamInfoWrapper(h, {}))
    lua_connection = _child("connection", ConnectionWrapper)
    lua_stats = _child("stats", lambda h: StatsScopeWrapper(h, h.filter.factory.stats_scope))

    @export("clearRouteCache", 0)
    def lua_clear_route_cache(self, *args: Any) -> None:
        self.cb.clear_route_cache()

    @export("setUpstreamOverrideHost", 0)
    def lua_set_upstream_override_host(self, *args: Any) -> None:
        """@param 1 (string): an IP address (with optional port). @param 2 (boolean, optional): strict.

        wasmlab clusters have one endpoint: the router sends to it whatever the override, but a
        strict override naming another host finds none (503 ``no healthy upstream``), as on Envoy."""
        host = text(check_string(args, 1, "setUpstreamOverrideHost"))
        if not _is_ip_authority(host):
            raise LuaApiError("host is not a valid IP address")
        strict = False
        if len(args) >= 2:
            strict = bool(check_type(args, 2, "setUpstreamOverrideHost", "boolean"))
        self.stream_info.upstream_override_host = (host, strict)


def _is_ip_authority(host: str) -> bool:
    import ipaddress

    h = host
    if h.startswith("["):
        end = h.find("]")
        if end < 0:
            return False
        h, rest = h[1:end], h[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return False
    elif h.count(":") == 1:
        h, port = h.split(":")
        if not port.isdigit():
            return False
    try:
        ipaddress.ip_address(h)
    except ValueError:
        return False
    return True
