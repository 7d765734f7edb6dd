"""The stream and its connection as a script sees them (Envoy ``StreamInfoWrapper``,
``ConnectionStreamInfoWrapper``, ``ConnectionWrapper``).

Simplification: no TLS, so ``ssl()`` / ``downstreamSslConnection()`` are always nil; connection-level
dynamic metadata is always empty."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .luaobject import COMMON_LUA, BaseLuaObject, check_string, child_getter, export, getter, utf8_bytes, wire
from .wrappers_metadata import (
    ConnectionDynamicMetadataMapWrapper,
    DynamicMetadataMapWrapper,
    FilterStateWrapper,
    MetadataHolder,
)

if TYPE_CHECKING:
    pass


def _nil(_wrapper: Any) -> None:
    return None


def _empty(_wrapper: Any) -> bytes:
    return b""


@export("dynamicTypedMetadata")
def _dynamic_typed_metadata(self: BaseLuaObject, *args: Any) -> Any:
    """@param 1 (string): filter name. @return nil (wasmlab has no typed metadata)."""
    check_string(args, 1, "dynamicTypedMetadata")
    return None


class ConnectionWrapper(BaseLuaObject):
    """``connection()``: only ``ssl()`` (nil: wasmlab listeners are plaintext)."""

    lua_class = "ConnectionWrapper"
    cpp_namespace = COMMON_LUA
    trace_name = "connection"
    __slots__ = ()

    ssl = getter("ssl", _nil)


class ConnectionStreamInfoWrapper(MetadataHolder):
    """``connectionStreamInfo()``: the connection's dynamic metadata (read-only)."""

    lua_class = "ConnectionStreamInfoWrapper"
    trace_name = "connectionStreamInfo"
    __slots__ = ()

    dynamic_metadata = child_getter(
        "dynamicMetadata", "child", lambda w: ConnectionDynamicMetadataMapWrapper(w.h, w.fields)
    )

    dynamic_typed_metadata = _dynamic_typed_metadata


class StreamInfoWrapper(BaseLuaObject):
    """``streamInfo()`` (Envoy ``StreamInfoWrapper``). Simplification: the direct addresses are the
    addresses (no PROXY protocol), and there is no SNI, virtual cluster or TLS."""

    lua_class = "StreamInfoWrapper"
    trace_name = "streamInfo"
    __slots__ = ("info", "dm", "fs")
    dies_with = ("dm", "fs")

    info: Any
    dm: DynamicMetadataMapWrapper | None
    fs: FilterStateWrapper | None

    protocol = getter("protocol", lambda w: wire(w.info.protocol))
    downstream_local_address = getter("downstreamLocalAddress", lambda w: wire(w.info.downstream_local_address))
    downstream_direct_local_address = getter(
        "downstreamDirectLocalAddress", lambda w: wire(w.info.downstream_local_address)
    )
    downstream_remote_address = getter("downstreamRemoteAddress", lambda w: wire(w.info.downstream_remote_address))
    downstream_direct_remote_address = getter(
        "downstreamDirectRemoteAddress", lambda w: wire(w.info.downstream_direct_remote_address)
    )
    requested_server_name = getter("requestedServerName", _empty)
    route_name = getter("routeName", lambda w: utf8_bytes(w.info.route_name or ""))
    virtual_cluster_name = getter("virtualClusterName", _empty)
    downstream_ssl_connection = getter("downstreamSslConnection", _nil)
    dynamic_metadata = child_getter(
        "dynamicMetadata", "dm", lambda w: DynamicMetadataMapWrapper(w.h, w.info.dynamic_metadata)
    )
    dynamic_typed_metadata = _dynamic_typed_metadata
    filter_state = child_getter("filterState", "fs", lambda w: FilterStateWrapper(w.h, w.info.filter_state))

    @export("drainConnectionUponCompletion", 0)
    def drain_connection_upon_completion(self, *args: Any) -> None:
        """HTTP/1: the response gets ``connection: close``."""
        self.info.should_drain_connection = True
