"""A tiny protobuf encoder for ``google.protobuf.Struct`` (and the fields around it): the wire
format a Wasm module reads a Struct in.

Two places hand a module a Struct: a metadata property (``proxy_get_property``: Envoy serializes
the ``Struct`` message), and a plugin's or VM's ``configuration`` written as a Struct in the YAML
(Envoy passes a configuration Any as it holds it: a ``StringValue``'s or ``BytesValue``'s value
unwrapped, any other message as its serialized bytes, ``Any.value``). So ``{a: 1}`` reaches the
module as 16 bytes of protobuf, not 7 of JSON, and a module that parses JSON refuses it (Envoy
then answers "Unable to create Wasm plugin"). Numbers are doubles, as in every Struct; map entries
are written in the YAML's order (protobuf does not fix the order of map entries on the wire).
"""

from __future__ import annotations

import struct
from typing import Any


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


def field(num: int, wire: int, payload: bytes) -> bytes:
    """Field ``num`` of wire type ``wire`` (0 varint, 1 64-bit, 2 length-delimited)."""
    key = _varint((num << 3) | wire)
    if wire == 2:
        return key + _varint(len(payload)) + payload
    return key + payload


def encode_value(v: Any) -> bytes:
    """``Value``: null 1, number 2 (a double), string 3, bool 4, struct 5, list 6."""
    if v is None:
        return field(1, 0, _varint(0))
    if isinstance(v, bool):
        return field(4, 0, _varint(int(v)))
    if isinstance(v, int | float):
        return field(2, 1, struct.pack("<d", float(v)))
    if isinstance(v, str):
        return field(3, 2, v.encode())
    if isinstance(v, dict):
        return field(5, 2, encode_struct(v))
    if isinstance(v, list | tuple):
        return field(6, 2, b"".join(field(1, 2, encode_value(x)) for x in v))
    return field(3, 2, str(v).encode())


def encode_struct(d: dict[str, Any]) -> bytes:
    """``Struct { map<string, Value> fields = 1; }``"""
    return b"".join(field(1, 2, field(1, 2, str(k).encode()) + field(2, 2, encode_value(v))) for k, v in d.items())
