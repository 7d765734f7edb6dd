"""Repository hygiene that CI checks through the same test command: lint/format clean code and
reproducible committed Wasm modules."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT


def _ruff() -> list[str]:
    return [sys.executable, "-m", "ruff"]


def test_ruff_lint_clean():
    proc = subprocess.run(
        [*_ruff(), "check", "wasmlab", "tests", "bootstrap.py", "setup.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_clean():
    proc = subprocess.run(
        [*_ruff(), "format", "--check", "wasmlab", "tests", "bootstrap.py", "setup.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_committed_modules_rebuild_byte_for_byte():
    from wasmlab.modules import build_modules, targets

    if not targets(ROOT / "modules"):
        pytest.skip("no module sources yet")
    assert build_modules(check=True, verbose=False, root=ROOT / "modules") == 0
