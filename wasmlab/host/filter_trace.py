"""The filter chain on a traced stream: each filter callback between an enter and an exit event.

The filter manager (``filter_manager.py``) runs an untraced callback itself (``_call``, or inline
in the headers walkers); on a traced stream it calls :func:`call_traced` instead, which does the
same work and records the two events. Envoy has no such trace; its nearest relative is the
``trace``-level log of ``filter_manager.cc``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..trace.shapes import FILTER_DATA, FILTER_HEADERS, FILTER_STEP, FILTER_TRAILERS
from .active_filter import _STATUS_NAMES, _name

if TYPE_CHECKING:
    from .active_filter import ActiveFilter, _Callback
    from .filter_manager import FilterManager

#: the compact args of filter events that repeat (headers and continue steps), one tuple each
_SHARED_ARGS: dict[tuple[Any, ...], tuple[Any, ...]] = {}


def record_filter(m: FilterManager, af: ActiveFilter, name: str) -> None:
    """A single step of a filter (``continue_decoding``...): a point event."""
    raw = (af.name, af.kind)
    raw = _SHARED_ARGS.setdefault(raw, raw)
    m.rec.emit("filter", name, raw, None, m.stream.stream_id, None, None, None, FILTER_STEP)


def call_traced(
    m: FilterManager, e: ActiveFilter, cb: _Callback, fn: Callable[..., Any], frame: Any, end_stream: bool
) -> Any:
    """``FilterManager._call`` on a traced stream: the callback between an enter and an exit
    event. Returns the status, or None when the walker must stop here."""
    m.call_state |= cb.bit
    shape = cb.shape
    # the event's args as plain values (trace.shapes): (filter, kind, end_stream),
    # (filter, kind, size, end_stream) or (filter, kind, count)
    if shape == FILTER_HEADERS:
        raw: tuple[Any, ...] = (e.name, e.kind, end_stream)
        # one shared tuple per (filter, kind, end_stream): the ring keeps no new object
        # for it, so tracing makes the garbage collector run less often
        raw = _SHARED_ARGS.setdefault(raw, raw)
    elif shape == FILTER_DATA:
        raw = (e.name, e.kind, len(frame), end_stream)
    else:
        raw = (e.name, e.kind, len(frame))
    m.rec.emit("filter", cb.name, raw, None, m.stream.stream_id, None, None, "enter", shape)
    try:
        status = fn(frame) if shape == FILTER_TRAILERS else fn(frame, end_stream)
    except BaseException as exc:  # even SystemExit: it must not end the worker thread
        status = m._raised(e, cb.name, exc)
    m.call_state &= ~cb.bit
    if cb.abort_on_destroy and (m.destroyed or (cb.abort_on_complete and m.local_complete)):
        return None
    if shape == FILTER_TRAILERS:
        e.trailers_seen(cb.decoder)
        raw = (e.name, e.kind, len(frame))
    result = _STATUS_NAMES.get(id(status)) or _name(status)
    m.rec.emit("filter", cb.name, raw, result, m.stream.stream_id, None, None, "exit", shape)
    if status.__class__ is not cb.status:
        status = m._coerce(cb.status, status, e, cb.name)
        if status is None:
            return None
    e.set_last(cb.decoder, (cb.name, status))
    return status
