"""Following a running proxy: events recorded on worker threads, views updated on the kernel's.

``Recorder.subscribe`` calls its subscribers on the thread that recorded the event — a worker or
the main dispatcher, in the middle of a request. A widget must not be touched there: traitlets
are not thread-safe and a comm message sent from a worker races the kernel's own. So
:class:`LiveFeed` does the least it can on the recording thread — an ``accept`` test and a
``deque.append`` (atomic under the GIL, no lock a worker could wait on) — and asks the owner's
asyncio loop (in Jupyter: the kernel's, on the main thread) to :meth:`drain` the deque a moment
later. ``loop.call_soon_threadsafe`` is the one call asyncio documents as safe from other threads.
The loop runs between cells, so a layout follows the proxy as soon as a cell finishes (or while a
cell awaits). Without a running loop (a script, a test), the views drain the feed when they are
read (:meth:`drain` is called by every accessor on the owner thread).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from ..trace import Event, Recorder


class LiveFeed:
    """One subscription to a recorder, fanned out to any number of views on the owner thread."""

    def __init__(self, recorder: Recorder, accept: Callable[[Event], Any], interval: float = 0.1) -> None:
        self._accept = accept
        self._pending: deque[Any] = deque()
        self._views: weakref.WeakSet[Any] = weakref.WeakSet()
        self._owner = threading.get_ident()
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._interval = interval
        self._scheduled = False
        self._flag = threading.Lock()
        self.delivered = 0
        self._unsubscribe = recorder.subscribe(self._on_event)

    # ---- the recording thread -------------------------------------------------------------------
    def _on_event(self, ev: Event) -> None:
        item = self._accept(ev)
        if item is None:
            return
        self._pending.append(item)
        loop = self._loop
        if loop is None or self._scheduled:
            return
        with self._flag:  # only one wake-up in flight
            if self._scheduled:
                return
            self._scheduled = True
        try:
            loop.call_soon_threadsafe(self._soon)
        except RuntimeError:  # the loop is closed (the kernel is shutting down)
            self._scheduled = False

    # ---- the owner thread ------------------------------------------------------------------------
    def _soon(self) -> None:
        assert self._loop is not None
        self._loop.call_later(self._interval, self.drain)

    @property
    def on_owner_thread(self) -> bool:
        return threading.get_ident() == self._owner

    def add(self, view: Any) -> None:
        """Deliver to ``view._live(batch)`` from now on (held weakly)."""
        self._views.add(view)

    def discard(self, view: Any) -> None:
        self._views.discard(view)

    def drain(self) -> int:
        """Hand the pending items to the views; only on the owner thread (elsewhere a no-op)."""
        if not self.on_owner_thread:
            return 0
        self._scheduled = False
        batch = []
        pop = self._pending.popleft
        while True:
            try:
                batch.append(pop())
            except IndexError:
                break
        if batch:
            for view in list(self._views):
                view._live(batch)
            self.delivered += len(batch)
        return len(batch)

    def close(self) -> None:
        self._unsubscribe()
        self._pending.clear()
        self._views = weakref.WeakSet()

    def source_closed(self) -> None:
        """The proxy shut down: deliver what it recorded last, then tell each view it is no
        longer live (on the owner thread; from elsewhere, through its event loop)."""
        if not self.on_owner_thread:
            if self._loop is not None:
                try:
                    self._loop.call_soon_threadsafe(self.source_closed)
                except RuntimeError:
                    pass
            return
        self.drain()
        views = list(self._views)
        self.close()
        for view in views:
            view.stop_live("proxy closed")
