"""mypy over ``wasmlab/`` (settings in pyproject.toml ``[tool.mypy]``), run the way CI runs the tests.

The package is clean (issue 10): any mypy error fails the test. A targeted ``# type: ignore[code]``
with a reason is acceptable where a library is genuinely untyped (the ctypes side of
``proxywasm/fastpath.py``); ``warn_unused_ignores`` reports one that is no longer needed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT

_ERROR = re.compile(r"^(?P<path>[^:\s]+\.py):\d+: error: ", re.MULTILINE)


def _mypy(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, capture_output=True, text=True)
    # 0 clean, 1 type errors; anything else (2) is a crash or a bad configuration
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.stdout


def _errors_by_file(output: str) -> Counter[str]:
    return Counter(m["path"].replace("\\", "/") for m in _ERROR.finditer(output))


@pytest.fixture(scope="module")
def mypy_output() -> str:
    return _mypy()


def test_mypy_reports_no_error_in_wasmlab(mypy_output: str) -> None:
    found = _errors_by_file(mypy_output)
    assert not found, f"mypy errors per file: {dict(found)}\n{mypy_output}"
    assert "Success: no issues found" in mypy_output, mypy_output


def test_the_gate_fails_on_a_planted_error(tmp_path: Path) -> None:
    # the same configuration on a file with one wrong assignment: the gate above would see it
    bad = tmp_path / "planted.py"
    bad.write_text("def f() -> int:\n    x: int = 'text'\n    return x\n")
    # its own cache: the planted module never reaches the project's .mypy_cache
    out = _mypy("--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache"), str(bad))
    assert list(_errors_by_file(out).values()) == [1] and "planted.py:2: error:" in out, out
    assert "[assignment]" in out


def test_error_pattern_reads_mypy_lines() -> None:
    # the parser above is what makes the gate able to fail: check it on mypy's own line shape
    sample = (
        "wasmlab/x.py:3: error: Incompatible types  [assignment]\nwasmlab/x.py:4: note: see\nFound 1 error in 1 file"
    )
    assert _errors_by_file(sample) == Counter({"wasmlab/x.py": 1})
