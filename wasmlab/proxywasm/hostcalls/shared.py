"""Shared data (key/value with compare-and-swap) and shared queues, keyed by ``vm_id``.

Both are process-wide (one proxy = one Envoy process): the only way state crosses threads in
Proxy-Wasm. The host functions here only check guest memory and delegate to
:mod:`wasmlab.proxywasm.shared`; Envoy's rules live there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..types import WasmResult
from . import hostcall

if TYPE_CHECKING:
    from ..vm import WasmVm

OK = WasmResult.OK
MEM = WasmResult.INVALID_MEMORY_ACCESS


@hostcall("proxy_get_shared_data", 5)
def proxy_get_shared_data(vm: WasmVm, kptr: int, klen: int, vptr_out: int, vlen_out: int, cas_out: int) -> Any:
    key = vm.memory.read(kptr, klen)
    if key is None:
        return MEM
    k = key.decode("latin-1")
    found = vm.proxy.wasm.shared_data.get(vm.vm_config.vm_id, k)
    if found is None:
        return WasmResult.NOT_FOUND, {"key": k}
    value, cas = found
    if cas_out and not vm.memory.write_u32(cas_out, cas):
        return MEM
    return vm.copy_out(value, vptr_out, vlen_out), {"key": k, "cas": cas, "size": len(value)}


@hostcall("proxy_set_shared_data", 5)
def proxy_set_shared_data(vm: WasmVm, kptr: int, klen: int, vptr: int, vlen: int, cas: int) -> Any:
    got = vm.memory.read_many(kptr, klen, vptr, vlen)
    if got is None:
        return MEM
    key, value = got
    k = key.decode("latin-1")
    result, new_cas = vm.proxy.wasm.shared_data.set(vm.vm_config.vm_id, k, value, cas)
    return result, {"key": k, "cas": cas, "new_cas": new_cas, "size": len(value)}


@hostcall("proxy_register_shared_queue", 3)
def proxy_register_shared_queue(vm: WasmVm, nptr: int, nlen: int, id_out: int) -> Any:
    name = vm.memory.read(nptr, nlen)
    if name is None:
        return MEM
    ctx = vm.effective
    if ctx is None:
        return WasmResult.BAD_ARGUMENT
    qid = vm.proxy.wasm.queues.register(vm, ctx.root_context(), name.decode("latin-1"))
    return (OK if vm.memory.write_u32(id_out, qid) else MEM), {"name": name.decode("latin-1"), "queue_id": qid}


@hostcall("proxy_resolve_shared_queue", 5)
def proxy_resolve_shared_queue(vm: WasmVm, vptr: int, vlen: int, nptr: int, nlen: int, id_out: int) -> Any:
    got = vm.memory.read_many(vptr, vlen, nptr, nlen)
    if got is None:
        return MEM
    vm_id, name = got
    target = vm_id.decode("latin-1") or vm.vm_config.vm_id
    qid = vm.proxy.wasm.queues.resolve(target, name.decode("latin-1"))
    detail = {"vm_id": target, "name": name.decode("latin-1"), "queue_id": qid}
    if qid is None:
        return WasmResult.NOT_FOUND, detail
    return (OK if vm.memory.write_u32(id_out, qid) else MEM), detail


@hostcall("proxy_enqueue_shared_queue", 3)
def proxy_enqueue_shared_queue(vm: WasmVm, qid: int, vptr: int, vlen: int) -> Any:
    data = vm.memory.read(vptr, vlen)
    if data is None:
        return MEM
    return vm.proxy.wasm.queues.enqueue(qid, data), {"queue_id": qid, "size": len(data)}


@hostcall("proxy_dequeue_shared_queue", 3)
def proxy_dequeue_shared_queue(vm: WasmVm, qid: int, vptr_out: int, vlen_out: int) -> Any:
    result, data = vm.proxy.wasm.queues.dequeue(qid)
    if result != OK:
        return result, {"queue_id": qid}
    return vm.copy_out(data, vptr_out, vlen_out), {"queue_id": qid, "size": len(data)}
