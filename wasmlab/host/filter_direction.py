"""A filter's place seen in one direction: Envoy's ``ActiveStreamDecoderFilter`` and
``ActiveStreamEncoderFilter`` (``source/common/http/filter_manager.cc``), with the rules they
share in ``ActiveStreamFilterBase``: what a callback's status does to the iteration
(``commonHandleAfter*Callback``), buffering a held body (``commonHandleBufferData``) and
resuming (``commonContinue``, what ``continue_decoding()``/``continue_encoding()`` run).

Where we simplify: Envoy keeps each direction's state in its own object. Here a filter has one
place per stream (:class:`~.active_filter.ActiveFilter`) holding both directions' state, and
these classes are views of it, made when a filter stops, resumes or buffers, so that the rules
are written once for both directions. The walkers in ``filter_manager.py`` apply the common case
(a filter returned Continue) inline, without a view.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from ..http import Buffer, FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus

if TYPE_CHECKING:
    from .active_filter import ActiveFilter
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
STOPPED_ALL = (IterationState.STOP_ALL_BUFFER, IterationState.STOP_ALL_WATERMARK)

#: where a resumed walk starts (Envoy ``FilterIterationStartState``)
_ALWAYS_FROM_NEXT = 0
_CAN_START_FROM_CURRENT = 1


def _field(which: str, default: Any = None) -> property:
    """One of the place's per-direction fields under the name both directions share: the
    direction class names the place's field (``fields[which]``); ``default`` while the place has
    not set it (the place leaves some unset until first written)."""

    def get(self: ActiveDirection) -> Any:
        return getattr(self.place, self.fields[which], default)

    def put(self: ActiveDirection, value: Any) -> None:
        setattr(self.place, self.fields[which], value)

    return property(get, put)


class ActiveDirection:
    """A filter's place in one direction; the subclasses say which."""

    __slots__ = ("place",)

    decoder: bool
    step: int  # where iteration goes on from here: +1 (decoding) or -1 (encoding)
    fields: dict[str, str]  # the place's field for each of the four below

    iteration_state = _field("state")
    headers_continued = _field("continued", False)
    end_stream = _field("end")
    iterate_from_current = _field("from_current", False)

    def __init__(self, place: ActiveFilter) -> None:
        self.place = place

    @property
    def manager(self) -> FilterManager:
        return self.place.manager

    @property
    def name(self) -> str:
        return self.place.name

    def start_index(self, start: int) -> int:
        """Where iteration resumes after this filter: at the filter itself after it stopped all
        iteration (``_CAN_START_FROM_CURRENT``), else at the next one in this direction. (A frame
        from the codec, or from the terminal filter, starts at the first filter: there is no
        place.)"""
        if start == _CAN_START_FROM_CURRENT and self.iterate_from_current:
            return self.place.index
        return self.place.index + self.step

    def continue_held(self) -> None:
        """End-of-stream headers reached this filter while a body was buffered (an earlier filter
        added it): continue from here so the body follows the headers (both directions)."""
        self.iteration_state = IterationState.STOP_SINGLE
        self.common_continue()

    # ---- predicates ----------------------------------------------------------------------------
    def stopped_all(self) -> bool:
        return self.iteration_state in STOPPED_ALL

    def can_iterate(self) -> bool:
        return self.iteration_state is _CONTINUE

    def _complete(self) -> bool:
        m: FilterManager = self.place.manager
        return m.remote_decode_complete if self.decoder else m.local_encode_complete_upstream

    def _buffered(self) -> Buffer | None:
        m: FilterManager = self.place.manager
        return m.buffered_request if self.decoder else m.buffered_response

    def _set_buffered(self, buf: Buffer) -> None:
        if self.decoder:
            self.place.manager.buffered_request = buf
        else:
            self.place.manager.buffered_response = buf

    def _has_trailers(self) -> bool:
        m: FilterManager = self.place.manager
        return (m.request_trailers if self.decoder else m.response_trailers) is not None

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
        m: FilterManager = self.place.manager
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
        buffered = self._buffered()
        if buffered is not provided:
            if buffered is None:
                buffered = Buffer()
                self._set_buffered(buffered)
            buffered.move(provided)
        self.place.manager.check_buffer_limit(self)

    def buffer_stopped_all(self, data: Buffer) -> None:
        """A data frame reached this filter after it stopped all iteration: buffer it here
        (streaming when it chose the watermark, so the buffer limit does not apply)."""
        self.place.manager.set_streaming(self.decoder, self.iteration_state is IterationState.STOP_ALL_WATERMARK)
        self.handle_buffer_data(data)

    # ---- continue (Envoy commonContinue) ---------------------------------------------------
    def can_continue(self) -> bool:
        m: FilterManager = self.place.manager
        if m.destroyed:
            return False
        if self.decoder:
            return not m.local_complete and not m.decoder_aborted
        return not m.local_complete

    def common_continue(self) -> None:
        if not self.can_continue():
            return
        m: FilterManager = self.place.manager
        if self.stopped_all():
            self.iterate_from_current = True
        self.iteration_state = IterationState.CONTINUE
        if m.rec.enabled:
            m.record_filter(self.place, "continue_decoding" if self.decoder else "continue_encoding")
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


class ActiveDecoderFilter(ActiveDirection):
    """A place as a decoder filter (Envoy ``ActiveStreamDecoderFilter``): decoding goes on at
    the next filter in config order."""

    __slots__ = ()
    decoder = True
    step = 1
    fields = {"state": "d_state", "continued": "d_continued", "end": "d_end", "from_current": "d_from_current"}


class ActiveEncoderFilter(ActiveDirection):
    """A place as an encoder filter (Envoy ``ActiveStreamEncoderFilter``): encoding goes on at
    the filter before it in config order (encoders run in reverse)."""

    __slots__ = ()
    decoder = False
    step = -1
    fields = {"state": "e_state", "continued": "e_continued", "end": "e_end", "from_current": "e_from_current"}
