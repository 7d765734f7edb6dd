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
from .render import graphviz_binary
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
    """Envoy's threading diagram, at any moment of the trace: the main thread, the process-wide
    queues and shared data, and the worker threads side by side; in each thread its Wasm VMs
    (base, canary, main/service, replicas, in that order) with their root and stream contexts,
    and its Lua states; arrows for who enqueues, who gets ``on_queue_ready``, who writes shared
    data. The browser draws it (re-flowing threads into rows of what fits); the static picture
    (:meth:`svg`) is Graphviz's or the built-in one.

    ``step`` picks the moment: an index into :attr:`marks` (the lifecycle events), or -1 for the
    latest — which, built from ``proxy.views``, follows the proxy live. ``group=True`` also draws
    the vm_id groups (what shared data and queues are keyed by) and each VM's line to its group."""

    _esm = static("common.js", "vm_layout.js")

    scene = t.Dict().tag(sync=True)
    marks = t.Dict().tag(sync=True)
    step = t.Int(-1).tag(sync=True)
    live = t.Bool(False).tag(sync=True)
    group = t.Bool(False).tag(sync=True)
    cursor_seq = t.Int(0).tag(sync=True)

    def __init__(
        self,
        events: Iterable[Event],
        feed: LiveFeed | None = None,
        engine: str = "auto",
        title: str = "VM layout",
        group: bool = False,
    ) -> None:
        events = list(events)
        self._model = LayoutModel.from_events(events)
        # a live feed may also deliver events the snapshot already holds (recorded while it was
        # taken); the last seqs of the snapshot say which (seqs are unique, nearly in order)
        tail = [ev.seq for ev in events[-4096:]]
        self._recent = set(tail)
        self._skip_upto = tail[0] - 1 if len(tail) == 4096 else 0
        self._engine = engine
        self._picture: tuple[int, bool, str, str] | None = None  # (version, group, svg, backend)
        self._feed = feed
        self._ended = ""
        super().__init__(title=title, live=feed is not None, group=group)
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
            scene = d.scene()
            for entry in scene["streams"]:
                entry[1] = entry[1][-MAX_STREAM_INTERVALS:]
            self.scene = scene
            self.marks = {"seq": [s for s, _ in m.marks], "label": [lab for _, lab in m.marks], "target": d.mark_ids()}
            vms = sum(1 for vm in m.vms.values() if vm.runtime == "wasm")
            luas = len(m.vms) - vms
            drawer = "Graphviz" if self._engine != "builtin" and graphviz_binary() else "built-in layout"
            self.note = (
                f"{len(m.threads)} threads, {vms} Wasm VMs, {luas} Lua states, {len(m.queues)} queues, "
                f"{len(m.shared)} shared-data keys"
                + f" · static picture: {drawer}"
                + (" · live" if self.live else "")
                + (f" · {self._ended}" if self._ended else "")
            )

    @property
    def picture(self) -> str:
        """The static picture of the latest state (Graphviz's when ``dot`` works, else built-in)."""
        return self._static()[0]

    @property
    def backend(self) -> str:
        """Which program drew :attr:`picture`."""
        return self._static()[1]

    def _static(self) -> tuple[str, str]:
        self.sync()
        key = (self._model.version, self.group)
        if self._picture is None or self._picture[:2] != key:
            svg, backend = LayoutDrawing(self._model, self.group).svg(engine=self._engine)
            self._picture = (*key, svg, backend)
        return self._picture[2], self._picture[3]

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
        """The static picture at the moment shown (complete: every thread, VM and context)."""
        if self.at is None:
            return self.picture
        return LayoutDrawing(self.model, self.group).svg(self.at, self._engine)[0]

    def dot(self) -> str:
        """The Graphviz source of the picture (paste it anywhere Graphviz runs)."""
        return LayoutDrawing(self.model, self.group).dot(self.at)
