"""Shared data and shared queues: the only state that crosses threads in Proxy-Wasm.

**Shared data** (Envoy/cpp-host ``SharedData``): one key/value store per ``vm_id`` for the whole
process. Every successful write gets a fresh ``cas`` from one process-wide counter (starting at 1,
never 0). ``set`` with ``cas == 0`` always writes; with a non-zero ``cas`` it fails with
CAS_MISMATCH when the key exists with another cas (a missing key is written whatever the cas).

**Shared queues** (``SharedQueue``): ``register(name)`` creates or re-opens queue ``(vm_id,
name)`` and makes the caller's root context, on the caller's thread, the one to notify — the last
registrant wins and queued items are kept. ``resolve`` finds a queue id by vm_id and name.
``enqueue`` appends and *posts* one ``proxy_on_queue_ready(root, queue_id)`` to the registrant's
thread (never inline; dropped if that VM or context is gone). ``dequeue`` pops FIFO or says EMPTY.
Queue ids come from a process-wide counter starting at 1.

**Bounds (wasmlab's own).** Envoy bounds neither: ``proxy-wasm-cpp-host`` keeps every value and
every queued item for as long as the process lives. wasmlab runs in a notebook kernel, so:

- shared data holds at most ``wasm_shared_data_limit_mb`` (keys + values over every vm_id); a
  ``set`` that would pass it is refused with BAD_ARGUMENT and nothing is stored (counter
  ``wasmlab.shared_data.refused``, one warning in the log);
- a queue holds at most ``wasm_shared_queue_limit_mb`` (each item counts its size + 64 bytes); an
  item over that is dropped while ``enqueue`` still answers OK, as Envoy's would (counter
  ``wasmlab.shared_queue.dropped``, a ``queue drop`` trace event, one warning per queue);
- a queue whose registrant's VM has failed (a trap, a callback past its deadline) has no one to
  drain it: its items are dropped and counted the same way instead of staying in memory for good
  (a VM that FAIL_RELOAD brings back and that registers again starts from an empty queue).
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..host.options import mib
from .types import WasmResult

if TYPE_CHECKING:
    from ..host.services import ServerContext
    from .vm import RootContext, WasmVm


class SharedData:
    def __init__(self, recorder: Any = None, limit: int | None = None, proxy: ServerContext | None = None) -> None:
        self._lock = threading.Lock()
        self._stores: dict[str, dict[str, tuple[bytes, int]]] = {}
        self._cas = itertools.count(1)
        self._rec = recorder
        #: bytes of keys + values the stores may hold (None: no limit), and what they hold
        self._limit = limit
        self._held = 0
        self._proxy = proxy
        #: sets refused by the limit
        self.refused = 0

    def get(self, vm_id: str, key: str) -> tuple[bytes, int] | None:
        with self._lock:
            return self._stores.get(vm_id, {}).get(key)

    def set(self, vm_id: str, key: str, value: bytes, cas: int) -> tuple[WasmResult, int | None]:
        over = False
        with self._lock:
            store = self._stores.setdefault(vm_id, {})
            current = store.get(key)
            grow = len(value) - (len(current[0]) if current is not None else -len(key))
            if cas != 0 and current is not None and current[1] != cas:
                result, new_cas = WasmResult.CAS_MISMATCH, None
            elif self._limit is not None and self._held + grow > self._limit:
                result, new_cas, over = WasmResult.BAD_ARGUMENT, None, True
                self.refused += 1
            else:
                new_cas = next(self._cas)
                store[key] = (value, new_cas)
                self._held += grow
                result = WasmResult.OK
        if over and self._proxy is not None:
            self._proxy.stat_store.inc("wasmlab.shared_data.refused")
        if over and self._proxy is not None and self.refused == 1:
            self._proxy.log(
                "warning",
                "wasm",
                f"shared data is full ({self._held} of {self._limit} bytes, wasm_shared_data_limit_mb): "
                f"the set of key '{key}' ({len(value)} bytes) was refused with BAD_ARGUMENT",
            )
        if self._rec is not None and self._rec.enabled:
            self._rec.record(
                "shared_data",
                "set",
                {"vm_id": vm_id, "key": key, "cas": cas, "value": value[:64]},
                result.name,
                {"new_cas": new_cas},
            )
        return result, new_cas

    @property
    def held(self) -> int:
        """Bytes of keys and values held."""
        return self._held

    def snapshot(self) -> dict[str, dict[str, tuple[bytes, int]]]:
        with self._lock:
            return {k: dict(v) for k, v in self._stores.items()}


@dataclass
class Queue:
    qid: int
    vm_id: str
    name: str
    items: deque[bytes] = field(default_factory=deque)
    #: (vm, root context) notified on enqueue: the last registrant
    target: tuple[Any, Any] | None = None
    #: bytes the items hold (each counts its size + ITEM_OVERHEAD)
    held: int = 0
    #: items dropped (full, or no live registrant); warned once
    dropped: int = 0
    warned: bool = False


#: what one queued item costs beyond its bytes (a Python bytes object and its deque slot)
ITEM_OVERHEAD = 64


def _alive(vm: WasmVm, root: RootContext) -> bool:
    return vm.failed is None and not root.deleted and vm.alive


class SharedQueues:
    def __init__(self, proxy: ServerContext) -> None:
        self.proxy = proxy
        self._lock = threading.Lock()
        self._by_name: dict[tuple[str, str], Queue] = {}
        self._by_id: dict[int, Queue] = {}
        self._ids = itertools.count(1)
        #: bytes one queue may hold (None: no limit)
        self._limit = mib(proxy.options, "wasm_shared_queue_limit_mb")

    def register(self, vm: WasmVm, root: RootContext, name: str) -> int:
        key = (vm.vm_config.vm_id, name)
        with self._lock:
            q = self._by_name.get(key)
            if q is None:
                q = Queue(next(self._ids), key[0], name)
                self._by_name[key] = q
                self._by_id[q.qid] = q
            q.target = (vm, root)
        self._record("register", {"vm_id": q.vm_id, "name": name, "queue_id": q.qid, "root": root.id}, vm)
        return q.qid

    def resolve(self, vm_id: str, name: str) -> int | None:
        with self._lock:
            q = self._by_name.get((vm_id, name))
            return q.qid if q is not None else None

    def enqueue(self, qid: int, data: bytes) -> WasmResult:
        cost = len(data) + ITEM_OVERHEAD
        limit = self._limit
        with self._lock:
            q = self._by_id.get(qid)
            if q is None:
                return WasmResult.NOT_FOUND
            target = q.target
            why, dropped = "", 1
            if target is not None and not _alive(*target):
                why, dropped = "its registrant's VM has failed, so nothing drains it", len(q.items) + 1
                q.items.clear()  # what it held goes too: nobody will ever dequeue it
                q.held = 0
            elif limit is not None and q.held + cost > limit:
                why = f"it is full ({len(q.items)} items, {q.held} of {limit} bytes, wasm_shared_queue_limit_mb)"
            if why:
                q.dropped += dropped
                first, q.warned = not q.warned, True
            else:
                q.items.append(data)
                q.held += cost
            depth = len(q.items)
        if why:
            self._dropped(q, dropped, why, first, new=True)
            return WasmResult.OK  # Envoy's enqueue would have answered OK: the guest is not told
        self._record(
            "enqueue",
            {"queue_id": qid, "name": q.name, "vm_id": q.vm_id, "size": len(data), "depth": depth, "data": data[:64]},
            None,
        )
        if target is not None:
            vm, root = target
            vm.dispatcher.post(self._notify, vm, root, qid)
        return WasmResult.OK

    def _notify(self, vm: WasmVm, root: RootContext, qid: int) -> None:
        if _alive(vm, root):
            self._record("notify", {"queue_id": qid, "root": root.id}, vm)
            from .vm import Trapped

            try:
                vm.call(root, "proxy_on_queue_ready", root.id, qid)
            except Trapped:
                pass
        if not _alive(vm, root):
            self._release(qid, vm, root)

    def _release(self, qid: int, vm: WasmVm, root: RootContext) -> None:
        """The registrant is gone (its VM failed or its root context was deleted): drop what the
        queue holds, unless a live root context registered it since."""
        with self._lock:
            q = self._by_id.get(qid)
            if q is None or q.target != (vm, root) or not q.items:
                return
            n = len(q.items)
            q.items.clear()
            q.held = 0
            q.dropped += n
            first, q.warned = not q.warned, True
        self._dropped(q, n, "its registrant's VM has failed, so nothing drains it", first, new=False)

    def dequeue(self, qid: int) -> tuple[WasmResult, bytes]:
        with self._lock:
            q = self._by_id.get(qid)
            if q is None:
                return WasmResult.NOT_FOUND, b""
            if not q.items:
                result, data, depth = WasmResult.EMPTY, b"", 0
            else:
                data = q.items.popleft()
                q.held -= len(data) + ITEM_OVERHEAD
                result, depth = WasmResult.OK, len(q.items)
        if result == WasmResult.OK:
            self._record(
                "dequeue",
                {
                    "queue_id": qid,
                    "name": q.name,
                    "vm_id": q.vm_id,
                    "size": len(data),
                    "depth": depth,
                    "data": data[:64],
                },
                None,
            )
        return result, data

    def _dropped(self, q: Queue, n: int, why: str, first: bool, new: bool) -> None:
        """Count and record ``n`` dropped items (``new``: the last of them is the item being
        enqueued, which never was in the queue)."""
        self.proxy.stat_store.inc("wasmlab.shared_queue.dropped", n)
        args = {"queue_id": q.qid, "name": q.name, "vm_id": q.vm_id, "items": n, "new": int(new), "why": why}
        self._record("drop", args, None)
        if first:
            self.proxy.log(
                "warning",
                "wasm",
                f"shared queue '{q.name}' of vm_id '{q.vm_id}': {why}; dropping items "
                "(wasmlab's bound, Envoy keeps them; counter wasmlab.shared_queue.dropped)",
            )

    def dropped(self) -> dict[tuple[str, str], int]:
        """Items dropped per queue (full, or nobody left to drain it)."""
        with self._lock:
            return {k: q.dropped for k, q in self._by_name.items()}

    def depths(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return {k: len(q.items) for k, q in self._by_name.items()}

    def _record(self, name: str, args: dict[str, Any], vm: Any) -> None:
        rec = self.proxy.recorder
        if rec.enabled:
            rec.record("queue", name, args, None, None, vm=vm.label if vm is not None else None)
