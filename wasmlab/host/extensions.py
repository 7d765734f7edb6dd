"""Extension registry: typed config in, filter factories out.

Envoy finds an extension by the ``@type`` of its ``typed_config``: every filter, access logger
and bootstrap extension registers a factory under its type URL at link time
(``REGISTER_FACTORY``), and the config loader asks the registry, never the extension's code.
wasmlab does the same, so the host never imports a filter: the filter modules register
themselves when :func:`load_builtins` imports them by name, and :class:`HostExtensions` turns
``typed_config`` nodes into factories for :mod:`wasmlab.config.bootstrap`.

Four registries, one per Envoy extension category wasmlab has:

- HTTP filters (``envoy.filters.http.*``) by type URL, plus the per-route type URLs they accept;
- network filters (``envoy.filters.network.*`` other than the HTTP connection manager);
- access loggers that are extensions (``envoy.access_loggers.wasm``);
- bootstrap extensions (``envoy.bootstrap.wasm``, the WasmService).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config.bootstrap import Bootstrap, NetworkFilterConfig, parse_bootstrap
from ..config.yaml_source import Source
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config.yaml_source import Node
    from ..filters.base import HttpFilterFactory

#: ``typed_config["@type"]`` -> HTTP filter factory class
HTTP_FILTERS: dict[str, type[HttpFilterFactory]] = {}
#: network filter type URL -> ``parse(name, typed_config, type_url, source, cluster_names)``
NETWORK_FILTERS: dict[str, Callable[..., NetworkFilterConfig]] = {}
#: access logger type URL -> ``parse(typed_config)`` giving the logger extension object
ACCESS_LOGGERS: dict[str, Callable[[Node], Any]] = {}
#: bootstrap extension type URL -> (``parse(typed_config)``, ``create(parsed)``)
BOOTSTRAP_EXTENSIONS: dict[str, tuple[Callable[[Node], Any], Callable[[Any], Any]]] = {}

#: modules that register built-in extensions when imported (Envoy: the extensions linked in)
_BUILTIN_MODULES = (
    "wasmlab.filters.native.router",
    "wasmlab.filters.native.header_mutation",
    "wasmlab.filters.native.local_ratelimit",
    "wasmlab.filters.native.custom",
    "wasmlab.filters.lua.filter",
    "wasmlab.filters.wasm.filter",
    "wasmlab.filters.network",
    "wasmlab.filters.wasm.access_log",
    "wasmlab.filters.wasm.service",
)
_loaded = False


def register_http_filter(cls: type[HttpFilterFactory]) -> type[HttpFilterFactory]:
    """Class decorator: make ``cls`` the factory for its ``type_url``."""
    HTTP_FILTERS[cls.type_url] = cls
    return cls


def load_builtins() -> None:
    """Import the built-in extension modules once; a missing optional dependency (e.g. lupa)
    leaves its extension unregistered, and a config that names it gets Envoy's "Didn't find a
    registered implementation" error."""
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


class FactoryContext:
    """What a filter factory may look at while parsing its config (Envoy:
    ``Server::Configuration::FactoryContext``, reduced to what wasmlab's filters read)."""

    def __init__(self, source: Source, stat_prefix: str, cluster_names: set[str]) -> None:
        self.source = source
        self.stat_prefix = stat_prefix
        self.cluster_names = cluster_names


class HostExtensions:
    """The :class:`wasmlab.config.bootstrap.Extensions` the host gives the config loader."""

    def http_filter(
        self, name: str, type_url: str, config: Node, source: Source, stat_prefix: str, clusters: set[str]
    ) -> Any:
        cls = http_filter_factory(type_url)
        if cls is None:
            return None
        return cls(name, config, FactoryContext(source, stat_prefix, clusters))

    def supported_http_filters(self) -> list[str]:
        return supported_http_filters()

    def per_route(self, type_url: str, factory: Any) -> Callable[[Node], Any] | None:
        cls = type(factory) if factory is not None and type_url in type(factory).per_route_type_urls else None
        if cls is None:
            cls = per_route_factory(type_url)
        return None if cls is None else cls.parse_per_route

    def network_filter(self, name: str, tc: Node, type_url: str, source: Source, clusters: set[str]) -> Any:
        load_builtins()
        parse = NETWORK_FILTERS.get(type_url)
        return None if parse is None else parse(name, tc, type_url, source, clusters)

    def access_logger(self, type_url: str, tc: Node) -> Any:
        load_builtins()
        parse = ACCESS_LOGGERS.get(type_url)
        if parse is None:
            raise tc.child("@type").error("envoy.access_loggers.wasm is not available")
        return parse(tc)

    def bootstrap_extension(self, type_url: str, tc: Node) -> Any:
        load_builtins()
        entry = BOOTSTRAP_EXTENSIONS.get(type_url)
        return None if entry is None else entry[0](tc)


EXTENSIONS = HostExtensions()


def load_config(source: str | os.PathLike[str]) -> Bootstrap:
    """Parse an Envoy bootstrap (path or YAML text) and build its extensions' factories; raises
    ``ConfigError`` with a YAML path (the public ``wasmlab.load_config``)."""
    try:
        return parse_bootstrap(Source.from_arg(source), EXTENSIONS)
    except ConfigError:
        raise
    except RecursionError:
        raise ConfigError("config is nested too deeply") from None


def collect_extensions(config: Bootstrap, hcms: dict[str, Any]) -> list[Any]:
    """Every extension object the proxy starts and stops on its threads, in Envoy's order: the
    HTTP filters, then Wasm access loggers and network filters, then bootstrap extensions."""
    out: list[Any] = [fc.factory for hcm in hcms.values() for fc in hcm.config.http_filters]
    for lst in config.listeners:
        if lst.hcm is not None:
            out.extend(log.plugin for log in lst.hcm.access_logs if log.plugin is not None)
        out.extend(nf.config for nf in lst.network_filters if hasattr(nf.config, "start_main"))
    for ext in config.bootstrap_extensions:
        if ext.config is not None:
            out.append(BOOTSTRAP_EXTENSIONS[ext.type_url][1](ext.config))
    return out
