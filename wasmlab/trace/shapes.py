"""Compact events: how the hottest call sites record an event without building its dicts.

Envoy formats nothing for a ``wasm:trace`` line it does not print; wasmlab records every step, so
recording must stay cheap. A filter callback, a Wasm callback and a host call are recorded many
times per request, and their ``args``/``data`` are small dicts. Building those dicts costs time,
and keeping them costs more: CPython's cyclic garbage collector tracks every dict it may ever have
to walk and untracks a dict only in a full collection, so tens of thousands of event dicts in the
ring made every full collection walk them all again.

So these call sites (:meth:`Recorder.emit <wasmlab.trace.recorder.Recorder.emit>`) record the
plain values and a *shape* number, and the dicts are built when the trace is read
(:func:`expand`). Tuples of plain values (str, int, bool, None) are untracked by the collector at
its next run, so a compact event leaves nothing for it to walk. What a reader gets is exactly the
event the dicts would have made (``args``/``data`` keys in the same order).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: shape numbers (the 14th field of a ring row; None means args/data are stored as given)
FILTER_HEADERS = 0  # args (filter, kind, end_stream); data: the stream id
FILTER_DATA = 1  # args (filter, kind, size, end_stream)
FILTER_TRAILERS = 2  # args (filter, kind, count)
FILTER_STEP = 3  # args (filter, kind): continue_decoding/encoding
CALLBACK = 4  # args as given (a tuple of ints); data: the stream id or None
HOSTCALL = 5  # args as given; data None
HOSTCALL_DETAIL = 6  # args as given; data: the detail dict kept flat (see freeze)
FROZEN_ARGS = 7  # any event whose args dict is kept flat: keys then values (Recorder.record)
FROZEN_DATA = 8  # ... whose data dict is
FROZEN_BOTH = 9  # ... whose args and data dicts are, in one tuple: (len(args), args flat, data flat)
STREAM_REQUEST = 10  # args (method, path, body_size, stream, listener, name1, value1, name2, ...)

#: the position of the shape in a ring row (after the 13 ``Event`` fields)
SHAPE = 13


def _filter(*keys: str) -> Callable[[Any, Any, Any], tuple[dict[str, Any], dict[str, Any]]]:
    def build(args: Any, data: Any, phase: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        a = {"filter": args[0], "kind": args[1]}
        for k, v in zip(keys, args[2:], strict=True):
            a[k] = v
        return a, {"stream": data, "phase": phase or "event"}

    return build


def _callback(args: Any, data: Any, phase: Any) -> tuple[Any, dict[str, Any]]:
    return args, ({"phase": phase} if data is None else {"phase": phase, "stream": data})


def _hostcall(args: Any, data: Any, phase: Any) -> tuple[Any, dict[str, Any]]:
    return args, {"phase": phase}


def _hostcall_detail(args: Any, data: Any, phase: Any) -> tuple[Any, dict[str, Any]]:
    return args, {"phase": phase, "detail": thaw(data)}


def flat(d: dict[str, Any]) -> tuple[Any, ...]:
    """A dict as one flat tuple, its keys then its values: one level, so the collector untracks
    it at its next run whatever order it meets objects in (a tuple of pairs needs two runs)."""
    return (*d, *d.values())


def thaw(t: tuple[Any, ...]) -> dict[str, Any]:
    """The dict :func:`flat` kept."""
    n = len(t) // 2
    return dict(zip(t[:n], t[n:], strict=True))


def _frozen_args(args: Any, data: Any, phase: Any) -> tuple[Any, Any]:
    return thaw(args), data


def _frozen_data(args: Any, data: Any, phase: Any) -> tuple[Any, Any]:
    return args, thaw(data)


def _frozen_both(args: Any, data: Any, phase: Any) -> tuple[Any, Any]:
    n = 1 + 2 * args[0]
    return thaw(args[1:n]), thaw(args[n:])


def _stream_request(args: Any, data: Any, phase: Any) -> tuple[Any, Any]:
    headers = tuple(zip(args[5::2], args[6::2], strict=True))
    return (
        {"method": args[0], "path": args[1], "headers": headers, "body_size": args[2]},
        {"stream": args[3], "listener": args[4]},
    )


_BUILD: list[Callable[[Any, Any, Any], tuple[Any, Any]]] = [
    _filter("end_stream"),
    _filter("size", "end_stream"),
    _filter("count"),
    _filter(),
    _callback,
    _hostcall,
    _hostcall_detail,
    _frozen_args,
    _frozen_data,
    _frozen_both,
    _stream_request,
]


def freeze(args: Any, data: Any) -> tuple[Any, Any, int | None]:
    """Any event's args/data with each dict kept :func:`flat`, and the shape that builds the dicts
    back (None: neither is a dict). A dict that holds another container stays tracked either way;
    every other one leaves nothing for the collector."""
    if args.__class__ is dict:
        if data.__class__ is dict:  # one tuple for both: one object less to keep per event
            return (len(args), *args, *args.values(), *data, *data.values()), None, FROZEN_BOTH
        return (*args, *args.values()), data, FROZEN_ARGS
    if data.__class__ is dict:
        return args, (*data, *data.values()), FROZEN_DATA
    return args, data, None


def expand(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A ring row (14 fields) as an event row (the 13 ``Event`` fields, dicts built)."""
    shape = row[SHAPE]
    if shape is None:
        return row[:SHAPE]
    args, data = _BUILD[shape](row[8], row[10], row[12])
    return (*row[:8], args, row[9], data, row[11], row[12])
