"""ActiveFilter: one filter's place in one direction of a stream's chain (Envoy
``ActiveStreamFilterBase`` in ``source/common/http/filter_manager.cc``).

It keeps the filter's iteration state and applies a callback's status the way Envoy's
``commonHandleAfter*Callback`` does; ``common_continue`` is Envoy's ``commonContinue`` (what
``continue_decoding()``/``continue_encoding()`` run).

Also here, what the filter manager looks up rather than works out per stream: the six callbacks
(name, call-state bit, status enum, trace shape) and each filter class's traits (its kind, its
directions, which callbacks it leaves as StreamFilter's pass-through defaults).
"""

from __future__ import annotations

import enum
import traceback
from typing import TYPE_CHECKING, Any

from ..errors import describe
from ..http import Buffer, FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus
from ..trace.shapes import FILTER_DATA, FILTER_HEADERS, FILTER_TRAILERS
from .filter_callbacks import FilterCallbacks

if TYPE_CHECKING:
    from ..filters.base import StreamFilter
    from .filter_manager import FilterManager

_HS = FilterHeadersStatus
_DS = FilterDataStatus
_TS = FilterTrailersStatus


class IterationState(enum.Enum):
    CONTINUE = 0  # iteration may pass this filter
    STOP_SINGLE = 1  # StopIteration: held here, later frames still reach this filter
    STOP_ALL_BUFFER = 2  # StopAllIterationAndBuffer: everything held and buffered (with a limit)
    STOP_ALL_WATERMARK = 3  # StopAllIterationAndWatermark: everything held, flow-controlled


#: reading an enum member off its class costs CPython 3.11 about 70 ns more than reading a module
#: global, so the states every stream sets or tests are kept here too
_CONTINUE = IterationState.CONTINUE

_ALWAYS_FROM_NEXT = 0
_CAN_START_FROM_CURRENT = 1

# call-state bits (Envoy FilterCallState), one per filter callback
_DECODE_HEADERS = 1
_DECODE_DATA = 2
_DECODE_TRAILERS = 4
_ENCODE_HEADERS = 8
_ENCODE_DATA = 16
_ENCODE_TRAILERS = 32
_CALLBACK_BITS = {
    "decode_headers": _DECODE_HEADERS,
    "decode_data": _DECODE_DATA,
    "decode_trailers": _DECODE_TRAILERS,
    "encode_headers": _ENCODE_HEADERS,
    "encode_data": _ENCODE_DATA,
    "encode_trailers": _ENCODE_TRAILERS,
}


class _Callback:
    """One of the six filter callbacks, as the walker calls it. (A class with ``__slots__``
    rather than a NamedTuple: the walker reads these fields on every call, and slot reads are
    the fastest attribute reads CPython 3.11 has.)"""

    __slots__ = (
        "name",
        "bit",
        "status",
        "shape",
        "trailers",
        "abort_on_destroy",
        "abort_on_complete",
        "continued",
        "continue_status",
    )

    def __init__(self, name: str, bit: int, status: Any, shape: int, on_destroy: bool, on_complete: bool) -> None:
        self.name = name  # the StreamFilter method and the trace event name
        self.bit = bit  # its call-state bit (Envoy FilterCallState)
        self.status: type = status  # the status enum it returns
        self.shape = shape  # how its events are recorded (trace.shapes): headers, data or trailers
        self.trailers = shape == FILTER_TRAILERS  # called with the trailers only (no end_stream)
        #: after the call, stop silently (no exit event) if the stream was destroyed; the encoder
        #: side checks this (and data also a completed response), as Envoy's encode path does
        self.abort_on_destroy = on_destroy
        self.abort_on_complete = on_complete
        #: what ``last_status`` holds after the callback returned Continue (one shared tuple)
        self.continued: tuple[str, Any] = (name, status.Continue)
        self.continue_status = status.Continue


_DECODE_HEADERS_CB = _Callback("decode_headers", _DECODE_HEADERS, _HS, FILTER_HEADERS, False, False)
_DECODE_DATA_CB = _Callback("decode_data", _DECODE_DATA, _DS, FILTER_DATA, False, False)
_DECODE_TRAILERS_CB = _Callback("decode_trailers", _DECODE_TRAILERS, _TS, FILTER_TRAILERS, False, False)
_ENCODE_HEADERS_CB = _Callback("encode_headers", _ENCODE_HEADERS, _HS, FILTER_HEADERS, True, False)
_ENCODE_DATA_CB = _Callback("encode_data", _ENCODE_DATA, _DS, FILTER_DATA, True, True)
_ENCODE_TRAILERS_CB = _Callback("encode_trailers", _ENCODE_TRAILERS, _TS, FILTER_TRAILERS, True, False)


class FilterTraits:
    """What the filter manager needs to know about a filter class, worked out once per class
    (:func:`traits_of`) instead of once per stream. A filter that sets one of these on the
    instance (``self.decode_headers = ...``, ``self.encoder = False``) gets its own, made from
    what the instance says (``inst``), on every stream."""

    __slots__ = ("kind", "decoder", "encoder", "passthrough", "plain_set_callbacks", "end_hooks", "per_instance")

    def __init__(self, cls: type, inst: dict[str, Any] | None = None) -> None:
        def read(name: str, default: Any) -> Any:
            return inst[name] if inst is not None and name in inst else getattr(cls, name, default)

        #: "native", "lua" or "wasm" (traces and views colour filters by it)
        self.kind: str = read("kind", "native")
        #: whether it takes part in decoding (the request) / encoding (the response)
        self.decoder: bool = read("decoder", True)
        self.encoder: bool = read("encoder", True)
        #: call-state bits of the callbacks the class leaves as StreamFilter's pass-through
        #: default (it returns Continue and does nothing else): untraced, the walker skips them
        self.passthrough = 0
        for name, bit in _CALLBACK_BITS.items():
            if _is_default(read(name, None)):
                self.passthrough |= bit
        #: the class keeps StreamFilter's ``set_callbacks`` (a plain attribute store)
        self.plain_set_callbacks = _is_default(read("set_callbacks", None))
        #: the class overrides ``log`` or ``on_destroy`` (the stream's end calls only those)
        self.end_hooks = not (_is_default(read("log", None)) and _is_default(read("on_destroy", None)))
        #: instances of the class set some of these on themselves (:func:`traits_of`)
        self.per_instance = False


def _is_default(method: Any) -> bool:
    """StreamFilter marks each of its own defaults with itself (filters/base.py): an override, or
    a wrapper around a default, is a different function."""
    return method is not None and getattr(method, "stream_filter_default", None) is method


#: instance attributes that change a filter's traits when set on the instance itself
INSTANCE_TRAITS = frozenset(["kind", "decoder", "encoder", "set_callbacks", "log", "on_destroy", *_CALLBACK_BITS])

_TRAITS: dict[type, FilterTraits] = {}


def forget_filter_traits() -> None:
    """A filter class changed after it was made (filters/base.py's metaclass): work every
    class's traits out again on its next stream."""
    _TRAITS.clear()


def traits_of(filt: Any) -> FilterTraits:
    """The :class:`FilterTraits` of a filter's class, made on the class's first stream from that
    first instance. If the instance set callbacks or flags on itself (in ``__init__``), the class
    is marked ``per_instance``: each of its instances then gets traits of its own.

    Why only the first instance is looked at: reading an instance's ``__dict__`` makes CPython
    3.11 build a real dict for it, after which every attribute read on that object is several
    times slower; once per class is harmless, once per stream is not. (A class whose instances
    set such attributes only sometimes, not on its first stream, is not supported.)"""
    cls = filt.__class__
    traits = _TRAITS.get(cls)
    if traits is None:
        inst: dict[str, Any] = getattr(filt, "__dict__", None) or {}
        traits = FilterTraits(cls)
        traits.per_instance = not INSTANCE_TRAITS.isdisjoint(inst)
        _TRAITS[cls] = traits
    return traits


class ActiveFilter(FilterCallbacks):
    """One filter's place in one direction of the chain (Envoy ``ActiveStreamFilterBase``;
    Envoy's two subclasses, ``ActiveStreamDecoderFilter`` and ``ActiveStreamEncoderFilter``, are
    one class here with a ``decoder`` flag). As in Envoy, the place is also the filter's
    callbacks object (:class:`FilterCallbacks`)."""

    __slots__ = (
        "manager",
        "filter",
        "name",
        "index",
        "decoder",
        "iteration_state",
        "headers_continued",
        "end_stream",
        "iterate_from_current",
        "last_status",
        "kind",
        "passthrough",
        "peer",
    )

    def __init__(
        self, manager: FilterManager, filt: StreamFilter, name: str, index: int, decoder: bool, traits: FilterTraits
    ) -> None:
        self.manager = manager
        self.filter = filt
        self.name = name
        self.index = index
        self.decoder = decoder
        self.iteration_state = _CONTINUE
        self.headers_continued = False
        self.end_stream = False
        self.iterate_from_current = False
        #: (callback name, status) of the last callback, for StreamTimeout diagnostics
        self.last_status: tuple[str, Any] | None = None
        self.kind = traits.kind
        self.passthrough = traits.passthrough
        #: the filter's place in the other direction, on the place handed to the filter as its
        #: callbacks (its decoder place; None if it only decodes)
        self.peer: ActiveFilter | None = None

    def start_index(self, start: int) -> int:
        """Where iteration resumes after this filter: at the filter itself after it stopped all
        iteration (``_CAN_START_FROM_CURRENT``), else at the next one. (A frame from the codec,
        or from the terminal filter, starts at the first filter: there is no ActiveFilter.)"""
        if start == _CAN_START_FROM_CURRENT and self.iterate_from_current:
            return self.index
        return self.index + 1

    def continue_held(self) -> None:
        """End-of-stream headers reached this filter while a body was buffered (an earlier filter
        added it): continue from here so the body follows the headers (both directions)."""
        self.iteration_state = IterationState.STOP_SINGLE
        self.common_continue()

    def describe_last(self) -> str:
        """The last callback and its status, for StreamTimeout diagnostics."""
        if not self.last_status:
            return "no callback yet"
        name, status = self.last_status
        return f"{name} returned {_name(status)}"

    # ---- predicates ----------------------------------------------------------------------------
    def stopped_all(self) -> bool:
        return self.iteration_state in (IterationState.STOP_ALL_BUFFER, IterationState.STOP_ALL_WATERMARK)

    def can_iterate(self) -> bool:
        return self.iteration_state is _CONTINUE

    def _complete(self) -> bool:
        m = self.manager
        return m.remote_decode_complete if self.decoder else m.local_encode_complete_upstream

    def _buffered(self) -> Buffer | None:
        return self.manager.buffered_request if self.decoder else self.manager.buffered_response

    def _set_buffered(self, buf: Buffer) -> None:
        if self.decoder:
            self.manager.buffered_request = buf
        else:
            self.manager.buffered_response = buf

    def _has_trailers(self) -> bool:
        return (self.manager.request_trailers if self.decoder else self.manager.response_trailers) is not None

    # ---- after-callback handling (Envoy commonHandleAfter*Callback) -------------------------
    def after_headers(self, status: FilterHeadersStatus) -> bool:
        """Whether iteration continues past this filter (Envoy commonHandleAfterHeadersCallback)."""
        if status is _HS.Continue:
            self.headers_continued = True
            return True
        if status == _HS.StopIteration:
            self.iteration_state = IterationState.STOP_SINGLE
        elif status == _HS.StopAllIterationAndBuffer:
            self.iteration_state = IterationState.STOP_ALL_BUFFER
        elif status == _HS.StopAllIterationAndWatermark:
            self.iteration_state = IterationState.STOP_ALL_WATERMARK
        else:  # ContinueAndDontEndStream
            self.headers_continued = True
        return not (self.stopped_all() or status == _HS.StopIteration)

    def after_data(self, status: FilterDataStatus, data: Buffer) -> bool:
        m = self.manager
        if status == _DS.Continue:
            if self.iteration_state is IterationState.STOP_SINGLE:
                self.handle_buffer_data(data)
                self.common_continue()
                return False
            return True
        self.iteration_state = IterationState.STOP_SINGLE
        if status in (_DS.StopIterationAndBuffer, _DS.StopIterationAndWatermark):
            m.set_streaming(self.decoder, status == _DS.StopIterationAndWatermark)
            self.handle_buffer_data(data)
        elif self._complete() and not self._has_trailers() and self._buffered() is None and len(data) == 0:
            # StopIterationNoBuffer on a zero-byte end-of-stream frame: keep an (empty) buffer so
            # a later continue still delivers end_stream.
            self._set_buffered(Buffer())
        return False

    def after_trailers(self, status: FilterTrailersStatus) -> bool:
        if status == _TS.Continue:
            if self.iteration_state is IterationState.STOP_SINGLE:
                self.common_continue()
                return False
            return True
        if self.can_iterate():
            self.iteration_state = IterationState.STOP_SINGLE
        return False

    def handle_buffer_data(self, provided: Buffer) -> None:
        """Move a data frame into the stream's buffered body (Envoy commonHandleBufferData)."""
        m = self.manager
        buffered = m.buffered_request if self.decoder else m.buffered_response
        if buffered is not provided:
            if buffered is None:
                buffered = Buffer()
                self._set_buffered(buffered)
            buffered.move(provided)
        m.check_buffer_limit(self)

    def buffer_stopped_all(self, data: Buffer) -> None:
        """A data frame reached this filter after it stopped all iteration: buffer it here
        (streaming when it chose the watermark, so the buffer limit does not apply)."""
        self.manager.set_streaming(self.decoder, self.iteration_state is IterationState.STOP_ALL_WATERMARK)
        self.handle_buffer_data(data)

    # ---- continue (Envoy commonContinue) ---------------------------------------------------
    def can_continue(self) -> bool:
        m = self.manager
        if m.destroyed:
            return False
        if self.decoder:
            return not m.local_complete and not m.decoder_aborted
        return not m.local_complete

    def common_continue(self) -> None:
        if not self.can_continue():
            return
        m = self.manager
        if self.stopped_all():
            self.iterate_from_current = True
        self.iteration_state = IterationState.CONTINUE
        if m.rec.enabled:
            m.record_filter(self, "continue_decoding" if self.decoder else "continue_encoding")
        if not self.headers_continued:
            self.headers_continued = True
            end = self._complete() and self._buffered() is None and not self._has_trailers()
            if self.decoder:
                assert m.request_headers is not None
                m.decode_headers(self, m.request_headers, end)
            else:
                assert m.response_headers is not None
                m.encode_headers(self, m.response_headers, end)
        if m.destroyed:  # the stream ended inside (a local reply, a reset, the whole response)
            return
        had_trailers = self._has_trailers()
        buffered = self._buffered()
        if buffered is not None and not m.destroyed:
            end = self._complete() and not had_trailers
            if self.decoder:
                m.decode_data(self, buffered, end, _CAN_START_FROM_CURRENT)
            else:
                m.encode_data(self, buffered, end, _CAN_START_FROM_CURRENT)
        if had_trailers and not m.destroyed:
            if self.decoder:
                assert m.request_trailers is not None
                m.decode_trailers(self, m.request_trailers)
            else:
                assert m.response_trailers is not None
                m.encode_trailers(self, m.response_trailers)
        self.iterate_from_current = False


def filter_raised_message(filter_name: str, step: str, e: BaseException) -> str:
    """The log line for a filter that raised: the filter, the callback, the exception and the
    line of the filter's code it came from (``file.py:12``)."""
    tb = traceback.extract_tb(e.__traceback__)
    where = f" ({tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
    return f"filter '{filter_name}' raised in {step}: {describe(e)}{where}"


def set_callbacks_of(manager: FilterManager, f: StreamFilter, cb: Any, name: str) -> bool:
    """``f.set_callbacks(cb)`` while the manager builds the chain. A filter whose own
    ``set_callbacks`` raises leaves the chain with every filter after it; the manager keeps why
    (``setup_error``) and the stream answers 500 (``ActiveStream.start``)."""
    try:
        f.set_callbacks(cb)
        return True
    except BaseException as exc:  # even SystemExit: it must not end the worker thread
        manager.setup_error = filter_raised_message(name, "set_callbacks", exc)
        for places in (manager.decoders, manager.encoders):
            places[-1:] = [p for p in places[-1:] if p.filter is not f]
        return False


#: what a callback that raised "returned" (the stream already failed)
_FAILED = object()


def _name(status: Any) -> str:
    known = _STATUS_NAMES.get(id(status))
    if known is not None:
        return known
    if status is None:
        return "Continue"
    if status is _FAILED:
        return "raised"
    try:
        return status.name
    except AttributeError:
        return repr(status)


#: status names by member identity (IntEnum members of different enums compare equal)
_STATUS_NAMES: dict[int, str] = {id(m): m.name for enum_cls in (_HS, _DS, _TS) for m in enum_cls}
