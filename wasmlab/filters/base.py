"""What every HTTP filter kind (native, Lua, Wasm) gives the host.

Envoy splits an HTTP filter extension in two: a *factory* parsed once from the filter's
``typed_config`` (``NamedHttpFilterConfigFactory``; it may also prepare per-thread state, e.g. a
Lua state or a Wasm VM per worker), and a *filter instance* created per stream by that factory
(``StreamDecoderFilter``/``StreamEncoderFilter``). We keep the same split:
:class:`HttpFilterFactory` and :class:`StreamFilter`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..host.active_filter import forget_filter_traits
from ..host.extensions import FactoryContext
from ..http import Buffer, FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus, HeaderMap

if TYPE_CHECKING:
    from ..config.yaml_source import Node
    from ..host.dispatcher import Dispatcher
    from ..host.filter_callbacks import FilterCallbacks
    from ..host.services import ServerContext
    from ..http.stream_info import StreamInfo

Continue = FilterHeadersStatus.Continue

__all__ = ["Continue", "FactoryContext", "HttpFilterFactory", "StreamFilter"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _default(fn: _F) -> _F:
    """Marks one of StreamFilter's own defaults. The filter manager reads the mark once per
    filter class (host/active_filter.py ``traits_of``): a callback a class does not override
    only returns Continue, so an untraced stream skips calling it; a ``set_callbacks`` it does
    not override is a plain attribute store; a ``log``/``on_destroy`` it does not override is
    not called (they do nothing). A traced stream calls every filter callback."""
    # the mark names the function itself: a wrapper (functools.wraps copies ``__dict__``) is
    # not the default it wraps
    fn.stream_filter_default = fn  # type: ignore[attr-defined]
    return fn


class _FilterClass(type):
    """StreamFilter's metaclass: setting or deleting an attribute of a filter class after it was
    made (a callback patched in a notebook cell) makes the filter manager work out the traits of
    every filter class again, so the change takes effect on the next stream, traced or not."""

    def __setattr__(cls, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        forget_filter_traits()

    def __delattr__(cls, name: str) -> None:
        super().__delattr__(name)
        forget_filter_traits()


class StreamFilter(metaclass=_FilterClass):
    """One filter instance on one stream. Defaults pass everything through (Continue)."""

    #: set by the filter manager before the first callback
    callbacks: FilterCallbacks
    #: "native", "lua" or "wasm" (views colour filters by it)
    kind: ClassVar[str] = "native"
    #: whether the filter takes part in decoding (request) / encoding (response)
    decoder: ClassVar[bool] = True
    encoder: ClassVar[bool] = True

    @_default
    def set_callbacks(self, callbacks: FilterCallbacks) -> None:
        self.callbacks = callbacks

    # decoder side (request)
    @_default
    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        return FilterHeadersStatus.Continue

    @_default
    def decode_data(self, data: Buffer, end_stream: bool) -> FilterDataStatus:
        return FilterDataStatus.Continue

    @_default
    def decode_trailers(self, trailers: HeaderMap) -> FilterTrailersStatus:
        return FilterTrailersStatus.Continue

    # encoder side (response)
    @_default
    def encode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        return FilterHeadersStatus.Continue

    @_default
    def encode_data(self, data: Buffer, end_stream: bool) -> FilterDataStatus:
        return FilterDataStatus.Continue

    @_default
    def encode_trailers(self, trailers: HeaderMap) -> FilterTrailersStatus:
        return FilterTrailersStatus.Continue

    # end of stream
    @_default
    def log(self, info: StreamInfo) -> None:
        """Access-log phase (Envoy calls a filter's ``log()`` before destroying it)."""

    @_default
    def on_destroy(self) -> None:
        """The stream is gone; release anything held (Envoy ``onDestroy``)."""


class HttpFilterFactory:
    """Parsed config of one ``http_filters`` entry; makes a filter per stream."""

    #: the ``typed_config["@type"]`` this factory handles
    type_url: ClassVar[str] = ""
    #: type URLs accepted in ``typed_per_filter_config`` for this filter
    per_route_type_urls: ClassVar[tuple[str, ...]] = ()
    #: the terminal filter (router) must be last, as Envoy requires
    terminal: ClassVar[bool] = False
    #: short label used in traces and views ("native", "lua", "wasm")
    kind: ClassVar[str] = "native"

    def __init__(self, name: str, config: Node, ctx: FactoryContext) -> None:
        self.name = name
        self.proxy: ServerContext | None = None

    @classmethod
    def parse_per_route(cls, node: Node) -> Any:
        """Parse a ``typed_per_filter_config`` entry for this filter (default: not supported)."""
        raise node.error(f"the filter type {cls.type_url.rsplit('/', 1)[-1]} has no per-route config")

    # lifecycle, called by the proxy on the right threads
    def start_main(self, proxy: ServerContext) -> None:
        """On the main thread before workers start (Envoy: config load, Wasm canary)."""
        self.proxy = proxy

    def start_worker(self, dispatcher: Dispatcher) -> None:
        """On each worker thread as it starts (Envoy: thread-local state)."""

    def stop_worker(self, dispatcher: Dispatcher) -> None:
        """On each worker thread at shutdown."""

    def stop_main(self) -> None:
        """On the main thread at shutdown, after the workers stopped."""

    def create_filter(self, dispatcher: Dispatcher) -> StreamFilter | None:
        """A new filter instance for one stream on ``dispatcher``'s worker (None: skip)."""
        raise NotImplementedError
