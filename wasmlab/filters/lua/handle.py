"""The stream handle: what ``envoy_on_request(handle)`` / ``envoy_on_response(handle)`` get.

Envoy's ``StreamHandleWrapper`` (``filters/http/lua/lua_filter.cc``), one per hook call: it owns
the hook's coroutine and turns the script's yields into filter statuses. Only five calls suspend
the script; each sets :class:`State` and yields to the host, and the filter callback that later
brings the awaited data resumes it:

============================  ==================  =======================================
script call                   state while waiting  filter status while waiting
============================  ==================  =======================================
``body()``                    WAIT_FOR_BODY        headers: StopIteration; data:
                                                   StopIterationAndBuffer (413/500 past the limit)
``bodyChunks()`` iterator     WAIT_FOR_BODY_CHUNK  headers continue; each chunk Continue after
                                                   the script saw it
``trailers()``                WAIT_FOR_TRAILERS    Continue (the body streams past)
``httpCall()`` (synchronous)  HTTP_CALL            headers: StopIteration; data:
                                                   StopIterationAndWatermark; trailers: StopIteration
``respond()``                 RESPONDED            for ever: the local reply went out; data:
                                                   StopIterationNoBuffer
============================  ==================  =======================================

When the coroutine finishes or waits in any other state, the headers are "continued"; from then on
header edits fail (``header map can no longer be modified``) and so does ``respond()``. Every
object handed out dies when the script yields (``object used outside of proper scope``); the
handle itself lives again on resume and dies when the hook's run ends.
"""

from __future__ import annotations

import base64
import enum
from typing import TYPE_CHECKING, Any

from ...host import async_client
from ...http import Buffer, FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus, HeaderMap
from . import crypto
from .luaobject import (
    NOTHING,
    OBJECTS,
    YIELD,
    BaseLuaObject,
    LuaApiError,
    LuaArgError,
    LuaRawError,
    _ids,
    check_integer,
    check_string,
    check_type,
    export,
    lua_type,
    opt_string,
    short,
    text,
    wire,
)
from .runtime import FAILED, FINISHED, RUN_FORGET, RUN_REQUEST, RUN_RESPONSE, RUN_RESUME, YIELDED
from .wrappers import (
    BufferWrapper,
    ConnectionStreamInfoWrapper,
    ConnectionWrapper,
    HeaderMapWrapper,
    MetadataMapWrapper,
    PublicKeyWrapper,
    RouteWrapper,
    StatsScopeWrapper,
    StreamInfoWrapper,
    VirtualHostWrapper,
)

if TYPE_CHECKING:
    from .config import LuaPerRoute
    from .filter import LuaCallbacks, LuaFilter
    from .runtime import LuaVM


class State(enum.Enum):
    RUNNING = "running"  # the script runs (or has finished)
    WAIT_FOR_BODY_CHUNK = "wait_for_body_chunk"  # in the bodyChunks() iterator: resumes with the next data frame
    WAIT_FOR_BODY = "wait_for_body"  # in body(): resumes at end of stream with the whole body
    WAIT_FOR_TRAILERS = "wait_for_trailers"  # in trailers(): resumes with the trailers, or nil at end of stream
    HTTP_CALL = "http_call"  # in a synchronous httpCall(): resumes with the response
    RESPONDED = "responded"  # respond() sent a local reply: never resumes

    @property
    def holds_headers(self) -> bool:
        """Waiting here keeps the headers from the next filter (StopIteration)."""
        return self in (State.WAIT_FOR_BODY, State.HTTP_CALL, State.RESPONDED)


RUNNING = State.RUNNING  # (a module constant: an enum member lookup costs a call)

_NO_TRACE_DATA: dict[str, dict[str, Any]] = {}  # never filled: a handle makes its own dict first

# the args of hook/resume/yield trace events, one shared dict each (events are never changed)
_REASONS: dict[str, dict[str, str]] = {}
_WAITING: dict[State, dict[str, str]] = {s: {"waiting_for": s.value} for s in State}


def _reason(reason: str) -> dict[str, str]:
    args = _REASONS.get(reason)
    if args is None:
        args = _REASONS[reason] = {"reason": reason}
    return args


def _waiting_for(state: State) -> dict[str, str]:
    return _WAITING[state]


_HTTP_CALL_OPTIONS = ("asynchronous", "timeout_ms", "trace_sampled", "return_duplicate_headers", "send_xff")


class StreamHandleWrapper(BaseLuaObject):
    """``request_handle`` / ``response_handle``."""

    lua_class = "StreamHandleWrapper"
    trace_name = "handle"

    # No __slots__ here: one handle is made per hook call, so it sets only what differs per call
    # and reads the rest from these class-level defaults until a call changes them.
    _cb: LuaCallbacks | None = None
    state = State.RUNNING
    headers_continued = False
    saw_body = False
    buffered_body = False
    trailers: HeaderMap | None = None
    #: the coroutine's failure (Envoy coroutine_status_), reported by the filter
    error: str | None = None
    #: the hook's coroutine waits in Lua (the runner keeps it until resumed or forgotten)
    suspended = False
    #: the hook returned and everything it handed out is released: nothing can resume it
    finished = False
    #: the stream ended (``release``), possibly while the hook was running
    released = False
    http_request: async_client.AsyncRequest | None = None
    return_duplicate_headers = False
    public_keys: dict[bytes, tuple[int, int]] | None = None
    public_key_wrapper: PublicKeyWrapper | None = None
    #: this handle's trace event ``data`` dicts by kind (see ``_data_of``)
    _trace_data: dict[str, dict[str, Any]] = _NO_TRACE_DATA
    #: while the first run of a hook started with tracing off lasts: the number Lua gave the
    #: handle's own header map (``-lua_id``, see prelude.lua ``own_headers``), else 0
    own_headers_id = 0

    def __init__(
        self,
        filt: LuaFilter,
        decoder: bool,
        per_route: LuaPerRoute | None,
        vm: LuaVM,
        headers: HeaderMap,
        end_stream: bool,
    ) -> None:
        # BaseLuaObject's fields, set here (the hot path), and the handle's number right away:
        # a handle is made to be handed to Lua
        self.dead = False
        self._ud = None
        self.lua_id = lua_id = next(_ids)
        OBJECTS[lua_id] = self
        #: every object of this handle that got a number for Lua (released at the end of the stream)
        self.owned: list[BaseLuaObject] = [self]
        #: objects handed out during this run (Envoy's LuaDeathRef members): die at yield
        self.children: dict[str, BaseLuaObject] = {}
        self.filter = filt
        self.rec = filt.rec
        self.decoder = decoder
        self.hook = "envoy_on_request" if decoder else "envoy_on_response"
        self.per_route = per_route
        self.vm = vm
        self.headers = headers
        self.end_stream = end_stream

    # ---- host side -------------------------------------------------------------------------------
    @property  # type: ignore[override]
    def h(self) -> StreamHandleWrapper:
        """The handle an object came from: for the handle, itself (a property, not a field: a
        field would be a reference cycle, left for Python's cycle collector after every stream)."""
        return self

    @property
    def cb(self) -> LuaCallbacks:
        """This direction of the chain (made on first use: most hooks never need it)."""
        cb = self._cb
        if cb is None:
            from .filter import LuaCallbacks

            cb = self._cb = LuaCallbacks(self.filter, self.decoder, self.per_route)
        return cb

    @property
    def stream_info(self) -> Any:
        return self.cb.stream_info

    @property
    def stats(self) -> Any:
        return self.filter.proxy.stat_store

    def on_mark_dead(self) -> None:
        # headers/body/trailers wrappers do not survive yields; the script asks again
        self.own_headers_id = 0
        children = self.children
        if children:
            for child in children.values():
                child.mark_dead()
            children.clear()

    def release(self) -> None:
        """The stream is over: drop every reference into Lua this handle's run created."""
        objects = OBJECTS
        for obj in self.owned:
            obj._ud = None
            if obj.lua_id:
                objects.pop(obj.lua_id, None)
        self.owned.clear()
        self.children.clear()
        self._ud = None
        self.released = True
        if self.suspended:
            self.suspended = False
            if self.vm.runtime is not None:
                self.vm.run(RUN_FORGET, self.lua_id)

    def finish(self) -> None:
        """The hook returned (no error, no wait): its handle and everything it handed out die
        and are released at once (``mark_dead`` + ``release`` in one pass); the stream's later
        callbacks pass through."""
        objects = OBJECTS
        self.dead = True
        self.own_headers_id = 0
        for obj in self.owned:  # the handle first, then what it handed out
            obj.dead = True
            obj._ud = None
            objects.pop(obj.lua_id, None)
            if obj is not self:
                obj.on_mark_dead()
        self.owned.clear()
        children = self.children
        if children:
            for child in children.values():
                if not child.dead:
                    child.mark_dead()
            children.clear()
        self.finished = True

    def _child(self, key: str, make: Any) -> Any:
        obj = self.children.get(key)
        if obj is None:
            obj = self.children[key] = make()
        return obj

    def script_log(self, level: str, message: str) -> None:
        self.filter.script_log(level, message)

    def envoy_log(self, message: str, level: str = "debug") -> None:
        """The lines Envoy's Lua filter writes at debug/trace level (the bridge reads them back
        into trace events)."""
        proxy = self.filter.proxy
        if proxy.log_enabled(level, "lua"):
            proxy.log(level, "lua", message)

    def internal_error(self, message: str, error: BaseException) -> None:
        self.filter.proxy.log("error", "lua", message)

    # Trace events of one handle share their ``data`` dicts (as the filter manager's do: events
    # are never changed once recorded), so tracing allocates less per event.
    def trace_call(self, name: str, args: tuple[Any, ...], result: Any, error: str | None) -> None:
        rec = self.rec
        if rec.enabled:
            if error is None:
                data = self._trace_data.get("call")
                if data is None:
                    data = self._data_of("call")
            else:
                data = {**self._data_of("call"), "error": error}
            rec.record("lua", name, [short(a) for a in args], short(result), data)

    def _event(self, name: str, args: Any, result: Any = None, phase: str | None = None) -> None:
        rec = self.rec
        if rec.enabled:
            key = phase or "event"
            data = self._trace_data.get(key)
            if data is None:
                data = self._data_of(key)
            rec.record("lua", name, args, result, data)

    def _data_of(self, kind: str) -> dict[str, Any]:
        """The ``data`` of this handle's ``kind`` of event ("call", "event" or a phase), made once."""
        filt = self.filter
        if kind == "call":
            data = {"stream": filt.stream_id, "hook": self.hook, "filter": filt.name}
        else:
            data = {"stream": filt.stream_id, "filter": filt.name, "hook": self.hook}
            if kind != "event":
                data["phase"] = kind
        if self._trace_data is _NO_TRACE_DATA:
            self._trace_data = {}
        self._trace_data[kind] = data
        return data

    # ---- running the coroutine -----------------------------------------------------------------------
    def _run(self, reason: str, *args: Any) -> None:
        """Start or resume the coroutine; a failure lands in ``self.error`` (Envoy
        ``resumeCoroutine``): a Lua error, or a yield the host did not ask for."""
        first = reason == "start"
        if self.rec.enabled:
            self._event(self.hook if first else "resume", _reason(reason), None, "enter")
        if first:
            r = self.vm.run(RUN_REQUEST if self.decoder else RUN_RESPONSE, self.lua_id)
        else:
            r = self.vm.run(RUN_RESUME, self.lua_id, *args)
        self._after_run(reason, r)

    def _after_run(self, reason: str, r: Any) -> None:
        """What a run's answer (``LuaVM.run``) means for the stream."""
        if r.__class__ is int:
            status, msg = r, None
        else:
            status, msg = r
        self.suspended = status == YIELDED
        finished = status == FINISHED
        if status == FAILED:
            vm = self.vm
            error = msg.decode("latin-1") if msg else "unspecified lua error"  # a non-string error value
            if error == "not enough memory" and vm.guards.memory_limit_mb:
                # lupa's allocator refused: say which cap (Envoy has none; its LuaJIT would say the same words)
                error += f" (wasmlab classroom guard: {vm.guards.memory_limit_mb} MB per Lua state)"
            self.error = error
            outcome = f"error: {error}"
        else:
            self.envoy_log("coroutine finished" if finished else "coroutine yielded")
            if finished:
                outcome = "finished"
            elif self.state is State.RUNNING:
                self.error = "script performed an unexpected yield"
                outcome = f"error: {self.error}"
            else:
                outcome = f"yield: {self.state.value}"
                self._event("yield", _waiting_for(self.state))
        if self.rec.enabled:
            self._event(self.hook if reason == "start" else "resume", _reason(reason), outcome, "exit")
        if self.released:
            # the stream ended during the run (a local reply went out from inside it): release
            # what the rest of the run handed out, and the coroutine if it waits
            self.release()

    def start(self) -> FilterHeadersStatus:
        """Run the hook with this handle (Envoy ``StreamHandleWrapper::start``)."""
        self._run("start")
        return self.started()

    def started(self) -> FilterHeadersStatus:
        """The headers status once the hook's first run is over."""
        if self.error is not None:
            return FilterHeadersStatus.Continue
        if self.state.holds_headers:
            return FilterHeadersStatus.StopIteration
        self.headers_continued = True
        return FilterHeadersStatus.Continue

    def on_data(self, data: Buffer, end_stream: bool) -> FilterDataStatus:
        self.end_stream = end_stream
        self.saw_body = True
        if self.state is State.WAIT_FOR_BODY_CHUNK:
            self.envoy_log("resuming for next body chunk", "trace")
            chunk = BufferWrapper(self, self.headers, data)
            self.state = State.RUNNING
            self._run("body_chunk", chunk.ud())
            chunk.mark_dead()
            chunk.release()
        elif self.state is State.WAIT_FOR_BODY and end_stream:
            self.envoy_log("resuming body due to end stream")
            self.cb.add_data(data)
            self.state = State.RUNNING
            self._run("body", *self._body_result())
        elif self.state is State.WAIT_FOR_TRAILERS and end_stream:
            self.envoy_log("resuming nil trailers due to end stream")
            self.state = State.RUNNING
            self._run("trailers")
        if self.error is not None:
            return FilterDataStatus.Continue
        if self.state is State.HTTP_CALL:
            return FilterDataStatus.StopIterationAndWatermark
        if self.state is State.WAIT_FOR_BODY:
            self.envoy_log("buffering body", "trace")
            return FilterDataStatus.StopIterationAndBuffer
        if self.state is State.RESPONDED:
            return FilterDataStatus.StopIterationNoBuffer
        self.headers_continued = True
        return FilterDataStatus.Continue

    def on_trailers(self, trailers: HeaderMap) -> FilterTrailersStatus:
        self.end_stream = True
        self.trailers = trailers
        if self.state is State.WAIT_FOR_BODY_CHUNK:
            self.envoy_log("resuming nil body chunk due to trailers")
            self.state = State.RUNNING
            self._run("body_chunk")
        elif self.state is State.WAIT_FOR_BODY:
            self.envoy_log("resuming body due to trailers")
            self.state = State.RUNNING
            self._run("body", *self._body_result())
        if self.error is None and self.state is State.WAIT_FOR_TRAILERS:
            self.state = State.RUNNING
            self._run("trailers", *self._trailers_result())
        if self.error is not None:
            return FilterTrailersStatus.Continue
        if self.state in (State.HTTP_CALL, State.RESPONDED):
            return FilterTrailersStatus.StopIteration
        self.headers_continued = True
        return FilterTrailersStatus.Continue

    def on_reset(self) -> None:
        """The stream is gone (Envoy ``onReset``): drop a pending call."""
        if self.http_request is not None:
            self.http_request.cancel()
            self.http_request = None

    # ---- body and trailers -------------------------------------------------------------------------
    def _body_result(self) -> tuple[Any, ...]:
        r = self._body(False)
        return () if r is NOTHING else (r.ud(),)

    def _body(self, always_wrap: bool) -> Any:
        existing = self.children.get("body")
        if existing is not None:
            return existing
        buffered = self.cb.buffered_body()
        if buffered is None:
            self.envoy_log("end stream. no body")
            if not always_wrap:
                return NOTHING
            self.cb.add_data(Buffer())
            buffered = self.cb.buffered_body()
            if buffered is None:
                return NOTHING
        return self._child("body", lambda: BufferWrapper(self, self.headers, buffered))

    def _trailers_result(self) -> tuple[Any, ...]:
        if self.trailers is None:
            return ()
        return (self._trailers_wrapper().ud(),)

    def _trailers_wrapper(self) -> HeaderMapWrapper:
        assert self.trailers is not None
        trailers = self.trailers
        return self._child("trailers", lambda: HeaderMapWrapper(self, trailers, None))

    def headers_modifiable(self) -> bool:
        """The handle's own headers may change: they were not continued yet. About to modify: on
        the request path this clears the route cache (unless ``clear_route_cache`` is false)."""
        if self.headers_continued:
            return False
        if self.decoder:
            filt = self.filter
            if filt.factory.config.clear_route_cache:
                filt.callbacks.clear_route_cache()
        return True

    # ---- the Lua API -----------------------------------------------------------------------------------
    @export("headers", fast=lambda thunk: _fast_headers(thunk))
    def lua_headers(self, *args: Any) -> HeaderMapWrapper:
        """@return the request (or response) headers; editable until they are forwarded."""
        return self.own_headers()

    def own_headers(self) -> HeaderMapWrapper:
        """The wrapper of this hook's own headers (made once per run; numbered by Lua when
        ``own_headers_id`` is set)."""
        obj = self.children.get("headers")
        if obj is None:
            obj = self.children["headers"] = HeaderMapWrapper(self, self.headers, self)
            hid = self.own_headers_id
            if hid:
                obj.lua_id = hid
                self.owned.append(obj)
                OBJECTS[hid] = obj
        return obj  # type: ignore[return-value]

    @export("requestHeaders")
    def lua_request_headers(self, *args: Any) -> Any:
        """@return the request headers (on the response path too), or nothing."""
        rh = self.cb.request_headers()
        if rh is None:
            return NOTHING
        return self._child("request_headers", lambda: HeaderMapWrapper(self, rh, None))

    @export("body")
    def lua_body(self, *args: Any) -> Any:
        """@param 1 (boolean, optional): always_wrap_body. @return the whole body (waits for it), or
        nothing when the stream has no body."""
        always_wrap = False
        if args:
            always_wrap = bool(check_type(args, 1, "body", "boolean"))
        if self.end_stream:
            if not self.buffered_body and self.saw_body:
                raise LuaApiError("cannot call body() after body has been streamed")
            return self._body(always_wrap)
        if self.saw_body:
            raise LuaApiError("cannot call body() after body streaming has started")
        self.envoy_log("yielding for full body")
        self.state = State.WAIT_FOR_BODY
        self.buffered_body = True
        return YIELD

    @export("bodyChunks")
    def lua_body_chunks(self, *args: Any) -> Any:
        """@return an iterator: each call waits for the next data frame and returns it, nil at the end."""
        if self.saw_body:
            raise LuaApiError("cannot call bodyChunks after body processing has begun")
        return self.vm.closure(_body_iterator, self.register())

    @export("trailers")
    def lua_trailers(self, *args: Any) -> Any:
        """@return the trailers (waits for the end of the stream), or nothing if there are none."""
        if self.end_stream and self.trailers is None:
            self.envoy_log("end stream. no trailers")
            return NOTHING
        if self.trailers is not None:
            return self._trailers_wrapper()
        self.envoy_log("yielding for trailers")
        self.state = State.WAIT_FOR_TRAILERS
        return YIELD

    @export("metadata")
    def lua_metadata(self, *args: Any) -> MetadataMapWrapper:
        """@return the route's filter_metadata for this filter's name (or envoy.filters.http.lua)."""
        return self._child("metadata", lambda: MetadataMapWrapper(self, self.cb.metadata()))

    @export("route")
    def lua_route(self, *args: Any) -> RouteWrapper:
        return self._child("route", lambda: RouteWrapper(self, self.cb.route_metadata()))

    @export("virtualHost")
    def lua_virtual_host(self, *args: Any) -> VirtualHostWrapper:
        return self._child("virtual_host", lambda: VirtualHostWrapper(self, self.cb.virtual_host_metadata()))

    @export("filterContext")
    def lua_filter_context(self, *args: Any) -> MetadataMapWrapper:
        return self._child("filter_context", lambda: MetadataMapWrapper(self, self.cb.filter_context()))

    @export("streamInfo")
    def lua_stream_info(self, *args: Any) -> StreamInfoWrapper:
        return self._child("stream_info", lambda: StreamInfoWrapper(self, self.stream_info))

    @export("connectionStreamInfo")
    def lua_connection_stream_info(self, *args: Any) -> ConnectionStreamInfoWrapper:
        return self._child("connection_stream_info", lambda: ConnectionStreamInfoWrapper(self, {}))

    @export("connection")
    def lua_connection(self, *args: Any) -> ConnectionWrapper:
        return self._child("connection", lambda: ConnectionWrapper(self))

    @export("stats")
    def lua_stats(self, *args: Any) -> StatsScopeWrapper:
        return self._child("stats", lambda: StatsScopeWrapper(self, self.filter.factory.stats_scope))

    @export("clearRouteCache", 0)
    def lua_clear_route_cache(self, *args: Any) -> None:
        self.cb.clear_route_cache()

    @export("setUpstreamOverrideHost", 0)
    def lua_set_upstream_override_host(self, *args: Any) -> None:
        """@param 1 (string): an IP address (with optional port). @param 2 (boolean, optional): strict.

        wasmlab clusters have one endpoint: the override is recorded, not used."""
        host = text(check_string(args, 1, "setUpstreamOverrideHost"))
        if not _is_ip_authority(host):
            raise LuaApiError("host is not a valid IP address")
        strict = False
        if len(args) >= 2:
            strict = bool(check_type(args, 2, "setUpstreamOverrideHost", "boolean"))
        self.filter.upstream_override_host = (host, strict)

    # ---- local reply ---------------------------------------------------------------------------------
    @export("respond", 0)
    def lua_respond(self, *args: Any) -> Any:
        """Send a local reply and end the script. @param 1 (table): headers incl. ``:status``.
        @param 2 (string, optional): body."""
        if self.headers_continued:
            raise LuaApiError("respond() cannot be called if headers have been continued")
        table = check_type(args, 1, "respond", "table")
        body = opt_string(args, 2, "respond")
        headers = self._headers_from_table(table, len(args) + 1)
        status = headers.get(":status") or ""
        if not (status.isdigit() and 200 <= int(status) < 600):
            raise LuaApiError(":status must be between 200-599")
        if body is not None:
            headers.set("content-length", str(len(body)))
        self.cb.respond(headers, body)
        self.state = State.RESPONDED
        return YIELD

    def _headers_from_table(self, table: Any, nargs: int) -> HeaderMap:
        """Envoy ``buildHeadersFromTable``: keys lower-cased, values strings (numbers coerced) or
        lists of them, in Lua's iteration order. ``nargs`` counts the call's stack slots; Envoy
        walks a copy of the table pushed on top, so a bad key is at ``nargs + 2``, its value at
        ``nargs + 3``, an item of a value list at ``nargs + 5`` (LuaJIT numbers errors by slot).
        A number key is coerced in place, which breaks ``lua_next``."""
        pairs, problem = self.vm.header_pairs(table)
        if pairs is None:
            assert problem is not None
            what, tname = problem
            if what == "number_key":
                raise LuaRawError("invalid key to 'next'")
            slot = {"key": nargs + 2, "value": nargs + 3, "item": nargs + 5}[what]
            raise LuaArgError(slot, f"string expected, got {tname}")
        headers = HeaderMap()
        for k, v in pairs:
            headers.add(k.lower(), v)
        return headers

    # ---- outbound HTTP ---------------------------------------------------------------------------------
    @export("httpCall", 2)
    def lua_http_call(self, *args: Any) -> Any:
        """``httpCall(cluster, headers, body, timeout_ms[, asynchronous])`` or
        ``httpCall(cluster, headers, body, options)``. @return headers table and body (sync)."""
        nargs = len(args) + 1
        has_options = len(args) >= 4 and lua_type(args[3]) == "table"
        timeout_ms = 0
        is_async = False
        send_xff = True
        if not has_options:
            if len(args) >= 5 and not isinstance(args[4], bool):
                raise LuaApiError("http call asynchronous flag must be 'true', 'false', or empty")
            timeout_ms = check_integer(args, 4, "httpCall")
            if timeout_ms < 0:
                raise LuaApiError("http call timeout must be >= 0")
            is_async = len(args) >= 5 and bool(args[4])
            duplicates = False
        else:
            duplicates = False
            for key, value in self.vm.option_pairs(args[3]):
                if not isinstance(key, bytes):
                    raise LuaArgError(nargs + 2, f"string expected, got {lua_type(key)}")
                name = text(key)
                if name not in _HTTP_CALL_OPTIONS:
                    raise LuaApiError(f'"{name}" is not valid key for httpCall() options')
                if name == "asynchronous":
                    is_async = _truthy(value)
                elif name == "timeout_ms":
                    timeout_ms = check_integer((value,), 1, "httpCall") if _is_number(value) else None  # type: ignore[assignment]
                    if timeout_ms is None:
                        raise LuaArgError(nargs + 3, f"number expected, got {lua_type(value)}")
                    if timeout_ms < 0:
                        raise LuaApiError("http call timeout must be >= 0")
                elif name == "return_duplicate_headers":
                    duplicates = _truthy(value)
                elif name == "send_xff":
                    send_xff = _truthy(value)
        cluster = text(check_string(args, 1, "httpCall"))
        table = check_type(args, 2, "httpCall", "table")
        body = opt_string(args, 3, "httpCall")
        proxy = self.filter.proxy
        if cluster not in proxy.clusters:
            raise LuaApiError("http call cluster invalid. Must be configured")
        headers = self._headers_from_table(table, nargs)
        if headers.get(":path") is None or headers.get(":method") is None or headers.get(":authority") is None:
            raise LuaApiError("http call headers must include ':path', ':method', and ':authority'")
        if body is not None:
            headers.set("content-length", str(len(body)))
        timeout_s = timeout_ms / 1000 if timeout_ms else None
        if is_async:
            async_client.send(
                proxy, self.filter.dispatcher, cluster, headers, body or b"", timeout_s, _ignore, send_xff=send_xff
            )
            return NOTHING
        self.http_request = async_client.send(
            proxy, self.filter.dispatcher, cluster, headers, body or b"", timeout_s, self._on_http_complete,
            send_xff=send_xff,
        )  # fmt: skip
        self.state = State.HTTP_CALL
        self.return_duplicate_headers = duplicates
        return YIELD

    def _on_http_complete(self, response: async_client.AsyncResponse) -> None:
        """The call's answer, on this worker (Envoy ``onSuccess``/``onFailure``)."""
        self.http_request = None
        if self.filter.destroyed:
            return
        if response.headers is None:
            self.envoy_log("async HTTP failure")
        self.envoy_log("async HTTP response complete")
        if response.headers is None:
            headers = HeaderMap([(":status", "503")])
            body = b"upstream failure"
        else:
            headers, body = response.headers, response.body
        if self.return_duplicate_headers:
            grouped: dict[str, list[str]] = {}
            for k, v in headers:
                grouped.setdefault(k, []).append(v)
            flat: list[Any] = []
            for k, vs in grouped.items():
                flat += [wire(k), wire(vs[0]) if len(vs) == 1 else self.vm.table([wire(v) for v in vs])]
        else:
            flat = []
            for k, v in headers:
                flat += [wire(k), wire(v)]
        table = self.vm.table_from_pairs(flat)
        if self.state is not State.HTTP_CALL:
            return
        self.state = State.RUNNING
        self.mark_live()
        self._run("http_response", table, body if body else None)
        if self.error is None:
            self.mark_dead()
        else:
            self.filter.script_error(self.error)
        if self.state is State.RUNNING:
            self.headers_continued = True
            self.cb.continue_iteration()

    # ---- utilities ---------------------------------------------------------------------------------------
    @export("base64Escape")
    def lua_base64_escape(self, *args: Any) -> bytes:
        """@param 1 (string): bytes. @return standard base64 with padding."""
        return base64.b64encode(check_string(args, 1, "base64Escape"))

    @export("base64Decode")
    def lua_base64_decode(self, *args: Any) -> Any:
        """@param 1 (string): base64 (padding optional). @return the bytes, or nil if malformed."""
        return _b64decode(check_string(args, 1, "base64Decode"))

    @export("timestamp")
    def lua_timestamp(self, *args: Any) -> float:
        """@param 1 (EnvoyTimestampResolution, optional): only MILLISECOND. @return ms since epoch."""
        unit = opt_string(args, 1, "timestamp")
        if unit not in (None, b"", b"0"):
            raise LuaApiError("timestamp format must be MILLISECOND.")
        return float(self.filter.proxy.clock.wall_ns() // 1_000_000)

    @export("timestampString")
    def lua_timestamp_string(self, *args: Any) -> bytes:
        """@param 1 (EnvoyTimestampResolution, optional): MILLISECOND (default) or MICROSECOND."""
        unit = opt_string(args, 1, "timestampString")
        now = self.filter.proxy.clock.wall_ns()
        if unit in (None, b"", b"0"):
            return str(now // 1_000_000).encode()
        if unit == b"1":
            return str(now // 1_000).encode()
        raise LuaApiError("timestamp format must be MILLISECOND or MICROSECOND.")

    @export("importPublicKey")
    def lua_import_public_key(self, *args: Any) -> PublicKeyWrapper:
        """@param 1 (string): DER public key. @param 2 (number): its length. @return a key object."""
        der = check_string(args, 1, "importPublicKey")
        n = check_integer(args, 2, "importPublicKey")
        if self.public_key_wrapper is None:  # Envoy keeps the first key of the run
            key = crypto.import_rsa_public_key(der[: max(0, n)])
            if key is None:
                self.public_key_wrapper = PublicKeyWrapper(self, b"")
            else:
                if self.public_keys is None:
                    self.public_keys = {}
                self.public_keys[der[: max(0, n)]] = key
                self.public_key_wrapper = PublicKeyWrapper(self, der)
        return self.public_key_wrapper

    @export("verifySignature", 2)
    def lua_verify_signature(self, *args: Any) -> tuple[Any, Any]:
        """@param 1 (string): hash (sha1...sha512). @param 2 (string): key from importPublicKey.
        @param 3 (string): signature. @param 4 (number): its length. @param 5 (string): data.
        @param 6 (number): its length. @return true, nil or false, error."""
        hash_name = text(check_string(args, 1, "verifySignature"))
        key_str = check_string(args, 2, "verifySignature")
        key = self.public_keys.get(key_str) if self.public_keys is not None else None
        if key is None:
            raise LuaApiError("invalid public key")
        sig = check_string(args, 3, "verifySignature")
        sig_len = check_integer(args, 4, "verifySignature")
        data = check_string(args, 5, "verifySignature")
        data_len = check_integer(args, 6, "verifySignature")
        ok, err = crypto.verify(hash_name, key, sig[:sig_len], data[:data_len])
        return (True, None) if ok else (False, err.encode())


def _fast_headers(thunk: Any) -> Any:
    """``handle:headers()`` in one step (see ``export``): a live handle."""
    objects = OBJECTS

    def headers(obj_id: int, *args: Any) -> Any:
        h = objects.get(obj_id)
        if h is None or h.dead:
            return thunk(obj_id, *args)
        obj = h.children.get("headers") or h.own_headers()
        if h.rec.enabled:
            h.trace_call("handle:headers", args, obj, None)
        return 6, HeaderMapWrapper.lua_number, obj.lua_id or obj.register()

    return headers


def _body_iterator(handle_id: int) -> tuple[Any, ...]:
    """One step of the bodyChunks() iterator (a Lua closure over the handle, as in Envoy)."""
    h = OBJECTS.get(handle_id)
    if not isinstance(h, StreamHandleWrapper) or h.dead:
        return 1, b"object used outside of proper scope"
    h.trace_call("handle:bodyChunks<iterator>", (), None, None)
    if h.end_stream:
        h.envoy_log("body complete. no more body chunks")
        return (3,)
    h.envoy_log("yielding for next body chunk")
    h.state = State.WAIT_FOR_BODY_CHUNK
    return (2,)


def _ignore(_response: Any) -> None:
    """Callbacks of an asynchronous httpCall: the answer is dropped."""


def _truthy(v: Any) -> bool:
    return v is not None and v is not False


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int | float):
        return True
    if isinstance(v, bytes):
        from .luaobject import string_to_number

        return string_to_number(v) is not None
    return False


def _is_ip_authority(host: str) -> bool:
    import ipaddress

    h = host
    if h.startswith("["):
        end = h.find("]")
        if end < 0:
            return False
        h, rest = h[1:end], h[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return False
    elif h.count(":") == 1:
        h, port = h.split(":")
        if not port.isdigit():
            return False
    try:
        ipaddress.ip_address(h)
    except ValueError:
        return False
    return True


_B64 = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _b64decode(s: bytes) -> bytes | None:
    core = s.rstrip(b"=")
    pad = len(s) - len(core)
    if pad > 2 or any(c not in _B64 for c in core) or len(core) % 4 == 1:
        return None
    if pad and (len(core) + pad) % 4:
        return None
    try:
        return base64.b64decode(core + b"=" * (-len(core) % 4))
    except ValueError:
        return None
