"""``envoy.filters.http.wasm``: a Proxy-Wasm plugin as an HTTP filter, as Envoy runs it.

Per stream (Envoy ``Extensions::Common::Wasm::Context``): the stream context is created lazily
when the request headers reach the filter (``proxy_on_context_create(stream, root)``), then each
filter callback calls its Proxy-Wasm counterpart and converts the answer:

* headers: 0 Continue; 1 (Pause) becomes StopAllIterationAndWatermark — nothing more reaches the
  plugin until ``proxy_continue_stream`` — unless ``allow_on_headers_stop_iteration``;
* body: 0 Continue, 1 StopIterationAndBuffer (the next call sees the whole buffered body),
  2 StopIterationAndWatermark, 3 StopIterationNoBuffer;
* trailers: 0 Continue, 1 StopIteration;
* a header map stays readable/writable until its callback returns Continue (or the stream
  continues); ``proxy_send_local_response`` makes the callback stop.

At the end of the stream: ``proxy_on_log`` (read-only maps), ``proxy_on_done``, ``proxy_on_delete``.
If the VM is failed (a trap), the stream follows the plugin's policy: FAIL_CLOSED answers 503
(``wasm_fail_stream``), FAIL_OPEN lets it through, FAIL_RELOAD tries a fresh VM first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ...config.route import ROUTING_HEADERS
from ...http import Buffer, FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus, HeaderMap
from ...proxywasm.plugin import PluginConfig, parse_plugin_config
from ...proxywasm.stream_host import StreamHost
from ...proxywasm.types import BufferType, FailurePolicy, GrpcStatus, MapType, StreamType, WasmResult
from ...proxywasm.vm import Trapped
from ..base import HttpFilterFactory, StreamFilter
from ..registry import register_http_filter
from .guard import FailAction, WasmCallGuard
from .lifecycle import WasmExtension

if TYPE_CHECKING:
    from ...config.yaml_source import Node
    from ...host.dispatcher import Dispatcher
    from ...host.services import ServerContext
    from ..base import FactoryContext

WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
_HS = FilterHeadersStatus
_DS = FilterDataStatus
_TS = FilterTrailersStatus
# What every stream's callbacks answer, read as module globals: reading an enum member off its
# class costs CPython 3.11 about 70 ns more (as in host/active_filter.py)
_HS_CONTINUE = _HS.Continue
_DS_CONTINUE = _DS.Continue
_TS_CONTINUE = _TS.Continue


def convert_headers_status(r: int | None, allow_stop: bool) -> FilterHeadersStatus:
    if r is None or r == 0:
        return _HS.Continue
    if r == 1:
        return _HS.StopIteration if allow_stop else _HS.StopAllIterationAndWatermark
    if r in (2, 3, 4):
        return _HS(r)
    return _HS.StopAllIterationAndWatermark


def convert_data_status(r: int | None) -> FilterDataStatus:
    if r is None or r == 0:
        return _DS.Continue
    return _DS(min(r, 3))


@register_http_filter
class WasmFilterFactory(WasmExtension, HttpFilterFactory):
    type_url = WASM_TYPE
    kind = "wasm"

    def __init__(self, name: str, config: Node, ctx: FactoryContext) -> None:
        super().__init__(name, config, ctx)
        config.check_fields("@type config", required=("config",))
        self.plugin: PluginConfig = parse_plugin_config(config.req("config"))

    def create_filter(self, dispatcher: Dispatcher) -> StreamFilter:
        return WasmHttpFilter(self, dispatcher)


_ON_FAIL_HEADERS = {FailAction.CONTINUE: _HS.Continue, FailAction.STOP: _HS.StopIteration}
_ON_FAIL_DATA = {FailAction.CONTINUE: _DS.Continue, FailAction.STOP: _DS.StopIterationNoBuffer}
_ON_FAIL_TRAILERS = {FailAction.CONTINUE: _TS.Continue, FailAction.STOP: _TS.StopIteration}


class WasmHttpFilter(WasmCallGuard, StreamFilter, StreamHost):
    """One stream's Wasm HTTP filter: the filter callbacks on one side, the StreamHost the
    stream context's host calls reach on the other."""

    kind = "wasm"

    # The state every callback reads or sets lives in slots, all set in __init__. The trick:
    # CPython 3.11 reads a class-level default through the generic lookup, and an instance
    # attribute is read fast only while the instance dict has not been materialized — which the
    # filter manager does when it looks at a filter's ``__dict__`` (for traits set on the
    # instance); a slot is read fast either way. (ctx, handle and failed are WasmCallGuard's.)
    __slots__ = (
        "factory",
        "plugin",
        "dispatcher",
        "ctx",
        "handle",
        "failed",
        "in_log",
        "stream_ended",
        "local_reply_sent",
        "request_headers",
        "response_headers",
    )
    # maps the plugin may touch right now (Envoy keeps pointers only while they are usable)
    request_headers: HeaderMap | None
    response_headers: HeaderMap | None
    # the rest of the per-stream state: class-level defaults, so a stream pays only for what it changes
    request_trailers: HeaderMap | None = None
    response_trailers: HeaderMap | None = None
    request_body: Buffer | None = None
    response_body: Buffer | None = None
    buffering_request = False
    buffering_response = False
    #: end_of_stream of the body callback running or last run (Envoy's one ``end_of_stream_``)
    end_of_stream = False
    fail_replied = False
    # the bodies the plugin may read or change right now (StreamHost.body_buffer)
    body_buffers: ClassVar[dict[int, str]] = {
        BufferType.HTTP_REQUEST_BODY: "request_body",
        BufferType.HTTP_RESPONSE_BODY: "response_body",
    }

    def __init__(self, factory: WasmFilterFactory, dispatcher: Dispatcher) -> None:
        self.factory = factory
        self.plugin = factory.plugin
        self.dispatcher = dispatcher
        self.ctx = None
        self.handle = None
        self.failed = False  # this stream hit a failed VM
        self.in_log = False  # proxy_on_log runs: maps are read-only
        self.stream_ended = False  # set when proxy_on_log / proxy_on_done run: the stream is complete
        self.local_reply_sent = False
        self.request_headers = None
        self.response_headers = None

    # ---- identity for the trace and for properties ---------------------------------------------------
    @property
    def stream_id(self) -> int | None:
        cb = getattr(self, "callbacks", None)
        return cb.stream_id if cb is not None else None

    @property
    def stream_info(self) -> Any:
        return self.callbacks.stream_info

    # ---- context and failure policy ----------------------------------------------------------------------
    def _ensure_context(self) -> bool:
        """The stream context, created at the first callback that needs it (Envoy creates it
        with the filter and calls ``proxy_on_context_create`` before the request headers);
        False if this stream has no usable VM (the caller applies the failure policy)."""
        if self.ctx is not None:
            return not self.failed
        if self.failed:
            return False
        plugin = self.plugin
        # the plugin's handle on this worker: WasmManager.handle_for_stream returns it as it is
        # when it is usable (PluginHandle.usable, inlined here: every stream asks); otherwise the
        # manager decides (a reload under FAIL_RELOAD, or None)
        handle = self.dispatcher.slots.get(plugin.slot)
        vm = handle.vm if handle is not None else None
        if handle is None or vm is None or vm.failed is not None or handle.root is None:
            wasm = self.factory.manager or self._server().wasm  # the first: no property lookups
            handle = wasm.handle_for_stream(plugin, self.dispatcher)
            if handle is None or handle.vm is None or handle.root is None:
                self.failed = True
                return False
            vm = handle.vm
        self.handle = handle
        root = handle.root
        assert root is not None
        ctx = self.ctx = vm.new_context(root, plugin, "http", self)
        if vm.failed is None and "proxy_on_context_create" not in vm.funcs:  # see _guarded: no call
            return True
        return not isinstance(self._guarded("proxy_on_context_create", (ctx.id, root.id)), FailAction)

    # ---- the failure policy (WasmCallGuard._guarded calls the guest) -----------------------------
    def _server(self) -> ServerContext:
        return self.callbacks.proxy

    def _fail_stream(self, trapped_here: bool = False) -> FailAction:
        """Envoy ``failStream``: the stream whose callback trapped always gets 503
        (``wasm_fail_stream``); later streams on a failed VM follow the policy — FAIL_OPEN skips the
        filter, FAIL_CLOSED (and FAIL_RELOAD while backing off) answer 503."""
        if self.fail_replied:
            return FailAction.STOP
        if not trapped_here and self.plugin.failure_policy == FailurePolicy.FAIL_OPEN:
            return FailAction.CONTINUE
        self.fail_replied = True
        self.callbacks.send_local_reply(503, b"", None, "wasm_fail_stream", GrpcStatus.UNAVAILABLE)
        return FailAction.STOP

    # ---- decoding ------------------------------------------------------------------------------------------
    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        if not self._ensure_context():
            return _ON_FAIL_HEADERS[self._fail_stream()]
        ctx = self.ctx
        if ctx is None or self.stream_ended:  # proxy_on_context_create ended the stream (a continue, a reply)
            return _HS.StopIteration
        self.request_headers = headers
        # (context_id, num_headers, end_of_stream); ABI 0.1.0 has no end_of_stream
        n = len(headers)
        vm = ctx.vm
        args = (ctx.id, n) if vm.abi_010 else (ctx.id, n, 1 if end_stream else 0)
        # self._guarded("proxy_on_request_headers", args), its common case without its frame:
        # a live VM that exports the callback is called here; anything else goes to the guard
        fn = vm.funcs.get("proxy_on_request_headers") if vm.failed is None else None
        if fn is None:
            r = self._guarded("proxy_on_request_headers", args)
        else:
            try:
                r = vm.invoke(fn, ctx, "proxy_on_request_headers", args)
            except Trapped:
                r = self._after_trap()
        if not r:  # 0 (or no such export) is Continue, by far the most common answer: no more tests
            status = _HS_CONTINUE
        elif isinstance(r, FailAction):  # (a FailAction is truthy)
            self.request_headers = None
            return _ON_FAIL_HEADERS[r]
        else:
            status = convert_headers_status(r, self.plugin.allow_on_headers_stop_iteration)
        if self.local_reply_sent:
            return _HS.StopIteration
        if status is _HS_CONTINUE:
            self.request_headers = None
        return status

    def decode_data(self, data: Buffer, end_stream: bool) -> FilterDataStatus:
        ctx = self.ctx
        if ctx is None or self.failed:
            return _DS_CONTINUE
        vm = ctx.vm
        # not vm.runs("proxy_on_request_body"), without its frame: every body chunk asks
        if vm.failed is None and "proxy_on_request_body" not in vm.info.callbacks:
            return _DS_CONTINUE
        cb = self.callbacks
        if self.buffering_request:
            cb.add_decoded_data(data)
        buffered = cb.decoding_buffer() if self.buffering_request else None
        body = self.request_body = buffered if buffered else data
        self.end_of_stream = end_stream
        r = self._guarded("proxy_on_request_body", (ctx.id, len(body), int(end_stream)))
        if isinstance(r, FailAction):
            return _ON_FAIL_DATA[r]
        status = convert_data_status(r)
        if self.local_reply_sent:
            return _DS.StopIterationNoBuffer
        self.buffering_request = status == _DS.StopIterationAndBuffer
        if status is _DS_CONTINUE:
            self.request_body = None
        return status

    def decode_trailers(self, trailers: HeaderMap) -> FilterTrailersStatus:
        if self.ctx is None or self.failed:
            return _TS_CONTINUE
        self.request_trailers = trailers
        r = self._guarded("proxy_on_request_trailers", (self.ctx.id, len(trailers)))
        if isinstance(r, FailAction):
            return _ON_FAIL_TRAILERS[r]
        if self.local_reply_sent or (r or 0) >= 1:
            return _TS.StopIteration
        self.request_trailers = None
        return _TS_CONTINUE

    # ---- encoding ----------------------------------------------------------------------------------------------
    def encode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        ctx = self.ctx
        if ctx is None or self.failed:
            return _HS_CONTINUE
        self.response_headers = headers
        n = len(headers)
        vm = ctx.vm
        args = (ctx.id, n) if vm.abi_010 else (ctx.id, n, 1 if end_stream else 0)
        # self._guarded("proxy_on_response_headers", args) without its frame (see decode_headers)
        fn = vm.funcs.get("proxy_on_response_headers") if vm.failed is None else None
        if fn is None:
            r = self._guarded("proxy_on_response_headers", args)
        else:
            try:
                r = vm.invoke(fn, ctx, "proxy_on_response_headers", args)
            except Trapped:
                r = self._after_trap()
        if not r:  # Continue (see decode_headers)
            status = _HS_CONTINUE
        elif isinstance(r, FailAction):
            self.response_headers = None
            return _ON_FAIL_HEADERS[r]
        else:
            status = convert_headers_status(r, self.plugin.allow_on_headers_stop_iteration)
        if status is _HS_CONTINUE:
            self.response_headers = None
        return status

    def encode_data(self, data: Buffer, end_stream: bool) -> FilterDataStatus:
        ctx = self.ctx
        if ctx is None or self.failed:
            return _DS_CONTINUE
        vm = ctx.vm
        # not vm.runs("proxy_on_response_body"), without its frame: every body chunk asks
        if vm.failed is None and "proxy_on_response_body" not in vm.info.callbacks:
            return _DS_CONTINUE
        cb = self.callbacks
        if self.buffering_response:
            cb.add_encoded_data(data)
        buffered = cb.encoding_buffer() if self.buffering_response else None
        body = self.response_body = buffered if buffered else data
        self.end_of_stream = end_stream
        r = self._guarded("proxy_on_response_body", (ctx.id, len(body), int(end_stream)))
        if isinstance(r, FailAction):
            return _ON_FAIL_DATA[r]
        status = convert_data_status(r)
        self.buffering_response = status == _DS.StopIterationAndBuffer
        if status is _DS_CONTINUE:
            self.response_body = None
        return status

    def encode_trailers(self, trailers: HeaderMap) -> FilterTrailersStatus:
        if self.ctx is None or self.failed:
            return _TS_CONTINUE
        self.response_trailers = trailers
        # a trap fails the stream like any other: its 503 comes after the response started, so
        # the client sees a reset (as on Envoy 1.40)
        r = self._guarded("proxy_on_response_trailers", (self.ctx.id, len(trailers)))
        if isinstance(r, FailAction):
            return _ON_FAIL_TRAILERS[r]
        if (r or 0) >= 1:
            return _TS.StopIteration
        self.response_trailers = None
        return _TS_CONTINUE

    # ---- end of stream -----------------------------------------------------------------------------------------
    def log(self, info: Any) -> None:
        self.stream_ended = True
        if self.failed:
            return
        if self.ctx is None and not self._ensure_context():
            return
        ctx = self.ctx
        assert ctx is not None
        vm = ctx.vm
        if vm.failed is None and "proxy_on_log" not in vm.funcs:  # see _guarded: no call
            return
        self.in_log = True
        try:
            self._guarded("proxy_on_log", (ctx.id,), fail_stream=False)
        finally:
            self.in_log = False

    def on_destroy(self) -> None:
        self.stream_ended = True
        ctx = self.ctx
        if ctx is None:
            return
        vm = ctx.vm
        live = not self.failed and vm.failed is None
        # a live VM runs only what the module exports (see _guarded): most export neither
        calls = live and ("proxy_on_done" in vm.funcs or "proxy_on_delete" in vm.funcs)
        if calls and not isinstance(self._guarded("proxy_on_done", (ctx.id,), fail_stream=False), FailAction):
            self._guarded("proxy_on_delete", (ctx.id,), fail_stream=False)
        vm.remove_context(ctx)
        ctx.filter = None  # break the context <-> filter cycle
        self.ctx = None

    # ---- what host calls reach (StreamHost) ----------------------------------------------------------------
    def route(self) -> Any:
        return self.callbacks.route

    def clear_route_cache(self) -> None:
        self.callbacks.clear_route_cache()

    def request_headers_edited(self, key: str | None) -> None:
        """Envoy's ``Context::onHeadersModified`` clears the route cache on every edit of the
        request headers (measured on Envoy 1.40: a plugin that removes ``x-forwarded-proto`` gets
        404). wasmlab skips it when matching again could not change the route: ``key`` is not a
        header the match reads (``ROUTING_HEADERS``) and no route matches on other headers."""
        cb = self.callbacks
        if key is None or key in ROUTING_HEADERS or cb.stream.hcm.config.route_config.reads_headers:
            cb.clear_route_cache()

    def header_map(self, map_type: int, write: bool) -> HeaderMap | None:
        if not self.in_log:
            if map_type == 0:
                return self.request_headers
            if map_type == 2:
                return self.response_headers
        cb = self.callbacks
        if self.in_log:
            if write:
                # Envoy's getMap (writes, and proxy_get_header_map_size): the maps the context
                # still holds — headers whose callback never continued (a local reply), trailers
                # it added — not the access log's
                held = (self.request_headers, self.request_trailers, self.response_headers, self.response_trailers)
                return held[map_type] if map_type < 4 else None
            if map_type == MapType.HTTP_REQUEST_HEADERS:
                return cb.request_headers
            if map_type == MapType.HTTP_RESPONSE_HEADERS:
                return cb.response_headers
            if map_type == MapType.HTTP_RESPONSE_TRAILERS:
                return cb.response_trailers
            return None
        if map_type == MapType.HTTP_REQUEST_HEADERS:
            return self.request_headers
        if map_type == MapType.HTTP_RESPONSE_HEADERS:
            return self.response_headers
        # trailers a stream has not are added from its last body callback only (Envoy's getMap:
        # a body and end_of_stream); before, the map is not there (writes BAD_ARGUMENT)
        adding = write and self.end_of_stream
        if map_type == MapType.HTTP_REQUEST_TRAILERS:
            if self.request_trailers is None and adding and self.request_body is not None:
                self.request_trailers = cb.add_decoded_trailers()
            return self.request_trailers
        if map_type == MapType.HTTP_RESPONSE_TRAILERS:
            if self.response_trailers is None and adding and self.response_body is not None:
                self.response_trailers = cb.add_encoded_trailers()
            return self.response_trailers
        return None

    # Stream control follows Envoy's ``Context``: the call answers OK at once and the action runs
    # after the current callback returns; a continue for a stream that already ended (a local
    # reply or a reset finished it) does nothing. Where Envoy 1.40 crashes (Segmentation fault)
    # — a reset or local reply from proxy_on_log/proxy_on_done, continuing the response before it
    # started, a second reset or local reply after the first one ended the stream — wasmlab
    # ignores the call and logs a warning that says so.
    def _stream_over(self) -> bool:
        return self.ctx is None or self.stream_ended

    def _ignored(self, call: str, why: str, envoy: str = "crashes on it: Segmentation fault") -> WasmResult:
        self.callbacks.proxy.log("warning", "wasm", f"{call} {why} is ignored (Envoy 1.40 {envoy})")
        return WasmResult.OK

    def _after_end(self, call: str) -> None:
        """A reset or local reply queued behind another one that already ended the stream."""
        self._ignored(call, "after the stream ended", "may reset the connection or crash here")

    def continue_stream(self, stream_type: int) -> WasmResult:
        vm = self.ctx.vm if self.ctx is not None else None
        if vm is None or stream_type not in (StreamType.HTTP_REQUEST, StreamType.HTTP_RESPONSE):
            return WasmResult.OK  # Envoy: nothing to continue, still OK
        cb = self.callbacks
        if stream_type == StreamType.HTTP_REQUEST:
            # Envoy lets go of the request headers and body at the call: the rest of the
            # callback finds them gone (BAD_ARGUMENT; the body reads empty), and what it would
            # change never reaches the upstream (the response's stay usable after continuing it)
            self.request_headers = self.request_body = None

            def go() -> None:
                if not self._stream_over():
                    self.request_headers = None
                    cb.continue_decoding()

        else:

            def go() -> None:
                if self._stream_over():
                    return
                if cb.response_headers is None:
                    self._ignored("proxy_continue_stream(HttpResponse)", "before the response started")
                    return
                self.response_headers = None
                cb.continue_encoding()

        vm.defer(go)
        return WasmResult.OK

    def close_stream(self, stream_type: int) -> WasmResult:
        vm = self.ctx.vm if self.ctx is not None else None
        if vm is None or stream_type not in (StreamType.HTTP_REQUEST, StreamType.HTTP_RESPONSE):
            return WasmResult.OK
        if self.stream_ended:
            return self._ignored("proxy_close_stream", "after the stream ended")
        cb = self.callbacks

        def reset() -> None:
            if self._stream_over():
                self._after_end("proxy_close_stream")
            else:
                cb.reset_stream("wasm_close_stream")

        vm.defer(reset)
        return WasmResult.OK

    def send_local_response(
        self, status: int, details: str, body: bytes, headers: list[tuple[str, str]], grpc_status: int | None
    ) -> WasmResult:
        vm = self.ctx.vm if self.ctx is not None else None
        if vm is None:
            return WasmResult.OK
        if self.stream_ended:
            return self._ignored("proxy_send_local_response", "after the stream ended")
        self.local_reply_sent = True
        cb = self.callbacks

        def modify(h: HeaderMap) -> None:
            for k, v in headers:
                key = k.lower()
                if key != ":status":  # Envoy sets the reply's own status over a module's ":status"
                    h.add(key, v)

        def reply() -> None:
            if self._stream_over():
                self._after_end("proxy_send_local_response")
            else:
                cb.send_local_reply(status, body, modify, details, grpc_status)

        vm.defer(reply)
        return WasmResult.OK
