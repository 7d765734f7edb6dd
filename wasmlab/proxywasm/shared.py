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
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .types import WasmResult

if TYPE_CHECKING:
    from ..host.services import ServerContext
    from .vm import RootContext, WasmVm


class SharedData:
    def __init__(self, recorder: Any = None) -> None:
        self._lock = threading.Lock()
        self._stores: dict[str, dict[str, tuple[bytes, int]]] = {}
        self._cas = itertools.count(1)
        self._rec = recorder

    def get(self, vm_id: str, key: str) -> tuple[bytes, int] | None:
        with self._lock:
            return self._stores.get(vm_id, {}).get(key)

    def set(self, vm_id: str, key: str, value: bytes, cas: int) -> tuple[WasmResult, int | None]:
        with self._lock:
            store = self._stores.setdefault(vm_id, {})
            current = store.get(key)
            if cas != 0 and current is not None and current[1] != cas:
                result, new_cas = WasmResult.CAS_MISMATCH, None
            else:
                new_cas = next(self._cas)
                store[key] = (value, new_cas)
                result = WasmResult.OK
        if self._rec is not None and self._rec.enabled:
            self._rec.record(
                "shared_data",
                "set",
                {"vm_id": vm_id, "key": key, "cas": cas, "value": value[:64]},
                result.name,
                {"new_cas": new_cas},
            )
        return result, new_cas

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


class SharedQueues:
    def __init__(self, proxy: ServerContext) -> None:
        self.proxy = proxy
        self._lock = threading.Lock()
        self._by_name: dict[tuple[str, str], Queue] = {}
        self._by_id: dict[int, Queue] = {}
        self._ids = itertools.count(1)

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
        with self._lock:
            q = self._by_id.get(qid)
            if q is None:
                return WasmResult.NOT_FOUND
            q.items.append(data)
            depth = len(q.items)
            target = q.target
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
        if vm.failed is not None or root.deleted or not vm.alive:
            return
        self._record("notify", {"queue_id": qid, "root": root.id}, vm)
        from .vm import Trapped

        try:
            vm.call(root, "proxy_on_queue_ready", root.id, qid)
        except Trapped:
            pass

    def dequeue(self, qid: int) -> tuple[WasmResult, bytes]:
        with self._lock:
            q = self._by_id.get(qid)
            if q is None:
                return WasmResult.NOT_FOUND, b""
            if not q.items:
                result, data, depth = WasmResult.EMPTY, b"", 0
            else:
                data = q.items.popleft()
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

    def depths(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return {k: len(q.items) for k, q in self._by_name.items()}

    def _record(self, name: str, args: dict[str, Any], vm: Any) -> None:
        rec = self.proxy.recorder
        if rec.enabled:
            rec.record("queue", name, args, None, None, vm=vm.label if vm is not None else None)
