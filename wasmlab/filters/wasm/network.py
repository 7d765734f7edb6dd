"""``envoy.filters.network.wasm``: a Proxy-Wasm plugin as a network (L4) filter.

Per connection, as Envoy 1.40 runs it (observed with ``tcp_logger``): ``proxy_on_context_create``
and ``proxy_on_new_connection``, then ``proxy_on_downstream_data(size, end_stream)`` for bytes from
the client (buffer 2) and ``proxy_on_upstream_data`` for bytes from the upstream (buffer 3), the
client's FIN as ``(0, 1)``, the upstream's end as ``proxy_on_upstream_data(0, 1)`` followed by
``proxy_on_upstream_connection_close(UNKNOWN)``, then ``proxy_on_downstream_connection_close(LOCAL)``
when Envoy closes the client, and at the end **``proxy_on_done`` → ``proxy_on_log`` →
``proxy_on_delete``** (the TCP order, unlike HTTP's log-first). A non-zero answer to a data
callback holds the bytes until ``proxy_continue_stream(DOWNSTREAM)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...host.tcp import CONTINUE, STOP, NetworkFilter
from ...proxywasm.plugin import PluginConfig
from ...proxywasm.stream_host import StreamHost
from ...proxywasm.types import BufferType, FailurePolicy, PeerType, StreamType, WasmResult
from ...proxywasm.vm import Context, Trapped
from .lifecycle import WasmExtension

if TYPE_CHECKING:
    from ...host.services import ServerContext
    from ...http import Buffer


class WasmNetworkFilterFactory(WasmExtension):
    kind = "wasm"

    def __init__(self, plugin: PluginConfig) -> None:
        self.plugin = plugin
        self.proxy: ServerContext | None = None

    def create_filter(self, conn: Any) -> NetworkFilter:
        return WasmNetworkFilter(self.plugin)


class WasmNetworkFilter(NetworkFilter, StreamHost):
    """One connection's Wasm network filter and the StreamHost its context's host calls reach
    (connection data buffers, continue/close; no header maps)."""

    kind = "wasm"

    def __init__(self, plugin: PluginConfig) -> None:
        self.plugin = plugin
        self.ctx: Context | None = None
        self.failed = False
        self.downstream: Buffer | None = None
        self.upstream: Buffer | None = None
        self.in_log = False

    @property
    def stream_id(self) -> int:
        return self.conn.id

    @property
    def stream_info(self) -> Any:
        return self.conn.info

    def _call(self, name: str, *args: int) -> int | None:
        assert self.ctx is not None
        try:
            return self.ctx.vm.call(self.ctx, name, *args)
        except Trapped:
            self.failed = True
            handle = self.conn.proxy.wasm.handle_for_stream(self.plugin, self.conn.dispatcher)
            if handle is not None:
                self.conn.proxy.wasm.mark_failed(handle)
            raise

    def _fail(self) -> int:
        """The VM failed: FAIL_OPEN passes bytes through, otherwise Envoy closes the connection."""
        if self.plugin.failure_policy == FailurePolicy.FAIL_OPEN:
            return CONTINUE
        self.conn.close("local")
        return STOP

    def on_new_connection(self) -> int:
        conn = self.conn
        handle = conn.proxy.wasm.handle_for_stream(self.plugin, conn.dispatcher)
        if handle is None or handle.vm is None or handle.root is None:
            self.failed = True
            return self._fail()
        vm, root = handle.vm, handle.root
        self.ctx = Context(vm.next_context_id(), vm, root, self.plugin, "tcp")
        self.ctx.filter = self
        vm.add_context(self.ctx)
        try:
            self._call("proxy_on_context_create", self.ctx.id, root.id)
            r = self._call("proxy_on_new_connection", self.ctx.id)
        except Trapped:
            return self._fail()
        return CONTINUE if not r else STOP

    def on_data(self, data: Buffer, end_stream: bool) -> int:
        if self.ctx is None or self.failed:
            return CONTINUE if self.plugin.failure_policy == FailurePolicy.FAIL_OPEN or self.ctx is None else STOP
        self.downstream = data
        try:
            r = self._call("proxy_on_downstream_data", self.ctx.id, len(data), int(end_stream))
        except Trapped:
            return self._fail()
        finally:
            self.downstream = None
        return CONTINUE if not r else STOP

    def on_write(self, data: Buffer, end_stream: bool) -> int:
        if self.ctx is None or self.failed:
            return CONTINUE
        self.upstream = data
        try:
            r = self._call("proxy_on_upstream_data", self.ctx.id, len(data), int(end_stream))
            if end_stream:
                self._call("proxy_on_upstream_connection_close", self.ctx.id, PeerType.UNKNOWN)
        except Trapped:
            return self._fail()
        finally:
            self.upstream = None
        return CONTINUE if not r else STOP

    def on_close(self, event: str) -> None:
        if self.ctx is None or self.failed:
            return
        peer = PeerType.LOCAL if event == "local" else PeerType.REMOTE
        try:
            self._call("proxy_on_downstream_connection_close", self.ctx.id, peer)
            self._call("proxy_on_done", self.ctx.id)
            self.in_log = True
            self._call("proxy_on_log", self.ctx.id)
            self.in_log = False
            self._call("proxy_on_delete", self.ctx.id)
        except Trapped:
            pass

    def on_destroy(self) -> None:
        if self.ctx is not None:
            self.ctx.vm.remove_context(self.ctx)

    # ---- what host calls reach (StreamHost) -------------------------------------------------------
    def body_buffer(self, buffer_type: int) -> Buffer | None:
        if buffer_type == BufferType.DOWNSTREAM_DATA:
            return self.downstream
        if buffer_type == BufferType.UPSTREAM_DATA:
            return self.upstream
        return None

    def continue_stream(self, stream_type: int) -> WasmResult:
        if self.ctx is None:
            return WasmResult.NOT_FOUND
        if stream_type == StreamType.DOWNSTREAM:
            self.ctx.vm.defer(lambda: self.conn.continue_reading(self))
            return WasmResult.OK
        if stream_type == StreamType.UPSTREAM:
            return WasmResult.UNIMPLEMENTED
        return WasmResult.BAD_ARGUMENT

    def close_stream(self, stream_type: int) -> WasmResult:
        if self.ctx is None:
            return WasmResult.NOT_FOUND
        if stream_type in (StreamType.DOWNSTREAM, StreamType.UPSTREAM):
            self.ctx.vm.defer(lambda: self.conn.close("local"))
            return WasmResult.OK
        return WasmResult.BAD_ARGUMENT
