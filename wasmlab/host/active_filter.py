"""ActiveFilter: one filter's place in a stream's chain, for both directions (Envoy's
``ActiveStreamDecoderFilter`` and ``ActiveStreamEncoderFilter`` in
``source/common/http/filter_manager.cc``, one object here: see the class), and the filter's
callbacks object. The rules that change its iteration state are in ``filter_direction.py``.

Also here, what the filter manager looks up rather than works out per stream: the six callbacks
(name, call-state bit, status enum, trace shape) and each filter class's traits (its kind, its
directions, which callbacks it leaves as StreamFilter's pass-through defaults).
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

from ..errors import describe
from ..http import FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus
from ..trace.shapes import FILTER_DATA, FILTER_HEADERS, FILTER_TRAILERS
from .filter_callbacks import FilterCallbacks
from .filter_direction import _CONTINUE, ActiveDecoderFilter, ActiveEncoderFilter

if TYPE_CHECKING:
    from ..filters.base import StreamFilter
    from .filter_manager import FilterManager

_HS = FilterHeadersStatus
_DS = FilterDataStatus
_TS = FilterTrailersStatus


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
        "decoder",
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
        #: what the place's last status (``d_last``/``e_last``) holds after the callback returned
        #: Continue (one shared tuple)
        self.continued: tuple[str, Any] = (name, status.Continue)
        self.continue_status = status.Continue
        self.decoder = bool(bit & 7)  # a decoding callback (the first three bits)


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
    """One filter's place in one stream's chain, for both directions, and the filter's callbacks
    object (:class:`FilterCallbacks`).

    Envoy makes two objects per filter per stream, ``ActiveStreamDecoderFilter`` and
    ``ActiveStreamEncoderFilter``, each with its own iteration state, and keeps them in two lists.
    Here one object holds both directions' state (the ``d_`` fields for decoding, the ``e_``
    fields for encoding) in one list in config order, which decoding walks forwards and encoding
    backwards: one object per filter per stream instead of two, the cost a filter adds to every
    request. The rules that read and change one direction's state (Envoy's
    ``commonHandleAfter*Callback``, ``commonContinue``) are written once, for either direction,
    in :mod:`.filter_direction`, which views a place as its decoder or its encoder
    (:meth:`decoding`, :meth:`encoding`); the walkers apply the common case (Continue) inline."""

    __slots__ = (
        "manager",
        "filter",
        "name",
        "index",
        "kind",
        "passthrough",
        "decodes",
        "encodes",
        "d_state",
        "e_state",
        "d_continued",
        "e_continued",
        "d_end",
        "e_end",
        "d_from_current",
        "e_from_current",
        "d_last",
        "e_last",
    )
    # (set on first write: see __init__)
    d_continued: bool
    e_continued: bool
    d_from_current: bool
    e_from_current: bool
    d_last: tuple[str, Any]
    e_last: tuple[str, Any]

    def __init__(self, manager: FilterManager, filt: StreamFilter, name: str, index: int, traits: FilterTraits) -> None:
        self.manager = manager
        self.filter = filt
        self.name = name
        #: its position in the chain (config order): decoding goes on at index + 1, encoding at
        #: index - 1
        self.index = index
        self.kind = traits.kind
        self.passthrough = traits.passthrough
        #: whether it takes part in decoding (the request) / encoding (the response)
        self.decodes = traits.decoder
        self.encodes = traits.encoder
        #: per direction, the iteration state (``d_state`` decoding, ``e_state`` encoding)
        self.d_state = self.e_state = _CONTINUE
        #: per direction, whether it saw the end of the stream
        self.d_end = self.e_end = False
        # Left unset until first written, read with a default (each store here is paid by every
        # filter on every stream): ``d_continued``/``e_continued``, whether its headers callback
        # let iteration pass (Envoy ``headers_continued_``, default False);
        # ``d_from_current``/``e_from_current``, whether a continue after a stop-all starts at
        # this filter (Envoy ``iterate_from_current_filter_``, default False); ``d_last``/``e_last``,
        # (callback name, status) of its last callback in that direction, for StreamTimeout
        # diagnostics (none yet).

    def set_last(self, decoder: bool, last: tuple[str, Any]) -> None:
        """Remember a callback's (name, status) in its direction (the walkers write it inline)."""
        if decoder:
            self.d_last = last
        else:
            self.e_last = last

    def trailers_seen(self, decoder: bool) -> None:
        """A trailers callback ran: the stream ended in that direction for this filter."""
        if decoder:
            self.d_end = True
        else:
            self.e_end = True

    def decoding(self) -> ActiveDecoderFilter:
        """This place as a decoder filter (Envoy ``ActiveStreamDecoderFilter``)."""
        return ActiveDecoderFilter(self)

    def encoding(self) -> ActiveEncoderFilter:
        """This place as an encoder filter (Envoy ``ActiveStreamEncoderFilter``)."""
        return ActiveEncoderFilter(self)

    def describe_last(self, decoder: bool) -> str:
        """The last callback in that direction and its status, for StreamTimeout diagnostics."""
        last = getattr(self, "d_last" if decoder else "e_last", None)
        if not last:
            return "no callback yet"
        name, status = last
        return f"{name} returned {_name(status)}"


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
        places = manager.places
        if places and places[-1].filter is f:
            places.pop()
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
