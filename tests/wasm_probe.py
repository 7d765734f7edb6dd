"""Probe modules: a WAT module generated from a list of host calls per callback, each logged with
what it answered, so the wasm:trace comparison with Envoy covers values, not only return codes.

``probe_wat({"proxy_on_request_headers": [prop("request.path"), hdr(0, ":path")]})`` gives an
ABI 0.2.1 module whose ``proxy_on_request_headers`` calls ``proxy_get_property`` then
``proxy_get_header_map_value`` and logs, for each, one line at info level::

    prop request.path rc=0 len=2 "/x"
    hdr 0 :path rc=0 len=2 "/x"

Values print quoted when every byte is printable ASCII, else as hex (``0x0100...``). Out-parameters
print as numbers (``u32``/``u64``) or as a (pointer, length) pair's bytes (``buf``); pointers never
print, so the lines do not depend on the allocator. An op can save its first out-parameter in a
slot (``save=k``) and later ops pass ``Saved(k)`` (a metric id, a token, a queue id); ``Param(0)``
passes the callback's first parameter (its context id).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from wasmlab.proxywasm import pairs
from wasmlab.proxywasm.abi import CALLBACKS
from wasmlab.proxywasm.hostcalls import ENV

OUT = object()  #: an out-parameter (the next free out slot's address)
SAVED_BASE, OUT_BASE, DATA_BASE, LINE_BASE, HEAP_BASE = 128, 256, 1024, 32768, 65536


@dataclass(frozen=True)
class Saved:
    """The u32 an earlier op saved in slot ``k``."""

    k: int


@dataclass(frozen=True)
class Param:
    """The callback's parameter number ``i`` (0: its context id)."""

    i: int


@dataclass
class Op:
    label: str
    name: str
    args: list[Any]
    outs: list[str] = field(default_factory=list)  # per OUT arg group: "u32" | "u64" | "buf"
    save: int | None = None
    log: bool = True


# ---- op constructors ---------------------------------------------------------------------------
def path_bytes(path: str | list[str]) -> bytes:
    return "\0".join(path if isinstance(path, list) else path.split(".")).encode()


def prop(path: str | list[str], label: str | None = None) -> Op:
    shown = path if isinstance(path, str) else ".".join(path)
    return Op(label or f"prop {shown}", "proxy_get_property", [path_bytes(path), OUT, OUT], ["buf"])


def set_prop(path: str | list[str], value: bytes) -> Op:
    shown = path if isinstance(path, str) else ".".join(path)
    return Op(f"set_prop {shown}", "proxy_set_property", [path_bytes(path), value])


def hdr(m: int, key: str | bytes) -> Op:
    k = key.encode() if isinstance(key, str) else key
    return Op(f"hdr {m} {k.decode('latin-1')}", "proxy_get_header_map_value", [m, k, OUT, OUT], ["buf"])


def hpairs(m: int) -> Op:
    return Op(f"pairs {m}", "proxy_get_header_map_pairs", [m, OUT, OUT], ["buf"])


def hsize(m: int) -> Op:
    return Op(f"size {m}", "proxy_get_header_map_size", [m, OUT], ["u32"])


def hadd(m: int, key: str, value: str) -> Op:
    return Op(f"add {m} {key}={value}", "proxy_add_header_map_value", [m, key.encode(), value.encode()])


def hreplace(m: int, key: str, value: str) -> Op:
    return Op(f"replace {m} {key}={value}", "proxy_replace_header_map_value", [m, key.encode(), value.encode()])


def hremove(m: int, key: str) -> Op:
    return Op(f"remove {m} {key}", "proxy_remove_header_map_value", [m, key.encode()])


def hset(m: int, items: list[tuple[str, str]] | bytes) -> Op:
    blob = items if isinstance(items, bytes) else pairs.encode(items)
    return Op(f"set_pairs {m}", "proxy_set_header_map_pairs", [m, blob])


def buf(t: int, start: int, size: int) -> Op:
    return Op(f"buf {t} {start} {size}", "proxy_get_buffer_bytes", [t, start, size, OUT, OUT], ["buf"])


def set_buf(t: int, start: int, size: int, data: bytes) -> Op:
    return Op(f"set_buf {t} {start} {size} {data!r}", "proxy_set_buffer_bytes", [t, start, size, data])


def buf_status(t: int) -> Op:
    return Op(f"buf_status {t}", "proxy_get_buffer_status", [t, OUT, OUT], ["u32", "u32"])


def local(status: int, details: str = "", body: str = "", headers: Any = b"", grpc: int = -1) -> Op:
    blob = headers if isinstance(headers, bytes) else pairs.encode(headers)
    return Op(
        f"local {status}",
        "proxy_send_local_response",
        [status, details.encode(), body.encode(), blob, grpc],
    )


def http_call(
    cluster: str, headers: Any, body: bytes = b"", trailers: Any = b"", timeout: int = 5000, save: int | None = None
) -> Op:
    h = headers if isinstance(headers, bytes) else pairs.encode(headers)
    t = trailers if isinstance(trailers, bytes) else pairs.encode(trailers)
    return Op(
        f"http_call {cluster}", "proxy_http_call", [cluster.encode(), h, body, t, timeout, OUT], ["u32"], save=save
    )


def status() -> Op:
    return Op("status", "proxy_get_status", [OUT, OUT, OUT], ["u32", "buf"])


def define(kind: int, name: str, save: int | None = None) -> Op:
    return Op(f"define {kind} {name}", "proxy_define_metric", [kind, name.encode(), OUT], ["u32"], save=save)


def incr(metric: Any, delta: int) -> Op:
    return Op(f"incr {delta}", "proxy_increment_metric", [metric, delta])


def record(metric: Any, value: int) -> Op:
    return Op(f"record {value}", "proxy_record_metric", [metric, value])


def get_metric(metric: Any) -> Op:
    return Op("get_metric", "proxy_get_metric", [metric, OUT], ["u64"])


def get_shared(key: str) -> Op:
    return Op(f"get_shared {key}", "proxy_get_shared_data", [key.encode(), OUT, OUT, OUT], ["buf", "u32"])


def set_shared(key: str, value: bytes, cas: Any = 0) -> Op:
    return Op(f"set_shared {key} {value!r}", "proxy_set_shared_data", [key.encode(), value, cas])


def register_queue(name: str, save: int | None = None) -> Op:
    return Op(f"register_queue {name}", "proxy_register_shared_queue", [name.encode(), OUT], ["u32"], save=save)


def resolve_queue(vm_id: str, name: str) -> Op:
    args = [vm_id.encode(), name.encode(), OUT]
    return Op(f"resolve_queue {vm_id} {name}", "proxy_resolve_shared_queue", args, ["u32"])


def enqueue(queue: Any, value: bytes) -> Op:
    return Op(f"enqueue {value!r}", "proxy_enqueue_shared_queue", [queue, value])


def dequeue(queue: Any) -> Op:
    return Op("dequeue", "proxy_dequeue_shared_queue", [queue, OUT, OUT], ["buf"])


def call(name: str, *args: Any, label: str | None = None) -> Op:
    """Any host call with these arguments (ints, bytes as (ptr, len), ``Saved``, ``Param``)."""
    return Op(label or name.removeprefix("proxy_"), name, list(args))


def wat(text: str) -> str:
    """Raw WAT spliced into the callback body (e.g. ``unreachable``, a ``return``)."""
    return text


PAUSE = "(return (i32.const 1))"


# ---- the module --------------------------------------------------------------------------------
class _Data:
    def __init__(self) -> None:
        self.at: dict[bytes, int] = {}
        self.next = DATA_BASE

    def addr(self, raw: bytes) -> int:
        if raw not in self.at:
            self.at[raw] = self.next
            self.next += (len(raw) + 8) & ~7
            assert self.next < LINE_BASE, "probe data too large"
        return self.at[raw]


def _emit_op(op: Op, data: _Data) -> list[str]:
    hc = ENV[op.name]
    types = list(hc.params)
    args: list[str] = []
    outs: list[int] = []
    slot = OUT_BASE
    for a in op.args:
        if a is OUT:
            args.append(f"(i32.const {slot})")
            outs.append(slot)
            slot += 8
        elif isinstance(a, bytes):
            args += [f"(i32.const {data.addr(a) if a else 0})", f"(i32.const {len(a)})"]
        elif isinstance(a, Saved):
            args.append(f"(i32.load (i32.const {SAVED_BASE + 4 * a.k}))")
        elif isinstance(a, Param):
            args.append(f"(local.get ${chr(97 + a.i)})")
        else:
            t = types[len(args)]
            args.append(f"({t}.const {a})")
    assert len(args) == len(types), f"{op.name}: {len(args)} args for {len(types)} params"
    body = [f"(i64.store (i32.const {s}) (i64.const 0))" for s in outs]
    body.append(f"(local.set $rc (call $h_{op.name} {' '.join(args)}))")
    if op.save is not None:
        body.append(f"(i32.store (i32.const {SAVED_BASE + 4 * op.save}) (i32.load (i32.const {outs[0]})))")
    if not op.log:
        return body
    label = op.label.encode("latin-1") + b" rc="
    body.append(f"(call $put (i32.const {data.addr(label)}) (i32.const {len(label)}))")
    body.append("(call $putu (i64.extend_i32_u (local.get $rc)))")
    it = iter(outs)
    for kind in op.outs:
        s = next(it)
        if kind == "buf":
            next(it)  # the length slot
            body.append(f"(call $putbuf (i32.load (i32.const {s})) (i32.load (i32.const {s + 8})))")
        elif kind == "u64":
            body.append(f"(call $space) (call $putu (i64.load (i32.const {s})))")
        else:
            body.append(f"(call $space) (call $putu (i64.extend_i32_u (i32.load (i32.const {s}))))")
    body.append("(call $emit)")
    return body


_HELPERS = f"""
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const {HEAP_BASE}))
  (global $out (mut i32) (i32.const {LINE_BASE}))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (global.get $heap) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (global.get $heap) (i32.shl (memory.size) (i32.const 16)))
      (then (drop (memory.grow (i32.add (i32.const 1)
        (i32.shr_u (i32.sub (global.get $heap) (i32.shl (memory.size) (i32.const 16))) (i32.const 16)))))))
    (local.get $p))
  (func $byte (param $b i32)
    (i32.store8 (global.get $out) (local.get $b))
    (global.set $out (i32.add (global.get $out) (i32.const 1))))
  (func $space (call $byte (i32.const 32)))
  (func $put (param $p i32) (param $n i32)
    (memory.copy (global.get $out) (local.get $p) (local.get $n))
    (global.set $out (i32.add (global.get $out) (local.get $n))))
  (func $putu (param $v i64) (local $p i32) (local $end i32)
    (local.set $end (i32.const {LINE_BASE - 64}))
    (local.set $p (local.get $end))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.wrap_i64 (i64.add (i64.const 48) (i64.rem_u (local.get $v) (i64.const 10)))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $v) (i64.const 0))))
    (call $put (local.get $p) (i32.sub (local.get $end) (local.get $p))))
  (func $hexd (param $d i32)
    (call $byte (i32.add (local.get $d)
      (select (i32.const 48) (i32.const 87) (i32.lt_u (local.get $d) (i32.const 10))))))
  (func $putbuf (param $p i32) (param $n i32) (local $i i32) (local $b i32) (local $printable i32)
    (call $space) (call $byte (i32.const 108)) (call $byte (i32.const 101)) (call $byte (i32.const 110))
    (call $byte (i32.const 61)) (call $putu (i64.extend_i32_u (local.get $n)))
    (if (i32.eqz (local.get $n)) (then (return)))
    (call $space)
    (local.set $printable (i32.const 1))
    (local.set $i (i32.const 0))
    (block $done (loop $scan
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $b (i32.load8_u (i32.add (local.get $p) (local.get $i))))
      (if (i32.or (i32.lt_u (local.get $b) (i32.const 32)) (i32.gt_u (local.get $b) (i32.const 126)))
        (then (local.set $printable (i32.const 0))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $scan)))
    (if (local.get $printable)
      (then (call $byte (i32.const 34)) (call $put (local.get $p) (local.get $n)) (call $byte (i32.const 34)) (return)))
    (call $byte (i32.const 48)) (call $byte (i32.const 120))
    (local.set $i (i32.const 0))
    (block $done2 (loop $hex
      (br_if $done2 (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $b (i32.load8_u (i32.add (local.get $p) (local.get $i))))
      (call $hexd (i32.shr_u (local.get $b) (i32.const 4)))
      (call $hexd (i32.and (local.get $b) (i32.const 15)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $hex))))
  (func $emit
    (drop (call $h_proxy_log (i32.const 2) (i32.const {LINE_BASE}) (i32.sub (global.get $out) (i32.const {LINE_BASE}))))
    (global.set $out (i32.const {LINE_BASE})))
"""


def probe_wat(callbacks: dict[str, list[Any]], returns: dict[str, int] | None = None) -> str:
    """A module whose callbacks run the given ops (``Op`` or raw WAT strings) in order and return
    ``returns[name]`` (default 0: Continue / true... for ``proxy_on_vm_start`` and
    ``proxy_on_configure`` the default is 1, "configured")."""
    data = _Data()
    bodies: dict[str, str] = {}
    for name, ops in callbacks.items():
        lines: list[str] = []
        for op in ops:
            lines += [op] if isinstance(op, str) else _emit_op(op, data)
        bodies[name] = "\n    ".join(lines)
    used = {"proxy_log"} | {op.name for ops in callbacks.values() for op in ops if isinstance(op, Op)}
    out = ["(module"]
    for name in sorted(used):
        hc = ENV[name]
        result = " (result i32)" if hc.results else ""
        out.append(f'  (import "env" "{name}" (func $h_{name} (param {" ".join(hc.params)}){result}))')
    out.append(_HELPERS)
    for raw, addr in data.at.items():
        if raw:
            out.append(f'  (data (i32.const {addr}) "' + "".join(f"\\{b:02x}" for b in raw) + '")')
    defaults = {"proxy_on_vm_start": 1, "proxy_on_configure": 1}
    for name, body in bodies.items():
        nparams, nresults = CALLBACKS[name]
        params = " ".join(f"(param ${chr(97 + i)} i32)" for i in range(nparams))
        result = " (result i32)" if nresults else ""
        tail = f" (i32.const {(returns or {}).get(name, defaults.get(name, 0))})" if nresults else ""
        out.append(f'  (func (export "{name}") {params}{result} (local $rc i32)\n    {body}{tail})')
    out.append(")")
    return "\n".join(out)


def u64(v: int) -> bytes:
    return struct.pack("<Q", v)
