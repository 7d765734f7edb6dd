"""The one call seam between the host and wasmtime: guest calls, host functions, linear memory.

Every call into a guest export, every host-function registration and every linear-memory access
of the Proxy-Wasm host goes through a :class:`Seam`, so the two implementations are
interchangeable without touching the rest:

* ``normal`` — wasmtime-py's public API: ``Func.__call__`` (~19 µs a call), ``Func`` host
  functions (~9 µs a crossing), ``Memory.read``. Simple and always available.
* ``fast`` — :mod:`.fastpath`, over wasmtime's C API with everything resolved once per VM
  (well under 1 µs a crossing). Used when its self-test passes with the installed wasmtime.

Choose with the proxy option ``wasm_call_path`` or ``$WASMLAB_WASM_PATH`` (``auto`` | ``fast`` |
``normal``); ``auto`` (the default) takes the fast path when it is available.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from typing import Any

import wasmtime


def wasmtime_version() -> str:
    try:
        import importlib.metadata as md

        return md.version("wasmtime")
    except Exception:
        return "?"


class MemoryWords:
    """Little-endian words on top of a memory's ``read``/``write`` (both seams' memories)."""

    __slots__ = ()

    def read(self, ptr: int, size: int) -> bytes | None:
        raise NotImplementedError

    def write(self, ptr: int, data: bytes) -> bool:
        raise NotImplementedError

    def text(self, ptr: int, size: int) -> str | None:
        """``size`` bytes at ``ptr`` decoded as latin-1 (header names and values), or None."""
        raw = self.read(ptr, size)
        return None if raw is None else raw.decode("latin-1")

    def text_pair(self, ptr1: int, size1: int, ptr2: int, size2: int) -> tuple[str, str] | None:
        """Two guest strings at once (a header's name and value), or None if either is out of
        bounds: the header host calls read both with one call."""
        first = self.text(ptr1, size1)
        second = self.text(ptr2, size2)
        return None if first is None or second is None else (first, second)

    def read_many(self, *spans: int) -> list[bytes] | None:
        """The bytes of several ``ptr, size`` spans (``read_many(kptr, klen, vptr, vlen)``), or
        None if any of them is out of bounds: a host call taking several guest strings then
        answers INVALID_MEMORY_ACCESS, whichever one was bad (as cpp-host's exports do)."""
        read = self.read
        out = []
        for i in range(0, len(spans), 2):
            raw = read(spans[i], spans[i + 1])
            if raw is None:
                return None
            out.append(raw)
        return out

    def read_u32(self, ptr: int) -> int | None:
        raw = self.read(ptr, 4)
        return None if raw is None else struct.unpack("<I", raw)[0]

    def write_u32(self, ptr: int, value: int) -> bool:
        return self.write(ptr, struct.pack("<I", value & 0xFFFFFFFF))

    def write_u64(self, ptr: int, value: int) -> bool:
        return self.write(ptr, struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF))


class GuestMemory(MemoryWords):
    """Bounds-checked access to a guest's linear memory (re-reads size every time: it may grow)."""

    __slots__ = ("_store", "_mem")

    def __init__(self, store: wasmtime.Store, memory: wasmtime.Memory | None) -> None:
        self._store = store
        self._mem = memory

    @property
    def present(self) -> bool:
        return self._mem is not None

    def size(self) -> int:
        if self._mem is None:
            return 0
        return self._mem.data_len(self._store)

    def read(self, ptr: int, size: int) -> bytes | None:
        """``size`` bytes at ``ptr``, or None when out of bounds."""
        if size == 0:
            return b""
        if self._mem is None or ptr < 0 or size < 0 or ptr + size > self._mem.data_len(self._store):
            return None
        return bytes(self._mem.read(self._store, ptr, ptr + size))

    def write(self, ptr: int, data: bytes) -> bool:
        if not data:
            return True
        if self._mem is None or ptr < 0 or ptr + len(data) > self._mem.data_len(self._store):
            return False
        self._mem.write(self._store, data, ptr)
        return True


class Seam:
    """The normal path (wasmtime-py's public API)."""

    name = "normal"

    def bind_export(
        self, store: wasmtime.Store, func: wasmtime.Func, functype: wasmtime.FuncType | None = None
    ) -> Callable[..., Any]:
        def call(*args: int) -> Any:
            return func(store, *args)

        return call

    def host_func(self, store: wasmtime.Store, functype: wasmtime.FuncType, fn: Callable[..., Any]) -> wasmtime.Func:
        return wasmtime.Func(store, functype, fn)

    def memory(self, store: wasmtime.Store, memory: wasmtime.Memory | None) -> Any:
        return GuestMemory(store, memory)

    def deadline_setter(self, store: wasmtime.Store) -> Callable[[int], None]:
        return store.set_epoch_deadline

    def close_store(self, store: wasmtime.Store) -> None:
        """Free the store now: its instance, its linear memory, its host functions (wasmtime-py
        keeps those in a process-wide table until their store is deleted, so a store that is
        never closed keeps its VM alive for good)."""
        store.close()


class FastSeam(Seam):
    name = "fast"

    def bind_export(
        self, store: wasmtime.Store, func: wasmtime.Func, functype: wasmtime.FuncType | None = None
    ) -> Callable[..., Any]:
        from . import fastpath

        return fastpath.bind_export(store, func, functype)

    def host_func(self, store: wasmtime.Store, functype: wasmtime.FuncType, fn: Callable[..., Any]) -> wasmtime.Func:
        from . import fastpath

        return fastpath.host_func(store, functype, fn)

    def memory(self, store: wasmtime.Store, memory: wasmtime.Memory | None) -> Any:
        from . import fastpath

        return fastpath.FastMemory(store, memory)

    def deadline_setter(self, store: wasmtime.Store) -> Callable[[int], None]:
        from . import fastpath

        return fastpath.deadline_setter(store)

    def close_store(self, store: wasmtime.Store) -> None:
        from . import fastpath

        fastpath.close_store(store)


NORMAL = Seam()
FAST = FastSeam()


def seam(preference: str | None = None) -> tuple[Seam, str]:
    """The seam to use and why: ``(seam, reason)``."""
    pref = (preference or os.environ.get("WASMLAB_WASM_PATH") or "auto").lower()
    if pref not in ("auto", "fast", "normal"):
        raise ValueError(f"wasm_call_path must be auto, fast or normal, got {pref!r}")
    if pref == "normal":
        return NORMAL, "asked for"
    from . import fastpath

    ok, why = fastpath.available()
    if ok:
        return FAST, "self-test passed"
    if pref == "fast":
        raise RuntimeError(f"the fast Wasm call path is not available with this wasmtime: {why}")
    return NORMAL, f"fast path unavailable ({why})"


def describe() -> str:
    s, why = seam()
    return f"{s.name} ({why}; wasmtime-py {wasmtime_version()})"
