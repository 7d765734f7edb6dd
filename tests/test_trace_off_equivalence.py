"""With tracing off, the host takes short cuts (the filter chain skips StreamFilter's pass-through
callbacks, the Lua filter writes header adds down and makes handles lazily, the Wasm filter skips
hooks a module does not export). The differential tests against Envoy run with tracing on (the
Wasm ones compare trace lines), so this file holds the other half of the chain of evidence:
every lesson config answers the same requests the same way with tracing off as with tracing on —
responses, what each upstream received, the stats and the log lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import CONFIGS
from helpers import UpstreamLog, assert_same, assert_same_upstreams, recorded_apps
from wasmlab import Proxy

#: configs that need more than the echo app and one worker's requests to mean anything here
_LEFT_OUT = {
    "tcp_logger.yaml": "a TCP listener (no HTTP requests)",
    "remote_add_header.yaml": "fetches its module from a server the tests start elsewhere",
}

REQUESTS = [
    {"method": "GET", "path": "/"},
    {"method": "GET", "path": "/a?x=1", "headers": [("x-test", "1"), ("user-agent", "curl")]},
    {"method": "POST", "path": "/", "body": b"hello world"},
    {"method": "POST", "path": "/upload", "body": b"x" * 3000, "headers": [("content-type", "text/plain")]},
    {"method": "HEAD", "path": "/"},
    {"method": "GET", "path": "/"},
]

_STAT_PREFIXES_THAT_VARY = ("server.", "runtime.")


def _configs() -> list[Path]:
    return sorted(p for p in CONFIGS.rglob("*.yaml") if p.name not in _LEFT_OUT)


def _run(cfg: Path, trace: bool) -> tuple[list, UpstreamLog, dict, list[str]]:
    log = UpstreamLog()
    with Proxy.from_yaml(cfg, workers=1, trace=trace) as p:
        for name, app in recorded_apps(cfg, None, log).items():
            p.upstream(name, app)
        answers = []
        for kw in REQUESTS:
            try:
                answers.append(p.request(**kw))
            except Exception as e:  # a reset is an answer too
                answers.append(type(e).__name__)
        p.wait_idle(5.0)
        stats = {k: v for k, v in p.stats().items() if not k.startswith(_STAT_PREFIXES_THAT_VARY)}
        logs = [ln for ln in p.logs if "took" not in ln]
    return answers, log, stats, logs


@pytest.mark.parametrize("cfg", _configs(), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_tracing_off_answers_as_tracing_on(cfg: Path) -> None:
    on, on_log, on_stats, on_logs = _run(cfg, trace=True)
    off, off_log, off_stats, off_logs = _run(cfg, trace=False)
    for i, (a, b) in enumerate(zip(off, on, strict=True)):
        what = f"{cfg.name} request {i} ({REQUESTS[i]['method']} {REQUESTS[i]['path']}), tracing off vs on"
        if isinstance(a, str) or isinstance(b, str):
            assert a == b, what
        else:
            assert_same(a, b, what)
    assert_same_upstreams(off_log, on_log)
    assert off_stats == on_stats
    assert off_logs == on_logs
