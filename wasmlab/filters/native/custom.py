"""Custom native filters: a learner's Python class "compiled into" wasmlab's host.

In Envoy a native filter is C++ built into the binary: it sees every callback with no sandbox
and no copy, and changing it means rebuilding Envoy. The wasmlab counterpart is a Python class
registered with :func:`native_filter` and referenced from YAML as ``name: wasmlab.native.<name>``
(configs that use one cannot run on real Envoy, so they live in a ``wasmlab-only`` folder).

    @native_filter("add_header")
    class AddHeader(NativeFilter):
        def decode_headers(self, headers, end_stream):
            headers.add("x-hello", self.config.get("value", "world"))
            return FilterHeadersStatus.Continue

``self.config`` is the filter's configuration (the ``value`` of a ``google.protobuf.Struct`` or
``xds.type.v3.TypedStruct`` typed_config), ``self.callbacks`` the stream's filter callbacks, and
``self.worker_state`` a dict shared by every instance of this filter on the same worker thread
(Envoy's per-thread ``ThreadLocal`` slot) — never shared across workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ...config.bootstrap import NATIVE_TYPE_URL
from ...errors import describe, raised_at
from ...http import FilterHeadersStatus, HeaderMap
from ..base import Continue, HttpFilterFactory, StreamFilter
from ..registry import register_http_filter

if TYPE_CHECKING:
    from ...config.yaml_source import Node
    from ...host.dispatcher import Dispatcher
    from ..base import FactoryContext

_NATIVE: dict[str, type[NativeFilter]] = {}


class NativeFilter(StreamFilter):
    """Base class of Python native filters; override the callbacks you need."""

    #: the registered name (``wasmlab.native.<name>``)
    filter_name: ClassVar[str] = ""

    def __init__(self, config: dict[str, Any], worker_state: dict[str, Any]) -> None:
        self.config = config
        self.worker_state = worker_state

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Raise ``ValueError`` with a message to reject a config at load time."""


def native_filter(name: str) -> Any:
    """Class decorator: register a :class:`NativeFilter` as ``wasmlab.native.<name>``."""

    if not isinstance(name, str) or not name:
        raise TypeError(f"@native_filter(name) takes the filter's name as a non-empty str, got {name!r}")

    def register(cls: type[NativeFilter]) -> type[NativeFilter]:
        if not (isinstance(cls, type) and issubclass(cls, NativeFilter)):
            raise TypeError("@native_filter must decorate a NativeFilter subclass")
        cls.filter_name = name
        _NATIVE[name] = cls
        return cls

    return register


def registered_native_filters() -> dict[str, type[NativeFilter]]:
    return dict(_NATIVE)


def _struct_config(node: Node) -> dict[str, Any]:
    """The config dict from a Struct/TypedStruct typed_config (or an empty one)."""
    if not node.mapping().has("@type"):
        return {}
    t = node.req("@type").str()
    if t.endswith("google.protobuf.Struct"):
        node.check_fields("@type value")
    elif t.endswith("udpa.type.v1.TypedStruct") or t.endswith("xds.type.v3.TypedStruct"):
        node.check_fields("@type type_url value")
    else:
        raise node.child("@type").error(
            "a wasmlab.native filter takes a google.protobuf.Struct or xds.type.v3.TypedStruct typed_config"
        )
    v = node.get("value")
    return dict(v.mapping().value) if v is not None else {}


@register_http_filter
class NativeFilterFactory(HttpFilterFactory):
    type_url = NATIVE_TYPE_URL
    kind = "native"

    def __init__(self, name: str, config: Node, ctx: FactoryContext) -> None:
        super().__init__(name, config, ctx)
        short = name[len("wasmlab.native.") :]
        cls = _NATIVE.get(short)
        if cls is None:
            known = ", ".join(sorted(_NATIVE)) or "none"
            raise config.error(
                f"unknown native filter 'wasmlab.native.{short}' (registered: {known}); "
                "register one with @wasmlab.native_filter(name)"
            )
        self.cls = cls
        self.config = _struct_config(config) if config is not None and config.path.endswith("typed_config") else {}
        try:
            cls.validate_config(self.config)
        except (ValueError, TypeError, KeyError) as e:  # the documented way to refuse a config
            raise config.error(f"invalid config for wasmlab.native.{short}: {e}") from None
        except (Exception, SystemExit) as e:  # a bug in validate_config: say where it is
            raise config.error(
                f"invalid config for wasmlab.native.{short}: validate_config raised {describe(e)}{raised_at(e)}"
            ) from None
        self._slot = ("native", id(self))

    def start_worker(self, dispatcher: Dispatcher) -> None:
        dispatcher.slots[self._slot] = {}

    def create_filter(self, dispatcher: Dispatcher) -> StreamFilter:
        try:
            state = dispatcher.slots[self._slot]
        except KeyError:  # a worker that started before this factory existed
            state = dispatcher.slots[self._slot] = {}
        return self.cls(self.config, state)


@native_filter("add_header")
class AddHeader(NativeFilter):
    """Adds configured headers to the request and the response.

    Config: ``{"request_headers": {name: value}, "response_headers": {name: value}}`` — the native
    twin of the ``add_header`` Wasm module and the Lua add-header script.
    """

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        for key in ("request_headers", "response_headers"):
            v = config.get(key, {})
            if not isinstance(v, dict):
                raise ValueError(f"{key} must be a mapping of header name to value")

    # nothing to prepare per stream: the callbacks read the factory's config, shared by every
    # instance (as an Envoy filter reads its FilterConfig)

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        adds = self.config.get("request_headers")
        if adds:
            for k, v in adds.items():
                headers.add(k, v)
        return Continue  # = FilterHeadersStatus.Continue, kept as a name (faster to read than the enum attribute)

    def encode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        adds = self.config.get("response_headers")
        if adds:
            for k, v in adds.items():
                headers.add(k, v)
        return Continue
