"""TCP listeners: network filter chains ending in ``tcp_proxy``, and ``proxy.connect()``.

Envoy's network filter manager, simplified the way a learner can see it:

* a new connection runs ``on_new_connection`` on each read filter in order; ``tcp_proxy`` (the
  terminal filter) then connects to its cluster;
* bytes from the client accumulate in the connection's read buffer and go through the read filters
  in order (``on_data``); a filter answering StopIteration keeps them there — the next arrival, or
  ``continue_reading()``, runs the chain again with the whole buffer; ``tcp_proxy`` forwards them;
* bytes from the upstream go through the write filters in reverse order (``on_write``), then to the
  client;
* the client's FIN reaches the read filters as an empty ``on_data(end_stream=True)``; ``tcp_proxy``
  half-closes the upstream; the upstream's FIN comes back through ``on_write(end_stream=True)``;
  then Envoy closes the client connection (a *local* close) and the connection ends.

Upstream TCP apps are in-process callables ``app(data: bytes) -> bytes | None`` called once per
chunk, in order; an app closes its side when the proxy half-closes (like an echo server). The
default app echoes. The Envoy bridge serves the same app objects over loopback TCP.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ProxyClosed, describe
from ..http import Buffer
from .dispatcher import run_guarded

if TYPE_CHECKING:
    from .dispatcher import Dispatcher
    from .services import ServerContext

TcpApp = Callable[[bytes], Any]
CONTINUE = 0
STOP = 1
_conn_ids = itertools.count(1)


def tcp_echo_app(data: bytes) -> bytes:
    """The default TCP upstream: echo every chunk."""
    return data


class NetworkFilter:
    """A network filter instance on one connection (Envoy ``Network::ReadFilter``/``WriteFilter``)."""

    kind = "native"
    read = True
    write = True
    conn: ActiveTcpConnection

    def on_new_connection(self) -> int:
        return CONTINUE

    def on_data(self, data: Buffer, end_stream: bool) -> int:
        return CONTINUE

    def on_write(self, data: Buffer, end_stream: bool) -> int:
        return CONTINUE

    def on_close(self, event: str) -> None:
        """``event`` is ``local`` or ``remote`` (the downstream connection closed)."""

    def on_destroy(self) -> None:
        pass


class TcpProxyFilter(NetworkFilter):
    """``envoy.filters.network.tcp_proxy``: forwards bytes to a cluster's upstream app."""

    write = False

    def __init__(self, cluster: str, stat_prefix: str) -> None:
        self.cluster = cluster
        self.stat_prefix = stat_prefix
        self.pending: deque[tuple[bytes, bool]] = deque()
        self.busy = False
        self.upstream_closed = False

    def on_new_connection(self) -> int:
        c = self.conn
        stats = c.proxy.stat_store
        stats.inc(f"tcp.{self.stat_prefix}.downstream_cx_total")
        # Envoy's tcp_proxy hands its byte counters to the connection, which counts what the
        # socket reads and writes (``setConnectionStats``): bytes as the client sent and got them
        c.stats_prefix = f"tcp.{self.stat_prefix}."
        if c.pending_rx:
            stats.inc(f"{c.stats_prefix}downstream_cx_rx_bytes_total", c.pending_rx)
        cluster = c.proxy.clusters.get(self.cluster)
        if cluster is not None and cluster.healthy:
            # the upstream connection (one per downstream connection) and its address
            stats.inc(f"cluster.{self.cluster}.upstream_cx_total")
            c.info.upstream_cluster = self.cluster
            c.info.upstream_host = cluster.host
        c.record("upstream_connect", {"cluster": self.cluster})
        return CONTINUE

    def on_data(self, data: Buffer, end_stream: bool) -> int:
        chunk = data.to_bytes()
        data.drain(len(data))
        if chunk or end_stream:
            self.pending.append((chunk, end_stream))
            self._pump()
        return STOP

    def _pump(self) -> None:
        """Hand chunks to the app one at a time, in order (an upstream connection is ordered)."""
        if self.busy or not self.pending or self.upstream_closed:
            return
        chunk, end = self.pending.popleft()
        self.busy = True
        conn = self.conn
        proxy = conn.proxy
        cluster = proxy.clusters.get(self.cluster)
        app = getattr(cluster, "app", None) if cluster is not None else None
        dispatcher = conn.dispatcher
        proxy.activity.begin()

        def run() -> None:
            try:
                reply = app(chunk) if (chunk and callable(app)) else b""
                error = None
            except BaseException as e:  # the app crashed (sys.exit() too): the upstream connection drops
                reply, error = b"", f"{type(e).__name__}: {e}"
            dispatcher.post(conn.guarded, self._answered, reply, end, error)
            proxy.activity.end()

        # a pool closed meanwhile never runs ``run``: the proxy is going, only the count is left
        proxy.upstream_pool.submit(run, dropped=proxy.activity.end)

    def _answered(self, reply: Any, end: bool, error: str | None) -> None:
        self.busy = False
        conn = self.conn
        if error is not None:
            conn.proxy.log("error", "upstream", f"tcp app for cluster '{self.cluster}' raised {error}")
            end = True
        data = reply if isinstance(reply, bytes) else reply.encode() if isinstance(reply, str) else b""
        if data:
            conn.upstream_data(data, False)
        if end and not self.upstream_closed:
            self.upstream_closed = True
            conn.upstream_data(b"", True)
            return
        self._pump()


class ActiveTcpConnection:
    """One downstream connection on one worker."""

    def __init__(self, proxy: ServerContext, listener: Any, dispatcher: Dispatcher, client: Connection) -> None:
        self.proxy = proxy
        self.listener = listener
        self.dispatcher = dispatcher
        self.client = client
        self.id = next(_conn_ids)
        self.read_buffer = Buffer()
        self.filters: list[NetworkFilter] = []
        self.closed = False
        self.downstream_eos = False
        self.upstream_eos = False
        #: ``tcp.<stat_prefix>.`` once a tcp_proxy set the connection's byte counters
        self.stats_prefix: str | None = None
        self.pending_rx = 0  # bytes read before that
        from ..http.stream_info import StreamInfo

        clock = proxy.clock
        self.info = StreamInfo(
            self.id,
            self.id,
            clock.wall_ns(),
            clock.monotonic_ns(),
            protocol="",
            downstream_remote_address=f"127.0.0.1:{40000 + self.id % 20000}",
            downstream_direct_remote_address=f"127.0.0.1:{40000 + self.id % 20000}",
            downstream_local_address=str(listener.address),
        )

    @property
    def stream_id(self) -> int:
        return self.id

    def record(self, name: str, args: dict[str, Any] | None = None) -> None:
        rec = self.proxy.recorder
        if rec.enabled:
            rec.record("stream", name, args, None, {"connection": self.id, "stream": self.id})

    def guarded(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a task for this connection; a bug in the host closes it instead of hanging it."""
        if not self.closed:
            run_guarded(fn, args, self._host_error)

    # ---- events from the client ----------------------------------------------------------------
    def start(self) -> None:
        self.record("tcp_connect", {"listener": self.listener.name})
        if not self.listener.network_filters:  # Envoy: "closing connection ...: no filters"
            self.close("local")
            return
        for nf in self.listener.network_filters:
            f = nf.config.create_filter(self)
            f.conn = self
            self.filters.append(f)
        for f in self.filters:
            if not f.read:
                continue
            if f.on_new_connection() != CONTINUE or self.closed:
                return

    def downstream_data(self, data: bytes, end_stream: bool) -> None:
        if self.closed or self.downstream_eos:
            return
        self.record("tcp_downstream_data", {"size": len(data), "end_stream": end_stream})
        if self.stats_prefix is not None:
            self.proxy.stat_store.inc(f"{self.stats_prefix}downstream_cx_rx_bytes_total", len(data))
        else:
            self.pending_rx += len(data)
        self.downstream_eos = end_stream
        self.read_buffer.add(data)
        self._iterate_read(0)

    def continue_reading(self, after: NetworkFilter | None = None) -> None:
        start = self.filters.index(after) + 1 if after is not None and after in self.filters else 0
        self._iterate_read(start)

    def _iterate_read(self, start: int) -> None:
        for f in self.filters[start:]:
            if self.closed:
                return
            if not f.read:
                continue
            if f.on_data(self.read_buffer, self.downstream_eos) != CONTINUE:
                return

    # ---- events from the upstream ------------------------------------------------------------
    def upstream_data(self, data: bytes, end_stream: bool) -> None:
        if self.closed:
            return
        buf = Buffer(data)
        for f in reversed(self.filters):
            if not f.write:
                continue
            if f.on_write(buf, end_stream) != CONTINUE or self.closed:
                return
        out = buf.to_bytes()
        if out:
            if self.stats_prefix is not None:
                self.proxy.stat_store.inc(f"{self.stats_prefix}downstream_cx_tx_bytes_total", len(out))
            self.client._deliver(out)
        if end_stream:
            self.upstream_eos = True
            # both sides finished: Envoy closes the client connection itself
            self.close("local")

    # ---- closing ------------------------------------------------------------------------------------
    def _host_error(self, e: BaseException) -> None:
        """A task of this connection raised (a wasmlab bug): log it, then close the connection."""
        self.proxy.log("critical", "connection", f"host error on connection {self.id}: {describe(e)}")
        self.close("local")

    def close(self, event: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.record("tcp_close", {"event": event})
        for f in self.filters:
            try:
                f.on_close(event)
            except Exception as e:
                self.proxy.log("error", "connection", f"network filter on_close raised {type(e).__name__}: {e}")
        for f in self.filters:
            try:
                f.on_destroy()
            except Exception as e:
                self.proxy.log("error", "connection", f"network filter on_destroy raised {type(e).__name__}: {e}")
        self.client._closed_by_proxy()


class Connection:
    """A client connection to a TCP listener: ``send(bytes)``, ``recv()``, ``close()``."""

    def __init__(self, proxy: ServerContext, listener: Any, dispatcher: Dispatcher) -> None:
        self._proxy = proxy
        self._dispatcher = dispatcher
        self._cond = threading.Condition()
        self._inbox = bytearray()
        self._closed_remote = False
        self._sent_fin = False
        self.active = ActiveTcpConnection(proxy, listener, dispatcher, self)
        dispatcher.post(self.active.guarded, self.active.start)

    def send(self, data: bytes | str) -> None:
        """Send bytes to the proxy (never blocks)."""
        if self._sent_fin:
            raise OSError("send() after close()")
        if not self._dispatcher.alive:  # its worker stopped: nothing would read the bytes
            raise ProxyClosed("this proxy was closed; create a new one with Proxy.from_yaml(...)")
        if isinstance(data, str):
            data = data.encode()
        elif not isinstance(data, bytes | bytearray | memoryview):  # bytes(5) would be five NUL bytes
            raise TypeError(f"send() takes bytes or str, got {type(data).__name__}")
        self._dispatcher.post(self.active.guarded, self.active.downstream_data, bytes(data), False)

    def recv(self, size: int | None = None, timeout: float = 5.0) -> bytes:
        """Bytes the proxy sent back: waits up to ``timeout`` for some; b"" once closed and drained."""
        with self._cond:
            self._cond.wait_for(lambda: self._inbox or self._closed_remote, timeout)
            n = len(self._inbox) if size is None else min(size, len(self._inbox))
            out = bytes(self._inbox[:n])
            del self._inbox[:n]
            return out

    def recv_exactly(self, n: int, timeout: float = 5.0) -> bytes:
        with self._cond:
            self._cond.wait_for(lambda: len(self._inbox) >= n or self._closed_remote, timeout)
            out = bytes(self._inbox[:n])
            del self._inbox[:n]
            return out

    def close(self, timeout: float = 5.0) -> bytes:
        """Close our side (FIN) and wait for the proxy to close; returns bytes that arrived meanwhile."""
        if not self._sent_fin:
            self._sent_fin = True
            self._dispatcher.post(self.active.guarded, self.active.downstream_data, b"", True)
        with self._cond:
            self._cond.wait_for(lambda: self._closed_remote, timeout)
            out = bytes(self._inbox)
            self._inbox.clear()
            return out

    @property
    def closed(self) -> bool:
        return self._closed_remote

    def _deliver(self, data: bytes) -> None:
        with self._cond:
            self._inbox += data
            self._cond.notify_all()

    def _closed_by_proxy(self) -> None:
        with self._cond:
            self._closed_remote = True
            self._cond.notify_all()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
