"""What closing a proxy gives back, and the pieces of ``Proxy.close`` that hold no Proxy.

Envoy shuts down by stopping its workers (each tears down its thread-local state: filters, Wasm
VMs, Lua states), then the main thread (bootstrap extensions, the base VMs), and then the process
exits, which frees whatever is left. A wasmlab proxy lives in a notebook kernel that keeps
running, so its shutdown must also do the exit's part: join its threads (dispatchers and the
upstream pool), free every wasmtime Store (:meth:`WasmManager.close`), and wake the callers still
waiting for a response. Nothing here references the :class:`~wasmlab.host.proxy.Proxy` itself:
:func:`stop_server` is also the proxy's finalizer, so a proxy nobody closed and nobody references
is collected and stopped, and its threads' error reporter (:func:`report_task_error`) must not
keep it reachable.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import raised_at

if TYPE_CHECKING:
    from .dispatcher import Dispatcher
    from .logs import ProxyLog
    from .services import ServerContext


def report_task_error(log: Callable[[str, str, str], None], thread: str, error: BaseException) -> None:
    """A task or timer callback (or an upstream call's job) raised on ``thread``: Envoy logs it
    at critical (and aborts; wasmlab keeps the thread serving). ``log`` is ``ProxyLog.log``."""
    tb = "".join(traceback.format_exception_only(type(error), error)).strip()
    log("critical", "main", f"unhandled error on {thread}: {tb}{raised_at(error)}")


def shut_down(srv: ServerContext, extensions: list[Any], log: ProxyLog) -> None:
    """Envoy's order: each worker resets its streams and stops its filters (in reverse, the
    bootstrap services last), then the main thread stops them; a thread that does not answer
    in time is logged and left behind."""
    exts = list(reversed(extensions))
    order = sorted(exts, key=lambda e: bool(getattr(e, "bootstrap", False)))  # stable: filters first

    def stop_worker(dispatcher: Dispatcher) -> None:
        for hcm in srv.hcms.values():
            hcm.reset_streams_on(dispatcher, "shutdown")
        for ext in order:
            try:
                ext.stop_worker(dispatcher)
            except Exception as e:
                log.log("error", "main", f"shutdown of {type(ext).__name__} on {dispatcher.name} failed: {e}")

    def stop_main() -> None:
        for ext in order:
            try:
                ext.stop_main()
            except Exception as e:
                log.log("error", "main", f"shutdown of {type(ext).__name__} failed: {e}")

    for w in srv.workers:
        if w.alive:
            try:
                w.run_sync(stop_worker, w, timeout=10.0)
            except TimeoutError:
                log.log("error", "main", f"{w.name} did not shut down in time")
    for w in srv.workers:
        w.stop(timeout=2.0)
    if srv.main.alive:
        try:
            srv.main.run_sync(stop_main, timeout=10.0)
        except TimeoutError:
            log.log("error", "main", "main thread did not shut down in time")


def stop_server(srv: ServerContext) -> None:
    """The end of every shutdown (and the finalizer of a proxy collected without ``close()``):
    stop and join the dispatcher threads, the upstream pool's threads, then free the Wasm
    Stores of the threads that ended."""
    for d in (*srv.workers, srv.main):
        d.stop(timeout=2.0)
    srv.upstream_pool.close()
    if srv.wasm_started:
        srv.wasm.close()


def on_own_thread(srv: ServerContext) -> bool:
    """Whether the caller runs on one of the proxy's threads (a filter, a timer, an upstream
    app): such a caller cannot wait for those threads to end."""
    return any(d.is_current() for d in (srv.main, *srv.workers)) or srv.upstream_pool.owns_current_thread()


class Waiters:
    """The events callers of ``request``/``request_many`` wait on. A request posted to a worker
    that is shutting down may never be answered; ``close`` wakes every waiter instead, and a
    waiter added after that learns it at once (:meth:`add` answers False)."""

    def __init__(self) -> None:
        self._events: set[threading.Event] = set()
        self.stopped = False

    def add(self, event: threading.Event) -> bool:
        self._events.add(event)
        return not self.stopped  # read after the add: wake_all sets it before it looks

    def discard(self, event: threading.Event) -> None:
        self._events.discard(event)

    def wake_all(self) -> None:
        self.stopped = True
        for event in list(self._events):
            event.set()


__all__ = ["Waiters", "on_own_thread", "report_task_error", "shut_down", "stop_server"]
