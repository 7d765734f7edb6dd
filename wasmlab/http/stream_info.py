"""StreamInfo: what the host knows about one stream (Envoy ``StreamInfo::StreamInfo``).

Access logs, header formatters, Lua's ``streamInfo()`` and Proxy-Wasm properties all read it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from .headers import HeaderMap


class FilterStateObject(str):
    """A filter-state object one of Envoy's object factories made (a Lua script's
    ``filterState():set``): the string is its string form (``%FILTER_STATE(key:PLAIN)%``, Lua's
    ``get``), None-able ``proto_json`` the JSON of its proto form that ``%FILTER_STATE(key)%``
    and ``:TYPED`` write (None: the object has none, logged ``-``), and ``plain`` False for an
    object without a string form either."""

    proto_json: str | None = None
    plain: bool = True

    @classmethod
    def made(cls, text: str, proto_json: str | None, plain: bool = True) -> FilterStateObject:
        obj = cls(text)
        obj.proto_json = proto_json
        obj.plain = plain
        return obj


@dataclass
class StreamInfo:
    stream_id: int
    connection_id: int
    start_wall_ns: int
    start_mono_ns: int
    protocol: str = "HTTP/1.1"
    #: the client's address: the connection's peer, or (``use_remote_address: false``) the one
    #: taken from ``x-forwarded-for`` (Envoy's original-IP detection: ``ip:0``)
    downstream_remote_address: str = "127.0.0.1:0"
    #: the connection's peer, always (``%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%``)
    downstream_direct_remote_address: str = "127.0.0.1:0"
    downstream_local_address: str = "127.0.0.1:10000"
    request_headers: HeaderMap | None = None
    response_headers: HeaderMap | None = None
    response_trailers: HeaderMap | None = None
    response_code: int | None = None
    #: None until something sets it; a local reply with empty details sets "" (Envoy's optional:
    #: ``response.code_details`` is then found, empty)
    response_code_details: str | None = None
    response_flags: str = "-"
    bytes_received: int = 0
    bytes_sent: int = 0
    upstream_host: str | None = None
    #: a filter's ``setUpstreamOverrideHost``: (host, strict)
    upstream_override_host: tuple[str, bool] | None = None
    upstream_cluster: str | None = None
    route_name: str = ""
    #: the matched route's ``metadata.filter_metadata`` (``%METADATA(ROUTE:...)%``)
    route_metadata: dict[str, Any] | None = None
    end_mono_ns: int | None = None
    #: Envoy dynamic metadata: namespace -> dict
    dynamic_metadata: dict[str, Any] = field(default_factory=dict)
    #: Envoy filter state: key -> value (bytes or str)
    filter_state: dict[str, Any] = field(default_factory=dict)
    #: a filter asked to close the connection after this stream (HTTP/1: ``connection: close``)
    should_drain_connection: bool = False
    #: the listener's ``traffic_direction`` (0 unspecified, 1 inbound, 2 outbound)
    listener_direction: int = 0
    #: the stream's random value (Envoy's ``stream_id_``), drawn on first use: :meth:`random_value`
    route_random: int | None = None
    #: the weighted cluster routing picked: (the route action it was picked for, the entry)
    weighted_pick: tuple[Any, Any] | None = None

    def random_value(self) -> int:
        """Envoy draws one random 64-bit value per stream (``stream_id_``) and hands it to route
        matching: a ``runtime_fraction`` route matches when ``value % denominator < numerator``
        and ``weighted_clusters`` picks by ``value % total_weight``. One value per stream means
        matching again (a filter cleared the route cache) finds the same route and cluster, and
        two routes with ``runtime_fraction`` are not drawn independently (50 % then 50 % never
        reaches the second). It is random, not derived from ``x-request-id`` (measured on Envoy
        1.40). wasmlab draws it only when a route needs it."""
        if self.route_random is None:
            self.route_random = random.getrandbits(64)
        return self.route_random

    def duration_ms(self) -> int | None:
        if self.end_mono_ns is None:
            return None
        return (self.end_mono_ns - self.start_mono_ns) // 1_000_000
