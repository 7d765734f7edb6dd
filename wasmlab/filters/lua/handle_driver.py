"""The stream handle's coroutine driver: what ``envoy_on_request(handle)`` / ``envoy_on_response(handle)``
run in.

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

import enum
from typing import TYPE_CHECKING, Any

from ...host import async_client
from ...http import Buffer, FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus, HeaderMap
from ...http.inline_headers import (
    NO_INLINE,
    REQUEST_HEADERS_INLINE,
    RESPONSE_HEADERS_INLINE,
    RESPONSE_TRAILERS_INLINE,
)
from .luaobject import NOTHING, OBJECTS, BaseLuaObject, _ids, c_string, short
from .runtime import FAILED, FINISHED, RUN_FORGET, RUN_REQUEST, RUN_RESPONSE, RUN_RESUME, YIELDED
from .wrappers_headers import BufferWrapper, HeaderMapWrapper

if TYPE_CHECKING:
    from ...host.services import ServerContext
    from ...host.stats import Stats
    from ...http.stream_info import StreamInfo
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


class HandleDriver(BaseLuaObject):
    """The host side of ``request_handle`` / ``response_handle``: its state, its children, its
    trace, and the coroutine it drives. The Lua methods are added by the ``handle_*`` mixins."""

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
        lua_id: int = 0,
    ) -> None:
        # BaseLuaObject's fields, set here (the hot path), and the handle's number right away:
        # a handle is made to be handed to Lua (``lua_id``: the number its hook already runs with)
        self.dead = False
        self._ud = None
        self.lua_id = lua_id = lua_id or next(_ids)
        OBJECTS[lua_id] = self
        #: every object of this handle that got a number for Lua (released at the end of the stream)
        self.owned: list[BaseLuaObject] = [self]
        #: objects handed out during this run (Envoy's LuaDeathRef members): die at yield
        self.children: dict[str, BaseLuaObject] = {}
        self.filter = filt
        self.rec = filt.factory.recorder
        self.decoder = decoder
        self.hook = "envoy_on_request" if decoder else "envoy_on_response"
        self.per_route = per_route
        self.vm = vm
        self.headers = headers
        self.end_stream = end_stream

    # ---- host side -------------------------------------------------------------------------------
    @property
    def h(self) -> HandleDriver:  # type: ignore[override]
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
    def proxy(self) -> ServerContext:
        """The proxy this stream runs in (set: a filter exists only once its factory started)."""
        proxy = self.filter.proxy
        assert proxy is not None
        return proxy

    @property
    def stream_info(self) -> StreamInfo:
        """Envoy ``StreamInfo`` of this stream: what ``handle:streamInfo()`` wraps."""
        return self.filter.callbacks.stream_info

    @property
    def stats(self) -> Stats:
        """The proxy's stats: where ``handle:stats()`` counters and gauges live."""
        return self.proxy.stat_store

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
        proxy = self.proxy
        if proxy.log_enabled(level, "lua"):
            proxy.log(level, "lua", message)

    def internal_error(self, message: str, error: BaseException) -> None:
        self.proxy.log("error", "lua", message)

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
        inline = NO_INLINE if self.decoder else RESPONSE_TRAILERS_INLINE
        return self._child("trailers", lambda: HeaderMapWrapper(self, trailers, None, inline))

    def own_headers(self) -> HeaderMapWrapper:
        """The wrapper of this hook's own headers (made once per run; numbered by Lua when
        ``own_headers_id`` is set)."""
        obj = self.children.get("headers")
        if obj is None:
            inline = REQUEST_HEADERS_INLINE if self.decoder else RESPONSE_HEADERS_INLINE
            obj = self.children["headers"] = HeaderMapWrapper(self, self.headers, self, inline)
            hid = self.own_headers_id
            if hid:
                obj.lua_id = hid
                self.owned.append(obj)
                OBJECTS[hid] = obj
        return obj  # type: ignore[return-value]

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


def add_written(filt: LuaFilter, decoder: bool, headers: HeaderMap, answer: tuple[Any, ...]) -> Any:
    """The adds a hook's first run wrote down (prelude.lua, "Adds written down"), made to its own
    headers as ``headers:add`` makes them, in order; returns the run's answer without them."""
    inline = REQUEST_HEADERS_INLINE if decoder else RESPONSE_HEADERS_INLINE
    for i in range(2, len(answer), 2):
        key = answer[i]
        value = answer[i + 1]
        # C++ reads them up to a NUL byte (``c_string``), which few strings hold: tested first,
        # as the int 0 (``b"\0" in s`` costs more: bytes.__contains__ tries its operand as a
        # byte value first and raises, then clears, a TypeError for a bytes operand)
        if 0 in key:
            key = c_string(key)
        if 0 in value:
            value = c_string(value)
        name = key.decode("latin-1").lower()
        if name in inline:
            headers.add_inline(name, value.decode("latin-1"))  # (``envoy_add``)
        else:
            headers.add_lowered(name, value.decode("latin-1"))
    if decoder and filt.factory.config.clear_route_cache:
        filt.callbacks.clear_route_cache()  # as headers_modifiable() does
    status, msg = answer[0], answer[1]
    return status if msg is None else (status, msg)
