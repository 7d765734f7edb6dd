"""``envoy.filters.http.lua``: the factory (per config) and the filter (per stream).

What Envoy does (``filters/http/lua/lua_filter.cc``, ``config.cc``) and wasmlab copies:

* config load: every script compiles and runs once in a state on the main thread (a syntax or
  top-level error rejects the config: ``script load error: ...``); a script without a hook is
  legal (``envoy_on_request() function not found. Lua filter will not hook requests.``);
* each worker builds its own state per script on its own thread (``lua.lua_vm_count`` grows by
  workers + 1 per script): globals are never shared between workers or scripts;
* per request, the script is chosen from the most specific ``LuaPerRoute``: ``disabled`` → none,
  ``name`` → ``source_codes[name]`` (none if missing), ``source_code`` → the route's own,
  otherwise the default; the same choice again for the response;
* each hook call counts ``executions``; a failing hook (Lua error, API misuse, unexpected yield)
  is logged as ``script log: <message>`` at error level, counts ``errors``, abandons both hook
  coroutines of the stream and lets the stream go on with the edits made so far (fail open).

Stats live under ``http.<hcm stat_prefix>.lua.[<stat_prefix>.]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...config.route import per_route_config
from ...errors import ConfigError
from ...http import Buffer, FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus, HeaderMap
from ..base import HttpFilterFactory, StreamFilter
from ..registry import register_http_filter
from .config import LUA_PER_ROUTE_TYPE, LUA_TYPE, LuaConfig, LuaPerRoute, LuaScript, parse_lua, parse_lua_per_route
from .handle import RUNNING, State, StreamHandleWrapper
from .handle_driver import add_written
from .luaobject import UNBORN, LuaApiError, _ids
from .runtime import FINISHED, RUN_REQUEST_UNTRACED, RUN_RESPONSE_UNTRACED, Guards, LuaVM, ScriptLoadError

if TYPE_CHECKING:
    from ...config.yaml_source import Node
    from ...host.dispatcher import Dispatcher
    from ...host.services import ServerContext
    from ...host.stats import Stats
    from ...trace.recorder import Recorder
    from ..base import FactoryContext


# the statuses a stream mostly gets, as module constants (an enum member lookup costs a call)
_HEADERS_CONTINUE = FilterHeadersStatus.Continue
_DATA_CONTINUE = FilterDataStatus.Continue
_TRAILERS_CONTINUE = FilterTrailersStatus.Continue


@register_http_filter
class LuaFilterFactory(HttpFilterFactory):
    """The parsed ``Lua`` config and its Lua states (Envoy ``FilterConfig`` + ``PerLuaCodeSetup``)."""

    type_url = LUA_TYPE
    per_route_type_urls = (LUA_PER_ROUTE_TYPE,)
    kind = "lua"
    #: the proxy's, kept by ``start_main`` for the streams (each reads them from here)
    recorder: Recorder
    stat_store: Stats

    def __init__(self, name: str, config: Node, ctx: FactoryContext) -> None:
        super().__init__(name, config, ctx)
        self.config: LuaConfig = parse_lua(config)
        sp = self.config.stat_prefix
        self.stats_scope = f"http.{ctx.stat_prefix}.lua." + (f"{sp}." if sp else "")
        self.executions_stat = self.stats_scope + "executions"
        self.guards = Guards()
        #: every script this filter may run: its own plus the routes' ``source_code``s
        self.scripts: list[LuaScript] = self.config.scripts()
        self._main_vms: list[LuaVM] = []
        self._vm_count = 0
        #: ``select``'s last route and answer (a route never matches the sentinel)
        self._last_select: tuple[Any, tuple[LuaScript | None, LuaPerRoute | None]] = (object(), (None, None))
        #: ``hook_setup``'s last route, worker and answer (a route never matches the sentinel)
        self.last_setup: tuple[Any, Any, tuple[LuaVM, LuaPerRoute | None] | None] = (object(), None, None)

    @classmethod
    def parse_per_route(cls, node: Node) -> LuaPerRoute:
        return parse_lua_per_route(node)

    # ---- lifecycle -------------------------------------------------------------------------------
    def start_main(self, proxy: ServerContext) -> None:
        """Config load: find the routes' scripts, then load every script once on the main thread."""
        super().start_main(proxy)
        self.recorder = proxy.recorder
        self.stat_store = proxy.stat_store
        self.log_enabled = proxy.log_enabled
        self.lua_log_enabled = proxy.loggers.enabled
        try:
            self.guards = Guards.from_options(proxy.options)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        for pr in self._per_route_configs(proxy):
            if pr.script is not None and pr.script not in self.scripts:
                self.scripts.append(pr.script)
        for script in self.scripts:
            vm = self._create_vm(script, "main")
            if vm.on_request is None:
                proxy.log("info", "lua", "envoy_on_request() function not found. Lua filter will not hook requests.")
            if vm.on_response is None:
                proxy.log("info", "lua", "envoy_on_response() function not found. Lua filter will not hook responses.")
            self._main_vms.append(vm)
        # Envoy lists its counters from the start, at 0
        proxy.stat_store.inc(self.stats_scope + "errors", 0)
        proxy.stat_store.inc(self.stats_scope + "executions", 0)
        self._vm_count = len(self.scripts) * (len(proxy.workers) + 1)
        proxy.stat_store.gauge_add("lua.lua_vm_count", self._vm_count)

    def start_worker(self, dispatcher: Dispatcher) -> None:
        for script in self.scripts:
            self.vm_for(script, dispatcher)

    def stop_worker(self, dispatcher: Dispatcher) -> None:
        self._forget_setup()
        for script in self.scripts:
            vm = dispatcher.slots.pop(("lua", script), None)
            if vm is not None:
                self._record_vm("destroy", script, dispatcher.name)
                vm.close()

    def stop_main(self) -> None:
        self._forget_setup()
        for vm in self._main_vms:
            self._record_vm("destroy", vm.script, "main")
            vm.close()
        self._main_vms.clear()
        if self.proxy is not None and self._vm_count:
            self.proxy.stat_store.gauge_add("lua.lua_vm_count", -self._vm_count)
            self._vm_count = 0

    def create_filter(self, dispatcher: Dispatcher) -> LuaFilter:
        return LuaFilter(self, dispatcher)

    # ---- Lua states ------------------------------------------------------------------------------
    def vm_for(self, script: LuaScript, dispatcher: Dispatcher) -> LuaVM | None:
        """This worker's state for ``script`` (created on first use if the route was not seen)."""
        key = ("lua", script)
        vm = dispatcher.slots.get(key)
        if vm is None:
            try:
                vm = self._create_vm(script, dispatcher.name)
            except ConfigError as e:  # top-level code that passed on main failed here
                assert self.proxy is not None
                self.proxy.log("error", "lua", f"cannot create the Lua state on {dispatcher.name}: {e}")
                return None
            dispatcher.slots[key] = vm
        return vm

    def replace_vm(self, script: LuaScript, dispatcher: Dispatcher, why: str) -> None:
        """Classroom guard: a state left over its memory cap gets a fresh one (globals are lost)."""
        assert self.proxy is not None
        old = dispatcher.slots.pop(("lua", script), None)
        self._forget_setup()
        self.proxy.log(
            "warning",
            "lua",
            f"wasmlab: the Lua state of {script.label} on {dispatcher.name} {why}; it is replaced by a fresh "
            "state (its globals are lost)",
        )
        if old is not None:
            self._record_vm("destroy", script, dispatcher.name)
            old.close()
        self.vm_for(script, dispatcher)

    def _create_vm(self, script: LuaScript, thread: str) -> LuaVM:
        try:
            vm = LuaVM(script, self.guards, thread)
        except ScriptLoadError as e:
            raise script.error(f"script load error: {e}") from None
        self._record_vm("create", script, thread, vm)
        return vm

    def _record_vm(self, what: str, script: LuaScript, thread: str, vm: LuaVM | None = None) -> None:
        proxy = self.proxy
        if proxy is None or not proxy.recorder.enabled:
            return
        args: dict[str, Any] = {"filter": self.name, "script": script.label, "runtime": "luajit"}
        if vm is not None:
            args["hooks"] = [
                n for n, f in (("envoy_on_request", vm.on_request), ("envoy_on_response", vm.on_response)) if f
            ]
            args["guards"] = {
                "instruction_limit": self.guards.instruction_limit,
                "memory_limit_mb": self.guards.memory_limit_mb,
            }
        proxy.recorder.record("vm", what, args, None, {"kind": "lua", "filter": self.name}, vm=f"lua:{script.label}")

    def _per_route_configs(self, proxy: ServerContext) -> list[LuaPerRoute]:
        """The ``LuaPerRoute`` entries for this filter in the HCM that owns it."""
        out: list[LuaPerRoute] = []
        for hcm in proxy.hcms.values():
            if not any(fc.factory is self for fc in hcm.config.http_filters):
                continue
            rc = hcm.config.route_config
            configs = [rc.per_filter_config]
            for vh in rc.virtual_hosts:
                configs += [vh.per_filter_config, *(r.per_filter_config for r in vh.routes)]
            for cfg in configs:
                pr = cfg.get(self.name)
                if isinstance(pr, LuaPerRoute):
                    out.append(pr)
        return out

    def select(self, route: Any) -> tuple[LuaScript | None, LuaPerRoute | None]:
        """The script for a route (Envoy's per-route resolution), and the per-route config.
        (The answer for the last route asked is kept: routes are configuration, it never changes.)"""
        last_route, answer = self._last_select
        if route is not last_route:
            answer = self._select(route)
            self._last_select = (route, answer)
        return answer

    def hook_setup(self, route: Any, dispatcher: Dispatcher) -> tuple[LuaVM, LuaPerRoute | None] | None:
        """What a hook call on ``route`` runs with on this worker: the state of the route's
        script and the per-route config; None when the route runs no script (or its state
        could not be made). ``select`` + ``vm_for``; the answer is kept in ``last_setup`` with
        its route and worker (the script a route chooses is configuration), which the filter
        reads before calling this. Closing a state (``replace_vm``, a worker's or the main
        thread's stop) forgets it."""
        script, per_route = self.select(route)
        if script is None:
            answer = None
        else:
            vm = dispatcher.slots.get(("lua", script)) or self.vm_for(script, dispatcher)
            if vm is None:
                return None  # (not kept: the next request tries, and logs, again)
            answer = (vm, per_route)
        self.last_setup = (route, dispatcher, answer)
        return answer

    def _forget_setup(self) -> None:
        """A state was closed: ``last_setup`` may name it."""
        self.last_setup = (object(), None, None)

    def _select(self, route: Any) -> tuple[LuaScript | None, LuaPerRoute | None]:
        pr = per_route_config(route, self.name)
        if isinstance(pr, LuaPerRoute):
            if pr.disabled:
                return None, pr
            if pr.name:
                return self.config.source_codes.get(pr.name), pr
            if pr.script is not None:
                return pr.script, pr
        return self.config.default, pr if isinstance(pr, LuaPerRoute) else None


def _adopt_unborn(
    lua_id: int, filt: LuaFilter, decoder: bool, per_route: LuaPerRoute | None, vm: LuaVM, headers: HeaderMap, end: bool
) -> StreamHandleWrapper:
    """``UNBORN``'s maker: ``filt.adopt`` for a hook started untraced (a plain function, so an
    entry needs no bound method made per hook)."""
    return filt.adopt(lua_id, decoder, per_route, vm, headers, end, True)


class LuaCallbacks:
    """What a handle needs from its direction of the chain (Envoy's Lua ``FilterCallbacks``,
    with ``DecoderCallbacks`` and ``EncoderCallbacks`` as the two implementations)."""

    __slots__ = ("filter", "decoder", "per_route")

    def __init__(self, filt: LuaFilter, decoder: bool, per_route: LuaPerRoute | None) -> None:
        self.filter = filt
        self.decoder = decoder
        self.per_route = per_route

    @property
    def _cb(self) -> Any:
        return self.filter.callbacks

    def add_data(self, data: Buffer) -> None:
        if self.decoder:
            self._cb.add_decoded_data(data)
        else:
            self._cb.add_encoded_data(data)

    def buffered_body(self) -> Buffer | None:
        return self._cb.decoding_buffer() if self.decoder else self._cb.encoding_buffer()

    def continue_iteration(self) -> None:
        if self.decoder:
            self._cb.continue_decoding()
        else:
            self._cb.continue_encoding()

    def on_headers_modified(self) -> None:
        # request path only: an edit clears the route cache unless clear_route_cache is false
        if self.decoder and self.filter.factory.config.clear_route_cache:
            self._cb.clear_route_cache()

    def clear_route_cache(self) -> None:
        if self.decoder:
            self._cb.clear_route_cache()

    def request_headers(self) -> HeaderMap | None:
        return self._cb.request_headers

    def respond(self, headers: HeaderMap, body: bytes | None) -> None:
        """Envoy ``DecoderCallbacks::respond``: ``sendLocalReply``. Envoy's filter manager only
        *prepares* a local reply asked for while a decoder callback runs and sends it once that
        callback returned (``executeLocalReplyIfPrepared``), after the Lua filter marked the
        request handle dead: so the ``envoy_on_response`` that the reply runs finds a request
        handle kept in a global dead. Here the filter sends it itself when its callback ends
        (``send_deferred_reply``). From a synchronous ``httpCall``'s answer (no callback running)
        the reply goes out at once, the request handle still live, as in Envoy."""
        if not self.decoder:
            raise LuaApiError("respond not currently supported in the response path")
        status = int((headers.get(":status") or "0").strip(" \t\n\v\f\r"))  # (checked by lua_respond)
        extra = [(k, v) for k, v in headers if k != ":status"]

        def modify(h: HeaderMap) -> None:
            for k, v in extra:
                h.add(k, v)

        if self.filter.in_http_callback:
            self._cb.send_local_reply(status, body or b"", modify, "lua_response")
        else:
            self.filter.deferred_reply = (status, body or b"", modify)

    # ---- metadata ---------------------------------------------------------------------------------
    def _route(self) -> Any:
        return self._cb.route

    def metadata(self) -> dict[str, Any]:
        route = self._route()
        if route is None:
            return {}
        md = route.metadata
        name = self.filter.name
        if name in md:
            return md[name] or {}
        return md.get("envoy.filters.http.lua") or {}

    def route_metadata(self) -> dict[str, Any]:
        route = self._route()
        if route is None:
            return {}
        return route.metadata.get(self.filter.name) or {}

    def virtual_host_metadata(self) -> dict[str, Any]:
        route = self._route()
        vh = route.virtual_host if route is not None else None
        if vh is None:
            return {}
        return vh.metadata.get(self.filter.name) or {}

    def filter_context(self) -> dict[str, Any]:
        if self.per_route is not None and self.per_route.filter_context is not None:
            return self.per_route.filter_context
        return self.filter.factory.config.filter_context


class LuaFilter(StreamFilter):
    """One stream through the Lua filter (Envoy ``Lua::Filter``)."""

    kind = "lua"
    # defaults until a stream sets them (one filter per stream: set only what differs)
    request_handle: StreamHandleWrapper | None = None
    response_handle: StreamHandleWrapper | None = None
    destroyed = False
    #: what the script asked for that wasmlab records but does not model (no HTTP/1 status
    #: line, one endpoint per cluster): setHttp1ReasonPhrase, setUpstreamOverrideHost
    http1_reason_phrase: str | None = None
    #: the handles made on this stream (a tuple: most streams make none, see ``_do_headers``,
    #: and the rest one or two)
    _handles: tuple[StreamHandleWrapper, ...] = ()
    #: a ``respond()`` made during one of this filter's decoder callbacks, sent when it returns
    deferred_reply: tuple[int, bytes, Any] | None = None
    #: a synchronous ``httpCall``'s answer resumes the request hook (no filter callback runs)
    in_http_callback = False

    def __init__(self, factory: LuaFilterFactory, dispatcher: Dispatcher) -> None:
        # (all a stream sets: what is the same for every stream of the factory is read from it)
        self.factory = factory
        self.dispatcher = dispatcher

    @property
    def proxy(self) -> ServerContext:
        proxy = self.factory.proxy
        assert proxy is not None, "streams start after the factory's start_main"
        return proxy

    @property
    def rec(self) -> Recorder:
        return self.factory.recorder

    @property
    def name(self) -> str:
        return self.factory.name

    @property
    def stream_id(self) -> int:
        return self.callbacks.stream_id

    # ---- logging and errors ----------------------------------------------------------------------
    def script_log(self, level: str, message: str) -> None:
        self.proxy.log(level, "lua", f"script log: {message}")

    def script_error(self, message: str) -> None:
        """Envoy ``scriptError``: count, log, and drop both hook coroutines (fail open)."""
        self.proxy.stat_store.inc(self.factory.stats_scope + "errors")
        self.script_log("error", message)
        if self.rec.enabled:
            self.rec.record("lua", "error", {"message": message}, None, {"stream": self.stream_id, "filter": self.name})
        for attr in ("request_handle", "response_handle"):
            h = getattr(self, attr)
            if h is not None:
                h.mark_dead()
                setattr(self, attr, None)
        self._check_memory()

    def _check_memory(self) -> None:
        guards = self.factory.guards
        if not guards.memory_limit_mb:
            return
        for h in self._handles:
            vm = h.vm
            if vm.runtime is not None and vm.memory_kb() > guards.memory_limit_mb * 1024:
                cur = self.dispatcher.slots.get(("lua", vm.script))
                if cur is vm:
                    self.factory.replace_vm(vm.script, self.dispatcher, "is still over its memory limit after an error")

    # ---- headers: start a hook -------------------------------------------------------------------
    def _do_headers(self, decoder: bool, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        """Start the direction's hook, if the route runs a script that has one.

        Tracing off, the hook's first run starts before its handle is made: most hooks only edit
        headers, which Lua answers itself (``handle:headers()``, and ``add``s written down: see
        prelude.lua), so they never call into the host and need no handle at all; the first call
        that does makes it (``UNBORN``, ``materialize``). This path is the hot one (every request
        through a Lua filter), so it is one function: each call saved here is saved twice per
        request."""
        factory = self.factory
        route = self.callbacks.route
        dispatcher = self.dispatcher
        # ``hook_setup``'s last answer, read here (one call less per hook): kept for a route and
        # a worker until a state closes
        last_route, last_dispatcher, setup = factory.last_setup
        if route is not last_route or dispatcher is not last_dispatcher:
            setup = factory.hook_setup(route, dispatcher)
        if setup is None:
            return _HEADERS_CONTINUE
        vm, per_route = setup
        if (vm.on_request if decoder else vm.on_response) is None:
            return _HEADERS_CONTINUE
        factory.stat_store.inc(factory.executions_stat)
        if factory.recorder.enabled:
            handle = self.adopt(next(_ids), decoder, per_route, vm, headers, end_stream)
            return self._after_start(handle, handle.start())
        lua_id = next(_ids)
        UNBORN[lua_id] = (_adopt_unborn, self, decoder, per_route, vm, headers, end_stream)
        try:
            r = vm.run(RUN_REQUEST_UNTRACED if decoder else RUN_RESPONSE_UNTRACED, lua_id)
        finally:
            unborn = UNBORN.pop(lua_id)
        if r.__class__ is tuple and len(r) > 2:
            r = add_written(self, decoder, headers, r)
        if unborn.__class__ is tuple:  # no call needed the handle
            if r == FINISHED:
                if factory.lua_log_enabled("debug", "lua"):
                    self.proxy.log("debug", "lua", "coroutine finished")
                return _HEADERS_CONTINUE
            handle = self.adopt(lua_id, decoder, per_route, vm, headers, end_stream, True)
        else:
            handle = unborn
            if r == FINISHED and handle.state is RUNNING:
                if factory.lua_log_enabled("debug", "lua"):
                    self.proxy.log("debug", "lua", "coroutine finished")
                handle.finish()
                if decoder:
                    self.request_handle = None
                else:
                    self.response_handle = None
                return _HEADERS_CONTINUE
        handle._after_run("start", r)
        return self._after_start(handle, handle.started())

    def _after_start(self, handle: StreamHandleWrapper, status: FilterHeadersStatus) -> FilterHeadersStatus:
        """A hook's first run is over and it has a handle: report its error, or let its handle
        die until the callback that resumes it, or finish it; then send a local reply it asked
        for. ``status``: the headers status the run left."""
        if handle.error is not None:
            self.script_error(handle.error)
        elif handle.suspended or handle.state is not State.RUNNING:
            handle.mark_dead()
        else:
            # the hook returned: later body and trailers callbacks have nothing to resume
            handle.finish()
            if handle.decoder:
                self.request_handle = None
            else:
                self.response_handle = None
        if self.deferred_reply is not None:
            self.send_deferred_reply()
        return status

    def send_deferred_reply(self) -> None:
        """Send the local reply ``respond()`` asked for during the callback that just ended (see
        ``LuaCallbacks.respond``)."""
        reply = self.deferred_reply
        assert reply is not None
        self.deferred_reply = None
        if not self.destroyed:
            self.callbacks.send_local_reply(*reply, "lua_response")

    def adopt(
        self,
        lua_id: int,
        decoder: bool,
        per_route: LuaPerRoute | None,
        vm: LuaVM,
        headers: HeaderMap,
        end_stream: bool,
        untraced_run: bool = False,
    ) -> StreamHandleWrapper:
        """The handle of a hook call (Envoy's ``StreamHandleWrapper``), numbered ``lua_id``;
        ``untraced_run``: made for a hook that started without it (see ``_do_headers``), its
        first run answers ``handle:headers()`` in Lua."""
        handle = StreamHandleWrapper(self, decoder, per_route, vm, headers, end_stream, lua_id)
        if untraced_run:
            handle.own_headers_id = -lua_id
        self._handles += (handle,)
        if decoder:
            self.request_handle = handle
        else:
            self.response_handle = handle
        return handle

    def decode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        return self._do_headers(True, headers, end_stream)

    def encode_headers(self, headers: HeaderMap, end_stream: bool) -> FilterHeadersStatus:
        return self._do_headers(False, headers, end_stream)

    # ---- body and trailers: resume a waiting hook ------------------------------------------------
    def _do_data(self, handle: StreamHandleWrapper | None, data: Buffer, end_stream: bool) -> FilterDataStatus:
        if handle is None:
            return _DATA_CONTINUE
        handle.mark_live()
        status = handle.on_data(data, end_stream)
        if handle.error is None:
            handle.mark_dead()
        else:
            self.script_error(handle.error)
        if self.deferred_reply is not None:
            self.send_deferred_reply()
        return status

    def _do_trailers(self, handle: StreamHandleWrapper | None, trailers: HeaderMap) -> FilterTrailersStatus:
        if handle is None:
            return _TRAILERS_CONTINUE
        handle.mark_live()
        status = handle.on_trailers(trailers)
        if handle.error is None:
            handle.mark_dead()
        else:
            self.script_error(handle.error)
        if self.deferred_reply is not None:
            self.send_deferred_reply()
        return status

    # (the common case, no hook waiting, is answered here: one Python frame less per body chunk)
    def decode_data(self, data: Buffer, end_stream: bool) -> FilterDataStatus:
        h = self.request_handle
        return _DATA_CONTINUE if h is None else self._do_data(h, data, end_stream)

    def encode_data(self, data: Buffer, end_stream: bool) -> FilterDataStatus:
        h = self.response_handle
        return _DATA_CONTINUE if h is None else self._do_data(h, data, end_stream)

    def decode_trailers(self, trailers: HeaderMap) -> FilterTrailersStatus:
        return self._do_trailers(self.request_handle, trailers)

    def encode_trailers(self, trailers: HeaderMap) -> FilterTrailersStatus:
        return self._do_trailers(self.response_handle, trailers)

    # ---- end of stream ---------------------------------------------------------------------------
    def on_destroy(self) -> None:
        self.destroyed = True
        if self._handles:  # (else there is nothing to drop)
            for h in self._handles:
                if not h.finished:
                    h.on_reset()
                    h.mark_dead()
                    h.release()
            self._handles = ()
            self.request_handle = self.response_handle = None
