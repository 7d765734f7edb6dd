"""The VM layout: which Wasm VMs and Lua states live on which thread, their contexts, and what
they share across threads (shared data and shared queues, both keyed by ``vm_id``).

Envoy 1.40 (DESIGN "Threads and VMs"): on the main thread a **base** VM per vm key, a short-lived
**canary** per plugin and a **main** plugin VM (or a WasmService's **service** VM); on each worker
one **replica** per vm key, with a root context per plugin and a stream context per request. Lua:
one state per script per worker. The model is built by replaying the trace's ``vm``, ``context``,
``queue`` and ``shared_data`` events (:meth:`LayoutModel.apply`), so it can follow a running proxy
event by event as well as rebuild a saved trace; every entity keeps the seq it was born and died
at, so a view can show the layout at any moment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..trace import Event
from .annotate import is_lua_vm, label_of, short_filter, text

#: the kinds of event that change the layout (everything else is ignored by :meth:`apply`)
LAYOUT_KINDS = frozenset(("vm", "context", "queue", "shared_data", "trap", "config"))


@dataclass
class Generation:
    """One version of the listeners (``proxy.update``): 1 is the config the proxy started with.
    ``retired`` is the seq at which its old root contexts were let go (after the drain)."""

    number: int
    born: int
    accepted: int | None = None
    rejected: str | None = None
    retired: int | None = None


@dataclass
class Ctx:
    """A Proxy-Wasm context: ``root`` (one per plugin per VM) or a stream's (``http``/``tcp``)."""

    id: int
    kind: str
    plugin: str
    born: int
    died: int | None = None
    stream: int | None = None
    #: the listener generation (config version) whose plugin created this root context
    generation: int = 1


@dataclass
class VMNode:
    """A Wasm VM (``runtime="wasm"``) or a Lua state (``runtime="lua"``) on one thread."""

    key: str  # unique: the Wasm VM label (hello_vm#4), or lua:<script>@<thread>
    label: str  # what the views print
    runtime: str
    thread: str
    role: str  # base / canary / main / service / replica, or "lua"
    vm_id: str  # the sharing key (Wasm) or the filter name (Lua)
    born: int
    started: int | None = None
    failed: int | None = None
    fail_message: str = ""
    died: int | None = None
    reloaded_from: str | None = None  # the failed VM this one replaced (FAIL_RELOAD)
    replaced_by: str | None = None
    replaced_at: int | None = None  # the seq of the reload that replaced it
    contexts: dict[int, Ctx] = field(default_factory=dict)  # root and other long-lived contexts
    streams: list[Ctx] = field(default_factory=list)  # stream contexts, oldest first
    info: dict[str, Any] = field(default_factory=dict)

    def status(self, at: int | None = None) -> str:
        """``not created``, ``running``, ``failed`` or ``destroyed`` at seq ``at`` (None: now)."""
        if at is not None and self.born > at:
            return "not created"
        if self.died is not None and (at is None or self.died <= at):
            return "destroyed"
        if self.failed is not None and (at is None or self.failed <= at):
            return "failed"
        return "running"

    def live_streams(self, at: int | None = None) -> list[Ctx]:
        return [
            c
            for c in self.streams
            if (at is None or c.born <= at) and (c.died is None or (at is not None and c.died > at))
        ]


@dataclass
class QueueNode:
    """A shared queue: process-wide, named by (vm_id, name), drained by its registrant's root."""

    vm_id: str
    name: str
    queue_id: int | None
    born: int
    registrant: str | None  # the VM whose root context registered it (gets on_queue_ready)
    thread: str
    #: (seq, VM) of every registration: the last one before a moment is who gets on_queue_ready
    registrants: list[tuple[int, str | None]] = field(default_factory=list)
    #: (seq, VM, what) of the traffic (enqueue / dequeue / notify), for showing any past moment
    log: list[tuple[int, str, str]] = field(default_factory=list)
    producers: dict[str, int] = field(default_factory=dict)  # VM -> messages enqueued
    consumers: dict[str, int] = field(default_factory=dict)  # VM -> messages dequeued
    enqueued: int = 0
    dequeued: int = 0
    notified: int = 0
    depth: int = 0
    max_depth: int = 0


@dataclass
class SharedKey:
    """One shared-data key (process-wide, per vm_id), its last value and CAS."""

    vm_id: str
    key: str
    born: int
    value: str = ""
    cas: int | None = None
    sets: int = 0
    writers: dict[str, int] = field(default_factory=dict)  # VM (or thread) -> sets
    log: list[tuple[int, str, str, Any]] = field(default_factory=list)  # (seq, writer, value, cas) per set


#: the order of VMs inside a thread: what Envoy creates first on main, then the per-worker copies
ROLE_ORDER = {"base": 0, "canary": 1, "main": 2, "service": 2, "replica": 3, "lua": 4}


def vm_rank(vm: VMNode) -> tuple[int, int]:
    return (ROLE_ORDER.get(vm.role, 5), vm.born)


def thread_rank(t: str) -> tuple[int, int, str]:
    if t == "main":
        return (0, 0, t)
    if t.startswith("worker_") and t[7:].isdigit():
        return (1, int(t[7:]), t)
    return (2, 0, t)


class LayoutModel:
    """The VM layout, built event by event (:meth:`apply`) — from a saved trace or live."""

    def __init__(self) -> None:
        self.threads: list[str] = []
        self.vms: dict[str, VMNode] = {}
        self.queues: dict[tuple[str, str], QueueNode] = {}
        self.shared: dict[tuple[str, str], SharedKey] = {}
        self.traps: list[tuple[int, str, str]] = []  # (seq, vm, message)
        #: the lifecycle events, in order: (seq, "thread: what happened") — the moments a view
        #: can show the layout at
        self.marks: list[tuple[int, str]] = []
        #: what each mark changed: ("vm", key), ("ctx", key, context id) or ("queue", vm_id, name)
        self.mark_targets: list[tuple[Any, ...]] = []
        self.last_seq = 0
        #: bumps on every change a picture shows (stream contexts excepted: views restyle those)
        self.version = 0
        self._qid: dict[int, tuple[str, str]] = {}
        self._lua_by_thread: dict[tuple[str, str], str] = {}
        #: the config generations (``proxy.update``), the first one being the start-up config
        self.generations: list[Generation] = [Generation(1, 0, 0)]
        self._building = 1  # the generation whose contexts are being created now

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> LayoutModel:
        m = cls()
        actor: dict[str, str | None] = {}
        for ev in events:
            if ev.kind in ("callback", "hostcall") and ev.vm is not None:
                actor[ev.thread] = ev.vm
            m.apply(ev, actor.get(ev.thread))
        return m

    # ---- replay ---------------------------------------------------------------------------------
    def see_thread(self, thread: str) -> None:
        if thread not in self.threads:
            self.threads.append(thread)
            self.threads.sort(key=thread_rank)
            self.version += 1

    def apply(self, ev: Event, actor: str | None = None) -> None:
        """Apply one event; ``actor`` is the Wasm VM running on the event's thread (the VM that
        enqueued or wrote shared data: those events do not name it)."""
        self.last_seq = max(self.last_seq, ev.seq)
        self.see_thread(ev.thread)
        kind = ev.kind
        if kind not in LAYOUT_KINDS:
            return
        a = ev.args if isinstance(ev.args, dict) else {}
        d = ev.data if isinstance(ev.data, dict) else {}
        if kind == "config":
            self._config_event(ev, d)
            return
        if kind in ("vm", "context", "trap") or (kind == "queue" and ev.name == "register"):
            self.marks.append((ev.seq, f"{ev.thread}: {label_of(ev)[0]}"))
            self.mark_targets.append(self._target(ev, a))
        if kind == "vm":
            self._vm_event(ev, a, d)
        elif kind == "context":
            vm = self.vms.get(ev.vm or "")
            if vm is None:
                return
            cid = ev.context_id or 0
            if ev.name == "create":
                ctx = Ctx(cid, str(a.get("kind", "?")), str(a.get("plugin", "")), ev.seq, None, d.get("stream"))
                ctx.generation = self._building
                if ctx.kind == "root" or ctx.stream is None:
                    vm.contexts[cid] = ctx
                    self.version += 1
                else:
                    vm.streams.append(ctx)
            elif ev.name == "delete":
                for c in reversed(vm.streams):
                    if c.id == cid and c.died is None:
                        c.died = ev.seq
                        return
                root = vm.contexts.get(cid)
                if root is not None and root.died is None:
                    root.died = ev.seq
                    self.version += 1
        elif kind == "queue":
            self._queue_event(ev, a, actor)
        elif kind == "shared_data":
            key = (str(a.get("vm_id", "")), str(a.get("key", "")))
            sk = self.shared.get(key)
            if sk is None:
                sk = self.shared[key] = SharedKey(key[0], key[1], ev.seq)
                self.version += 1
            if ev.name == "set" and ev.result in (None, "OK", 0):
                sk.value = text(a.get("value", ""), 64)
                sk.cas = d.get("new_cas", sk.cas)
                sk.sets += 1
                who = actor or ev.thread
                sk.writers[who] = sk.writers.get(who, 0) + 1
                sk.log.append((ev.seq, who, sk.value, sk.cas))
                self.version += 1
        elif kind == "trap":
            self.traps.append((ev.seq, ev.vm or "", str(a.get("message", ""))))

    def _config_event(self, ev: Event, d: dict[str, Any]) -> None:
        """``update`` starts building a generation; ``accepted``/``rejected`` end it;
        ``drained`` retires the one before it."""
        n = int(d.get("generation") or 0)
        if ev.name == "update":
            self.generations.append(Generation(n, ev.seq))
            self._building = n
        elif ev.name in ("accepted", "rejected"):
            gen = next((g for g in reversed(self.generations) if g.number == n and g.accepted is None), None)
            if gen is not None and ev.name == "accepted":
                gen.accepted = ev.seq
            elif gen is not None:
                gen.rejected = str(ev.result or "rejected")
            self._building = max((g.number for g in self.generations if g.rejected is None), default=1)
        elif ev.name == "drained":
            for g in self.generations:
                if g.number == n and g.retired is None and g.rejected is None:
                    g.retired = ev.seq
        else:
            return
        self.marks.append((ev.seq, f"{ev.thread}: config {ev.name} (generation {n})"))
        self.mark_targets.append(("config", n))
        self.version += 1

    def generation_state(self, number: int, at: int | None = None) -> str:
        """``serving``, ``draining`` (replaced, roots not let go yet), ``retired`` or ``rejected``."""
        gen = next((g for g in self.generations if g.number == number), None)
        if gen is None or gen.rejected is not None:
            return "rejected"
        if gen.retired is not None and (at is None or gen.retired <= at):
            return "retired"
        later = [g for g in self.generations if g.number > number and g.accepted is not None]
        if any(at is None or g.accepted <= at for g in later if g.accepted is not None):
            return "draining"
        return "serving"

    def _target(self, ev: Event, a: dict[str, Any]) -> tuple[Any, ...]:
        if ev.kind == "queue":
            return ("queue", str(a.get("vm_id", "")), str(a.get("name", "")))
        if ev.kind == "context":
            return ("ctx", ev.vm or "", ev.context_id or 0)
        if ev.kind == "vm" and is_lua_vm(ev):
            script = str(a.get("script") or (ev.vm or "lua:?").removeprefix("lua:"))
            if ev.name == "create" and (script, ev.thread) not in self._lua_by_thread:
                return ("vm", f"lua:{script}@{ev.thread}")
            return ("vm", self._lua_by_thread.get((script, ev.thread), f"lua:{script}@{ev.thread}"))
        return ("vm", ev.vm or "")

    def _vm_event(self, ev: Event, a: dict[str, Any], d: dict[str, Any]) -> None:
        lua = is_lua_vm(ev)
        if lua:
            script = str(a.get("script") or (ev.vm or "lua:?").removeprefix("lua:"))
            key = self._lua_by_thread.get((script, ev.thread), f"lua:{script}@{ev.thread}")
        else:
            key = ev.vm or "?"
        vm = self.vms.get(key)
        if ev.name == "create" or vm is None:
            if vm is not None and vm.died is None:
                return
            if vm is not None and lua:  # a fresh state for the same script on this thread
                n = sum(1 for k in self.vms if k.startswith(f"lua:{script}@{ev.thread}"))
                key = f"lua:{script}@{ev.thread}#{n + 1}"
            if lua:
                self._lua_by_thread[(script, ev.thread)] = key
            flt = str(a.get("filter") or d.get("filter") or "")
            info: dict[str, Any]
            if lua:
                label = f"Lua state {script}"
                role, vm_id = "lua", short_filter(flt) if flt else "lua"
                info = {k: a[k] for k in ("runtime", "filter", "hooks") if k in a}
            else:
                label, role, vm_id = key, str(a.get("role", "")), str(a.get("vm_id", ""))
                info = {k: a[k] for k in ("abi", "code_sha256", "code_size", "compiled") if k in a}
            vm = VMNode(key, label, "lua" if lua else "wasm", ev.thread, role, vm_id, ev.seq, info=info)
            self.vms[key] = vm
            self.version += 1
            if ev.name == "create":
                return
        if ev.name == "start":
            vm.started = ev.seq
        elif ev.name == "fail":
            vm.failed = ev.seq
            vm.fail_message = str(a.get("message", ""))
        elif ev.name == "reload":
            # the new VM names the reload; it replaces the last failed VM of its vm key here
            for old in reversed(list(self.vms.values())):
                if (
                    old is not vm
                    and old.thread == vm.thread
                    and old.vm_id == vm.vm_id
                    and old.failed is not None
                    and old.replaced_by is None
                ):
                    old.replaced_by, old.replaced_at, vm.reloaded_from = vm.key, ev.seq, old.key
                    break
        elif ev.name == "destroy":
            vm.died = ev.seq
            for c in vm.contexts.values():
                if c.died is None:
                    c.died = ev.seq
            for c in vm.streams:
                if c.died is None:
                    c.died = ev.seq
        self.version += 1

    def _count_peer(self, peers: dict[str, int], who: str) -> None:
        """One more message from (or for) ``who``; a new peer changes the layout."""
        if who not in peers:
            self.version += 1
        peers[who] = peers.get(who, 0) + 1

    def _queue_event(self, ev: Event, a: dict[str, Any], actor: str | None) -> None:
        qid = a.get("queue_id")
        key: tuple[str, str] | None
        if ev.name == "register":
            key = (str(a.get("vm_id", "")), str(a.get("name", "")))
            q = self.queues.get(key)
            if q is None:
                q = self.queues[key] = QueueNode(key[0], key[1], qid, ev.seq, ev.vm, ev.thread)
            else:  # re-registered (the canary did it first): the last registrant gets notified
                q.registrant, q.thread, q.queue_id = ev.vm, ev.thread, qid
            q.registrants.append((ev.seq, ev.vm))
            if isinstance(qid, int):
                self._qid[qid] = key
            self.version += 1
            return
        if "vm_id" in a and "name" in a:
            key = (str(a["vm_id"]), str(a["name"]))
        else:
            key = self._qid.get(qid) if isinstance(qid, int) else None
        q = self.queues.get(key) if key else None
        if q is None:
            if key is None:
                return
            q = self.queues[key] = QueueNode(key[0], key[1], qid, ev.seq, None, ev.thread)
            self.version += 1
        if ev.name in ("enqueue", "dequeue", "notify"):
            q.log.append((ev.seq, actor or ev.thread, ev.name))
        if ev.name == "enqueue":
            q.enqueued += 1
            self._count_peer(q.producers, actor or ev.thread)
        elif ev.name == "dequeue":
            q.dequeued += 1
            self._count_peer(q.consumers, actor or ev.thread)
        elif ev.name == "notify":
            q.notified += 1
        depth = a.get("depth")
        if isinstance(depth, int):
            q.depth = depth
            q.max_depth = max(q.max_depth, depth)
        self.version += 1

    # ---- queries --------------------------------------------------------------------------------
    def on_thread(self, thread: str) -> list[VMNode]:
        """The VMs of a thread in a stable order: base, canary, main/service, replicas, Lua."""
        return sorted((vm for vm in self.vms.values() if vm.thread == thread), key=vm_rank)

    def vm_ids(self) -> dict[str, list[VMNode]]:
        """Wasm VMs grouped by vm_id (what shared data and queues are keyed by)."""
        out: dict[str, list[VMNode]] = {}
        for vm in self.vms.values():
            if vm.runtime == "wasm":
                out.setdefault(vm.vm_id, []).append(vm)
        for vm_id, _ in [*self.queues, *self.shared]:
            out.setdefault(vm_id, [])
        return out

    def summary(self) -> dict[str, Any]:
        """A plain dict for tests and the text view: threads -> VMs -> contexts."""
        return {
            t: [
                {
                    "vm": vm.key,
                    "runtime": vm.runtime,
                    "role": vm.role,
                    "vm_id": vm.vm_id,
                    "status": vm.status(),
                    "roots": sorted((c.id, c.plugin) for c in vm.contexts.values() if c.kind == "root"),
                    "live_streams": [c.id for c in vm.live_streams()],
                    "streams_total": len(vm.streams),
                }
                for vm in self.on_thread(t)
            ]
            for t in self.threads
        }

    def text(self, at: int | None = None) -> str:
        """The layout as an indented text tree (the view's ``text/plain``)."""
        lines = []
        upto = at if at is not None else self.last_seq
        for t in self.threads:
            vms = [vm for vm in self.on_thread(t) if vm.born <= upto]
            wasm = sum(1 for vm in vms if vm.runtime == "wasm")
            lua = len(vms) - wasm
            what = ", ".join(
                f"{n} {name}{'s' if n != 1 else ''}" for n, name in ((wasm, "Wasm VM"), (lua, "Lua state")) if n
            )
            lines.append(f"{'main thread' if t == 'main' else t}: {what or 'no Wasm VMs or Lua states'}")
            for vm in vms:
                if vm.born > (at if at is not None else self.last_seq):
                    continue
                status = vm.status(at)
                what = "Lua state" if vm.runtime == "lua" else f"{vm.role} VM"
                shown = vm.replaced_by and (at is None or (vm.replaced_at or 0) <= at)
                extra = f", replaced by {vm.replaced_by}" if shown else ""
                lines.append(f"  {vm.label}  [{what}, vm_id {vm.vm_id}, {status}{extra}]")
                for c in vm.contexts.values():
                    if c.born <= (at if at is not None else self.last_seq):
                        gone = " (deleted)" if c.died is not None and (at is None or c.died <= at) else ""
                        gen = f"  generation {c.generation}" if len(self.generations) > 1 else ""
                        lines.append(f"    {c.kind} context {c.id}  plugin {c.plugin}{gen}{gone}")
                if vm.streams:
                    live = [c.id for c in vm.live_streams(at)]
                    lines.append(
                        f"    stream contexts: {len(live)} live {live[:8]}{'…' if len(live) > 8 else ''}, "
                        f"{len(vm.streams)} created"
                    )
        for g in self.generations[1:]:
            state = self.generation_state(g.number, at)
            lines.append(f"config generation {g.number} (update at #{g.born}): {g.rejected or state}")
            if g.number - 1 >= 1 and g.rejected is None:
                lines.append(f"config generation {g.number - 1}: {self.generation_state(g.number - 1, at)}")
        for (vm_id, name), q in self.queues.items():
            lines.append(
                f"queue {name} (vm_id {vm_id}, id {q.queue_id}): registered by {q.registrant}, "
                f"{q.enqueued} enqueued, {q.dequeued} dequeued, depth {q.depth}"
            )
        for (vm_id, key), sk in self.shared.items():
            lines.append(f"shared data {key} (vm_id {vm_id}): {sk.value!r} cas {sk.cas}, {sk.sets} sets")
        return "\n".join(lines)


def generations(events: Iterable[Event]) -> list[dict[str, Any]]:
    """The config generations of a trace and the root contexts each one created, thread by
    thread (what the layout shows as old and new after ``proxy.update``)."""
    m = LayoutModel.from_events(events)
    out = []
    for g in m.generations:
        if g.rejected is not None:
            continue
        roots = [
            {"thread": vm.thread, "vm": vm.key, "id": c.id, "plugin": c.plugin, "deleted": c.died is not None}
            for vm in m.vms.values()
            if vm.role != "canary"
            for c in vm.contexts.values()
            if c.kind == "root" and c.generation == g.number
        ]
        out.append(
            {
                "number": g.number,
                "state": m.generation_state(g.number),
                "retired": g.retired is not None,
                "roots": roots,
            }
        )
    return out
