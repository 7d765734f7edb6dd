"""Properties: ``proxy_get_property`` / ``proxy_set_property`` over Envoy's attributes.

A path is NUL-separated segments (``request\\0headers\\0x-foo``). Values use Envoy's encodings:
strings and bytes raw, integers as 8-byte little-endian, booleans as one byte, maps as pairs,
``metadata`` as a serialized ``google.protobuf.Struct``. The Wasm-only ``plugin_name``,
``plugin_root_id`` and ``plugin_vm_id`` are always there (C++ and AssemblyScript SDKs read
``plugin_root_id`` while creating every root context). ``proxy_set_property`` stores into the
stream's filter state under ``wasm.<path>``, and unknown top-level names are looked up there.
Simplifications: no ``node``, no CEL expressions, TLS attributes answer as plaintext.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from .. import pairs
from ..types import WasmResult
from . import hostcall

if TYPE_CHECKING:
    from ..vm import WasmVm

OK = WasmResult.OK
MEM = WasmResult.INVALID_MEMORY_ACCESS


def _i64(v: int) -> bytes:
    return struct.pack("<q", v)


def _u64(v: int) -> bytes:
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


def _bool(v: bool) -> bytes:
    return b"\x01" if v else b"\x00"


# ---- a tiny protobuf encoder for google.protobuf.Struct --------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, wire: int, payload: bytes) -> bytes:
    key = _varint((num << 3) | wire)
    if wire == 2:
        return key + _varint(len(payload)) + payload
    return key + payload


def encode_value(v: Any) -> bytes:
    if v is None:
        return _field(1, 0, _varint(0))
    if isinstance(v, bool):
        return _field(4, 0, _varint(int(v)))
    if isinstance(v, int | float):
        return _field(2, 1, struct.pack("<d", float(v)))
    if isinstance(v, str):
        return _field(3, 2, v.encode())
    if isinstance(v, dict):
        return _field(5, 2, encode_struct(v))
    if isinstance(v, list | tuple):
        return _field(6, 2, b"".join(_field(1, 2, encode_value(x)) for x in v))
    return _field(3, 2, str(v).encode())


def encode_struct(d: dict[str, Any]) -> bytes:
    return b"".join(_field(1, 2, _field(1, 2, str(k).encode()) + _field(2, 2, encode_value(v))) for k, v in d.items())


# ---- attribute lookup ----------------------------------------------------------------------------
def _headers_pairs(headers: Any) -> bytes:
    if headers is None:
        return b""
    merged: dict[str, str] = {}
    for k, v in headers:
        merged[k] = f"{merged[k]},{v}" if k in merged else v
    return pairs.encode(merged.items())


def _addr_port(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    try:
        return host, int(port)
    except ValueError:
        return addr, 0


#: a family's answer meaning "not mine": the path is looked up in the filter state instead
_OTHER: Any = object()


def _request(vm: WasmVm, info: Any, rest: list[str]) -> bytes | None:
    """``request.*``: Envoy's request attributes, read from the request headers and stream info."""
    req = info.request_headers
    if req is None:
        return _OTHER
    if not rest:
        return None
    key = rest[0]
    if key == "headers":
        if len(rest) == 2:
            v = req.get_joined(rest[1])
            return v.encode("latin-1") if v is not None else None
        return _headers_pairs(req)
    p = req.get(":path") or ""
    table: dict[str, Any] = {
        "path": p,
        "url_path": p.split("?", 1)[0],
        "host": req.get(":authority"),
        "scheme": req.get(":scheme"),
        "method": req.get(":method"),
        "referer": req.get("referer"),
        "useragent": req.get("user-agent"),
        "id": req.get("x-request-id"),
        "protocol": info.protocol,
        "query": p.split("?", 1)[1] if "?" in p else "",
    }
    if key in table:
        v = table[key]
        return v.encode("latin-1") if v is not None else None
    if key == "time":
        return _i64(info.start_wall_ns)
    if key == "duration":
        return _i64(vm.proxy.clock.monotonic_ns() - info.start_mono_ns)
    if key in ("size", "total_size"):
        cl = req.get("content-length")
        size = info.bytes_received if cl is None else int(cl)
        return _i64(size)
    return None


def _response(vm: WasmVm, info: Any, rest: list[str]) -> bytes | None:
    """``response.*``: code, details, flags, headers, trailers, sizes."""
    if not rest:
        return None
    key = rest[0]
    resp = info.response_headers
    if key == "code":
        return _i64(info.response_code) if info.response_code is not None else None
    if key == "code_details":
        return info.response_code_details.encode()
    if key == "flags":
        return _u64(0)
    if key == "headers":
        if resp is None:
            return None
        if len(rest) == 2:
            v = resp.get_joined(rest[1])
            return v.encode("latin-1") if v is not None else None
        return _headers_pairs(resp)
    if key == "trailers":
        return _headers_pairs(info.response_trailers) if info.response_trailers is not None else None
    if key in ("size", "total_size"):
        return _i64(info.bytes_sent)
    return None


def _address_of(top: str) -> Any:
    """``source.*``, ``destination.*``, ``upstream.*``: ``address`` and ``port`` of a peer."""

    def family(vm: WasmVm, info: Any, rest: list[str]) -> bytes | None:
        if len(rest) != 1:
            return _OTHER
        addr = {
            "source": info.downstream_remote_address,
            "destination": info.downstream_local_address,
            "upstream": info.upstream_host,
        }[top]
        if addr is None:
            return None
        _host, port = _addr_port(addr)
        if rest[0] == "address":
            return addr.encode()
        if rest[0] == "port":
            return _i64(port)
        return None

    return family


def _connection(vm: WasmVm, info: Any, rest: list[str]) -> bytes | None:
    """``connection.*``: the downstream connection (plaintext here: no mTLS, no SNI)."""
    if len(rest) != 1:
        return _OTHER
    return {
        "id": _u64(info.connection_id),
        "mtls": _bool(False),
        "requested_server_name": b"",
        "tls_version": None,
    }.get(rest[0])


def _connection_id(vm: WasmVm, info: Any, rest: list[str]) -> bytes | None:
    return _OTHER if rest else _u64(info.connection_id)


def _xds(vm: WasmVm, info: Any, rest: list[str]) -> bytes | None:
    """``xds.*``: the route, virtual host and cluster the stream was routed by."""
    if len(rest) != 1:
        return _OTHER
    ctx = vm.effective
    route = ctx.filter.route() if ctx is not None and ctx.filter is not None else None
    action = route.action if route is not None else None
    vals = {
        "cluster_name": info.upstream_cluster or getattr(action, "cluster", None),  # a RouteAction has one
        "route_name": route.name if route is not None else None,
        "virtual_host_name": route.virtual_host.name if route is not None and route.virtual_host else None,
        "listener_direction": None,
    }
    v = vals.get(rest[0])
    return v.encode() if isinstance(v, str) else None


def _metadata(vm: WasmVm, info: Any, rest: list[str]) -> bytes | None:
    """``metadata``: the stream's dynamic metadata as a serialized Struct."""
    return _OTHER if rest else encode_struct({"filter_metadata": info.dynamic_metadata})


def _filter_state(vm: WasmVm, info: Any, rest: list[str]) -> bytes | None:
    """``filter_state.<key>``: a value some filter stored for the stream."""
    if len(rest) == 1:
        v = info.filter_state.get(rest[0])
        return v if isinstance(v, bytes) else (str(v).encode() if v is not None else None)
    return None


#: attribute families by their first path segment (Envoy's attribute groups)
_FAMILIES = {
    "request": _request,
    "response": _response,
    "source": _address_of("source"),
    "destination": _address_of("destination"),
    "upstream": _address_of("upstream"),
    "connection": _connection,
    "connection_id": _connection_id,
    "xds": _xds,
    "metadata": _metadata,
    "filter_state": _filter_state,
}


def _plugin(vm: WasmVm, top: str) -> bytes | None:
    """``plugin_name``, ``plugin_root_id``, ``plugin_vm_id``: from the context's plugin config."""
    ctx = vm.effective
    plugin = ctx.plugin if ctx is not None else None
    if plugin is None:
        return None
    return {
        "plugin_name": plugin.name,
        "plugin_root_id": plugin.root_id,
        "plugin_vm_id": plugin.vm_config.vm_id,
    }[top].encode()


def lookup(vm: WasmVm, path: list[str]) -> bytes | None:
    """The value of attribute ``path`` in the effective context, Envoy-encoded; None if absent."""
    top = path[0]
    if top in ("plugin_name", "plugin_root_id", "plugin_vm_id") and len(path) == 1:
        return _plugin(vm, top)
    ctx = vm.effective
    f = ctx.filter if ctx is not None else None
    info = f.stream_info if f is not None else None
    if info is None:
        return None
    family = _FAMILIES.get(top)
    if family is not None:
        v = family(vm, info, path[1:])
        if v is not _OTHER:
            return v
    # fallback: what proxy_set_property stored
    v = info.filter_state.get("wasm." + ".".join(path))
    if v is None and len(path) == 1:
        v = info.filter_state.get("wasm." + top)
    return v


@hostcall("proxy_get_property", 4)
def proxy_get_property(vm: WasmVm, path_ptr: int, path_len: int, out_ptr: int, out_len: int) -> Any:
    raw = vm.memory.read(path_ptr, path_len)
    if raw is None:
        return MEM
    path = raw.decode("latin-1").split("\0")
    value = lookup(vm, path)
    if value is None:
        return WasmResult.NOT_FOUND, {"path": ".".join(path)}
    return vm.copy_out(value, out_ptr, out_len), {"path": ".".join(path), "size": len(value)}


@hostcall("proxy_set_property", 4)
def proxy_set_property(vm: WasmVm, path_ptr: int, path_len: int, val_ptr: int, val_len: int) -> Any:
    raw = vm.memory.read(path_ptr, path_len)
    value = vm.memory.read(val_ptr, val_len)
    if raw is None or value is None:
        return MEM
    ctx = vm.effective
    f = ctx.filter if ctx is not None else None
    info = f.stream_info if f is not None else None
    if info is None:
        return WasmResult.NOT_FOUND
    key = "wasm." + raw.decode("latin-1").replace("\0", ".")
    info.filter_state[key] = value
    return OK, {"key": key}
