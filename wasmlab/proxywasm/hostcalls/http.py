"""HTTP host functions: header/trailer maps, buffers, stream control, local replies, callouts.

Envoy's availability rules, copied because SDKs depend on them (the Rust SDK panics — a trap — on
an unexpected status): request headers are readable and writable during
``proxy_on_request_headers`` and while the request is paused from it, and gone (BAD_ARGUMENT)
once it continued; likewise response headers and trailers. During ``proxy_on_log`` the request
headers, response headers and response trailers are readable, not writable. Maps 6/7 and buffer 4
exist only during ``proxy_on_http_call_response``. ``proxy_set_buffer_bytes`` follows Envoy:
``start == 0`` drops ``size`` bytes and prepends the data; ``start >= length`` appends; anything
else is BAD_ARGUMENT. ``continue``/``close``/``send_local_response`` run after the current
callback returns; a local response also makes that callback stop. Envoy answers them OK whatever
the state (a root context, a stream that already answered or ended) and acts only where it can;
where Envoy 1.40 crashes instead, the filter ignores the call with a warning
(:class:`wasmlab.filters.wasm.filter.WasmHttpFilter`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...host import async_client
from ...http import HeaderMap
from ...http.inline_headers import INLINE_BY_WASM_MAP, NO_INLINE, REQUEST_HEADERS_INLINE, slot_name
from .. import pairs
from ..types import (
    MAX_BUFFER_TYPE,
    MAX_GRPC_STATUS,
    MAX_MAP_TYPE,
    MAX_STREAM_TYPE,
    AbiVersion,
    BufferType,
    MapType,
    StreamType,
    WasmResult,
)
from . import V01, V02, hostcall

if TYPE_CHECKING:
    from ..stream_host import StreamHost
    from ..vm import WasmVm

OK = WasmResult.OK
BAD = WasmResult.BAD_ARGUMENT
MEM = WasmResult.INVALID_MEMORY_ACCESS
NOT_FOUND = WasmResult.NOT_FOUND


def _map(vm: WasmVm, map_type: int, write: bool) -> HeaderMap | None:
    """The header map of ``map_type`` in the effective context, or None if not available now."""
    ctx = vm.effective
    if ctx is None:
        return None
    if map_type < 4:  # the stream's own maps
        f = ctx.filter
        return None if f is None else f.header_map(map_type, write)
    if map_type in (MapType.HTTP_CALL_RESPONSE_HEADERS, MapType.HTTP_CALL_RESPONSE_TRAILERS):
        resp = ctx.root_context().callout_response
        if resp is None or write:
            return None
        if map_type == MapType.HTTP_CALL_RESPONSE_HEADERS:
            return resp.headers
        # a response without trailers has no trailer map: Envoy reads its pairs as empty and
        # answers a value's lookup BAD_ARGUMENT, as for a map that is not there now
        return resp.trailers or None
    if map_type in (MapType.GRPC_RECEIVE_INITIAL_METADATA, MapType.GRPC_RECEIVE_TRAILING_METADATA):
        g = ctx.root_context().grpc_current
        if g is None or write:
            return None
        return g.get(int(map_type))
    return None


@hostcall("proxy_get_header_map_pairs", 3)
def proxy_get_header_map_pairs(vm: WasmVm, map_type: int, out_ptr: int, out_len: int) -> Any:
    if map_type > MAX_MAP_TYPE:
        return BAD
    m = _map(vm, map_type, False)
    data = pairs.encode(list(m)) if m is not None else b""
    rc = vm.copy_out(data, out_ptr, out_len)
    return (rc, {"map": map_type, "count": len(m) if m is not None else 0}) if vm.rec.enabled else rc


@hostcall("proxy_set_header_map_pairs", 3)
def proxy_set_header_map_pairs(vm: WasmVm, map_type: int, ptr: int, size: int) -> Any:
    if map_type > MAX_MAP_TYPE:
        return BAD
    raw = vm.memory.read(ptr, size)
    if raw is None:
        return MEM
    m = _map(vm, map_type, True)
    if m is None:
        return BAD
    items = pairs.decode(raw) or []
    inline = _inline_of(map_type)  # Envoy removes every entry, then addCopy's each pair
    m.clear()
    for k, v in items:
        key = k.lower()
        if key in inline:
            m.add_inline(key, v)
        else:
            m.add_lowered(key, v)
    if map_type == 0:
        _request_headers_edited(vm, None)
    return OK, {"map": map_type, "count": len(items)}


@hostcall("proxy_get_header_map_size", 2)
def proxy_get_header_map_size(vm: WasmVm, map_type: int, out: int) -> Any:
    if map_type > MAX_MAP_TYPE:
        return BAD
    m = _map(vm, map_type, True)
    if m is None:
        return BAD
    return OK if vm.memory.write_u32(out, m.byte_size()) else MEM


def _checked_key(vm: WasmVm, map_type: int, kptr: int, klen: int) -> str | WasmResult:
    """The header name a map call names, or the error it answers: BAD_ARGUMENT for a map type
    out of range, INVALID_MEMORY_ACCESS for an unreadable name."""
    if map_type > MAX_MAP_TYPE:
        return BAD
    key = vm.memory.text(kptr, klen)
    return MEM if key is None else key.lower()


@hostcall("proxy_get_header_map_value", 5)
def proxy_get_header_map_value(vm: WasmVm, map_type: int, kptr: int, klen: int, out_ptr: int, out_len: int) -> Any:
    key = _checked_key(vm, map_type, kptr, klen)
    if key.__class__ is not str:
        return key
    m = _map(vm, map_type, False)
    traced = vm.rec.enabled  # trace details are built only when someone records them
    if m is None:
        ctx = vm.effective
        in_log = ctx is not None and ctx.filter is not None and ctx.filter.in_log
        rc = NOT_FOUND if in_log else BAD
        return (rc, {"map": map_type, "key": key}) if traced else rc
    value = m.get(_slot_name(map_type, key))
    if value is None:
        if vm.info.version == AbiVersion.V0_1_0:
            rc = vm.copy_out(b"", out_ptr, out_len)
            return (rc, {"map": map_type, "key": key, "value": ""}) if traced else rc
        return (NOT_FOUND, {"map": map_type, "key": key}) if traced else NOT_FOUND
    rc = vm.copy_out(value.encode("latin-1"), out_ptr, out_len)
    return (rc, {"map": map_type, "key": key, "value": value}) if traced else rc


def _header_writer(replace: bool) -> Callable[..., Any]:
    """The host call that adds (another value) or replaces (all values of) one header of a
    writable map: ``proxy_add_header_map_value`` or ``proxy_replace_header_map_value``.

    The host call every header-setting filter makes, so it is written flat (one Python frame
    besides the memory read and the map's own method). It is a closure over ``replace`` rather
    than a ``functools.partial``: the fast call path then calls a plain Python function, which
    CPython 3.11 enters without a C-level call in between. Checks in Envoy's order: map type,
    then the guest strings, then whether the map is writable now."""

    def write_header(vm: WasmVm, map_type: int, kptr: int, klen: int, vptr: int, vlen: int) -> Any:
        if map_type > MAX_MAP_TYPE:
            return BAD
        pair = vm.memory.text_pair(kptr, klen, vptr, vlen)
        if pair is None:
            return MEM
        key, value = pair
        key = key.lower()
        # _map(vm, map_type, True), with a stream's own maps (types 0-3) asked of its filter
        # here: one Python frame less on the hot path
        ctx = vm.effective
        f = ctx.filter if ctx is not None and map_type < 4 else None
        m = f.header_map(map_type, True) if f is not None else _map(vm, map_type, True)
        if m is None:
            return BAD, {"map": map_type, "key": key}
        if replace:
            m.set(_slot_name(map_type, key), value)
        elif map_type < 4 and key in INLINE_BY_WASM_MAP[map_type]:
            m.add_inline(key, value)  # Envoy's addCopy: a present inline header takes ",value"
        else:
            m.add_lowered(key, value)
        if map_type == 0 and f is not None:  # (``host`` is the request's ``:authority``)
            f.request_headers_edited(":authority" if key == "host" else key)
        if vm.rec.enabled:  # the trace detail is built only when someone records it
            return OK, {"map": map_type, "key": key, "value": value}
        return OK

    return write_header


def _slot_name(map_type: int, key: str) -> str:
    """The name Envoy's map of ``map_type`` looks ``key`` up by (``host`` is ``:authority`` in the
    request headers, :mod:`wasmlab.http.inline_headers`)."""
    return slot_name(INLINE_BY_WASM_MAP[map_type], key) if map_type < 4 else key


def _inline_of(map_type: int) -> frozenset[str]:
    return INLINE_BY_WASM_MAP[map_type] if map_type < 4 else NO_INLINE


hostcall("proxy_add_header_map_value", 5)(_header_writer(replace=False))
hostcall("proxy_replace_header_map_value", 5)(_header_writer(replace=True))


@hostcall("proxy_remove_header_map_value", 3)
def proxy_remove_header_map_value(vm: WasmVm, map_type: int, kptr: int, klen: int) -> Any:
    key = _checked_key(vm, map_type, kptr, klen)
    if key.__class__ is not str:
        return key
    m = _map(vm, map_type, True)
    if m is None:
        return BAD, {"map": map_type, "key": key}
    m.remove(_slot_name(map_type, key))
    if map_type == 0:
        _request_headers_edited(vm, _slot_name(0, key))
    return (OK, {"map": map_type, "key": key}) if vm.rec.enabled else OK


def _request_headers_edited(vm: WasmVm, key: str | None) -> None:
    """Envoy's ``Context::onHeadersModified``: an edit of the request headers (``key``; None:
    all of them) clears the route cache (:meth:`StreamHost.request_headers_edited`)."""
    f = _stream_filter(vm)
    if f is not None:
        f.request_headers_edited(key)


# ---- buffers ---------------------------------------------------------------------------------------
#: buffers Envoy's ``getBuffer`` always answers, empty when the context has none now (a root
#: context, a header callback, the other direction): reads get OK and nothing, writes BAD_ARGUMENT.
#: The call-data buffer is among them: outside a foreign call Envoy answers the context's scratch
#: buffer (empty, unless the module just read the VM configuration through it: not modelled)
_ALWAYS_THERE = frozenset({0, 1, 2, 3, int(BufferType.GRPC_RECEIVE_BUFFER), int(BufferType.CALL_DATA)})


def _buffer(vm: WasmVm, buffer_type: int) -> tuple[Any, bool]:
    """(buffer object or bytes or None, mutable)."""
    buf, mutable = _buffer_now(vm, buffer_type)
    if buf is None and buffer_type in _ALWAYS_THERE:
        return b"", False
    return buf, mutable


def _buffer_now(vm: WasmVm, buffer_type: int) -> tuple[Any, bool]:
    ctx = vm.effective
    if ctx is None:
        if buffer_type == BufferType.VM_CONFIGURATION:
            return vm.vm_config.configuration, False
        return None, False
    if buffer_type == BufferType.VM_CONFIGURATION:
        return vm.vm_config.configuration, False
    root = ctx.root_context()
    if buffer_type == BufferType.PLUGIN_CONFIGURATION:
        # readable while the root context is created and configured, not in proxy_on_vm_start
        readable = root.config_phase in ("create", "configure")
        return (root.plugin.configuration if readable else None), False
    if buffer_type == BufferType.HTTP_CALL_RESPONSE_BODY:
        resp = root.callout_response
        return (resp.body if resp is not None else None), False
    if buffer_type == BufferType.GRPC_RECEIVE_BUFFER:
        g = root.grpc_current
        return (g.get("message") if g is not None else None), False
    if buffer_type == BufferType.CALL_DATA:
        return root.foreign_args, False
    f = ctx.filter
    if f is None:
        return None, False
    return f.body_buffer(int(buffer_type)), True


@hostcall("proxy_get_buffer_bytes", 5)
def proxy_get_buffer_bytes(vm: WasmVm, buffer_type: int, start: int, max_size: int, out_ptr: int, out_len: int) -> Any:
    if buffer_type > MAX_BUFFER_TYPE:
        return BAD
    buf, _ = _buffer(vm, buffer_type)
    if buf is None:
        return NOT_FOUND, {"buffer": buffer_type}
    data = buf if isinstance(buf, bytes) else buf.to_bytes()
    chunk = data[start : start + max_size] if start < len(data) else b""
    rc = vm.copy_out(chunk, out_ptr, out_len)
    return (rc, {"buffer": buffer_type, "size": len(chunk)}) if vm.rec.enabled else rc


@hostcall("proxy_set_buffer_bytes", 5)
def proxy_set_buffer_bytes(vm: WasmVm, buffer_type: int, start: int, size: int, ptr: int, length: int) -> Any:
    if buffer_type > MAX_BUFFER_TYPE:
        return BAD
    data = vm.memory.read(ptr, length)
    if data is None:
        return MEM
    buf, mutable = _buffer(vm, buffer_type)
    if buf is None:
        return NOT_FOUND
    if not mutable:
        return BAD
    if start == 0:
        buf.drain(min(size, len(buf)))
        buf.prepend(data)
    elif start >= len(buf):
        buf.add(data)
    else:
        return BAD
    return (OK, {"buffer": buffer_type, "size": len(buf)}) if vm.rec.enabled else OK


@hostcall("proxy_get_buffer_status", 3)
def proxy_get_buffer_status(vm: WasmVm, buffer_type: int, size_out: int, flags_out: int) -> Any:
    if buffer_type > MAX_BUFFER_TYPE:
        return BAD
    buf, _ = _buffer(vm, buffer_type)
    if buf is None:
        return NOT_FOUND
    n = len(buf)
    if not vm.memory.write_u32(size_out, n) or not vm.memory.write_u32(flags_out, 0):
        return MEM
    return OK


# ---- stream control ------------------------------------------------------------------------------------
def _stream_filter(vm: WasmVm) -> StreamHost | None:
    ctx = vm.effective
    return ctx.filter if ctx is not None else None


def _continue_or_close(vm: WasmVm, stream_type: int, close: bool) -> Any:
    """Envoy's ``continueStream``/``closeStream``: BAD_ARGUMENT for an unknown stream type,
    UNIMPLEMENTED for continuing the upstream side; otherwise OK, and the context's filter acts if
    it has that side — a root context (no filter) answers OK and does nothing, as Envoy's does."""
    if stream_type > MAX_STREAM_TYPE:
        return BAD
    if not close and stream_type == StreamType.UPSTREAM:
        return WasmResult.UNIMPLEMENTED
    f = _stream_filter(vm)
    if f is None:
        return OK
    return f.close_stream(int(stream_type)) if close else f.continue_stream(int(stream_type))


@hostcall("proxy_continue_stream", 1, versions=V02)
def proxy_continue_stream(vm: WasmVm, stream_type: int) -> Any:
    return _continue_or_close(vm, stream_type, close=False)


@hostcall("proxy_close_stream", 1, versions=V02)
def proxy_close_stream(vm: WasmVm, stream_type: int) -> Any:
    return _continue_or_close(vm, stream_type, close=True)


@hostcall("proxy_continue_request", 0, versions=V01)
def proxy_continue_request(vm: WasmVm) -> Any:
    return _continue_or_close(vm, StreamType.HTTP_REQUEST, close=False)


@hostcall("proxy_continue_response", 0, versions=V01)
def proxy_continue_response(vm: WasmVm) -> Any:
    return _continue_or_close(vm, StreamType.HTTP_RESPONSE, close=False)


@hostcall("proxy_clear_route_cache", 0, versions=V01)
def proxy_clear_route_cache(vm: WasmVm) -> Any:
    f = _stream_filter(vm)
    if f is not None:
        f.clear_route_cache()
    return OK


@hostcall("proxy_send_local_response", 8)
def proxy_send_local_response(
    vm: WasmVm, status: int, dptr: int, dlen: int, bptr: int, blen: int, hptr: int, hlen: int, grpc_status: int
) -> Any:
    got = vm.memory.read_many(dptr, dlen, bptr, blen, hptr, hlen)
    if got is None:
        return MEM
    details, body, raw = got
    f = _stream_filter(vm)
    if f is None:  # a root context: Envoy answers OK and sends nothing
        return OK
    headers = pairs.decode(raw) or []
    d = "_".join(details.decode("latin-1").split()) if details.strip() else details.decode("latin-1")
    rc = f.send_local_response(status, d, body, headers, grpc_status if grpc_status <= MAX_GRPC_STATUS else None)
    if rc != OK:
        return rc
    return OK, {"status": status, "details": d, "body_size": len(body)}


# ---- HTTP callouts ------------------------------------------------------------------------------------------
@hostcall("proxy_http_call", 10)
def proxy_http_call(
    vm: WasmVm,
    uptr: int,
    ulen: int,
    hptr: int,
    hlen: int,
    bptr: int,
    blen: int,
    tptr: int,
    tlen: int,
    timeout_ms: int,
    token_out: int,
) -> Any:
    got = vm.memory.read_many(uptr, ulen, hptr, hlen, bptr, blen, tptr, tlen)
    if got is None:
        return MEM
    upstream, hraw, body, traw = got
    ctx = vm.effective
    if ctx is None:
        return BAD
    cluster = upstream.decode("latin-1")
    proxy = vm.proxy
    if cluster not in proxy.clusters:
        return BAD, {"cluster": cluster, "error": "unknown cluster"}
    # a request map, each pair addCopy'd: repeated inline names join, ``host`` is ``:authority``
    headers = HeaderMap(((k.lower(), v) for k, v in (pairs.decode(hraw) or [])), REQUEST_HEADERS_INLINE)
    if not all(h in headers for h in (":method", ":path", ":authority")):
        return BAD, {"cluster": cluster, "error": "missing :method, :path or :authority"}
    trailers = HeaderMap(pairs.decode(traw) or []) if traw else None
    root = ctx.root_context()
    token = proxy.wasm.next_http_call_token(vm)
    if not vm.memory.write_u32(token_out, token):
        return MEM

    def on_complete(resp: async_client.AsyncResponse) -> None:
        proxy.wasm.deliver_http_call_response(vm, root, token, resp)

    timeout_s = timeout_ms / 1000.0 if timeout_ms else None
    # Envoy's Wasm context sends the call with send_xff off: no x-forwarded-for
    req = async_client.send(
        proxy, vm.dispatcher, cluster, headers, body, timeout_s, on_complete, trailers, send_xff=False, token=token
    )
    root.http_calls[token] = req
    return OK, {"cluster": cluster, "token": token, "path": headers.get(":path")}
