"""``envoy.access_loggers.wasm``: a Proxy-Wasm plugin called once per finished stream.

Envoy gives the access logger a root context per worker (created, ``on_vm_start``,
``on_configure`` like any plugin) and for each logged stream calls ``proxy_on_log`` on that root
context, with the request headers, response headers and response trailers readable (not writable)
for the duration of the call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...config.bootstrap import WASM_LOG_TYPE
from ...host.extensions import ACCESS_LOGGERS
from ...proxywasm.plugin import PluginConfig, parse_plugin_config
from ...proxywasm.stream_host import StreamHost
from ...proxywasm.types import MapType
from ...proxywasm.vm import Trapped
from .lifecycle import WasmExtension

if TYPE_CHECKING:
    from ...config.yaml_source import Node
    from ...host.services import ServerContext
    from ...http import HeaderMap


class _LogView(StreamHost):
    """What host calls see during ``proxy_on_log`` of an access logger: read-only maps, the
    stream's info and route for properties (``xds.route_name`` of a route without a name is
    found, empty); no property writes, no body, no stream control (StreamHost's defaults)."""

    __slots__ = ("_info", "_stream")
    in_log = True
    properties_writable = False

    def __init__(self, info: Any, stream: Any = None) -> None:
        self._info = info
        self._stream = stream

    def route(self) -> Any:
        """The route the stream matched last (Envoy's ``StreamInfo::route()``), not matched again."""
        cached = getattr(self._stream, "cached_route", None)
        return cached() if cached is not None else None

    @property
    def stream_id(self) -> int | None:
        return self._info.stream_id

    @property
    def stream_info(self) -> Any:
        return self._info

    def header_map(self, map_type: int, write: bool) -> HeaderMap | None:
        if write:
            return None
        info = self._info
        maps: dict[int, HeaderMap | None] = {
            MapType.HTTP_REQUEST_HEADERS: info.request_headers,
            MapType.HTTP_RESPONSE_HEADERS: info.response_headers,
            MapType.HTTP_RESPONSE_TRAILERS: info.response_trailers,
        }
        return maps.get(map_type)


class WasmAccessLogger(WasmExtension):
    def __init__(self, plugin: PluginConfig) -> None:
        self.plugin = plugin
        self.proxy: ServerContext | None = None

    def log(self, info: Any, stream: Any) -> None:
        proxy = self.proxy
        if proxy is None:
            return
        handle = proxy.wasm.handle_for_stream(self.plugin, stream.dispatcher)
        if handle is None or handle.vm is None or handle.root is None:
            return
        root = handle.root
        previous = root.filter
        root.filter = _LogView(info, stream)
        try:
            handle.vm.call(root, "proxy_on_log", root.id)
        except Trapped:
            proxy.wasm.mark_failed(handle)
        finally:
            root.filter = previous


def parse_wasm_access_log(node: Node) -> WasmAccessLogger:
    node.check_fields("@type config", required=("config",))
    return WasmAccessLogger(parse_plugin_config(node.req("config")))


ACCESS_LOGGERS[WASM_LOG_TYPE] = parse_wasm_access_log
