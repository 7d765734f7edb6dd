"""StreamHost: what a Proxy-Wasm context's host calls may reach of the stream it serves.

In Envoy one class (``Extensions::Common::Wasm::Context``) is both the ABI context and the filter,
and each host call it does not support in its current role answers a status code: an access
logger has no body to read, a network filter has no header maps, nothing may continue a stream
that is not paused. wasmlab keeps the ABI context (:class:`wasmlab.proxywasm.vm.Context`) apart
from the filter that owns it, and this base class is the typed seam between them: the HTTP
filter, the network filter and the access-log view each override what their role supports, and
everything else answers the way Envoy's base ``Context`` does — ``NOT_FOUND`` for a map or buffer
that is not there; stream control (continue, close, local reply) answers OK and does nothing when
the role has no such side (Envoy checks for its decoder/encoder/network callbacks, finds none, and
still says OK). Host calls never probe a filter with ``getattr``: they call these methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from .types import WasmResult

if TYPE_CHECKING:
    from ..http import Buffer, HeaderMap


class StreamHost:
    """Defaults: no stream, no maps, no buffers; stream control is an accepted no-op."""

    __slots__ = ()

    #: True during ``proxy_on_log``: maps are read-only and a missing one is NOT_FOUND
    in_log: bool = False
    #: whether ``proxy_set_property`` may store into :attr:`stream_info` (an access logger's
    #: root context reads the logged stream's info but has no stream to write to: NOT_FOUND)
    properties_writable: bool = True

    #: the buffers a host serves, by ``BufferType``: the attribute holding each (None while the
    #: stream has no such buffer). The HTTP filter names its bodies, the network filter its
    #: connection data; any other type has no buffer here.
    body_buffers: ClassVar[dict[int, str]] = {}

    @property
    def stream_id(self) -> int | None:
        """The host's stream (or connection) id, for the trace; None outside a stream."""
        return None

    @property
    def stream_info(self) -> Any:
        """Envoy ``StreamInfo`` of the stream (properties, ``proxy_set_property``); None if none."""
        return None

    def route(self) -> Any:
        """The route the stream matched (``xds.route_name``...); None outside an HTTP stream."""
        return None

    # ---- header maps and buffers ----------------------------------------------------------------
    def header_map(self, map_type: int, write: bool) -> HeaderMap | None:
        """The stream's header map ``map_type`` (0-3) if readable (or writable) now, else None."""
        return None

    def body_buffer(self, buffer_type: int) -> Buffer | None:
        """The stream's body (or connection data) buffer ``buffer_type`` if there is one now."""
        attr = self.body_buffers.get(buffer_type)
        return None if attr is None else getattr(self, attr)

    # ---- stream control ---------------------------------------------------------------------------
    def continue_stream(self, stream_type: int) -> WasmResult:
        """``proxy_continue_stream``: resume the paused direction after the current callback."""
        return WasmResult.OK

    def close_stream(self, stream_type: int) -> WasmResult:
        """``proxy_close_stream``: reset the stream (or close the connection)."""
        return WasmResult.OK

    def send_local_response(
        self, status: int, details: str, body: bytes, headers: list[tuple[str, str]], grpc_status: int | None
    ) -> WasmResult:
        """``proxy_send_local_response``: answer the client after the current callback."""
        return WasmResult.OK

    def request_headers_edited(self, key: str | None) -> None:
        """A host call edited request header ``key`` (None: replaced them all): nothing to do by
        default."""

    def clear_route_cache(self) -> None:
        """``proxy_clear_route_cache`` / foreign ``clear_route_cache``: nothing to clear by default."""
