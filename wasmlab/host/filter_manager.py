"""FilterManager: runs one stream through the HTTP filter chain with Envoy's iteration rules.

This follows Envoy's ``source/common/http/filter_manager.cc`` closely, because the observable
behaviour of every filter kind depends on it:

* decoder filters run in config order (``decode_headers`` -> ``decode_data``* ->
  ``decode_trailers``), encoder filters in reverse order;
* ``StopIteration`` from headers holds the headers at that filter but still hands it later body
  data; ``StopAllIterationAndBuffer``/``Watermark`` holds everything and the manager buffers the
  body for it; ``StopIterationAndBuffer`` from data buffers body in the stream's buffer;
  ``StopIterationNoBuffer`` drops the frame from iteration; the filter resumes iteration with
  ``continue_decoding()``/``continue_encoding()``, which delivers held headers, buffered body and
  trailers to the next filters (or, after StopAll, to itself first);
* buffering past the connection's buffer limit answers 413 (request) or 500 (response) unless the
  filter chose watermark (flow-controlled) buffering;
* a local reply (``send_local_reply``) aborts decoding and runs through every encoder filter; if
  the response already started through the encoders it goes straight to the client, and once
  headers reached the client the stream is reset.

Simplifications: no HTTP/2 metadata frames, no 1xx headers, no watermark back-pressure (in
process there is no socket to pause; watermark buffering simply keeps buffering).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..http import Buffer, FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus, HeaderMap
from .active_filter import (
    _DECODE_DATA,
    _DECODE_DATA_CB,
    _DECODE_HEADERS,
    _DECODE_HEADERS_CB,
    _DECODE_TRAILERS,
    _DECODE_TRAILERS_CB,
    _ENCODE_DATA,
    _ENCODE_DATA_CB,
    _ENCODE_HEADERS,
    _ENCODE_HEADERS_CB,
    _ENCODE_TRAILERS,
    _ENCODE_TRAILERS_CB,
    _FAILED,
    _TRAITS,
    ActiveFilter,
    FilterTraits,
    _Callback,
    filter_raised_message,
    set_callbacks_of,
    traits_of,
)
from .filter_callbacks import FilterCallbacks
from .filter_direction import _ALWAYS_FROM_NEXT, _CONTINUE, STOPPED_ALL, ActiveDirection, IterationState
from .filter_trace import call_traced, record_filter

if TYPE_CHECKING:
    from ..filters.base import StreamFilter
    from ..trace import Recorder
    from .hcm import ActiveStream

__all__ = ["ActiveFilter", "FilterCallbacks", "FilterManager", "IterationState"]

_HS = FilterHeadersStatus
_DS = FilterDataStatus
_TS = FilterTrailersStatus

# call-state bits (Envoy FilterCallState): active_filter.py defines one per callback
_DECODING = _DECODE_HEADERS | _DECODE_DATA | _DECODE_TRAILERS
_ENCODING = _ENCODE_HEADERS | _ENCODE_DATA | _ENCODE_TRAILERS


def _status_parses(value: str | None) -> bool:
    """Envoy ``getResponseStatusOrNullopt``: ``SimpleAtoi`` reads ``:status`` (`` +404 `` too)."""
    v = (value or "").strip(" \t\n\v\f\r").removeprefix("+")
    return v.isascii() and v.isdecimal() and int(v) < 1 << 64


# (module globals: reading an enum member off its class is much slower, active_filter.py)
_HS_CONTINUE = _HS.Continue
_DS_CONTINUE = _DS.Continue

#: a body buffered past the limit, by direction (decoder?): the stat, then the local reply's
#: status, body and details (Envoy: 413 for the request, 500 for the response)
_TOO_LARGE = {
    True: ("downstream_rq_too_large", 413, b"Payload Too Large", "request_payload_too_large"),
    False: ("rs_too_large", 500, b"Internal Server Error", "response_payload_too_large"),
}


class FilterManager:
    """The chain state of one stream."""

    def __init__(self, stream: ActiveStream, filters: list[tuple[str, StreamFilter]], buffer_limit: int) -> None:
        self.stream = stream
        self.rec: Recorder = stream.proxy.recorder
        self.buffer_limit = buffer_limit
        # one pass: each filter gets its place (both directions, active_filter.py), which is
        # also its callbacks; decoding walks the places forwards, encoding backwards
        self.places: list[ActiveFilter] = []
        #: the filters whose class has its own ``log``/``on_destroy`` (the stream's end calls
        #: those, in chain order; StreamFilter's defaults do nothing)
        self.end_filters: list[StreamFilter] = []
        places, end_filters = self.places, self.end_filters
        self.setup_error: str | None = None  # a filter raised in set_callbacks (set_callbacks_of)
        last_decoder = -1
        for index, (name, f) in enumerate(filters):
            try:
                traits = _TRAITS[f.__class__]
            except KeyError:  # the first stream with this filter class
                traits = traits_of(f)
            if traits.per_instance:  # its instances set callbacks or flags on themselves
                traits = FilterTraits(f.__class__, f.__dict__)
            cb = ActiveFilter(self, f, name, index, traits)
            places.append(cb)
            if traits.plain_set_callbacks:
                f.callbacks = cb  # what StreamFilter.set_callbacks does, without the call
            elif not set_callbacks_of(self, f, cb, name):  # it raised: the chain ends before it
                break
            if traits.decoder:
                last_decoder = index
            if traits.end_hooks:
                end_filters.append(f)
        #: the place of the last filter that decodes (-1: none)
        self.last_decoder = last_decoder
        self.request_headers: HeaderMap | None = None
        self.request_trailers: HeaderMap | None = None
        self.response_headers: HeaderMap | None = None
        self.response_trailers: HeaderMap | None = None
        self.buffered_request: Buffer | None = None
        self.buffered_response: Buffer | None = None
        self.remote_decode_complete = False
        #: the upstream/terminal side finished producing the response (encoder "complete()")
        self.local_encode_complete_upstream = False
        #: the response reached the client completely
        self.local_complete = False
        self.decoder_aborted = False
        self.response_started_to_codec = False
        self.decoder_streaming = False
        self.encoder_streaming = False
        self.call_state = 0
        self.destroyed: bool = False
        self._too_large_sent = False

    # ---- trace (filter_trace.py: the traced stream's callbacks record enter/exit events) ----------
    record_filter = record_filter
    _call_traced = call_traced

    # ---- the one place a filter callback runs -------------------------------------------------
    def _call(self, e: ActiveFilter, cb: _Callback, fn: Callable[..., Any], frame: Any, end_stream: bool) -> Any:
        """Call one filter callback: mark the call state, turn an exception or a non-status into
        a failed stream, remember the status for diagnostics. Returns the status, or None when
        the walker must stop here (the stream failed or went away).

        This is the untraced path (the headers walkers write it out inline, the path every
        request takes); a traced stream takes :meth:`_call_traced`, which does the same and
        records the enter/exit events."""
        if self.rec.enabled:
            return self._call_traced(e, cb, fn, frame, end_stream)
        self.call_state |= cb.bit
        try:
            status = fn(frame) if cb.trailers else fn(frame, end_stream)
        except BaseException as exc:  # even SystemExit: it must not end the worker thread
            status = self._raised(e, cb.name, exc)
        self.call_state &= ~cb.bit
        if cb.abort_on_destroy and (self.destroyed or (cb.abort_on_complete and self.local_complete)):
            return None
        if cb.trailers:
            e.trailers_seen(cb.decoder)
        return self._settle(e, cb, status)

    def _settle(self, e: ActiveFilter, cb: _Callback, status: Any) -> Any:
        """A callback's return value as its status enum (None: the stream failed), kept in
        the filter's last status in that direction for diagnostics."""
        if status.__class__ is not cb.status:
            status = self._coerce(cb.status, status, e, cb.name)
            if status is None:
                return None
        # a shared tuple for Continue, the usual answer: no new object per call
        e.set_last(cb.decoder, cb.continued if status is cb.continue_status else (cb.name, status))
        return status

    def _raised(self, af: ActiveFilter, name: str, e: BaseException) -> Any:
        """A filter callback raised: fail the stream with a 500 (never the host)."""
        msg = filter_raised_message(af.name, name, e)
        self.stream.proxy.log("error", "http", msg)
        self.rec.record("trap", name, {"filter": af.name}, msg, {"stream": self.stream.stream_id})
        self.stream.fail_filter_exception(msg)
        return _FAILED

    def _coerce(self, enum_cls: Any, status: Any, af: ActiveFilter, name: str) -> Any:
        """A filter's return value as the status enum; None (forgot to return) is Continue.
        Anything else that is not a status fails the stream like an exception would."""
        if status is _FAILED or self.destroyed:
            return None
        if status is None:
            return enum_cls(0)
        try:
            return enum_cls(status)
        except (ValueError, TypeError):
            msg = f"filter '{af.name}' returned {status!r} from {name}; expected one of {[m.name for m in enum_cls]}"
            self.stream.proxy.log("error", "http", msg)
            self.stream.fail_filter_exception(msg)
            return None

    # ---- entry points from the codec (the HCM) ---------------------------------------------------
    def codec_decode_headers(self, headers: HeaderMap, end_stream: bool) -> None:
        self.request_headers = headers
        self.remote_decode_complete = end_stream
        self.decode_headers(None, headers, end_stream)

    def codec_decode_data(self, data: Buffer, end_stream: bool) -> None:
        self.remote_decode_complete = end_stream
        self.decode_data(None, data, end_stream, _ALWAYS_FROM_NEXT)

    def codec_decode_trailers(self, trailers: HeaderMap) -> None:
        self.remote_decode_complete = True
        self.request_trailers = trailers
        self.decode_trailers(None, trailers)

    # ---- decoding ----------------------------------------------------------------------------
    # The walkers below take short cuts on the common path, each marked where it is taken: a
    # callback the filter class left as StreamFilter's default is not called on an untraced
    # stream (it would only return Continue; the state changes are the same), the Continue case
    # of after_headers/after_data is applied inline, and the headers walkers run an untraced
    # callback inline (what _call does, without its call).
    def decode_headers(self, af: ActiveDirection | None, headers: HeaderMap, end_stream: bool) -> None:
        i = 0 if af is None else af.start_index(_ALWAYS_FROM_NEXT)
        places = self.places
        last = self.last_decoder
        traced = self.rec.enabled
        skip = 0 if traced else _DECODE_HEADERS
        continue_data_entry: ActiveFilter | None = None
        end = end_stream  # what each filter is told: False from where a buffered body continues
        while i <= last:
            e = places[i]
            if not e.decodes:
                i += 1
                continue
            e.d_end = end
            if e.passthrough & skip:  # short cut: StreamFilter's default, nothing to call
                status = _HS_CONTINUE
                e.d_last = _DECODE_HEADERS_CB.continued
            else:
                if traced:
                    status = self._call_traced(e, _DECODE_HEADERS_CB, e.filter.decode_headers, headers, end)
                else:  # short cut: _call inline
                    self.call_state |= _DECODE_HEADERS
                    try:
                        status = e.filter.decode_headers(headers, end)
                    except BaseException as exc:  # even SystemExit: it must not end the worker thread
                        status = self._raised(e, "decode_headers", exc)
                    self.call_state &= ~_DECODE_HEADERS
                    if status is _HS_CONTINUE:
                        e.d_last = _DECODE_HEADERS_CB.continued
                    else:
                        status = self._settle(e, _DECODE_HEADERS_CB, status)
                if status is None or self.decoder_aborted or self.destroyed:
                    return
            if status is _HS_CONTINUE:
                e.d_continued = True  # short cut: after_headers(Continue)
            elif not e.decoding().after_headers(status) and i != last:
                if continue_data_entry is not None:
                    continue_data_entry.decoding().continue_held()
                return
            if end and self.buffered_request is not None:
                continue_data_entry = e
                end = False
            i += 1
        if continue_data_entry is not None:
            continue_data_entry.decoding().continue_held()

    def decode_data(self, af: ActiveDirection | None, data: Buffer, end_stream: bool, start: int) -> None:
        if self.local_complete or self.decoder_aborted or self.destroyed:
            return
        trailers_at_start = self.request_trailers is not None
        trailers_added: ActiveFilter | None = None
        i = 0 if af is None else af.start_index(start)
        places = self.places
        last = self.last_decoder
        skip = 0 if self.rec.enabled else _DECODE_DATA
        while i <= last:
            e = places[i]
            if not e.decodes:
                i += 1
                continue
            if e.d_state is not _CONTINUE and e.d_state in STOPPED_ALL:
                e.decoding().buffer_stopped_all(data)
                return
            if e.d_end:
                return
            e.d_end = end_stream and self.request_trailers is None
            if e.passthrough & skip:  # short cut: StreamFilter's default, nothing to call
                status = _DS_CONTINUE
                e.d_last = _DECODE_DATA_CB.continued
            else:
                status = self._call(e, _DECODE_DATA_CB, e.filter.decode_data, data, e.d_end)
                if status is None:
                    return
                if self.decoder_aborted or self.destroyed:
                    return
                if not trailers_at_start and self.request_trailers is not None and trailers_added is None:
                    end_stream = False
                    trailers_added = e
            # short cut: after_data(Continue) on a filter that is not held lets iteration go on
            went_on = status is _DS_CONTINUE and e.d_state is _CONTINUE
            if not went_on and not e.decoding().after_data(status, data) and i != last:
                break
            i += 1
        if trailers_added is not None and self.request_trailers is not None:
            self.decode_trailers(trailers_added.decoding(), self.request_trailers)

    def decode_trailers(self, af: ActiveDirection | None, trailers: HeaderMap) -> None:
        if self.local_complete or self.decoder_aborted or self.destroyed:
            return
        i = 0 if af is None else af.start_index(_ALWAYS_FROM_NEXT)
        places = self.places
        skip = 0 if self.rec.enabled else _DECODE_TRAILERS
        while i <= self.last_decoder:
            e = places[i]
            if not e.decodes:
                i += 1
                continue
            if e.d_state in STOPPED_ALL:
                return
            if e.passthrough & skip:  # short cut: StreamFilter's default, nothing to call
                status = _TS.Continue
                e.d_end = True
                e.d_last = _DECODE_TRAILERS_CB.continued
            else:
                status = self._call(e, _DECODE_TRAILERS_CB, e.filter.decode_trailers, trailers, True)
                if status is None:
                    return
                if self.decoder_aborted or self.destroyed:
                    return
            if not e.decoding().after_trailers(status):
                return
            i += 1

    def add_data(self, af: ActiveDirection | None, data: Buffer, streaming: bool) -> None:
        """``add_decoded_data``/``add_encoded_data`` from filter ``af`` (its direction): into the
        stream's buffered body, or, added during the trailers callback (the direction runs only
        its trailers), sent on inline to the next filters."""
        if af is None:
            return
        decoder = af.decoder
        in_trailers = (self.call_state & (_DECODING if decoder else _ENCODING)) == (
            _DECODE_TRAILERS if decoder else _ENCODE_TRAILERS
        )
        if in_trailers and af.can_iterate():
            (self.decode_data if decoder else self.encode_data)(af, data, False, _ALWAYS_FROM_NEXT)
            return
        self.set_streaming(decoder, streaming)
        af.handle_buffer_data(data)

    # ---- encoding ----------------------------------------------------------------------------
    def encode_headers(self, af: ActiveDirection | None, headers: HeaderMap, end_stream: bool) -> None:
        if self.destroyed:
            return
        if af is None:
            self.local_encode_complete_upstream = end_stream
            # Envoy's router (or sendLocalReply) records the response in the stream info before
            # the encoder filters run: response.code/headers properties read it from there
            info = self.stream.info
            info.response_headers = headers
            status = headers.get(":status")
            if status is not None and status.isdigit():
                info.response_code = int(status)
        i = len(self.places) - 1 if af is None else af.start_index(_ALWAYS_FROM_NEXT)
        places = self.places
        traced = self.rec.enabled
        skip = 0 if traced else _ENCODE_HEADERS
        continue_data_entry: ActiveFilter | None = None
        end = end_stream  # what each filter is told: False from where a buffered body continues
        while i >= 0:  # encoders run in reverse config order
            e = places[i]
            if not e.encodes:
                i -= 1
                continue
            e.e_end = end
            if e.passthrough & skip:  # short cut: StreamFilter's default, nothing to call
                hs = _HS_CONTINUE
                e.e_last = _ENCODE_HEADERS_CB.continued
            else:
                if traced:
                    hs = self._call_traced(e, _ENCODE_HEADERS_CB, e.filter.encode_headers, headers, end)
                else:  # short cut: _call inline
                    self.call_state |= _ENCODE_HEADERS
                    try:
                        hs = e.filter.encode_headers(headers, end)
                    except BaseException as exc:  # even SystemExit: it must not end the worker thread
                        hs = self._raised(e, "encode_headers", exc)
                    self.call_state &= ~_ENCODE_HEADERS
                    if self.destroyed:
                        return
                    if hs is _HS_CONTINUE:
                        e.e_last = _ENCODE_HEADERS_CB.continued
                    else:
                        hs = self._settle(e, _ENCODE_HEADERS_CB, hs)
                # (a local reply replaced the response)
                if hs is None or self.response_headers is not headers:
                    return
            if hs is _HS_CONTINUE:
                e.e_continued = True  # short cut: after_headers(Continue)
            elif not e.encoding().after_headers(hs):
                if not e.e_end and continue_data_entry is not None:
                    continue_data_entry.encoding().continue_held()
                return
            if end and self.buffered_response is not None:
                continue_data_entry = e
                end = False
            i -= 1
        status = headers.get(":status")  # (the common "200" is checked without a call)
        if not (status is not None and status.isdecimal() and len(status) < 4) and not _status_parses(status):
            self.send_local_reply(
                502,
                b"missing required header: :status",
                None,
                "filter_removed_required_response_headers{missing_required_header:_:status}",
            )
            return
        self.response_started_to_codec = True
        self.stream.codec_encode_headers(headers, end)
        if end:
            self._end_encode()
        if continue_data_entry is not None:
            continue_data_entry.encoding().continue_held()

    def encode_data(
        self, af: ActiveDirection | None, data: Buffer, end_stream: bool, start: int = _ALWAYS_FROM_NEXT
    ) -> None:
        if self.destroyed or self.local_complete:
            return
        if af is None:
            self.local_encode_complete_upstream = end_stream
        trailers_at_start = self.response_trailers is not None
        trailers_added: ActiveFilter | None = None
        i = len(self.places) - 1 if af is None else af.start_index(start)
        places = self.places
        skip = 0 if self.rec.enabled else _ENCODE_DATA
        while i >= 0:  # encoders run in reverse config order
            e = places[i]
            if not e.encodes:
                i -= 1
                continue
            if e.e_state is not _CONTINUE and e.e_state in STOPPED_ALL:
                e.encoding().buffer_stopped_all(data)
                return
            if e.e_end:
                return
            e.e_end = end_stream and self.response_trailers is None
            if e.passthrough & skip:  # short cut: StreamFilter's default, nothing to call
                status = _DS_CONTINUE
                e.e_last = _ENCODE_DATA_CB.continued
            else:
                status = self._call(e, _ENCODE_DATA_CB, e.filter.encode_data, data, e.e_end)
                if status is None:
                    return
                if not trailers_at_start and self.response_trailers is not None and trailers_added is None:
                    trailers_added = e
            # short cut: after_data(Continue) on a filter that is not held lets iteration go on
            went_on = status is _DS_CONTINUE and e.e_state is _CONTINUE
            if not went_on and not e.encoding().after_data(status, data):
                return
            i -= 1
        end = end_stream and trailers_added is None
        self.stream.codec_encode_data(data, end)
        if end:
            self._end_encode()
        if trailers_added is not None and self.response_trailers is not None:
            self.encode_trailers(trailers_added.encoding(), self.response_trailers)

    def encode_trailers(self, af: ActiveDirection | None, trailers: HeaderMap) -> None:
        if self.destroyed or self.local_complete:
            return
        if af is None:
            self.local_encode_complete_upstream = True
        i = len(self.places) - 1 if af is None else af.start_index(_ALWAYS_FROM_NEXT)
        places = self.places
        skip = 0 if self.rec.enabled else _ENCODE_TRAILERS
        while i >= 0:  # encoders run in reverse config order
            e = places[i]
            if not e.encodes:
                i -= 1
                continue
            if e.e_state in STOPPED_ALL:
                return
            if e.passthrough & skip:  # short cut: StreamFilter's default, nothing to call
                status = _TS.Continue
                e.e_end = True
                e.e_last = _ENCODE_TRAILERS_CB.continued
            else:
                status = self._call(e, _ENCODE_TRAILERS_CB, e.filter.encode_trailers, trailers, True)
                if status is None:
                    return
            if not e.encoding().after_trailers(status):
                return
            i -= 1
        self.stream.codec_encode_trailers(trailers)
        self._end_encode()

    def _end_encode(self) -> None:
        if not self.local_complete:
            self.local_complete = True
            self.stream.on_response_complete()

    # ---- buffering limits ----------------------------------------------------------------------
    def set_streaming(self, decoder: bool, streaming: bool) -> None:
        if decoder:
            self.decoder_streaming = streaming
        else:
            self.encoder_streaming = streaming

    def check_buffer_limit(self, af: ActiveDirection) -> None:
        decoder = af.decoder
        buf = self.buffered_request if decoder else self.buffered_response
        if buf is None or len(buf) <= self.buffer_limit or not self.buffer_limit or self._too_large_sent:
            return
        if self.decoder_streaming if decoder else self.encoder_streaming:
            return  # watermark: Envoy would pause reading the socket (or the upstream)
        stat, status, body, details = _TOO_LARGE[decoder]
        self._too_large_sent = True
        self.stream.stat(stat)
        self.send_local_reply(status, body, None, details)

    # ---- local replies -------------------------------------------------------------------------
    def send_local_reply(
        self,
        status: int,
        body: bytes,
        modify: Callable[[HeaderMap], None] | None,
        details: str,
        grpc_status: int | None = None,
    ) -> None:
        if self.destroyed:
            return
        stream = self.stream
        if self.call_state & _DECODING or not self.response_started_to_codec:
            self.decoder_aborted = True
        if status == 400:
            # Envoy's ActiveStream::onLocalReply: a 400 means a messaging error, and the HTTP/1
            # codec closes the connection after it (``connection: close``); no other status does
            stream.info.should_drain_connection = True
        if self.response_started_to_codec:
            # headers already reached the client: all Envoy can do is reset
            stream.reset(details or "local_reply_after_response_started")
            return
        stream.info.response_code_details = details  # before: local_reply_config may format it
        headers, body = stream.local_reply_headers(status, body, modify, grpc_status)  # may rewrite both
        if self.rec.enabled:
            self.rec.record(
                "stream",
                "local_reply",
                {"status": status, "details": details, "body": body[:200]},
                None,
                {"stream": stream.stream_id},
                event=False,
            )
        head = stream.is_head_request()
        if self.response_headers is None:
            # the response has not started: send it through every encoder filter
            self.response_headers = headers
            self.encode_headers(None, headers, not body or head)
            if body and not head and not self.destroyed and self.response_headers is headers:
                self.encode_data(None, Buffer(body), True, _ALWAYS_FROM_NEXT)
        else:
            # the response started through the encoders but not to the client: bypass them
            self.response_headers = headers
            self.response_started_to_codec = True
            stream.codec_encode_headers(headers, not body or head)
            if body and not head:
                stream.codec_encode_data(Buffer(body), True)
            self._end_encode()

    # ---- diagnostics ------------------------------------------------------------------------------
    def holder(self) -> str:
        """Which filter holds the stream right now (for StreamTimeout messages)."""
        if not self.local_complete:
            for e in reversed(self.places):  # in encoding order
                if e.encodes and e.e_state is not _CONTINUE:
                    return f"filter '{e.name}' ({e.describe_last(False)}, waiting for continue_encoding)"
            if self.response_headers is None or not self.response_started_to_codec:
                for e in self.places:
                    if e.decodes and e.d_state is not _CONTINUE:
                        return f"filter '{e.name}' ({e.describe_last(True)}, waiting for continue_decoding)"
        return self.stream.waiting_on()

    def destroy(self) -> None:
        self.destroyed = True

    def release(self) -> None:
        """Drop the references that tie filters, callbacks and this manager in cycles, so the
        stream's objects are freed by reference counting at once (cheaper than cyclic GC): the
        lists here (manager -> place -> manager) and each place's filter (place -> filter ->
        callbacks -> place). A late ``continue_decoding()`` still finds the manager, destroyed."""
        for af in self.places:
            af.filter = None  # type: ignore[assignment]
        self.places = []
        self.last_decoder = -1
        self.end_filters = []
