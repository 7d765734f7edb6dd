"""The extensions "compiled into" the host: HTTP filters by type URL, native Python filters by name.

Envoy selects an HTTP filter implementation by its ``typed_config["@type"]`` (the ``name`` is only
a label). wasmlab does the same. Custom Python native filters are selected by
``name: wasmlab.native.<name>`` instead, since real Envoy has no type for them; configs that use
one are wasmlab-only.

The registry itself lives in :mod:`wasmlab.host.extensions` (the host looks extensions up by type
URL and never imports them); filters register through the names re-exported here.
"""

from __future__ import annotations

from ..host.extensions import (
    HTTP_FILTERS,
    http_filter_factory,
    load_builtins,
    per_route_factory,
    register_http_filter,
    supported_http_filters,
)

__all__ = [
    "HTTP_FILTERS",
    "http_filter_factory",
    "load_builtins",
    "per_route_factory",
    "register_http_filter",
    "supported_http_filters",
]
