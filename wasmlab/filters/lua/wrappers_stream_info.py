"""The stream and its connection as a script sees them (Envoy ``StreamInfoWrapper``,
``ConnectionStreamInfoWrapper``, ``ConnectionWrapper``).

Simplification: no TLS, so ``ssl()`` / ``downstreamSslConnection()`` are always nil; connection-level
dynamic metadata is always empty."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .luaobject import COMMON_LUA, BaseLuaObject, check_string, export, wire
from .wrappers_metadata import ConnectionDynamicMetadataMapWrapper, DynamicMetadataMapWrapper, FilterStateWrapper

if TYPE_CHECKING:
    from .handle_driver import HandleDriver


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

    def __init__(self, h: HandleDriver, metadata: dict[str, Any]) -> None:
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

    def __init__(self, h: HandleDriver, info: Any) -> None:
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
