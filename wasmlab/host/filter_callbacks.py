"""FilterCallbacks: what a filter instance may ask of the host (Envoy's
``StreamDecoderFilterCallbacks`` and ``StreamEncoderFilterCallbacks`` in one object).

In Envoy a filter's place in the chain *is* its callbacks object: ``ActiveStreamDecoderFilter``
implements ``StreamDecoderFilterCallbacks``, ``ActiveStreamEncoderFilter`` the encoder ones. The
same here: this class is a base of :class:`~.active_filter.ActiveFilter`, the filter's place
(one object per filter for both directions), and ``set_callbacks`` hands the filter that place.
Lua and Wasm filters are built on these same calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..http import Buffer, HeaderMap
from ..http.inline_headers import RESPONSE_TRAILERS_INLINE

if TYPE_CHECKING:
    from ..config.route import Route
    from .filter_direction import ActiveDirection
    from .filter_manager import FilterManager
    from .hcm import ActiveStream
    from .services import ServerContext


class FilterCallbacks:
    """What a filter instance may ask of the host (Envoy's decoder + encoder filter callbacks):
    the filter's chain place, :class:`~.active_filter.ActiveFilter`, which has the state."""

    __slots__ = ()

    if TYPE_CHECKING:  # the place's own fields and views (active_filter.py)
        manager: FilterManager
        name: str
        decodes: bool
        encodes: bool

        def decoding(self) -> ActiveDirection: ...
        def encoding(self) -> ActiveDirection: ...

    def _on_worker(self, what: str) -> None:
        """Refuse a call from another thread than the stream's worker (a ``threading.Timer``, an
        upstream app): it would run the chain on that thread, beside the worker's own loop.
        Envoy requires the same (a filter's callbacks are used on its worker thread only) but
        does not check it in a release build."""
        dispatcher = self.manager.stream.dispatcher
        if not dispatcher.is_current():
            message = (
                f"filter '{self.name}' called {what}() on thread {threading.current_thread().name!r}, not on "
                f"its worker {dispatcher.name}: a filter's callbacks may only be used on its worker; hand the "
                f"call over with self.callbacks.dispatcher.post(...)"
            )
            self.manager.stream.proxy.log("error", "http", message)
            raise RuntimeError(message)

    # ---- identity ------------------------------------------------------------------------------
    @property
    def stream(self) -> ActiveStream:
        return self.manager.stream

    @property
    def stream_id(self) -> int:
        return self.manager.stream.stream_id

    @property
    def stream_info(self) -> Any:
        return self.manager.stream.info

    @property
    def dispatcher(self) -> Any:
        return self.manager.stream.dispatcher

    @property
    def worker(self) -> int | None:
        return self.manager.stream.dispatcher.worker

    @property
    def server(self) -> ServerContext:
        """The server services a filter may use (clock, stats, log, clusters...): Envoy's
        ``ServerFactoryContext``, not the Proxy a lesson drives."""
        return self.manager.stream.proxy

    #: the same :class:`ServerContext` under the name filters have always used
    proxy = server

    @property
    def buffer_limit(self) -> int:
        """The stream's buffer limit in bytes (the listener's ``per_connection_buffer_limit_bytes``;
        0: no limit, as Envoy's ``decoderBufferLimit()``)."""
        return self.manager.buffer_limit

    # ---- stream state ---------------------------------------------------------------------------
    @property
    def request_headers(self) -> HeaderMap | None:
        return self.manager.request_headers

    @property
    def request_trailers(self) -> HeaderMap | None:
        return self.manager.request_trailers

    @property
    def response_headers(self) -> HeaderMap | None:
        return self.manager.response_headers

    @property
    def response_trailers(self) -> HeaderMap | None:
        return self.manager.response_trailers

    @property
    def route(self) -> Route | None:
        return self.manager.stream.route()

    def clear_route_cache(self) -> None:
        self.manager.stream.clear_route_cache()

    # ---- iteration ------------------------------------------------------------------------------
    def continue_decoding(self) -> None:
        self._on_worker("continue_decoding")
        if self.decodes:
            self.decoding().common_continue()

    def continue_encoding(self) -> None:
        self._on_worker("continue_encoding")
        if self.encodes:
            self.encoding().common_continue()

    def decoding_buffer(self) -> Buffer | None:
        return self.manager.buffered_request

    def encoding_buffer(self) -> Buffer | None:
        return self.manager.buffered_response

    def add_decoded_data(self, data: Buffer | bytes, streaming: bool = False) -> None:
        self._on_worker("add_decoded_data")
        data = _as_buffer(data, "add_decoded_data")
        self.manager.add_data(self.decoding() if self.decodes else None, data, streaming)

    def add_encoded_data(self, data: Buffer | bytes, streaming: bool = False) -> None:
        self._on_worker("add_encoded_data")
        data = _as_buffer(data, "add_encoded_data")
        self.manager.add_data(self.encoding() if self.encodes else None, data, streaming)

    def add_decoded_trailers(self) -> HeaderMap:
        m = self.manager
        if m.request_trailers is None:
            m.request_trailers = HeaderMap()
        return m.request_trailers

    def add_encoded_trailers(self) -> HeaderMap:
        m = self.manager
        if m.response_trailers is None:
            m.response_trailers = HeaderMap(None, RESPONSE_TRAILERS_INLINE)
        return m.response_trailers

    # ---- answering ------------------------------------------------------------------------------
    def send_local_reply(
        self,
        status: int,
        body: bytes | str = b"",
        headers: Any = None,
        details: str = "",
        grpc_status: int | None = None,
    ) -> None:
        """Answer the client from here (Envoy ``sendLocalReply``); ``headers`` are extra headers
        (dict / pairs) or a function that edits the reply's header map."""
        self._on_worker("send_local_reply")
        modify: Callable[[HeaderMap], None] | None
        if callable(headers):
            modify = headers
        elif headers:
            extra = HeaderMap(headers)

            def modify(h: HeaderMap) -> None:
                for k, v in extra:
                    h.add(k, v)

        else:
            modify = None
        raw = body.encode() if isinstance(body, str) else body
        self.manager.send_local_reply(status, raw, modify, details, grpc_status)

    def encode_headers(self, headers: HeaderMap, end_stream: bool, details: str = "via_upstream") -> None:
        """Start the response (used by the terminal filter, e.g. the router)."""
        m = self.manager
        if m.destroyed:
            return
        m.stream.info.response_code_details = details
        m.response_headers = headers
        m.encode_headers(None, headers, end_stream)

    def encode_data(self, data: Buffer | bytes, end_stream: bool) -> None:
        m = self.manager
        if m.destroyed:
            return
        m.encode_data(None, data if isinstance(data, Buffer) else Buffer(data), end_stream)

    def encode_trailers(self, trailers: HeaderMap) -> None:
        m = self.manager
        if m.destroyed:
            return
        m.response_trailers = trailers
        m.encode_trailers(None, trailers)

    def reset_stream(self, details: str = "filter_reset") -> None:
        self._on_worker("reset_stream")
        self.manager.stream.reset(details)

    def log(self, level: str, logger: str, message: str) -> None:
        self.manager.stream.proxy.log(level, logger, message)


def _as_buffer(data: Any, what: str) -> Buffer:
    """``data`` as a Buffer; an int is refused (``bytes(5)`` would be five NUL bytes)."""
    if isinstance(data, Buffer):
        return data
    if not isinstance(data, bytes | bytearray | memoryview | str):
        raise TypeError(f"{what}() takes bytes, str or a Buffer, got {type(data).__name__}")
    return Buffer(bytes(data) if isinstance(data, memoryview) else data)
