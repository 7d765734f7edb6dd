"""The "pairs" wire format of Proxy-Wasm header maps.

``u32 count`` | count x (``u32 key_len``, ``u32 value_len``) | count x (key bytes, NUL, value
bytes, NUL); little-endian. An empty map is zero bytes (what Envoy returns) or ``u32 0``.
Envoy rejects (treats as empty) input whose lengths do not add up or whose terminators are not
NUL, more than 1024 pairs, or more than 1 MiB.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

MAX_PAIRS = 1024
MAX_BYTES = 1024 * 1024


def encode(pairs: Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]]) -> bytes:
    sizes: list[int] = []
    strings: list[bytes] = []
    for k, v in pairs:
        kb = k.encode("latin-1") if isinstance(k, str) else k
        vb = v.encode("latin-1") if isinstance(v, str) else v
        sizes += (len(kb), len(vb))
        strings += (kb, vb)
    if not strings:
        return b""
    strings.append(b"")  # so the join ends the last value with its NUL too
    # the count and every size in one pack, every string in one join: SDKs read a whole map per callback
    return struct.pack(f"<{len(sizes) + 1}I", len(sizes) // 2, *sizes) + b"\0".join(strings)


def decode(data: bytes) -> list[tuple[str, str]] | None:
    """Pairs from bytes, or None when malformed (Envoy then treats the map as empty)."""
    if not data:
        return []
    if len(data) < 4 or len(data) > MAX_BYTES:
        return None
    (n,) = struct.unpack_from("<I", data, 0)
    if n > MAX_PAIRS:
        return None
    pos = 4 + 8 * n
    if pos > len(data):
        return None
    out = []
    for i in range(n):
        klen, vlen = struct.unpack_from("<II", data, 4 + 8 * i)
        end_k = pos + klen
        end_v = end_k + 1 + vlen
        if end_v + 1 > len(data) or data[end_k] != 0 or data[end_v] != 0:
            return None
        out.append((data[pos:end_k].decode("latin-1"), data[end_k + 1 : end_v].decode("latin-1")))
        pos = end_v + 1
    if pos != len(data):
        return None
    return out
