"""``proxy.request_many``: many client requests, a bounded number of them in flight.

Envoy has no such call; a load generator (``wrk``, ``hey``, ``nighthawk``) does this job with a
fixed number of connections, each carrying one request at a time. wasmlab's batch works the same
way: at most ``concurrency`` requests are in flight (default :data:`IN_FLIGHT_PER_WORKER` per
worker), and each finished one lets the next one start. Putting every request in flight at once
(what this call did before) queued them all on the workers and the upstream threads, so a big
batch with tracing on waited longer than the route timeout: 7,538 of 20,000 answered 504.

Results come back in the order of the requests. When the caller stops waiting — Ctrl-C in a
notebook (``KeyboardInterrupt``) or the batch's ``timeout`` — the requests not yet started are
cancelled and those in flight are reset as a client that hangs up resets them
(``downstream_remote_disconnect``); the proxy stays usable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import StreamTimeout

if TYPE_CHECKING:
    from ..http import Response
    from .dispatcher import Dispatcher
    from .hcm import HttpConnectionManager
    from .proxy import RequestSpec, _Pending

#: requests in flight per worker when ``concurrency`` is not given (what a load generator with
#: 64 connections per worker would keep busy; small enough that a batch never waits on itself)
IN_FLIGHT_PER_WORKER = 64
#: how often the waiting caller wakes up, so that an asynchronous KeyboardInterrupt lands
_POLL_S = 0.1
#: the reset a cancelled batch gives the streams in flight (Envoy's words for a client hang-up)
CANCELLED = "downstream_remote_disconnect"


def parse_requests(requests: Iterable[Any], make_spec: Callable[..., RequestSpec]) -> list[tuple[RequestSpec, Any]]:
    """``(method, path, ...)`` tuples or ``request()`` keyword dicts -> (spec, worker) pairs."""
    specs: list[tuple[RequestSpec, Any]] = []
    for item in requests:
        if isinstance(item, tuple):
            specs.append((make_spec(*item), None))
        elif isinstance(item, dict):
            kw = dict(item)
            worker = kw.pop("worker", None)
            kw.pop("timeout", None)
            specs.append((make_spec(**kw), worker))
        else:
            raise TypeError(f"each request must be a (method, path) tuple or a dict, got {type(item).__name__}")
    return specs


def in_flight_limit(concurrency: Any, workers: int) -> int:
    if concurrency is None:
        return IN_FLIGHT_PER_WORKER * workers
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ValueError(f"concurrency must be an int >= 1 (requests in flight), got {concurrency!r}")
    return concurrency


class Batch:
    """One ``request_many`` call: submits up to ``limit`` streams, one more per finished one."""

    def __init__(
        self,
        hcm: HttpConnectionManager,
        specs: list[tuple[RequestSpec, Any]],
        limit: int,
        pick_worker: Callable[[Any], Dispatcher],
        new_pending: Callable[[Callable[[_Pending], None]], _Pending],
    ) -> None:
        self.hcm = hcm
        self.specs = specs
        self.limit = limit
        self.pick_worker = pick_worker
        self.new_pending = new_pending
        self.results: list[_Pending | None] = [None] * len(specs)
        self._lock = threading.Lock()
        self._next = 0
        self._done = 0
        self._cancelled = False
        #: set when every request finished (or by ``Proxy.close``, which wakes every waiter)
        self.all_done = threading.Event()

    def run(
        self,
        timeout: float,
        on_timeout: Callable[[_Pending, Dispatcher, str], StreamTimeout],
        closed: Callable[[list[_Pending | None]], Exception | None],
    ) -> list[Response]:
        """Run the batch; ``closed(results)`` is the error to raise if the proxy closed under it."""
        n = len(self.specs)
        if n == 0:
            return []
        with self._lock:
            first = self._next = min(self.limit, n)
        deadline = time.monotonic() + timeout
        try:
            for i in range(first):
                self._submit(i)
            while not self.all_done.wait(min(_POLL_S, max(0.0, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    raise closed(self.results) or self._timed_out(timeout, on_timeout)
        except BaseException:
            self.cancel()
            raise
        error = closed(self.results)
        if error is not None:
            raise error
        return [p.result() for p in self.results if p is not None]

    def _submit(self, i: int) -> None:
        spec, worker = self.specs[i]
        d = self.pick_worker(worker)
        p = self.new_pending(lambda pending: self._finished())
        self.results[i] = p
        d.post(self._start, d, spec, p)

    def _start(self, d: Dispatcher, spec: RequestSpec, p: _Pending) -> None:
        if self._cancelled:  # on the worker: a request the caller no longer waits for
            return
        self.hcm.new_stream(d, spec, p)

    def _finished(self) -> None:
        nxt = -1
        with self._lock:
            self._done += 1
            if self._next < len(self.specs) and not self._cancelled:
                nxt = self._next
                self._next += 1
            if self._done == len(self.specs):
                self.all_done.set()
        if nxt >= 0:
            self._submit(nxt)

    def cancel(self) -> None:
        """Start nothing more; reset the streams in flight (each on its own worker)."""
        with self._lock:
            self._cancelled = True
        for p in self.results:
            if p is not None and p.stream is not None and not p.done:
                p.stream.dispatcher.post(p.stream.reset, CANCELLED)

    def _timed_out(
        self, timeout: float, on_timeout: Callable[[_Pending, Dispatcher, str], StreamTimeout]
    ) -> StreamTimeout:
        n = len(self.specs)
        stuck = [i for i, p in enumerate(self.results) if p is None or not p.done]
        first = self.results[stuck[0]]
        if first is None or first.stream is None:
            return StreamTimeout(f"{len(stuck)} of {n} requests did not finish in {timeout:g}s")
        spec = self.specs[stuck[0]][0]
        err = on_timeout(first, first.stream.dispatcher, f"{spec.method} {spec.path}")
        return StreamTimeout(f"{len(stuck)} of {n} requests did not finish in {timeout:g}s; first: {err}")
