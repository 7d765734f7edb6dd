"""``--vs-envoy``: the same configs through real Envoy under ``wrk`` (Envoy and wrk pinned to
different cores with ``taskset``, loopback, bounded runs), alternating rounds of wasmlab and
Envoy, and each filter kind's added CPU cost per request for both (each process's CPU time over
the requests it served), as paired ratios."""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .core import BenchError, Result, direct_config, filter_for, kinds_available, rps_many, summarize


def _wrk(port: int, seconds: float, cpu: str | None) -> tuple[int, float]:
    """``(requests completed, seconds)`` of one bounded wrk run against 127.0.0.1:port."""
    secs = max(1, round(seconds))
    cmd = ["wrk", "-t1", "-c8", f"-d{secs}s", f"http://127.0.0.1:{port}/"]
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", cpu, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 30).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", out)
    if not m or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk did not get clean answers: {out[-300:]}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
    return int(m.group(1)), float(m.group(2)) * scale


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wasmlab_cpu_us(kind: str, n: int) -> float:
    """CPU µs per request of this whole process (worker, client and helper threads) with 64
    requests in flight on one worker, tracing off."""
    from ..host.proxy import Proxy

    with Proxy.from_yaml(direct_config(filter_for(kind)), workers=1, trace=False) as proxy:
        rps_many(proxy, 500)
        gc.collect()
        c0 = time.process_time()
        rps_many(proxy, n)
        return (time.process_time() - c0) / n * 1e6


def _envoy_cpu_us(envoy: str, kind: str, seconds: float, multi: bool) -> float:
    """CPU µs per request of a real Envoy (one worker) under wrk: Envoy's CPU time over the
    requests wrk completed. CPU time, not 1/throughput: one wrk thread does not saturate Envoy."""
    from ..envoy.wire import free_port, send_request

    port, admin = free_port(), free_port()
    text = direct_config(filter_for(kind), port=port).replace("port_value: 9901", f"port_value: {admin}")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "envoy.yaml"
        cfg.write_text(text)
        cmd = [envoy, "-c", str(cfg), "--concurrency", "1", "--disable-hot-restart", "--use-dynamic-base-id"]
        cmd += ["-l", "warning"]
        if multi and shutil.which("taskset"):
            cmd = ["taskset", "-c", "0", *cmd]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    if send_request("127.0.0.1", port, "GET", "/", [("host", "localhost")], b"", 1).status == 200:
                        break
                except OSError:
                    time.sleep(0.05)
            else:
                raise RuntimeError(f"Envoy did not answer on 127.0.0.1:{port} for the {kind} config")
            _wrk(port, 1.0, "1" if multi else None)  # warm up
            c0 = _cpu_seconds(proc.pid)
            count, _ = _wrk(port, seconds, "1" if multi else None)
            return (_cpu_seconds(proc.pid) - c0) / count * 1e6
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def vs_envoy(args: argparse.Namespace) -> Iterator[Result]:
    """Alternating rounds, per filter kind: wasmlab in process, then Envoy under wrk. Both sides
    are charged the CPU time their whole process spent per request, so the added cost of a
    filter is (CPU µs per request with it) - (without it), paired round by round."""
    from ..envoy.binary import find_envoy

    if not shutil.which("wrk"):
        raise BenchError("--vs-envoy needs wrk, which is not installed (apt-get install wrk)")
    envoy = find_envoy()
    kinds = [k for k in kinds_available() if k in ("direct", "lua", "wasm")]
    seconds = 2.0 if args.quick else 4.0
    n = 3000 if args.quick else 20000
    ours: dict[str, list[float]] = {k: [] for k in [*kinds, "noop"]}
    theirs: dict[str, list[float]] = {k: [] for k in kinds}
    multi = (os.cpu_count() or 1) > 1
    for _ in range(3 if args.quick else 5):
        for kind in kinds:
            ours[kind].append(_wasmlab_cpu_us(kind, n))
            theirs[kind].append(_envoy_cpu_us(envoy, kind, seconds, multi))
        ours["noop"].append(_wasmlab_cpu_us("noop", n))  # wasmlab only: Envoy runs no Python filter
    for kind in kinds:
        if kind == "direct":
            continue
        a = [x - y for x, y in zip(ours[kind], ours["direct"], strict=True)]
        e = [x - y for x, y in zip(theirs[kind], theirs["direct"], strict=True)]
        yield summarize(f"{kind}.added_us_per_request.wasmlab", a, "us")
        yield summarize(f"{kind}.added_us_per_request.envoy", e, "us")
        ratios = [x / y for x, y in zip(a, e, strict=True) if y > 0]
        if ratios:
            yield summarize(f"{kind}.added_cost_ratio.wasmlab_over_envoy", ratios, "x")
    yield summarize("request.direct.cpu_us_per_request.envoy", theirs["direct"], "us")
    yield summarize("request.direct.cpu_us_per_request.wasmlab", ours["direct"], "us")
    if ours.get("wasm"):
        yield summarize("request.wasm.cpu_us_per_request.wasmlab", ours["wasm"], "us")
    noop = [x - y for x, y in zip(ours["noop"], ours["direct"], strict=True)]
    yield summarize("request.native.added_cpu_us", noop, "us")
