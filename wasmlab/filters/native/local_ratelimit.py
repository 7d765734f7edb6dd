"""``envoy.filters.http.local_ratelimit``: a token bucket shared by every worker of the process.

Envoy's behaviour, copied: the filter only acts on the fraction of requests given by
``filter_enabled`` (absent = 0 %, so it does nothing), counts ``enabled``; a request that finds a
token counts ``ok``; one that finds none counts ``rate_limited`` and, when ``filter_enforced``
selects it, ``enforced`` and gets a local reply — 429 ``local_rate_limited`` (or ``status``) with
``response_headers_to_add`` — otherwise it continues with
``request_headers_to_add_when_not_enforced``. The bucket starts full (``max_tokens``) and gains
``tokens_per_fill`` every ``fill_interval``, up to ``max_tokens``. Stats:
``<stat_prefix>.http_local_rate_limit.{enabled,enforced,ok,rate_limited,shadow_mode}``.

Simplifications: no descriptors, no per-connection buckets; fractions other than 0 and 100 %
sample randomly (as Envoy's runtime fractions do).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...config.route import HeaderValueOption, apply_header_options, parse_header_value_option, per_route_config
from ...http import FilterHeadersStatus, HeaderMap
from ..base import HttpFilterFactory, StreamFilter
from ..registry import register_http_filter

if TYPE_CHECKING:
    from ...config.yaml_source import Node
    from ...host.dispatcher import Dispatcher
    from ..base import FactoryContext

TYPE = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
_DENOMINATORS = {"HUNDRED": 100, "TEN_THOUSAND": 10_000, "MILLION": 1_000_000}


class TokenBucket:
    """Discrete refill token bucket, thread-safe, on the proxy's clock."""

    def __init__(self, max_tokens: int, tokens_per_fill: int, fill_interval_s: float) -> None:
        self.max_tokens = max_tokens
        self.tokens_per_fill = tokens_per_fill
        self.fill_ns = int(fill_interval_s * 1e9)
        self.tokens = max_tokens
        self.last_fill_ns: int | None = None
        self._lock = threading.Lock()

    def consume(self, now_ns: int) -> bool:
        with self._lock:
            if self.last_fill_ns is None:
                self.last_fill_ns = now_ns
            elapsed = now_ns - self.last_fill_ns
            if elapsed >= self.fill_ns > 0:
                fills = elapsed // self.fill_ns
                self.tokens = min(self.max_tokens, self.tokens + fills * self.tokens_per_fill)
                self.last_fill_ns += fills * self.fill_ns
            if self.tokens > 0:
                self.tokens -= 1
                return True
            return False

    def remaining_and_reset(self, now_ns: int) -> tuple[int, int]:
        """(tokens left, whole seconds until the next one comes when none is left, else 0): the
        ``x-ratelimit-remaining`` and ``x-ratelimit-reset`` of a request that just went through
        (measured on Envoy 1.40)."""
        with self._lock:
            if self.tokens > 0 or self.last_fill_ns is None:
                return self.tokens, 0
            left_ns = max(0, self.last_fill_ns + self.fill_ns - now_ns)
            return 0, -(-left_ns // 1_000_000_000)


def _fraction(node: Node | None) -> float:
    """``RuntimeFractionalPercent`` -> probability (absent -> 0)."""
    if node is None:
        return 0.0
    node.check_fields("default_value runtime_key", required=("default_value",))
    dv = node.req("default_value").check_fields("numerator denominator")
    num = dv.req("numerator").int(0) if dv.has("numerator") else 0
    den = _DENOMINATORS[dv.req("denominator").enum(tuple(_DENOMINATORS))] if dv.has("denominator") else 100
    return min(1.0, num / den)


@dataclass
class LocalRateLimitConfig:
    stat_prefix: str
    bucket: TokenBucket | None
    enabled: float
    enforced: float
    status: int = 429
    response_headers: list[HeaderValueOption] = field(default_factory=list)
    headers_when_not_enforced: list[HeaderValueOption] = field(default_factory=list)
    #: ``enable_x_ratelimit_headers: DRAFT_VERSION_03``: responses say the bucket's state
    x_ratelimit_headers: bool = False


def parse_config(node: Node) -> LocalRateLimitConfig:
    node.check_fields(
        "@type stat_prefix token_bucket filter_enabled filter_enforced status response_headers_to_add "
        "request_headers_to_add_when_not_enforced enable_x_ratelimit_headers",
        required=("stat_prefix",),
        ignored=(
            "stage",
            "vh_rate_limits",
            "rate_limited_as_resource_exhausted",
            "always_consume_default_token_bucket",
            "local_cluster_rate_limit",
        ),
        message="descriptors and per-connection buckets are not supported",
    )
    bucket = None
    if node.has("token_bucket"):
        tb = node.req("token_bucket").check_fields(
            "max_tokens tokens_per_fill fill_interval", required=("max_tokens", "fill_interval")
        )
        tpf = tb.req("tokens_per_fill") if tb.has("tokens_per_fill") else None
        tokens_per_fill = 1
        if tpf is not None:
            v = tpf.value.get("value") if isinstance(tpf.value, dict) else tpf.value
            tokens_per_fill = type(tpf)(v, tpf.path, tpf.source, tpf.line).int(1)
        interval = tb.req("fill_interval").duration()
        if interval <= 0:
            raise tb.child("fill_interval").error("fill_interval must be greater than 0")
        if interval < 0.05:  # Envoy's words (its timer's floor)
            raise tb.child("fill_interval").error("local rate limit token bucket fill timer must be >= 50ms")
        # (0 is accepted, as Envoy accepts it: a bucket that never holds a token limits every request)
        bucket = TokenBucket(tb.req("max_tokens").uint32(), tokens_per_fill, interval)
    status = 429
    if node.has("status"):
        st = node.req("status").check_fields("code", required=("code",))
        code = st.req("code")
        status = code.int(200, 599) if not isinstance(code.value, str) or code.value.isdigit() else _status_name(code)
    x_headers = node.has("enable_x_ratelimit_headers") and (
        node.req("enable_x_ratelimit_headers").enum(("OFF", "DRAFT_VERSION_03")) == "DRAFT_VERSION_03"
    )
    return LocalRateLimitConfig(
        node.req("stat_prefix").str(allow_empty=False),
        bucket,
        _fraction(node.get("filter_enabled")),
        _fraction(node.get("filter_enforced")),
        status,
        [parse_header_value_option(h) for h in node.req("response_headers_to_add").list()]
        if node.has("response_headers_to_add")
        else [],
        [parse_header_value_option(h) for h in node.req("request_headers_to_add_when_not_enforced").list()]
        if node.has("request_headers_to_add_when_not_enforced")
        else [],
        bool(x_headers),
    )


def _status_name(node: Node) -> int:
    from http import HTTPStatus

    name = node.str()
    for s in HTTPStatus:
        if s.name.replace("_", "").lower() == name.lower():
            return int(s)
    raise node.error(f"unknown HTTP status code name {name!r}")


@register_http_filter
class LocalRateLimitFactory(HttpFilterFactory):
    type_url = TYPE
    #: a route's ``typed_per_filter_config`` is a whole LocalRateLimit of its own (its own bucket)
    per_route_type_urls = (TYPE,)
    parse_per_route = staticmethod(parse_config)

    def __init__(self, name: str, config: Node, ctx: FactoryContext) -> None:
        super().__init__(name, config, ctx)
        self.config = parse_config(config)

    def create_filter(self, dispatcher: Dispatcher) -> StreamFilter:
        return LocalRateLimitFilter(self)


def _sample(p: float) -> bool:
    return p >= 1.0 or (p > 0.0 and random.random() < p)


class LocalRateLimitFilter(StreamFilter):
    """Decides in the request headers; with ``enable_x_ratelimit_headers`` (the filter's config or
    a route's), the response -- the upstream's or the filter's own 429 -- then gets
    ``x-ratelimit-limit``, ``-remaining`` and ``-reset`` after its other headers, as Envoy's
    encoder side adds them."""

    def __init__(self, factory: LocalRateLimitFactory) -> None:
        self.factory = factory
        self.x_headers: tuple[str, str, str] | None = None

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        cb = self.callbacks
        cfg = per_route_config(cb.route, cb.name)
        if not isinstance(cfg, LocalRateLimitConfig):
            cfg = self.factory.config
        if cfg.bucket is None or not _sample(cfg.enabled):
            return FilterHeadersStatus.Continue
        proxy = cb.proxy
        stats = proxy.stat_store
        prefix = f"{cfg.stat_prefix}.http_local_rate_limit."
        stats.inc(prefix + "enabled")
        now = proxy.clock.monotonic_ns()
        allowed = cfg.bucket.consume(now)
        if cfg.x_ratelimit_headers:
            remaining, reset = cfg.bucket.remaining_and_reset(now)
            self.x_headers = (str(cfg.bucket.max_tokens), str(remaining), str(reset))
        if allowed:
            stats.inc(prefix + "ok")
            return FilterHeadersStatus.Continue
        stats.inc(prefix + "rate_limited")
        info = cb.stream_info
        if _sample(cfg.enforced):
            stats.inc(prefix + "enforced")
            cb.stream_info.response_flags = "RL"

            def modify(h: HeaderMap) -> None:
                apply_header_options(cfg.response_headers, h, info)

            cb.send_local_reply(cfg.status, b"local_rate_limited", modify, "local_rate_limited")
            return FilterHeadersStatus.StopIteration
        apply_header_options(cfg.headers_when_not_enforced, headers, info)
        return FilterHeadersStatus.Continue

    def encode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        if self.x_headers is not None:
            limit, remaining, reset = self.x_headers
            headers.add("x-ratelimit-limit", limit)
            headers.add("x-ratelimit-remaining", remaining)
            headers.add("x-ratelimit-reset", reset)
        return FilterHeadersStatus.Continue
