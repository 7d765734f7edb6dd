"""gRPC callouts (``proxy_grpc_call``/``stream``/``send``/``cancel``/``close``).

Unary calls go to an in-process gRPC app through :mod:`wasmlab.proxywasm.grpc_client`: the
message is framed as gRPC on HTTP/2 would be, the app answers, and ``proxy_on_grpc_receive``,
``proxy_on_grpc_close`` follow on the calling worker. Streams are not supported: ``proxy_grpc_stream``
to a known cluster answers UNIMPLEMENTED (Envoy supports them; wasmlab says so in its docs and
tests it). An unknown cluster is PARSE_FAILURE, as in Envoy. Tokens carry their kind in the low
two bits (HTTP calls 0, gRPC calls 1, gRPC streams 2): send/cancel/close answer by the kind first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..types import WasmResult
from . import hostcall

if TYPE_CHECKING:
    from ..vm import WasmVm

MEM = WasmResult.INVALID_MEMORY_ACCESS


def cluster_of(raw: bytes) -> str:
    """The cluster name: a plain name, or ``envoy_grpc.cluster_name`` of a serialized GrpcService."""
    if raw[:1] == b"\x0a":  # field 1 (envoy_grpc), length-delimited
        try:
            n = raw[1]
            inner = raw[2 : 2 + n]
            if inner[:1] == b"\x0a":
                return inner[2 : 2 + inner[1]].decode("latin-1")
        except IndexError:
            pass
    return raw.decode("latin-1")


@hostcall("proxy_grpc_call", 12)
def proxy_grpc_call(
    vm: WasmVm,
    sptr: int,
    slen: int,
    svc_ptr: int,
    svc_len: int,
    mptr: int,
    mlen: int,
    mdptr: int,
    mdlen: int,
    msgptr: int,
    msglen: int,
    timeout_ms: int,
    token_out: int,
) -> Any:
    raws = vm.memory.read_many(sptr, slen, svc_ptr, svc_len, mptr, mlen, mdptr, mdlen, msgptr, msglen)
    if raws is None:
        return MEM
    upstream, service, method, md, message = raws
    cluster = cluster_of(upstream)
    if cluster not in vm.proxy.clusters:
        return WasmResult.PARSE_FAILURE, {"cluster": cluster}
    ctx = vm.effective
    if ctx is None:
        return WasmResult.BAD_ARGUMENT
    # names are bytes to Envoy: any byte is accepted (latin-1 keeps them one char a byte)
    svc, meth = service.decode("latin-1"), method.decode("latin-1")
    token = vm.proxy.wasm.grpc_call(vm, ctx.root_context(), cluster, svc, meth, md, message, timeout_ms)
    if not vm.memory.write_u32(token_out, token):
        return MEM
    return WasmResult.OK, {"cluster": cluster, "service": svc, "method": meth, "token": token}


@hostcall("proxy_grpc_stream", 9)
def proxy_grpc_stream(vm: WasmVm, sptr: int, slen: int, *rest: int) -> Any:
    """Envoy checks the cluster first (PARSE_FAILURE for an unknown one); wasmlab then answers
    UNIMPLEMENTED where Envoy would open the stream."""
    upstream = vm.memory.read(sptr, slen)
    if upstream is None:
        return MEM
    cluster = cluster_of(upstream)
    if cluster not in vm.proxy.clusters:
        return WasmResult.PARSE_FAILURE, {"cluster": cluster}
    return WasmResult.UNIMPLEMENTED, {"error": "gRPC streams are not supported by wasmlab"}


#: the low two bits of a token say what it names (Envoy numbers each kind apart)
CALL_TOKEN, STREAM_TOKEN = 1, 2


@hostcall("proxy_grpc_send", 4)
def proxy_grpc_send(vm: WasmVm, token: int, ptr: int, size: int, end_stream: int) -> Any:
    """Only a stream takes more messages: a stream token no stream has is NOT_FOUND (wasmlab
    opens none), any other token BAD_ARGUMENT."""
    return WasmResult.NOT_FOUND if token & 3 == STREAM_TOKEN else WasmResult.BAD_ARGUMENT


@hostcall("proxy_grpc_cancel", 1)
def proxy_grpc_cancel(vm: WasmVm, token: int) -> Any:
    """A call token cancels that call (NOT_FOUND once it is gone), a stream token is NOT_FOUND
    (no streams here); a token of neither kind (an HTTP call's, 0) is BAD_ARGUMENT."""
    if token & 3 == STREAM_TOKEN:
        return WasmResult.NOT_FOUND
    if token & 3 != CALL_TOKEN:
        return WasmResult.BAD_ARGUMENT
    ctx = vm.effective
    call = ctx.root_context().grpc_calls.pop(token, None) if ctx is not None else None
    if call is None:
        return WasmResult.NOT_FOUND
    call.cancel()
    return WasmResult.OK


@hostcall("proxy_grpc_close", 1)
def proxy_grpc_close(vm: WasmVm, token: int) -> Any:
    return proxy_grpc_cancel(vm, token)
