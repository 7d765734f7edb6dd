"""wasmlab: learn how Envoy is extended — native filters, Lua and Proxy-Wasm — on an in-process
Envoy-like host with real worker threads, real wasmtime VMs and real LuaJIT states.

    from wasmlab import Proxy
    with Proxy.from_yaml("notebooks/configs/hello.yaml") as proxy:
        r = proxy.request("GET", "/hello")
"""

from .errors import ConfigError, StartupError, StreamTimeout, WasmlabError
from .filters.native import NativeFilter, native_filter
from .host.extensions import load_config
from .host.proxy import Proxy, StreamReset
from .http import (
    Buffer,
    FilterDataStatus,
    FilterHeadersStatus,
    FilterTrailersStatus,
    HeaderMap,
    Request,
    Response,
)
from .trace import Event, Trace

__version__ = "0.1.0"

__all__ = [
    "Buffer",
    "ConfigError",
    "Event",
    "FilterDataStatus",
    "FilterHeadersStatus",
    "FilterTrailersStatus",
    "HeaderMap",
    "NativeFilter",
    "Proxy",
    "Request",
    "Response",
    "StartupError",
    "StreamReset",
    "StreamTimeout",
    "Trace",
    "WasmlabError",
    "load_config",
    "native_filter",
]
