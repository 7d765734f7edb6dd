"""Properties: ``proxy_get_property`` / ``proxy_set_property`` over Envoy's attributes.

A path is NUL-separated segments (``request\\0headers\\0x-foo``). Values use Envoy's encodings:
strings and bytes raw, integers as 8-byte little-endian, booleans as one byte, maps as pairs,
``metadata`` as a serialized ``google.protobuf.Struct``. The Wasm-only ``plugin_name``,
``plugin_root_id`` and ``plugin_vm_id`` are always there (C++ and AssemblyScript SDKs read
``plugin_root_id`` while creating every root context). ``proxy_set_property`` stores into the
stream's filter state under ``wasm.<path>`` (the raw path, NULs kept), and an unknown first
segment is looked up there (one segment only: stored bytes have no fields to walk into).
``xds.node.*`` reads the bootstrap's ``node``. Simplifications: no CEL expressions, TLS attributes answer as plaintext.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from ...http.grpc import http_to_grpc_status
from .. import pairs
from ..struct_wire import encode_struct
from ..struct_wire import field as _field
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


# ---- attribute lookup ----------------------------------------------------------------------------
def _headers_pairs(headers: Any) -> bytes:
    """A header map as a property: Envoy's pairs encoding, a count of 0 for an absent map."""
    if headers is None or not len(headers):
        return struct.pack("<I", 0)
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


def _byte_size(headers: Any) -> int:
    """Envoy's ``HeaderMap::byteSize``: the names' and values' lengths, pseudo-headers included."""
    return sum(len(k) + len(v) for k, v in headers) if headers is not None else 0


def _stream_map(vm: WasmVm, map_type: int) -> Any:
    """A header map as the context sees it now (Envoy's context holds the request headers only
    until its request-headers callback continues, the response headers likewise)."""
    ctx = vm.effective
    f = ctx.filter if ctx is not None else None
    return f.header_map(map_type, False) if f is not None else None


def _request(vm: WasmVm, info: Any, rest: list[str]) -> bytes | None:
    """``request.*``: from the context's request headers (so not found once its request-headers
    callback has continued, as in Envoy) and from the stream info (time, protocol, sizes;
    ``duration`` once the stream completed)."""
    if info.request_headers is None:
        return _OTHER
    if not rest:
        return None
    key = rest[0]
    if key == "time":
        return _i64(info.start_wall_ns)
    if key == "duration":
        return _i64(info.end_mono_ns - info.start_mono_ns) if info.end_mono_ns is not None else None
    if key == "protocol":
        return info.protocol.encode()
    req = _stream_map(vm, 0)
    if key == "headers_bytes":
        return _i64(_byte_size(req))
    if key in ("size", "total_size"):
        cl = req.get("content-length") if req is not None else None
        size = info.bytes_received if cl is None or not cl.isdigit() else int(cl)
        return _i64(size if key == "size" else info.bytes_received + _byte_size(req))
    if key == "headers":
        if len(rest) == 2:
            v = req.get_joined(rest[1]) if req is not None else None
            return v.encode("latin-1") if v is not None else None
        return _headers_pairs(req)
    if req is None:
        return None
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
        "query": p.split("?", 1)[1] if "?" in p else "",
    }
    v = table.get(key)
    return v.encode("latin-1") if v is not None else None


def _response(vm: WasmVm, info: Any, rest: list[str]) -> bytes | None:
    """``response.*``: code, details, flags, headers, trailers, sizes, gRPC status. The maps are
    empty (not absent) before the response exists."""
    if not rest:
        return None
    key = rest[0]
    resp = info.response_headers
    if key == "code":
        return _i64(info.response_code) if info.response_code is not None else None
    if key == "code_details":
        details = info.response_code_details
        return details.encode() if details is not None else None
    if key == "flags":
        return _u64(0)
    if key in ("headers", "trailers"):
        m = resp if key == "headers" else info.response_trailers
        if len(rest) == 2:
            v = m.get_joined(rest[1]) if m is not None else None
            return v.encode("latin-1") if v is not None else None
        return _headers_pairs(m)
    if key == "grpc_status":
        if resp is None:
            return None
        for m in (info.response_trailers, resp):
            v = m.get("grpc-status") if m is not None else None
            if v is not None and v.isdigit():
                return _i64(int(v))
        return _i64(http_to_grpc_status(info.response_code or 0))  # a response without grpc-status
    if key == "size":
        return _i64(info.bytes_sent)
    if key == "headers_bytes":
        return _i64(_byte_size(resp))
    if key == "total_size":
        return _i64(info.bytes_sent + _byte_size(resp))
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
        if top == "upstream" and info.upstream_host is not None and rest[0] == "transport_failure_reason":
            return b""
        if top == "upstream" and rest[0] == "request_attempt_count":
            return _u64(1 if info.upstream_host is not None else 0)
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


def _cel_pairs(items: list[tuple[bytes, bytes]]) -> bytes:
    """A CEL map or list in the pairs format; Envoy writes an empty one as a count of 0."""
    return pairs.encode(items) or struct.pack("<I", 0)


def cel_bytes(v: Any) -> Any:
    """A ``google.protobuf.Struct`` value as Envoy serializes it once CEL has unwrapped it: a
    struct is a map (pairs of key and serialized value), a list is pairs with the elements in
    the key slots, numbers are doubles, booleans one byte; null cannot be serialized."""
    if v is None:
        return UNSERIALIZABLE
    if isinstance(v, bool):
        return _bool(v)
    if isinstance(v, int | float):
        return struct.pack("<d", float(v))
    if isinstance(v, dict):
        items = [(str(k).encode(), cel_bytes(x)) for k, x in v.items()]
        return UNSERIALIZABLE if any(x is UNSERIALIZABLE for _, x in items) else _cel_pairs(items)
    if isinstance(v, list | tuple):
        elems = [cel_bytes(x) for x in v]
        return UNSERIALIZABLE if UNSERIALIZABLE in elems else _cel_pairs([(e, b"") for e in elems])
    return str(v).encode()


def _struct_path(value: Any, rest: list[str]) -> Any:
    """Walk ``rest`` into a Struct (as a dict) and serialize what is there (:func:`cel_bytes`)."""
    for seg in rest:
        if not isinstance(value, dict) or seg not in value:
            return None
        value = value[seg]
    return cel_bytes(value)


#: ``Node`` fields read as strings (unset ones are empty, as protobuf's defaults); Envoy sets
#: ``user_agent_name`` to "envoy"
_NODE_STRINGS = {"id": "", "cluster": "", "user_agent_name": "envoy", "user_agent_version": ""}
_LOCALITY = ("region", "zone", "sub_zone")


def _node(vm: WasmVm, rest: list[str]) -> Any:
    """``xds.node[.<field>...]``: the bootstrap's ``node`` (Envoy's ``LocalInfo``), a protobuf
    ``Node``: string fields raw (empty when unset), ``metadata`` a Struct (:func:`cel_bytes`),
    ``locality`` a message, ``dynamic_parameters``/``client_features`` empty. Simplified: the whole
    node is encoded from the configured fields only (Envoy's also carries its build version and
    the list of every extension it was built with, ~60 KB), and ``extensions`` is not found."""
    node = vm.proxy.node
    if not rest:
        return encode_struct(node.as_property())
    key, sub = rest[0], rest[1:]
    if key in _NODE_STRINGS and not sub:
        v = node.as_property().get(key)
        return (v if isinstance(v, str) else _NODE_STRINGS[key]).encode()
    if key == "metadata":
        return _struct_path(node.metadata, sub)
    if key == "locality":
        loc = node.extra.get("locality") or {}
        if not sub:
            return b"".join(_field(i + 1, 2, str(loc[f]).encode()) for i, f in enumerate(_LOCALITY) if loc.get(f))
        return str(loc.get(sub[0], "")).encode() if len(sub) == 1 and sub[0] in _LOCALITY else None
    if key in ("dynamic_parameters", "client_features", "listening_addresses") and not sub:
        return struct.pack("<I", 0)
    return None


def _xds(vm: WasmVm, info: Any, rest: list[str]) -> bytes | None:
    """``xds.*``: the route, virtual host and cluster the stream was routed by, the listener's
    direction and metadata, the filter chain's name and the bootstrap's node. Only ``node`` is
    there without a stream (a root context). The ``*_metadata`` values are serialized
    ``envoy.config.core.v3.Metadata`` messages: Envoy answers them (empty) wherever the route,
    cluster, listener or upstream host exists; wasmlab keeps route metadata only."""
    if rest and rest[0] == "node":
        return _node(vm, rest[1:])
    if info is None:
        return None
    key = rest[0]
    if key == "route_metadata" and len(rest) > 1:
        route = vm.effective.filter.route() if vm.effective is not None and vm.effective.filter else None
        return _metadata_path(getattr(route, "metadata", None) or {}, rest[1:]) if route is not None else None
    if len(rest) != 1:
        return None
    if key == "listener_direction":
        return _i64(info.listener_direction)
    if key in ("listener_metadata", "filter_chain_name"):
        return b""
    if key == "upstream_host_metadata":  # Envoy 1.40 cannot serialize a host's (empty) metadata
        return UNSERIALIZABLE if info.upstream_host is not None else None
    ctx = vm.effective
    route = ctx.filter.route() if ctx is not None and ctx.filter is not None else None
    # named when the route was matched (just above, at the latest), if the cluster exists: the
    # HCM's route(), as Envoy's cached route
    cluster = info.upstream_cluster
    if key == "route_metadata":
        return _metadata_message(getattr(route, "metadata", None) or {}) if route is not None else None
    if key == "cluster_metadata":
        return b"" if isinstance(cluster, str) else None
    vals = {
        "cluster_name": cluster,
        "route_name": route.name if route is not None else None,
        "virtual_host_name": route.virtual_host.name if route is not None and route.virtual_host else None,
    }
    v = vals.get(key)
    return v.encode() if isinstance(v, str) else None


def _metadata_path(namespaces: dict[str, Any], rest: list[str]) -> Any:
    """Into a ``Metadata`` message: ``filter_metadata`` is a map of namespace -> Struct,
    ``typed_filter_metadata`` (not kept by wasmlab) an empty map."""
    if rest[0] == "filter_metadata":
        return _struct_path(namespaces, rest[1:])
    if rest[0] == "typed_filter_metadata" and len(rest) == 1:
        return struct.pack("<I", 0)
    return None


def _metadata_message(namespaces: dict[str, Any]) -> bytes:
    """An ``envoy.config.core.v3.Metadata``: ``filter_metadata`` entries, namespace -> Struct."""
    return b"".join(
        _field(1, 2, _field(1, 2, ns.encode()) + _field(2, 2, encode_struct(fields)))
        for ns, fields in namespaces.items()
    )


def _metadata(vm: WasmVm, info: Any, rest: list[str]) -> bytes | None:
    """``metadata``: the stream's dynamic metadata as a serialized ``envoy.config.core.v3.Metadata``
    (``filter_metadata``: namespace -> Struct; empty metadata is zero bytes)."""
    if rest:
        return _OTHER
    return _metadata_message(info.dynamic_metadata)


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


#: families that are maps: Envoy finds them but cannot serialize one whole (its CEL wrappers do
#: not list their keys), and answers SERIALIZATION_FAILURE; ``xds`` is there without a stream too
_MAP_FAMILIES = frozenset({"request", "response", "connection", "upstream", "source", "destination", "filter_state"})
#: a value Envoy finds but cannot serialize (:data:`_MAP_FAMILIES`, the empty path)
UNSERIALIZABLE: Any = object()


def lookup(vm: WasmVm, path: list[str]) -> Any:
    """The value of attribute ``path`` in the effective context, Envoy-encoded; None if absent,
    :data:`UNSERIALIZABLE` if Envoy finds it but cannot serialize it."""
    top = path[0]
    if top in ("plugin_name", "plugin_root_id", "plugin_vm_id") and len(path) == 1:
        return _plugin(vm, top)
    ctx = vm.effective
    f = ctx.filter if ctx is not None else None
    info = f.stream_info if f is not None else None
    if top == "xds":
        return UNSERIALIZABLE if len(path) == 1 else _xds(vm, info, path[1:])
    if info is None:
        return None
    if len(path) == 1 and top in _MAP_FAMILIES:
        return UNSERIALIZABLE
    family = _FAMILIES.get(top)
    if family is not None:
        v = family(vm, info, path[1:])
        if v is not _OTHER:
            return v
    # fallback: what proxy_set_property stored under the first segment's name. Envoy then walks
    # the further segments into that value, and stored bytes have no fields: not found
    v = info.filter_state.get("wasm." + top)
    return v if len(path) == 1 else None


@hostcall("proxy_get_property", 4)
def proxy_get_property(vm: WasmVm, path_ptr: int, path_len: int, out_ptr: int, out_len: int) -> Any:
    raw = vm.memory.read(path_ptr, path_len)
    if raw is None:
        return MEM
    # Envoy walks the segments up to the end: one trailing NUL adds no segment, and the empty
    # path finds nothing to serialize
    path = raw.decode("latin-1").removesuffix("\0").split("\0")
    value = lookup(vm, path) if raw else UNSERIALIZABLE
    traced = vm.rec.enabled  # the trace detail is built only when someone records it
    if value is UNSERIALIZABLE:
        return WasmResult.SERIALIZATION_FAILURE, {"path": ".".join(path)}
    if value is None:
        return (WasmResult.NOT_FOUND, {"path": ".".join(path)}) if traced else WasmResult.NOT_FOUND
    rc = vm.copy_out(value, out_ptr, out_len)
    return (rc, {"path": ".".join(path), "size": len(value)}) if traced else rc


@hostcall("proxy_set_property", 4)
def proxy_set_property(vm: WasmVm, path_ptr: int, path_len: int, val_ptr: int, val_len: int) -> Any:
    got = vm.memory.read_many(path_ptr, path_len, val_ptr, val_len)
    if got is None:
        return MEM
    raw, value = got
    ctx = vm.effective
    f = ctx.filter if ctx is not None else None
    info = f.stream_info if f is not None and f.properties_writable else None
    if info is None:
        return WasmResult.NOT_FOUND
    # the whole path is the key, its NULs kept: a path of several segments is stored where no
    # proxy_get_property finds it (Envoy's keys are the same; %FILTER_STATE% shows them)
    key = "wasm." + raw.decode("latin-1")
    info.filter_state[key] = value
    return OK, {"key": key}
