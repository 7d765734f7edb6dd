"""A ``google.protobuf.Struct`` in protobuf's wire format: what Envoy hands a Wasm module as its
configuration when the YAML gives the configuration as a ``Struct``.

Envoy passes a plugin's (or VM's) ``configuration`` Any to the module as it holds it: a
``StringValue``'s or ``BytesValue``'s value unwrapped, any other message as its serialized bytes
(``Any.value``). A ``Struct`` therefore arrives as protobuf, not JSON: ``{"a": 1}`` is 16 bytes,
not 7, and a module that parses JSON refuses it (Envoy then answers "Unable to create Wasm
plugin"). Numbers are doubles, as in every Struct. Where we simplify: map entries are written in
the YAML's order (protobuf does not fix the order of map entries on the wire).
"""

from __future__ import annotations

import struct
from typing import Any


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_struct(fields: dict[str, Any]) -> bytes:
    """``Struct { map<string, Value> fields = 1; }``"""
    return b"".join(_field(1, _field(1, str(k).encode()) + _field(2, encode_value(v))) for k, v in fields.items())


def encode_value(v: Any) -> bytes:
    """``Value``: null 1, number 2 (a double), string 3, bool 4, struct 5, list 6."""
    if v is None:
        return _varint(1 << 3 | 0) + _varint(0)
    if isinstance(v, bool):
        return _varint(4 << 3 | 0) + _varint(int(v))
    if isinstance(v, int | float):
        return _varint(2 << 3 | 1) + struct.pack("<d", float(v))
    if isinstance(v, dict):
        return _field(5, encode_struct(v))
    if isinstance(v, list):
        return _field(6, b"".join(_field(1, encode_value(x)) for x in v))
    return _field(3, str(v).encode())
