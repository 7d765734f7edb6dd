"""One trace event: every crossing between the host and a filter is one of these.

The schema is DESIGN.md's: ``Event(seq, t_ns, thread, worker, vm, context_id, kind, name, args,
result, data)``. ``thread`` is the dispatcher's name (``main``, ``worker_0``...), ``worker`` its
index or None on main, ``vm`` the Wasm VM's id or None, ``kind`` one of :data:`KINDS`.
Stream-level events carry the stream id in ``data["stream"]``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

#: every kind an event may have
KINDS = (
    "stream",  # a request/response moving through the HTTP connection manager
    "filter",  # a native, Lua or Wasm filter callback (decode_headers, encode_data...)
    "callback",  # host -> Wasm VM call (proxy_on_request_headers...)
    "hostcall",  # Wasm VM -> host call (proxy_log, proxy_get_header_map_value...)
    "lua",  # Lua handle call, yield, resume
    "vm",  # VM create, start, fail, reload, destroy (Wasm VMs and Lua states)
    "context",  # Proxy-Wasm context create/delete
    "queue",  # shared queue register/enqueue/dequeue/notify
    "timer",  # timer armed/fired (ticks)
    "callout",  # HTTP/gRPC callouts and their responses
    "log",  # a line in the proxy log
    "trap",  # a Wasm trap or Lua error that failed a VM or hook
    "shared_data",  # shared data get/set (CAS)
    "upstream",  # a request handed to an upstream app and its answer
)


class Event(NamedTuple):
    seq: int
    t_ns: int
    thread: str
    worker: int | None
    vm: str | None
    context_id: int | None
    kind: str
    name: str
    args: Any = None
    result: Any = None
    data: Any = None

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        return cls(**{f: d.get(f) for f in cls._fields})

    def __str__(self) -> str:
        from .export import event_text

        return event_text(self)
