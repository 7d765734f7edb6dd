"""What the handle tells about the stream and its route (Envoy ``StreamHandleWrapper``
``metadata``, ``route``, ``virtualHost``, ``filterContext``, ``streamInfo``, ``connection``,
``connectionStreamInfo``, ``stats``, ``clearRouteCache``, ``setUpstreamOverrideHost``)."""

from __future__ import annotations

from typing import Any

from .handle_driver import HandleDriver
from .luaobject import LuaApiError, check_string, check_type, export, text
from .wrappers import (
    ConnectionStreamInfoWrapper,
    ConnectionWrapper,
    MetadataMapWrapper,
    RouteWrapper,
    StatsScopeWrapper,
    StreamInfoWrapper,
    VirtualHostWrapper,
)


class StreamInfoApi(HandleDriver):
    """The handle's metadata, stream info, connection and stats objects; each is made once per run."""

    @export("metadata")
    def lua_metadata(self, *args: Any) -> MetadataMapWrapper:
        """@return the route's filter_metadata for this filter's name (or envoy.filters.http.lua)."""
        return self._child("metadata", lambda: MetadataMapWrapper(self, self.cb.metadata()))

    @export("route")
    def lua_route(self, *args: Any) -> RouteWrapper:
        return self._child("route", lambda: RouteWrapper(self, self.cb.route_metadata()))

    @export("virtualHost")
    def lua_virtual_host(self, *args: Any) -> VirtualHostWrapper:
        return self._child("virtual_host", lambda: VirtualHostWrapper(self, self.cb.virtual_host_metadata()))

    @export("filterContext")
    def lua_filter_context(self, *args: Any) -> MetadataMapWrapper:
        return self._child("filter_context", lambda: MetadataMapWrapper(self, self.cb.filter_context()))

    @export("streamInfo")
    def lua_stream_info(self, *args: Any) -> StreamInfoWrapper:
        return self._child("stream_info", lambda: StreamInfoWrapper(self, self.stream_info))

    @export("connectionStreamInfo")
    def lua_connection_stream_info(self, *args: Any) -> ConnectionStreamInfoWrapper:
        return self._child("connection_stream_info", lambda: ConnectionStreamInfoWrapper(self, {}))

    @export("connection")
    def lua_connection(self, *args: Any) -> ConnectionWrapper:
        return self._child("connection", lambda: ConnectionWrapper(self))

    @export("stats")
    def lua_stats(self, *args: Any) -> StatsScopeWrapper:
        return self._child("stats", lambda: StatsScopeWrapper(self, self.filter.factory.stats_scope))

    @export("clearRouteCache", 0)
    def lua_clear_route_cache(self, *args: Any) -> None:
        self.cb.clear_route_cache()

    @export("setUpstreamOverrideHost", 0)
    def lua_set_upstream_override_host(self, *args: Any) -> None:
        """@param 1 (string): an IP address (with optional port). @param 2 (boolean, optional): strict.

        wasmlab clusters have one endpoint: the override is recorded, not used."""
        host = text(check_string(args, 1, "setUpstreamOverrideHost"))
        if not _is_ip_authority(host):
            raise LuaApiError("host is not a valid IP address")
        strict = False
        if len(args) >= 2:
            strict = bool(check_type(args, 2, "setUpstreamOverrideHost", "boolean"))
        self.filter.upstream_override_host = (host, strict)


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
