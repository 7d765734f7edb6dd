"""Re-running a notebook cell that builds a proxy closes the proxy that cell built before.

Envoy has nothing like this: it is one process started once. In a notebook the cell
``proxy = Proxy.from_yaml(...)`` is run again and again (after editing the YAML, with Run All);
the new proxy takes the name, and the old one — its threads, Wasm VMs, Lua states — would keep
running with nothing left to close it. A learner expects a re-run cell to *replace* what it
built, so each proxy remembers the cell run that built it, and when the same cell runs again and
builds a proxy, the proxies of its earlier runs that are still open are closed, with a one-line
notice. Proxies built in one run of a cell never close each other (a cell may build two to
compare them, or build and close them in a loop).

A cell is known by the id the front end sends with it (JupyterLab, Notebook 7 and VS Code send
one), or by its text when there is none (nbclient, ``wasmlab grade``). Outside IPython, or
outside a running cell, nothing happens.
"""

from __future__ import annotations

import sys
import threading
import weakref
from typing import Any, Protocol

NOTICE = "wasmlab: closed the proxy this cell built when it last ran (re-running a cell replaces its proxy)"


class Closable(Protocol):
    @property
    def closed(self) -> bool: ...

    def close(self) -> None: ...


_lock = threading.Lock()
#: cell -> [(the run that built it, the proxy)], both held weakly
_built: dict[str, list[tuple[Any, weakref.ref[Closable]]]] = {}


def current_cell() -> tuple[str, Any] | None:
    """``(cell key, this run)`` of the IPython cell running now, or None (no IPython, no cell).

    IPython hands the running cell's ``ExecutionResult`` to its display hook for the length of
    the cell; its ``info`` has the front end's ``cell_id`` and the cell's text."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    run = getattr(getattr(shell, "displayhook", None), "exec_result", None)
    info = getattr(run, "info", None)
    if info is None:
        return None
    cell_id = getattr(info, "cell_id", None)
    key = f"id:{cell_id}" if cell_id else f"text:{getattr(info, 'raw_cell', '')}"
    return key, run


def _ref(obj: Any) -> Any:
    """A weak reference when the object takes one (the run's result is kept by IPython only
    until the next cell), else the object."""
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


def adopt(proxy: Closable) -> None:
    """``proxy`` was built by the running cell: close what earlier runs of that cell built."""
    cell = current_cell()
    if cell is None:
        return
    key, run = cell
    with _lock:
        entries = [(r, p) for r, p in _built.pop(key, []) if p() is not None]
        stale = [p for r, p in entries if r() is not run]
        for other in [k for k, v in _built.items() if all(p() is None for _, p in v)]:
            del _built[other]  # cells whose proxies are all gone
        _built[key] = [(r, p) for r, p in entries if r() is run] + [(_ref(run), weakref.ref(proxy))]
    closed = 0
    for ref in stale:
        old = ref()
        if old is not None and not old.closed:
            old.close()
            closed += 1
    if closed:
        print(NOTICE)


__all__ = ["NOTICE", "adopt", "current_cell"]
