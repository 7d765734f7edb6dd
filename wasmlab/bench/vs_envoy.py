"""``--vs-envoy``: the same configs through real Envoy under ``wrk`` (Envoy and wrk pinned to
different cores with ``taskset``, loopback, bounded runs), and each filter kind's added CPU cost
per request for both (each process's CPU time over the requests it served), as paired ratios.

How the noise is kept out of the differences. CPU time per request on a shared 2-core machine
drifts by ±30 % from one second to the next (caches, the other core, frequency), far more than a
no-op filter costs. So every configuration runs side by side for the whole measurement — one
in-process Proxy per kind and one Envoy process per kind, all started first — and the rounds are
short and interleaved (in a rotated order): a filter's added cost is the difference to the
``direct`` configuration **measured in the same round**, and the figure is the median of those
paired differences. Its ``±`` is half the interquartile range of the rounds (a few bad rounds do
not widen it, as they would half the range). Envoy's CPU time is read in nanoseconds from the
scheduler (``/proc/PID/task/*/schedstat``), not in 10 ms clock ticks.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .core import BenchError, Result, direct_config, filter_for, kinds_available, rps_many


def _wrk(port: int, seconds: float, cpu: str | None) -> int:
    """Requests completed by one bounded wrk run against 127.0.0.1:port."""
    secs = max(1, round(seconds))
    cmd = ["wrk", "-t1", "-c8", f"-d{secs}s", f"http://127.0.0.1:{port}/"]
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", cpu, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 30).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", out)
    if not m or int(m.group(1)) == 0 or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk did not get clean answers: {out[-300:]}")
    return int(m.group(1))


def _cpu_seconds(pid: int) -> float:
    """CPU time of a process, all its threads, in seconds with nanosecond resolution (the
    scheduler's per-thread run time); the 10 ms clock ticks of ``/proc/PID/stat`` if unreadable."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Envoy:
    """One real Envoy (one worker) serving one kind's config on 127.0.0.1 until closed."""

    def __init__(self, envoy: str, kind: str, tmp: Path, multi: bool) -> None:
        from ..envoy.wire import free_port

        self.kind, self.multi = kind, multi
        self.port, admin = free_port(), free_port()
        text = direct_config(filter_for(kind), port=self.port).replace("port_value: 9901", f"port_value: {admin}")
        cfg = tmp / f"envoy-{kind}.yaml"
        cfg.write_text(text)
        cmd = [envoy, "-c", str(cfg), "--concurrency", "1", "--disable-hot-restart", "--use-dynamic-base-id"]
        cmd += ["-l", "warning"]
        if multi and shutil.which("taskset"):
            cmd = ["taskset", "-c", "0", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ready(self) -> None:
        from ..envoy.wire import send_request

        for _ in range(200):
            try:
                if send_request("127.0.0.1", self.port, "GET", "/", [("host", "localhost")], b"", 1).status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"Envoy did not answer on 127.0.0.1:{self.port} for the {self.kind} config")
        _wrk(self.port, 1.0, self._wrk_cpu())  # warm up

    def _wrk_cpu(self) -> str | None:
        return "1" if self.multi else None

    def cpu_us(self, seconds: float) -> float:
        """CPU µs per request of this Envoy under one wrk run: Envoy's CPU time over the requests
        wrk completed (CPU time, not 1/throughput: one wrk thread does not saturate Envoy)."""
        c0 = _cpu_seconds(self.proc.pid)
        count = _wrk(self.port, seconds, self._wrk_cpu())
        return (_cpu_seconds(self.proc.pid) - c0) / count * 1e6

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _wasmlab_cpu_us(proxy: Any, n: int) -> float:
    """CPU µs per request of this whole process (worker, client and helper threads) with 64
    requests in flight on one worker, tracing off."""
    gc.collect()
    c0 = time.process_time()
    rps_many(proxy, n)
    return (time.process_time() - c0) / n * 1e6


def _paired(name: str, samples: list[float], unit: str = "us") -> Result:
    """Median of per-round samples; ± half their interquartile range (half the range if < 4)."""
    if len(samples) >= 4:
        q1, _, q3 = statistics.quantiles(samples, n=4)
        return Result(name, statistics.median(samples), unit, (q3 - q1) / 2)
    return Result(name, statistics.median(samples), unit, (max(samples) - min(samples)) / 2)


def _minus(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True)]


def vs_envoy(args: argparse.Namespace) -> Iterator[Result]:
    """Interleaved short rounds over every configuration at once (see the module docstring);
    both sides are charged the CPU time their whole process spent per request, so the added cost
    of a filter is (CPU µs per request with it) - (without it), paired round by round."""
    from ..envoy.binary import find_envoy
    from ..host.proxy import Proxy

    if not shutil.which("wrk"):
        raise BenchError("--vs-envoy needs wrk, which is not installed (apt-get install wrk)")
    envoy = find_envoy()
    kinds = [k for k in kinds_available() if k in ("direct", "lua", "wasm")]
    # noop: wasmlab only (Envoy runs no Python filter); noop8: eight of them, for one filter's cost
    # as a slope (its ~2 µs are within the noise of one ~35 µs request, not of eight)
    ours_kinds = [*kinds, "noop", "noop8"]
    seconds = 1.0
    n = 600 if args.quick else 2000
    rounds = 3 if args.quick else 12
    ours: dict[str, list[float]] = {k: [] for k in ours_kinds}
    theirs: dict[str, list[float]] = {k: [] for k in kinds}
    multi = (os.cpu_count() or 1) > 1
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        proxies = {
            k: stack.enter_context(
                Proxy.from_yaml(
                    direct_config(filter_for(k.rstrip("8"), 8 if k.endswith("8") else 1)), workers=1, trace=False
                )
            )
            for k in ours_kinds
        }
        envoys: dict[str, _Envoy] = {}
        for k in kinds:  # each one closed at the end, even if a later one fails to start
            envoys[k] = side = _Envoy(envoy, k, Path(tmp), multi)
            stack.callback(side.close)
        for side in envoys.values():
            side.ready()
        for p in proxies.values():
            rps_many(p, 500)  # warm up
        for r in range(rounds):
            for i in range(len(ours_kinds)):
                k = ours_kinds[(r + i) % len(ours_kinds)]
                ours[k].append(_wasmlab_cpu_us(proxies[k], n))
            for i in range(len(kinds)):
                k = kinds[(r + i) % len(kinds)]
                theirs[k].append(envoys[k].cpu_us(seconds))
    for kind in kinds:
        if kind == "direct":
            continue
        a = _minus(ours[kind], ours["direct"])
        e = _minus(theirs[kind], theirs["direct"])
        yield _paired(f"{kind}.added_us_per_request.wasmlab", a)
        yield _paired(f"{kind}.added_us_per_request.envoy", e)
        ratios = [x / y for x, y in zip(a, e, strict=True) if y > 0]
        if ratios:
            yield _paired(f"{kind}.added_cost_ratio.wasmlab_over_envoy", ratios, "x")
    yield _paired("request.direct.cpu_us_per_request.envoy", theirs["direct"])
    yield _paired("request.direct.cpu_us_per_request.wasmlab", ours["direct"])
    if ours.get("wasm"):
        yield _paired("request.wasm.cpu_us_per_request.wasmlab", ours["wasm"])
    yield _paired("request.native.added_cpu_us", _minus(ours["noop"], ours["direct"]))
    yield _paired("request.native.added_cpu_us_per_filter_of_8", [x / 8 for x in _minus(ours["noop8"], ours["direct"])])
