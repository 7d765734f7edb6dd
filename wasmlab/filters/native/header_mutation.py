"""``envoy.filters.http.header_mutation``: add, overwrite and remove headers by config.

Envoy applies ``mutations.request_mutations`` in ``decodeHeaders`` and
``mutations.response_mutations`` in ``encodeHeaders``; each entry is ``append`` (a
``HeaderValueOption``: default action APPEND_IF_EXISTS_OR_ADD; an overwrite removes every existing
value and appends the new one) or ``remove``. A route's ``HeaderMutationPerRoute`` is applied
before the filter-level mutations (after them with ``most_specific_header_mutations_wins``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...config.route import HeaderValueOption, parse_header_value_option, per_route_config
from ...http import FilterHeadersStatus, HeaderMap
from ..base import HttpFilterFactory, StreamFilter
from ..registry import register_http_filter

if TYPE_CHECKING:
    from ...config.yaml_source import Node
    from ...host.dispatcher import Dispatcher
    from ...http.stream_info import StreamInfo
    from ..base import FactoryContext

TYPE = "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"
PER_ROUTE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute"


@dataclass
class Mutations:
    request: list[HeaderValueOption | str] = field(default_factory=list)
    response: list[HeaderValueOption | str] = field(default_factory=list)

    @staticmethod
    def apply(ops: list[HeaderValueOption | str], headers: HeaderMap, info: StreamInfo) -> None:
        for op in ops:
            if isinstance(op, str):
                headers.remove(op)
            else:
                op.apply(headers, info)


def _parse_ops(node: Node) -> list[HeaderValueOption | str]:
    ops: list[HeaderValueOption | str] = []
    for item in node.list():
        item.check_fields("append remove")
        if item.has("append") == item.has("remove"):
            raise item.error("exactly one of append, remove must be set")
        if item.has("remove"):
            ops.append(item.req("remove").str(allow_empty=False).lower())
        else:
            ops.append(parse_header_value_option(item.req("append")))
    return ops


def parse_mutations(node: Node | None) -> Mutations:
    m = Mutations()
    if node is None:
        return m
    node.check_fields(
        "request_mutations response_mutations",
        ignored=("query_parameter_mutations", "request_trailers_mutations", "response_trailers_mutations"),
    )
    if node.has("request_mutations"):
        m.request = _parse_ops(node.req("request_mutations"))
    if node.has("response_mutations"):
        m.response = _parse_ops(node.req("response_mutations"))
    return m


@register_http_filter
class HeaderMutationFactory(HttpFilterFactory):
    type_url = TYPE
    per_route_type_urls = (PER_ROUTE_TYPE,)

    def __init__(self, name: str, config: Node, ctx: FactoryContext) -> None:
        super().__init__(name, config, ctx)
        config.check_fields("@type mutations most_specific_header_mutations_wins")
        self.mutations = parse_mutations(config.get("mutations"))
        self.most_specific_wins = (
            config.req("most_specific_header_mutations_wins").bool()
            if config.has("most_specific_header_mutations_wins")
            else False
        )

    @classmethod
    def parse_per_route(cls, node: Node) -> Any:
        node.check_fields("@type mutations")
        return parse_mutations(node.get("mutations"))

    def create_filter(self, dispatcher: Dispatcher) -> StreamFilter:
        return HeaderMutationFilter(self)


class HeaderMutationFilter(StreamFilter):
    def __init__(self, factory: HeaderMutationFactory) -> None:
        self.factory = factory

    def _levels(self) -> list[Mutations]:
        route_m = per_route_config(self.callbacks.route, self.callbacks.name)
        levels = [self.factory.mutations]
        if isinstance(route_m, Mutations):
            levels = (
                [self.factory.mutations, route_m]
                if self.factory.most_specific_wins
                else [route_m, self.factory.mutations]
            )
        return levels

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        info = self.callbacks.stream_info
        for m in self._levels():
            Mutations.apply(m.request, headers, info)
        return FilterHeadersStatus.Continue

    def encode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        info = self.callbacks.stream_info
        for m in self._levels():
            Mutations.apply(m.response, headers, info)
        return FilterHeadersStatus.Continue
