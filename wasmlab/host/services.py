"""ServerContext: the server services an extension may use, handed to it instead of the Proxy.

Envoy gives a filter factory a ``Server::Configuration::ServerFactoryContext``: the time source,
the stats store, the cluster manager, the dispatcher of the main thread, the thread-local slots,
the access-log manager — and nothing of the server's own control surface. wasmlab does the same:
a filter factory gets this object in ``start_main``, a stream reaches it through its callbacks,
and the Wasm host (VMs, host calls) reads it as ``vm.proxy``. The :class:`~wasmlab.host.proxy.Proxy`
is what a lesson or test drives (requests, upstream apps, the trace); this is what the extensions
run on. Every member names what it stands for in Envoy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config.node import NodeInfo

if TYPE_CHECKING:
    from ..trace import Recorder
    from .access_log import AccessLogWriter
    from .dispatcher import Activity, Dispatcher, RealClock, VirtualClock
    from .hcm import HttpConnectionManager
    from .logs import ProxyLog
    from .stats import Stats
    from .upstream import Cluster, UpstreamPool


@dataclass(eq=False, repr=False, kw_only=True)
class ServerContext:
    """What extensions and the Wasm host use of the server."""

    #: Envoy's TimeSource (real, or virtual for lessons and tests)
    clock: RealClock | VirtualClock
    #: where every host step is recorded (the trace)
    recorder: Recorder
    #: Envoy's loggers and their levels (write through :meth:`log`)
    loggers: ProxyLog
    #: Envoy's stats store (counters, gauges, histograms by Envoy's names)
    stat_store: Stats
    #: stdout/stderr/file access-log sinks (Envoy's AccessLogManager)
    access_log: AccessLogWriter
    #: queued work and upstream calls in flight (``proxy.wait_idle()`` waits on it)
    activity: Activity
    #: the cluster manager's clusters by name (each with its upstream app)
    clusters: dict[str, Cluster]
    #: the threads upstream apps run on (Envoy: upstream connections)
    upstream_pool: UpstreamPool
    #: wasmlab's own knobs (``Proxy(options=...)``; Envoy has none of them)
    options: dict[str, Any]
    #: the main thread's dispatcher and the workers' (Envoy: main dispatcher, worker threads)
    main: Dispatcher
    workers: list[Dispatcher]
    #: the HTTP connection managers by listener name (filled once they are built)
    hcms: dict[str, HttpConnectionManager] = field(default_factory=dict)
    #: the bootstrap's ``node`` (Envoy's ``LocalInfo``; the ``xds.node`` property)
    node: NodeInfo = field(default_factory=NodeInfo)
    #: the longest log message kept (``log_line_limit_kb``), None = no limit
    log_line_limit: int | None = field(init=False)
    _wasm: Any = field(default=None, init=False)
    _wasm_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.log_line_limit = self.loggers.line_limit

    # ---- logging (Envoy's loggers and their levels) ----------------------------------------------
    def log(self, level: str, logger: str, message: str) -> None:
        self.loggers.log(level, logger, message)

    def log_enabled(self, level: str, logger: str = "") -> bool:
        return self.loggers.enabled(level, logger)

    def log_rank(self, logger: str = "") -> int:
        """The level of ``logger`` as a number (trace 0 ... critical 5, off 6)."""
        return self.loggers.rank_of(logger)

    # ---- the Proxy-Wasm host ------------------------------------------------------------------------
    @property
    def wasm(self) -> Any:
        """The Proxy-Wasm side (``WasmManager``: VM layout, shared data, shared queues), created
        when the first Wasm extension starts (imported here by need: the host does not depend
        on the ABI package, which is built on top of it)."""
        if self._wasm is None:
            from ..proxywasm.manager import WasmManager

            with self._wasm_lock:
                if self._wasm is None:
                    self._wasm = WasmManager(self)
        return self._wasm

    @property
    def wasm_started(self) -> bool:
        return self._wasm is not None
