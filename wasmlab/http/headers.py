"""HeaderMap: Envoy's ordered, case-insensitive, multi-value header map.

Envoy (``Http::HeaderMapImpl``) keeps header names lower-cased, keeps every value of a repeated
name as its own entry, and keeps pseudo-headers (``:method``, ``:path``, ``:status``...) in front
of ordinary headers: adding a pseudo-header inserts it after the last pseudo-header. Replacing a
header (``setCopy``) removes every entry of that name and adds one at the end of its group.

Some names have a fixed slot in Envoy's maps ("inline headers", see :mod:`.inline_headers`):
adding one that is present appends ``,value`` to it instead of making a second entry. A map made
with ``inline=`` (the set of its kind: request headers, response headers...) does the same in
:meth:`HeaderMap.add`; a map without one (the default) adds every value as its own entry.

We store a plain list of ``(name, value)`` tuples: header maps hold a dozen entries, so a linear
scan beats any index, and iteration order is exactly Envoy's. Beside it, ``_names`` lists the
entries' names in the same order (a speed-up: "is it there?" and "where?" are then ``in`` and
``list.index``, scans that run in C, instead of a Python loop over the tuples; every method that
changes ``_entries`` changes ``_names`` the same way).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from .inline_headers import NO_INLINE

HeaderItems = Any  # Iterable[tuple[str, str]] | dict[str, str] | HeaderMap | None


#: lower-cased names by the name as given. A speed-up for the calls every request makes with the
#: same names (``get(":status")``...): ``_LOWERED.get(name) or _lower(name)`` finds a name seen
#: before without making a new string (whose hash the name lookups would compute again).
#: Bounded: a client may send any names.
_LOWERED: dict[str, str] = {}


def _lower(name: str) -> str:
    key = name.lower()
    if len(_LOWERED) < 4096:
        _LOWERED[name] = key
    return key


def _text(value: object, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"header {what} must be str or bytes, got {type(value).__name__}")


class HeaderMap:
    """Ordered multi-map of lower-cased header names to string values.

    ``inline``: the names that have a slot in this kind of Envoy map (``REQUEST_HEADERS_INLINE``,
    ...); adding one of them joins the value to the present entry. Made from another HeaderMap,
    the entries are copied as they are, and the set too unless ``inline`` is given."""

    __slots__ = ("_entries", "_names", "inline")

    def __init__(self, items: HeaderItems = None, inline: frozenset[str] | None = None) -> None:
        self._entries: list[tuple[str, str]] = []
        self._names: list[str] = []  # the entries' names, in order (module docstring)
        self.inline = NO_INLINE if inline is None else inline
        if items is None:
            return
        if isinstance(items, HeaderMap):
            self._entries = list(items._entries)
            self._names = list(items._names)
            if inline is None:
                self.inline = items.inline
            return
        pairs = items.items() if isinstance(items, dict) else items
        for pair in pairs:
            try:
                name, value = pair
            except (TypeError, ValueError):
                raise TypeError(f"headers must be (name, value) pairs, got {pair!r}") from None
            self.add(name, value)

    # ---- reading -------------------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of ``name`` (case-insensitive), or ``default``."""
        key = _LOWERED.get(name) or _lower(name)
        names = self._names
        if key in names:
            return self._entries[names.index(key)][1]
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in order."""
        key = _LOWERED.get(name) or _lower(name)
        if key not in self._names:
            return []
        return [v for k, v in self._entries if k == key]

    def get_joined(self, name: str) -> str | None:
        """All values joined with ``,`` (what Envoy's Lua ``get`` returns), or None."""
        values = self.get_all(name)
        return ",".join(values) if values else None

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return (_LOWERED.get(name) or _lower(name)) in self._names

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HeaderMap):
            return self._entries == other._entries
        return NotImplemented

    def __repr__(self) -> str:
        return f"HeaderMap({self._entries!r})"

    def items(self) -> list[tuple[str, str]]:
        return list(self._entries)

    def keys(self) -> list[str]:
        return list(self._names)

    def to_list(self) -> list[list[str]]:
        """``[[name, value], ...]`` — the JSON shape used by the CLI and the echo app."""
        return [[k, v] for k, v in self._entries]

    def byte_size(self) -> int:
        """Sum of name and value lengths (Envoy's ``byteSize()``, used by ``get_header_map_size``)."""
        return sum(len(k) + len(v) for k, v in self._entries)

    def copy(self) -> HeaderMap:
        new = HeaderMap(None, self.inline)
        new._entries = list(self._entries)
        new._names = list(self._names)
        return new

    def without_pseudo(self) -> HeaderMap:
        new = HeaderMap(None, self.inline)
        pseudo = 0  # (pseudo-headers are always the first entries)
        for k in self._names:
            if k[:1] != ":":
                break
            pseudo += 1
        new._entries = self._entries[pseudo:]
        new._names = self._names[pseudo:]
        return new

    # ---- writing -------------------------------------------------------------------------
    def add(self, name: str, value: object) -> None:
        """Append one entry; a pseudo-header goes after the last pseudo-header. A name with an
        inline slot in this map (``self.inline``) that is present joins it (:meth:`add_inline`)."""
        key = (_LOWERED.get(name) or _lower(name)) if type(name) is str else _text(name, "name").lower()
        val = value if type(value) is str else _text(value, "value")
        names = self._names
        if key in self.inline:  # add_inline(key, val), for this map's own set
            if key == "host":
                key = ":authority"
            if key in names:
                self._append_to_first(key, val)
                return
        # a pseudo-header with ordinary headers present goes after the last pseudo-header
        # (pseudo-headers are always the first entries); anything else goes at the end
        if key[:1] == ":" and names and names[-1][:1] != ":":
            i = 0
            for k in names:
                if k[:1] != ":":
                    break
                i += 1
            self._entries.insert(i, (key, val))
            names.insert(i, key)
        else:
            self._entries.append((key, val))
            names.append(key)

    def add_lowered(self, key: str, value: str) -> None:
        """:meth:`add` for a name already lower-cased and a str value (host functions)."""
        if key[:1] == ":" or key in self.inline:
            self.add(key, value)
        else:
            self._entries.append((key, value))
            self._names.append(key)

    def add_inline(self, key: str, value: str) -> None:
        """Add ``value`` to the inline header ``key`` (lower-cased) as Envoy's
        ``HeaderMapImpl::insertByKey`` does: absent, it becomes an entry (``host`` in a request
        map is its ``:authority``); present, the first entry takes it (:meth:`_append_to_first`).
        Lua and the Wasm host call this with the set of the map they write to, whatever
        ``self.inline`` says."""
        if key == "host":
            key = ":authority"
        if key in self._names:
            self._append_to_first(key, value)
        elif key[:1] == ":":
            self.add(key, value)  # (absent: inserted after the other pseudo-headers)
        else:
            self._entries.append((key, value))
            self._names.append(key)

    def _append_to_first(self, key: str, value: str) -> None:
        """Envoy's ``appendToHeader``: ``,value`` after the first entry's value (``; value`` for
        ``cookie``), nothing for an empty value, no delimiter after an empty old value."""
        if not value or key not in self._names:
            return
        entries = self._entries
        i = self._names.index(key)
        old = entries[i][1]
        entries[i] = (key, old + ("; " if key == "cookie" else ",") + value if old else value)

    def set(self, name: str, value: object) -> None:
        """Replace every entry of ``name`` with one (Envoy ``setCopy``; ``host`` in a request map
        is its ``:authority``)."""
        if name == "host" and name in self.inline:
            name = ":authority"
        self.remove(name)
        self.add(name, value)

    replace = set

    def set_in_place(self, name: str, value: str) -> None:
        """Envoy's inline-header setters (``setContentLength``, ``setEnvoyUpstreamServiceTime``...)
        for a lower-cased ``name``: the first entry keeps its place and takes the value, later
        ones go; absent, it is added."""
        names = self._names
        if name not in names:
            self.add(name, value)
            return
        entries = self._entries
        i = names.index(name)
        entries[i] = (name, value)
        for j in range(len(entries) - 1, i, -1):
            if names[j] == name:
                del entries[j]
                del names[j]

    def set_default(self, name: str, value: object) -> None:
        """Add only when absent."""
        if name not in self:
            self.add(name, value)

    def remove(self, name: str) -> int:
        """Remove every entry of ``name``; returns how many were removed."""
        key = _LOWERED.get(name) or _lower(name)
        names = self._names
        if key not in names:
            return 0  # absent (most hop-by-hop names are): no new list to build
        entries = self._entries
        self._entries = [e for e in entries if e[0] != key]
        self._names = [k for k in names if k != key]
        return len(entries) - len(self._entries)

    def clear(self) -> None:
        self._entries = []
        self._names = []

    def replace_all(self, items: Iterable[tuple[str, str]]) -> None:
        """Drop every entry and add ``items`` in order (``proxy_set_header_map_pairs``)."""
        self._entries = []
        self._names = []
        for k, v in items:
            self.add(k, v)
