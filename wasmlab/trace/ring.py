"""The event ring: where the recorder keeps the last N events, stored flat so tracing stays cheap.

Envoy has no such thing (its ``wasm:trace`` lines go to the log and are gone); this is wasmlab's
own memory of what happened, and the one place in :mod:`wasmlab.trace` that trades plainness for
speed. The trick, and why:

* A :class:`~wasmlab.trace.events.Event` kept per event costs more than building it. CPython's
  cyclic garbage collector tracks every tuple that holds a dict (an event's ``args``/``data``), and
  never stops tracking a tuple *subclass* such as a ``NamedTuple``: with a full ring, every
  collection walked up to 200,000 events again, and each new event made the next collection come
  sooner. That was about a quarter of what tracing cost a Wasm request.
* So the ring keeps no object per event. It keeps the event's 13 fields and its shape number
  (:mod:`.shapes`), in :data:`FIELDS` order, one after the other in plain lists ("chunks"): the
  recorder hands it a tuple of the fields, the current chunk's ``extend`` copies the references
  and the tuple is freed at once. The garbage collector sees one list per few thousand events.
* ``list.extend`` of a tuple runs no Python code (it copies references and may grow the list's
  memory), so under the GIL it is atomic: a chunk always holds whole events, whichever threads
  record. Every few thousand events (by ``seq``) the current chunk moves into a bounded ``deque``
  of chunks; the oldest chunk drops off as a whole, so the ring never holds part of an event.
* Reading (:meth:`EventRing.rows`) cuts the chunks back into one tuple per event, oldest first
  (sorted by ``seq``: two threads may append in the other order than they drew their ``seq``),
  and keeps the last ``capacity`` of them. :class:`~wasmlab.trace.recorder.Trace` turns rows into
  ``Event`` objects only when they are read.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from itertools import chain
from operator import itemgetter
from typing import Any

#: the number of fields of one event: ``Event._fields`` and the :mod:`.shapes` number
FIELDS = 14
#: events per chunk for the default capacity (a chunk is one list of ``FIELDS`` x this slots)
CHUNK_EVENTS = 4096

_by_seq = itemgetter(0)


class EventRing:
    """The last ``capacity`` events, as flat fields in chunks (see the module docstring).

    The recorder's hot path calls :attr:`put` with one event's fields (a tuple in ``Event._fields``
    order) and :meth:`rotate` after every :attr:`chunk_events` events (by ``seq``)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, int(capacity))
        #: events per chunk: a new chunk starts when an event's seq is a multiple of this
        self.chunk_events = max(1, min(CHUNK_EVENTS, self.capacity // 16))
        #: full chunks, oldest first; with the current one they hold at least ``capacity`` events
        #: (one more chunk than that takes, as the first chunk after a clear() is short)
        self._full: deque[list[Any] | tuple[Any, ...]] = deque(maxlen=-(-self.capacity // self.chunk_events) + 1)
        self._lock = threading.Lock()
        self._start_chunk()

    def _start_chunk(self) -> None:
        #: the chunk being filled
        self.chunk: list[Any] = []
        #: ``put(fields)`` appends one event: the current chunk's own ``extend`` (a C method, so
        #: no Python frame per event). A thread that fetched it just before a rotation appends to
        #: the chunk that was current then, which is still in the ring: nothing is lost.
        self.put: Callable[[tuple[Any, ...]], None] = self.chunk.extend

    def rotate(self) -> None:
        """The current chunk joins the full ones (the oldest drops off) and a new one starts.

        The newest full chunk before it becomes a tuple. The collector stops tracking a tuple
        whose items it does not track (str, int, None, tuples of those: what compact events
        hold, see :mod:`.shapes`), so a full collection no longer walks the ring's references.
        That chunk is one rotation old: no thread still appends to it (see ``put``), and its
        events' own tuples have been through a collection already."""
        with self._lock:
            full = self._full
            if full and full[-1].__class__ is list:
                full[-1] = tuple(full[-1])
            full.append(self.chunk)
            self._start_chunk()

    def clear(self) -> None:
        with self._lock:
            self._full.clear()
            self._start_chunk()

    def rows(self) -> list[tuple[Any, ...]]:
        """One tuple of fields per event, oldest first: the last ``capacity`` events."""
        if not self.capacity:
            return []
        with self._lock:
            chunks = [*self._full, self.chunk]
        # copy each chunk first (list(chunk) is atomic): a recording thread may extend the last one
        flat = list(chain.from_iterable([list(c) for c in chunks]))
        it = iter(flat)
        # consecutive FIELDS items -> one tuple, at C speed (a chunk only ever holds whole events)
        rows = list(zip(*[it] * FIELDS, strict=True))
        rows.sort(key=_by_seq)
        return rows[-self.capacity :]
