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

from typing import TYPE_CHECKING, Any, ClassVar

from ...host.tcp import CONTINUE, STOP, NetworkFilter
from ...proxywasm.plugin import PluginConfig
from ...proxywasm.stream_host import StreamHost
from ...proxywasm.types import BufferType, FailurePolicy, PeerType, StreamType, WasmResult
from ...proxywasm.vm import Context
from .guard import FailAction, WasmCallGuard
from .lifecycle import WasmExtension

if TYPE_CHECKING:
    from ...host.services import ServerContext
    from ...http import Buffer


_ON_FAIL = {FailAction.CONTINUE: CONTINUE, FailAction.STOP: STOP}


def _status(r: int | None) -> int:
    """A data callback's answer: 0 (or no export) continues, anything else holds the bytes."""
    return CONTINUE if not r else STOP


class WasmNetworkFilterFactory(WasmExtension):
    kind = "wasm"

    def __init__(self, plugin: PluginConfig) -> None:
        self.plugin = plugin
        self.proxy: ServerContext | None = None

    def create_filter(self, conn: Any) -> NetworkFilter:
        return WasmNetworkFilter(self.plugin)


class WasmNetworkFilter(WasmCallGuard, NetworkFilter, StreamHost):
    """One connection's Wasm network filter and the StreamHost its context's host calls reach
    (connection data buffers, continue/close; no header maps)."""

    kind = "wasm"
    # the connection data the plugin may read or change right now (StreamHost.body_buffer)
    body_buffers: ClassVar[dict[int, str]] = {
        BufferType.DOWNSTREAM_DATA: "downstream",
        BufferType.UPSTREAM_DATA: "upstream",
    }

    def __init__(self, plugin: PluginConfig) -> None:
        self.plugin = plugin
        self.downstream: Buffer | None = None
        self.upstream: Buffer | None = None
        self.in_log = False

    @property
    def stream_id(self) -> int:
        return self.conn.id

    @property
    def stream_info(self) -> Any:
        return self.conn.info

    # ---- the failure policy (WasmCallGuard._guarded calls the guest) -----------------------------
    def _server(self) -> ServerContext:
        return self.conn.proxy

    def _fail_stream(self, trapped_here: bool = False) -> FailAction:
        """The VM failed: the connection whose callback trapped is closed whatever the policy (as
        Envoy's ``failStream``); later ones pass their bytes through under FAIL_OPEN."""
        if not trapped_here and self.plugin.failure_policy == FailurePolicy.FAIL_OPEN:
            return FailAction.CONTINUE
        self.conn.close("local")
        return FailAction.STOP

    def on_new_connection(self) -> int:
        conn = self.conn
        handle = conn.proxy.wasm.handle_for_stream(self.plugin, conn.dispatcher)
        if handle is None or handle.vm is None or handle.root is None:
            self.failed = True
            return _ON_FAIL[self._fail_stream()]
        self.handle = handle
        vm, root = handle.vm, handle.root
        ctx = self.ctx = Context(vm.next_context_id(), vm, root, self.plugin, "tcp", self)
        vm.add_context(ctx)
        r = self._guarded("proxy_on_context_create", (ctx.id, root.id))
        if not isinstance(r, FailAction):
            r = self._guarded("proxy_on_new_connection", (ctx.id,))
        return _ON_FAIL[r] if isinstance(r, FailAction) else _status(r)

    def on_data(self, data: Buffer, end_stream: bool) -> int:
        if self.ctx is None or self.failed:
            return CONTINUE if self.plugin.failure_policy == FailurePolicy.FAIL_OPEN or self.ctx is None else STOP
        self.downstream = data
        try:
            r = self._guarded("proxy_on_downstream_data", (self.ctx.id, len(data), int(end_stream)))
        finally:
            self.downstream = None
        return _ON_FAIL[r] if isinstance(r, FailAction) else _status(r)

    def on_write(self, data: Buffer, end_stream: bool) -> int:
        if self.ctx is None or self.failed:
            return CONTINUE
        self.upstream = data
        try:
            r = self._guarded("proxy_on_upstream_data", (self.ctx.id, len(data), int(end_stream)))
            if end_stream and not isinstance(r, FailAction):
                closed = self._guarded("proxy_on_upstream_connection_close", (self.ctx.id, PeerType.UNKNOWN))
                r = closed if isinstance(closed, FailAction) else r
        finally:
            self.upstream = None
        return _ON_FAIL[r] if isinstance(r, FailAction) else _status(r)

    def on_close(self, event: str) -> None:
        if self.ctx is None or self.failed:
            return
        ctx_id = self.ctx.id
        peer = PeerType.LOCAL if event == "local" else PeerType.REMOTE
        # the connection is closing already: a trap here only stops the calls that follow
        if isinstance(self._guarded("proxy_on_downstream_connection_close", (ctx_id, peer), False), FailAction):
            return
        if isinstance(self._guarded("proxy_on_done", (ctx_id,), False), FailAction):
            return
        self.in_log = True
        logged = self._guarded("proxy_on_log", (ctx_id,), False)
        if isinstance(logged, FailAction):
            return
        self.in_log = False
        self._guarded("proxy_on_delete", (ctx_id,), False)

    def on_destroy(self) -> None:
        if self.ctx is not None:
            self.ctx.vm.remove_context(self.ctx)

    # ---- what host calls reach (StreamHost) -------------------------------------------------------
    # Envoy's network context answers OK for the HTTP stream types too (it has no decoder or
    # encoder callbacks, so nothing happens); the host call answered UPSTREAM continue already.
    def continue_stream(self, stream_type: int) -> WasmResult:
        if self.ctx is not None and stream_type == StreamType.DOWNSTREAM:
            self.ctx.vm.defer(lambda: self.conn.continue_reading(self))
        return WasmResult.OK

    def close_stream(self, stream_type: int) -> WasmResult:
        if self.ctx is not None and stream_type in (StreamType.DOWNSTREAM, StreamType.UPSTREAM):
            self.ctx.vm.defer(lambda: self.conn.close("local"))
        return WasmResult.OK
