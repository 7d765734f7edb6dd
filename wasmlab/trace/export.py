"""Render trace events as text, as Envoy's log lines and as a Mermaid sequence diagram."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .events import Event


def _fmt_args(args: Any) -> str:
    if args is None:
        return ""
    if isinstance(args, dict):
        return ", ".join(f"{k}={_short(v)}" for k, v in args.items())
    if isinstance(args, list | tuple):
        return ", ".join(_short(v) for v in args)
    return _short(args)


def _short(v: Any, limit: int = 60) -> str:
    s = repr(v) if not isinstance(v, str) else v
    return s if len(s) <= limit else s[: limit - 3] + "..."


def event_text(ev: Event) -> str:
    """One line: ``#seq thread [vm ctx] kind name(args) -> result``."""
    where = ev.thread
    if ev.vm is not None:
        where += f" vm={ev.vm}"
    if ev.context_id is not None:
        where += f" ctx={ev.context_id}"
    stream = ev.data.get("stream") if isinstance(ev.data, dict) else None
    if stream is not None:
        where += f" stream={stream}"
    line = f"#{ev.seq:<5} {where:<28} {ev.kind:<8} {ev.name}({_fmt_args(ev.args)})"
    if ev.result is not None:
        line += f" -> {_short(ev.result)}"
    return line


def envoy_lines(events: Iterable[Event], thread: str | None = None, label_threads: bool = False) -> list[str]:
    """Lines in the shape of Envoy's ``--component-log-level wasm:trace`` output and its Lua/Wasm
    log messages: ``[host->vm] proxy_on_request_headers(2, 6, 1)``, ``[host<-vm] ... return: 0``
    (``void`` for callbacks without a result), ``[vm->host] env.proxy_log(2, 1024, 38)``,
    ``[vm<-host] env.proxy_log return: 0``, ``wasm log plugin1 r1 vm1: msg``, ``script log: msg``.

    With ``label_threads`` (``wasmlab trace --format envoy``) each line starts with its thread,
    ``[main] ``, ``[worker_0] ``, as Envoy's log names the thread of each line (``%t``, a thread id
    there; the bridge maps Envoy's ids to the same names): canary, main-thread and worker lines
    interleave in time, and the label says which is which."""
    out: list[str] = []
    for ev in events:
        if thread is not None and ev.thread != thread:
            continue
        n = len(out)
        phase = ev.data.get("phase") if isinstance(ev.data, dict) else None
        if ev.kind in ("callback", "hostcall"):
            arrow_in, arrow_out = (
                ("[host->vm]", "[host<-vm]") if ev.kind == "callback" else ("[vm->host]", "[vm<-host]")
            )
            if phase == "exit":
                result = "void" if ev.result is None else ev.result
                out.append(f"{arrow_out} {ev.name} return: {result}")
            else:
                args = ", ".join(str(a) for a in (ev.args or ()))
                out.append(f"{arrow_in} {ev.name}({args})")
        elif ev.kind == "log":
            msg = ev.args.get("message") if isinstance(ev.args, dict) else ev.args
            logger = ev.args.get("logger") if isinstance(ev.args, dict) else ""
            if logger in ("wasm", "lua"):
                out.append(str(msg))
        if label_threads and len(out) > n:
            out[-1] = f"[{ev.thread}] {out[-1]}"
    return out


def _participant(ev: Event) -> str:
    if ev.kind in ("callback", "hostcall", "context", "trap") and ev.vm:
        return f"VM {ev.vm} ({ev.thread})"
    if ev.kind == "lua":
        return f"Lua ({ev.thread})"
    if ev.kind == "filter" and isinstance(ev.args, dict) and ev.args.get("filter"):
        return str(ev.args["filter"])
    if ev.kind == "upstream":
        return "upstream"
    if ev.kind == "queue":
        return "shared queue"
    return ev.thread


def mermaid(events: Iterable[Event]) -> str:
    """A Mermaid ``sequenceDiagram`` (JupyterLab renders it natively)."""
    lines = ["sequenceDiagram"]
    for ev in events:
        if ev.kind in ("log",):
            continue
        src = "downstream" if ev.kind == "stream" else "host"
        dst = _participant(ev)
        if ev.kind == "hostcall":
            src, dst = dst, "host"
        label = f"{ev.name}({_fmt_args(ev.args)})"
        if ev.result is not None:
            label += f" -> {_short(ev.result, 30)}"
        label = label.replace(";", ",").replace("#", "")
        lines.append(f"    {_mid(src)}->>{_mid(dst)}: {label}")
    return "\n".join(lines)


def _mid(name: str) -> str:
    return name.replace(":", "_").replace(" ", "_").replace("(", "_").replace(")", "")
