"""Buffer: the body data a filter sees (Envoy's ``Buffer::Instance``).

Envoy hands filters a mutable buffer per data frame; a filter can read it, drain it, prepend or
append to it, or move it into the stream's buffered body. We keep one ``bytearray``; Envoy's slice
chains are an optimisation a learner never observes.
"""

from __future__ import annotations


class Buffer:
    __slots__ = ("_data",)

    def __init__(self, data: bytes | bytearray | str = b"") -> None:
        if isinstance(data, str):
            data = data.encode()
        self._data = bytearray(data)

    def length(self) -> int:
        return len(self._data)

    __len__ = length

    def to_bytes(self) -> bytes:
        return bytes(self._data)

    __bytes__ = to_bytes

    def add(self, data: bytes | bytearray | str | Buffer) -> None:
        if isinstance(data, Buffer):
            data = data._data
        elif isinstance(data, str):
            data = data.encode()
        self._data += data

    def prepend(self, data: bytes | bytearray | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self._data[:0] = data

    def drain(self, size: int) -> None:
        del self._data[:size]

    def move(self, other: Buffer) -> None:
        """Append ``other``'s bytes and leave ``other`` empty (Envoy ``move``)."""
        self._data += other._data
        other._data = bytearray()

    def set(self, data: bytes | bytearray | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self._data = bytearray(data)

    def slice(self, start: int, size: int) -> bytes:
        return bytes(self._data[start : start + size])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Buffer):
            return self._data == other._data
        if isinstance(other, bytes | bytearray):
            return self._data == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"Buffer({bytes(self._data)!r})"
