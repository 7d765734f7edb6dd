"""The extensions "compiled into" the host: HTTP filters by type URL, native Python filters by name.

Envoy selects an HTTP filter implementation by its ``typed_config["@type"]`` (the ``name`` is only
a label). wasmlab does the same. Custom Python native filters are selected by
``name: wasmlab.native.<name>`` instead, since real Envoy has no type for them; configs that use
one are wasmlab-only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import HttpFilterFactory

HTTP_FILTERS: dict[str, type[HttpFilterFactory]] = {}

#: modules that register built-in extensions when imported
_BUILTIN_MODULES = (
    "wasmlab.filters.native.router",
    "wasmlab.filters.native.header_mutation",
    "wasmlab.filters.native.local_ratelimit",
    "wasmlab.filters.native.custom",
    "wasmlab.filters.lua.filter",
    "wasmlab.filters.wasm.filter",
)
_loaded = False


def register_http_filter(cls: type[HttpFilterFactory]) -> type[HttpFilterFactory]:
    HTTP_FILTERS[cls.type_url] = cls
    return cls


def load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if not (e.name and mod.startswith(e.name)):  # a real import error inside the module
                raise


def http_filter_factory(type_url: str) -> type[HttpFilterFactory] | None:
    load_builtins()
    return HTTP_FILTERS.get(type_url)


def per_route_factory(type_url: str) -> type[HttpFilterFactory] | None:
    load_builtins()
    for cls in HTTP_FILTERS.values():
        if type_url in cls.per_route_type_urls:
            return cls
    return None


def supported_http_filters() -> list[str]:
    load_builtins()
    return sorted(HTTP_FILTERS)
