"""The VM layout widget: the picture (Graphviz or the built-in grid) plus a slider over the
lifecycle events, so the layout can be seen at any moment; live when built from a running proxy."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import traitlets as t

from ..trace import Event
from .layout import LAYOUT_KINDS, LayoutModel
from .layout_draw import LayoutDrawing
from .live import LiveFeed
from .widget import View, static

#: stream-context intervals sent to the browser per VM (older ones are counted, not drawn)
MAX_STREAM_INTERVALS = 2000


def layout_accept() -> Callable[[Event], Any]:
    """The live filter for a layout (runs on the recording thread; keep it tiny): lifecycle
    events, a thread's first event, and — without queueing them — which VM each thread is in,
    so an ``enqueue`` or a shared-data ``set`` can be credited to the VM that made it."""
    actor: dict[str, str] = {}  # thread -> VM (each thread writes only its own key)
    seen: set[str] = set()

    def accept(ev: Event) -> Any:
        kind = ev.kind
        if kind == "callback" or kind == "hostcall":
            if ev.vm is not None:
                actor[ev.thread] = ev.vm
            return None
        if kind in LAYOUT_KINDS:
            return (ev, actor.get(ev.thread))
        if ev.thread not in seen:
            seen.add(ev.thread)
            return (ev, None)
        return None

    return accept


class VMLayoutView(View):
    """Threads as lanes; in each, its Wasm VMs (base, canary, main, service, replicas) with their
    root contexts and live stream contexts, and its Lua states; on the right, what VMs share by
    ``vm_id`` across threads (shared data, shared queues, who enqueues, who gets on_queue_ready).

    ``step`` picks the moment: an index into :attr:`marks` (the lifecycle events), or -1 for the
    latest — which, built from ``proxy.views``, follows the proxy live."""

    _esm = static("common.js", "vm_layout.js")

    picture = t.Unicode("").tag(sync=True)
    entities = t.Dict().tag(sync=True)
    marks = t.Dict().tag(sync=True)
    step = t.Int(-1).tag(sync=True)
    live = t.Bool(False).tag(sync=True)
    backend = t.Unicode("").tag(sync=True)

    def __init__(
        self,
        events: Iterable[Event],
        feed: LiveFeed | None = None,
        engine: str = "auto",
        title: str = "VM layout",
    ) -> None:
        events = list(events)
        self._model = LayoutModel.from_events(events)
        # a live feed may also deliver events the snapshot already holds (recorded while it was
        # taken); the last seqs of the snapshot say which (seqs are unique, nearly in order)
        tail = [ev.seq for ev in events[-4096:]]
        self._recent = set(tail)
        self._skip_upto = tail[0] - 1 if len(tail) == 4096 else 0
        self._engine = engine
        self._drawn = -1
        self._feed = feed
        self._ended = ""
        super().__init__(title=title, live=feed is not None)
        self._redraw()
        if feed is not None:
            feed.add(self)

    # ---- the model, kept current -----------------------------------------------------------------
    def sync(self) -> None:
        """Apply what a live proxy recorded since (a no-op off the kernel's thread)."""
        if self._feed is not None:
            self._feed.drain()

    @property
    def model(self) -> LayoutModel:
        self.sync()
        return self._model

    def _live(self, batch: list[tuple[Event, str | None]]) -> None:
        applied = 0
        for ev, actor in sorted(batch, key=lambda item: item[0].seq):
            if ev.seq <= self._skip_upto or ev.seq in self._recent:
                continue
            self._model.apply(ev, actor)
            applied += 1
        if applied:
            self._redraw()

    def _redraw(self) -> None:
        m = self._model
        d = LayoutDrawing(m)
        with self.hold_sync():
            if m.version != self._drawn:
                self.picture, self.backend = d.svg(engine=self._engine)
                self._drawn = m.version
            ent = d.entities()
            ent["streams"] = [[i, iv[-MAX_STREAM_INTERVALS:]] for i, iv in ent["streams"]]
            self.entities = ent
            self.marks = {"seq": [s for s, _ in m.marks], "label": [lab for _, lab in m.marks]}
            vms = sum(1 for vm in m.vms.values() if vm.runtime == "wasm")
            luas = len(m.vms) - vms
            self.note = (
                f"{len(m.threads)} threads, {vms} Wasm VMs, {luas} Lua states, {len(m.queues)} queues, "
                f"{len(m.shared)} shared-data keys · drawn by {self.backend}"
                + (" · live" if self.live else "")
                + (f" · {self._ended}" if self._ended else "")
            )

    def stop_live(self, why: str) -> None:
        """The proxy this view followed is gone: keep the last state, say so."""
        self._feed = None
        self.live = False
        self._ended = why
        self._redraw()

    def close(self) -> None:
        if self._feed is not None:
            self._feed.discard(self)
            self._feed = None
        super().close()

    # ---- the moment shown ------------------------------------------------------------------------
    @property
    def at(self) -> int | None:
        """The seq the view shows (None: the latest)."""
        seqs = self.marks.get("seq", [])
        return seqs[self.step] if 0 <= self.step < len(seqs) else None

    # ---- fallbacks -------------------------------------------------------------------------------
    def text(self) -> str:
        return "VM layout\n" + self.model.text(self.at)

    def svg(self) -> str | None:
        self.sync()
        if self.at is None:
            return self.picture
        return LayoutDrawing(self._model).svg(self.at, self._engine)[0]

    def dot(self) -> str:
        """The Graphviz source of the picture (paste it anywhere Graphviz runs)."""
        return LayoutDrawing(self.model).dot(self.at)
