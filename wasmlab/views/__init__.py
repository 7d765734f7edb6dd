"""Views: widgets that replay a trace — the VM layout, the callback timeline, the queue flow, the
inspector, and wasmlab side by side with real Envoy.

    proxy.views.vm_layout()      # live: follows the proxy as VMs start, fail, reload, contexts come and go
    proxy.views.timeline()       # swimlanes; step / scrub / play in the browser; Mermaid and Envoy text
    proxy.views.queue_flow()     # shared queues filling and draining, ticks, shared data values
    proxy.views.inspector()      # every event in a table, one summary per request
    proxy.views.compare(envoy)   # wasmlab vs real Envoy's wasm:trace, differences marked
    proxy.views.linked("timeline", "vm_layout", "queue_flow")   # one cursor: step one, all move

    wasmlab.views.load_trace("trace.json").timeline()   # the same views of a saved trace

Every view is an anywidget (its JavaScript ships in ``static/``; nothing is fetched from the
network), its state is saved with the notebook, and it has a ``text/plain`` fallback plus an
``image/svg+xml`` (or ``text/html``) one for nbconvert, GitHub and nbviewer. Views only read the
trace; they never call the host.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..trace import Event, Recorder, Trace
from .compare import CompareView, compare
from .inspector import InspectorView
from .layout import LayoutModel
from .layout_view import VMLayoutView, layout_accept
from .link import LinkedViews, link
from .live import LiveFeed
from .queueflow import QueueFlowModel, QueueFlowView
from .render import render_dot
from .timeline import TimelineModel, TimelineView

__all__ = [
    "CompareView",
    "InspectorView",
    "LayoutModel",
    "LinkedViews",
    "QueueFlowModel",
    "QueueFlowView",
    "TimelineModel",
    "TimelineView",
    "VMLayoutView",
    "Views",
    "compare",
    "link",
    "load_trace",
    "render_dot",
]


class Views:
    """The views of one trace: a running proxy's (``proxy.views``) or a saved one's
    (:func:`load_trace`). Each call builds a fresh widget from the events recorded so far."""

    def __init__(
        self,
        source: Callable[[], Iterable[Event]] | Iterable[Event],
        recorder: Recorder | None = None,
        proxy: Any = None,
    ) -> None:
        self._source = source
        self._recorder = recorder
        self._proxy = proxy
        self._feed: LiveFeed | None = None

    def events(self, state: bool = False) -> list[Event]:
        """The events the views are built from (for a proxy: everything recorded so far).
        ``state`` adds the lifecycle events a cleared or overflowed trace no longer holds (VMs,
        root contexts, queue registrations), so a layout still shows what exists."""
        if state and self._recorder is not None:
            return self._recorder.snapshot(include_state=True)
        src = self._source
        if callable(src):
            return list(src())
        if isinstance(src, Trace):
            return list(src.events)
        if not isinstance(src, list):
            self._source = src = list(src)
        return src

    @property
    def trace(self) -> Trace:
        return Trace(self.events())

    # ---- the views --------------------------------------------------------------------------------
    def vm_layout(self, engine: str = "auto", live: bool | None = None) -> VMLayoutView:
        """Threads, their Wasm VMs and Lua states, contexts, and what VMs share across threads.
        ``engine``: "auto" (Graphviz ``dot`` when on PATH, else the built-in layout), "dot" or
        "builtin". ``live`` (default: when built from a proxy) follows the proxy as it runs."""
        if engine not in ("auto", "dot", "builtin"):
            raise ValueError(f"engine must be 'auto', 'dot' or 'builtin', got {engine!r}")
        follow = (self._recorder is not None) if live is None else bool(live and self._recorder is not None)
        feed = None
        if follow:
            assert self._recorder is not None
            if self._feed is None:
                self._feed = LiveFeed(self._recorder, layout_accept())
            feed = self._feed
            feed.drain()  # the views it already feeds catch up before this one's snapshot
        return self._noted(VMLayoutView(self.events(state=True), feed=feed, engine=engine))

    def timeline(
        self,
        stream: int | None = None,
        worker: str | int | None = None,
        filter: str | None = None,
        kinds: Sequence[str] | None = None,
    ) -> TimelineView:
        """Every event on swimlanes, in order. ``stream`` shows one request; ``worker`` one
        thread; ``filter`` what touches one filter (``"wasm"``, ``"envoy.filters.http.lua"``) or
        lane; ``kinds`` which kinds of event (default: all but ``log``)."""
        return self._noted(TimelineView(self.events(), worker=worker, stream=stream, filter=filter, kinds=kinds))

    def queue_flow(self) -> QueueFlowView:
        """Shared queues (enqueue on workers, on_queue_ready on main), ticks and shared data."""
        return self._noted(QueueFlowView(self.events(state=True)))

    def inspector(self, stream: int | None = None) -> InspectorView:
        """A table of every event with filters, and per-request summaries."""
        return self._noted(InspectorView(self.events(), stream=stream))

    def compare(self, envoy: Any, thread: str | None = None) -> CompareView:
        """This trace next to real Envoy's (an ``EnvoyRun`` from ``wasmlab.envoy.run(...,
        component_log_level="wasm:trace")``, or its ``.trace``), aligned per thread."""
        return CompareView(self.events(), envoy, thread=thread)

    def linked(self, *views: Any) -> LinkedViews:
        """Views that share one cursor: stepping one moves the others to the same moment (the last
        event of theirs at or before it). ``views`` are widgets or names: ``"timeline"``,
        ``"vm_layout"``, ``"queue_flow"``, ``"inspector"`` (default: timeline, layout, queue
        flow). Returns a box of the views, linked in the browser (works without the kernel)."""
        names = {"timeline", "vm_layout", "queue_flow", "inspector"}
        widgets = []
        for v in views or ("timeline", "vm_layout", "queue_flow"):
            if isinstance(v, str):
                if v not in names:
                    raise ValueError(f"linked() takes views or the names {sorted(names)}, got {v!r}")
                v = getattr(self, v)()
            widgets.append(v)
        return LinkedViews(widgets)

    def source_closed(self) -> None:
        """Called by the proxy when it shuts down: live views stop following it."""
        if self._feed is not None:
            self._feed.source_closed()
            self._feed = None

    def _noted(self, view: Any) -> Any:
        if self._recorder is not None and not self._recorder.enabled:
            view.note = "nothing recorded: this proxy was built with trace=False · " + view.note
        return view

    def __repr__(self) -> str:
        what = "a running proxy" if self._proxy is not None else "a saved trace"
        return (
            f"<Views of {what}: .vm_layout() .timeline() .queue_flow() .inspector() .compare(envoy) "
            ".linked(...); "
            f"{len(self.events())} events>"
        )


def load_trace(path: str | os.PathLike[str]) -> Views:
    """The views of a trace saved with ``proxy.trace.save(path)`` (JSON)."""
    return Views(Trace.load(os.fspath(path)))


def views(trace: Trace | Iterable[Event]) -> Views:
    """The views of a trace object or a list of events."""
    return Views(trace if isinstance(trace, Trace) else list(trace))
