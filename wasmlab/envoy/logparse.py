"""Reading real Envoy's log into the same trace events wasmlab records.

The bridge starts Envoy with ``--log-format '[%Y-%m-%d %T.%e][%t][%l][%n] %v'`` so every line
carries the OS thread id; the bridge maps thread ids to ``main`` / ``worker_N`` from
``/proc/<pid>/task/<tid>/comm`` (Envoy names its workers ``wrk:worker_N``).

Line shapes turned into events:

* ``[host->vm] proxy_on_request_headers(2, 9, 1)`` -> ``callback`` (enter), and
  ``[host<-vm] proxy_on_request_headers return: 0`` -> ``callback`` (exit);
* ``[vm->host] env.proxy_log(2, 1024, 30)`` / ``[vm<-host] env.proxy_log return: 0`` -> ``hostcall``;
* ``wasm log plugin1 r1 vm1: msg`` and Lua ``script log: msg`` -> ``log`` events with the logger;
* the Lua filter's debug/trace lines (``-l debug`` or ``--component-log-level lua:debug``) ->
  the ``lua`` events wasmlab records: ``yielding for full body`` -> ``yield``
  (``waiting_for: wait_for_body``), ``resuming body due to end stream`` -> ``resume``
  (``reason: body``), ``coroutine finished`` -> ``finished``...;
* every other line -> a ``log`` event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..trace import Event, Trace

LOG_FORMAT = "[%Y-%m-%d %T.%e][%t][%l][%n] %v"
_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\]\[(\d+)\]\[(\w+)\]\[([\w.-]+)\] (.*)$")
_CALL = re.compile(r"^\[(host->vm|vm->host)\] ([\w.]+)\((.*)\)$")
_RET = re.compile(r"^\[(host<-vm|vm<-host)\] ([\w.]+) return: ?(.*)$")


@dataclass
class LogLine:
    time: str
    tid: int
    level: str
    logger: str
    message: str

    def short(self) -> str:
        """``[level][logger] message`` — the shape of ``proxy.logs``."""
        return f"[{self.level}][{self.logger}] {self.message}"


#: Envoy's Lua filter lines -> (event name, args) of wasmlab's ``lua`` events
LUA_EVENTS: dict[str, tuple[str, dict[str, str]]] = {
    "yielding for full body": ("yield", {"waiting_for": "wait_for_body"}),
    "yielding for next body chunk": ("yield", {"waiting_for": "wait_for_body_chunk"}),
    "yielding for trailers": ("yield", {"waiting_for": "wait_for_trailers"}),
    "resuming for next body chunk": ("resume", {"reason": "body_chunk"}),
    "resuming nil body chunk due to trailers": ("resume", {"reason": "body_chunk"}),
    "resuming body due to end stream": ("resume", {"reason": "body"}),
    "resuming body due to trailers": ("resume", {"reason": "body"}),
    "resuming nil trailers due to end stream": ("resume", {"reason": "trailers"}),
    "async HTTP response complete": ("resume", {"reason": "http_response"}),
    "coroutine yielded": ("yielded", {}),
    "coroutine finished": ("finished", {}),
}


def parse_lines(text: str) -> list[LogLine]:
    out: list[LogLine] = []
    for raw in text.splitlines():
        m = _LINE.match(raw)
        if m:
            out.append(LogLine(m.group(1), int(m.group(2)), m.group(3), m.group(4), m.group(5)))
        elif out and raw:
            out[-1].message += "\n" + raw
    return out


def _int_or_str(s: str) -> int | str:
    s = s.strip()
    try:
        return int(s)
    except ValueError:
        return s


def to_trace(lines: list[LogLine], thread_names: dict[int, str]) -> Trace:
    events: list[Event] = []
    seq = 0
    for ln in lines:
        seq += 1
        thread = thread_names.get(ln.tid, f"tid{ln.tid}")
        worker = int(thread.split("_", 1)[1]) if thread.startswith("worker_") else None
        msg = ln.message
        if ln.logger == "wasm":
            m = _CALL.match(msg)
            if m:
                kind = "callback" if m.group(1) == "host->vm" else "hostcall"
                args = [_int_or_str(a) for a in m.group(3).split(",")] if m.group(3).strip() else []
                events.append(
                    Event(seq, 0, thread, worker, None, None, kind, m.group(2), args, None, {"phase": "enter"})
                )
                continue
            m = _RET.match(msg)
            if m:
                kind = "callback" if m.group(1) == "host<-vm" else "hostcall"
                events.append(
                    Event(
                        seq,
                        0,
                        thread,
                        worker,
                        None,
                        None,
                        kind,
                        m.group(2),
                        None,
                        _int_or_str(m.group(3)),
                        {"phase": "exit"},
                    )
                )
                continue
        if ln.logger == "lua" and msg in LUA_EVENTS:
            name, lua_args = LUA_EVENTS[msg]
            events.append(Event(seq, 0, thread, worker, None, None, "lua", name, dict(lua_args), None, {"line": msg}))
            continue
        events.append(
            Event(
                seq, 0, thread, worker, None, None, "log", ln.level, {"logger": ln.logger, "message": msg}, None, None
            )
        )
    return Trace(events)
