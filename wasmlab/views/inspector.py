"""The inspector: every event of a trace in a table with filters, and one summary per request —
status, latency, which filters ran and what they answered — for explaining one request."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import traitlets as t

from ..trace import Event
from .annotate import short_filter
from .render import esc
from .timeline import TimelineModel
from .widget import View, event_dict, static


@dataclass
class FilterRun:
    """One filter's part in a request: its callbacks in order, each with what it returned."""

    name: str
    kind: str  # native / lua / wasm
    calls: list[str] = field(default_factory=list)

    def text(self) -> str:
        return f"{short_filter(self.name)} ({self.kind}): " + ", ".join(self.calls)


@dataclass
class RequestSummary:
    stream: int
    thread: str
    request: str = ""  # "GET /hello" (or "TCP listener" for a connection)
    status: int | None = None
    details: str = ""
    local_reply: bool = False
    reset: bool = False
    started_ns: int | None = None
    ended_ns: int | None = None
    filters: list[FilterRun] = field(default_factory=list)
    upstream: list[str] = field(default_factory=list)  # "backend → 200", "callout auth → 200"
    vm_calls: int = 0  # callbacks into Wasm VMs and Lua hooks for this stream
    host_calls: int = 0
    traps: list[str] = field(default_factory=list)
    events: int = 0
    first_seq: int = 0
    last_seq: int = 0

    @property
    def latency_ms(self) -> float | None:
        if self.started_ns is None or self.ended_ns is None:
            return None
        return round((self.ended_ns - self.started_ns) / 1e6, 3)

    def outcome(self) -> str:
        if self.reset:
            return "reset"
        if self.status is None:
            return "unfinished"
        return f"{self.status}{' (local reply)' if self.local_reply else ''}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "thread": self.thread,
            "request": self.request,
            "status": self.status,
            "outcome": self.outcome(),
            "details": self.details,
            "latency_ms": self.latency_ms,
            "filters": [f.text() for f in self.filters],
            "filter_names": [short_filter(f.name) for f in self.filters],
            "upstream": list(self.upstream),
            "vm_calls": self.vm_calls,
            "host_calls": self.host_calls,
            "traps": list(self.traps),
            "events": self.events,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
        }


def summarize(tl: TimelineModel) -> list[RequestSummary]:
    """One summary per stream, from the timeline's rows (which know each event's stream)."""
    out: dict[int, RequestSummary] = {}
    for r in tl.rows:
        if r.stream is None:
            continue
        ev = r.event
        s = out.get(r.stream)
        if s is None:
            s = out[r.stream] = RequestSummary(r.stream, ev.thread, first_seq=ev.seq)
        s.events += 1
        s.last_seq = ev.seq
        a = ev.args if isinstance(ev.args, dict) else {}
        d = ev.data if isinstance(ev.data, dict) else {}
        phase = d.get("phase")
        if ev.kind == "stream":
            if ev.name == "request":
                s.request = f"{a.get('method', '')} {a.get('path', '')}"
                s.started_ns = ev.t_ns
            elif ev.name == "tcp_connect":
                s.request = f"TCP {a.get('listener', '')}"
                s.started_ns = ev.t_ns
            elif ev.name == "local_reply":
                s.local_reply = True
            elif ev.name == "response":
                s.status, s.details, s.ended_ns = a.get("status"), str(a.get("details", "")), ev.t_ns
            elif ev.name.startswith("reset") or ev.name == "tcp_close":
                s.reset = ev.name.startswith("reset")
                s.details = str(a.get("details", a.get("event", ev.name)))
                s.ended_ns = ev.t_ns
        elif ev.kind == "filter":
            name = str(a.get("filter", "?"))
            fr = next((f for f in s.filters if f.name == name), None)
            if fr is None:
                fr = FilterRun(name, str(a.get("kind", "native")))
                s.filters.append(fr)
            if phase == "exit":
                call = f"{ev.name}→{ev.result}"
                if fr.calls and fr.calls[-1] == ev.name:
                    fr.calls[-1] = call
                else:
                    fr.calls.append(call)
            elif phase == "enter":
                fr.calls.append(ev.name)
            else:
                fr.calls.append(ev.name)
        elif ev.kind == "upstream" and ev.name == "response":
            s.upstream.append(f"{a.get('cluster')} → {a.get('status')}")
        elif ev.kind == "callout" and ev.name != "http_request":
            s.upstream.append(f"callout {a.get('cluster')} → {a.get('status', ev.name)}")
        elif (ev.kind == "callback" or ev.kind == "lua") and phase == "enter":
            s.vm_calls += 1
        elif (ev.kind == "hostcall" and phase == "enter") or (ev.kind == "lua" and ":" in ev.name):
            s.host_calls += 1
        elif ev.kind == "trap":
            s.traps.append(f"{ev.name}: {a.get('message', '')}")
    return [out[k] for k in sorted(out)]


def clock_of(events: Sequence[Event]) -> str:
    """ "virtual" when the trace was recorded under the virtual clock (time stands still between
    ``proxy.advance`` calls, so most neighbouring events share one timestamp; the real monotonic
    clock in nanoseconds almost never repeats), else "real"."""
    ts = [e.t_ns for e in events]
    if len(ts) < 3:
        return "virtual" if ts and all(x == ts[0] for x in ts) and ts[0] < 10**12 else "real"
    same = sum(1 for a, b in pairwise(ts) if a == b)
    return "virtual" if same * 2 >= len(ts) - 1 else "real"


def latency_text(s: RequestSummary, clock: str) -> str:
    """A request's latency as a learner should read it: under the virtual clock a request takes
    no time at all unless the run advanced the clock, so say so (and how many events it took)."""
    if s.latency_ms is None:
        return ""
    if clock == "virtual":
        return f"{s.latency_ms:.3f} ms (virtual)" if s.latency_ms > 0 else f"0 s virtual, {s.events} events"
    return f"{s.latency_ms:.3f} ms"


class InspectorView(View):
    """A filterable table of every event, and a table of requests (click one to see its events)."""

    _esm = static("common.js", "inspector.js")

    columns = t.Dict().tag(sync=True)
    requests: t.List[Any] = t.List().tag(sync=True)
    kind = t.Unicode("").tag(sync=True)
    thread = t.Unicode("").tag(sync=True)
    stream = t.Int(-1).tag(sync=True)
    search = t.Unicode("").tag(sync=True)
    selected = t.Int(-1).tag(sync=True)
    #: "virtual" or "real": how times and latencies are shown
    clock = t.Unicode("real").tag(sync=True)

    def __init__(self, events: Iterable[Event], stream: int | None = None, title: str = "trace inspector") -> None:
        self.timeline = TimelineModel(events)
        self.summaries = summarize(self.timeline)
        cols = self.timeline.columns()
        cols["vm"] = [r.event.vm or "" for r in self.timeline.rows]
        cols["ctx"] = [r.event.context_id if r.event.context_id is not None else -1 for r in self.timeline.rows]
        cols["name"] = [r.event.name for r in self.timeline.rows]
        n = len(self.timeline.rows)
        clock = clock_of([r.event for r in self.timeline.rows])
        super().__init__(
            title=title,
            clock=clock,
            columns=cols,
            requests=[s.to_dict() for s in self.summaries],
            stream=-1 if stream is None else stream,
            note=f"{n} events, {len(self.summaries)} requests/connections"
            + (" · virtual clock: time moves only with proxy.advance()" if clock == "virtual" else ""),
        )

    def rows(self) -> list[Any]:
        """The events the current filters show."""
        search = self.search.lower()
        out = []
        for r in self.timeline.rows:
            ev = r.event
            if self.kind and ev.kind != self.kind:
                continue
            if self.thread and ev.thread != self.thread:
                continue
            if self.stream >= 0 and r.stream != self.stream:
                continue
            if search and search not in (r.label + " " + r.note + " " + ev.name).lower():
                continue
            out.append(r)
        return out

    def request(self, stream: int) -> RequestSummary | None:
        return next((s for s in self.summaries if s.stream == stream), None)

    def details(self, index: int) -> dict[str, Any] | None:
        rows = self.timeline.rows
        return event_dict(rows[index].event) if 0 <= index < len(rows) else None

    def _focus(self) -> RequestSummary | None:
        return self.request(self.stream) if self.stream >= 0 else None

    def _detail_lines(self, s: RequestSummary) -> list[str]:
        ms = latency_text(s, self.clock)
        lines = [f"stream {s.stream} on {s.thread}: {s.request} → {s.outcome()}{', ' + ms if ms else ''}"]
        lines += [f"  filter {f.text()}" for f in s.filters]
        lines += [f"  upstream {u}" for u in s.upstream]
        lines += [f"  trap {t}" for t in s.traps]
        lines.append(f"  {s.vm_calls} calls into VMs / Lua, {s.host_calls} host calls")
        rows = [r for r in self.timeline.rows if r.stream == s.stream]
        lines.append(f"  {len(rows)} events:")
        lines += [f"    #{r.event.seq:<6} {r.event.thread:<9} {r.label}" for r in rows[:60]]
        if len(rows) > 60:
            lines.append(f"    … first 60 of {len(rows)} events shown — re-run the cell for all")
        return lines

    def text(self) -> str:
        focus = self._focus()
        if focus is not None:
            return "\n".join(["Trace inspector, one request:", *self._detail_lines(focus)])
        lines = [f"Trace inspector: {len(self.timeline.rows)} events, {len(self.summaries)} requests"]
        lines.append(f"{'stream':>6}  {'thread':<9} {'request':<28} {'outcome':<22} {'latency':>12}  filters")
        for s in self.summaries[:30]:
            ms = latency_text(s, self.clock)
            lines.append(
                f"{s.stream:>6}  {s.thread:<9} {s.request[:28]:<28} {s.outcome()[:22]:<22} {ms:>12}  "
                + " → ".join(short_filter(f.name) for f in s.filters)
                + (f"  ✖ {s.traps[0]}" if s.traps else "")
            )
        if len(self.summaries) > 30:
            lines.append(f"… first 30 of {len(self.summaries)} requests shown — re-run the cell for all")
        return "\n".join(lines)

    def html(self) -> str | None:
        focus = self._focus()
        if focus is not None:
            return "<pre>" + esc("\n".join(["Trace inspector, one request:", *self._detail_lines(focus)])) + "</pre>"
        head = "".join(
            f"<th>{h}</th>" for h in ("stream", "thread", "request", "outcome", "latency", "filters run", "traps")
        )
        body = []
        for s in self.summaries[:100]:
            ms = latency_text(s, self.clock)
            cells = (
                s.stream,
                s.thread,
                s.request,
                s.outcome(),
                ms,
                "; ".join(f.text() for f in s.filters),
                "; ".join(s.traps),
            )
            body.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
        more = (
            f"<p>first 100 of {len(self.summaries)} requests shown — re-run the cell for all</p>"
            if len(self.summaries) > 100
            else ""
        )
        return (
            f"<p><b>Trace inspector</b>: {len(self.timeline.rows)} events, {len(self.summaries)} requests</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"
        )
