"""A built wheel carries the course, so ``wasmlab lab`` works from a non-editable install."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_wheel_ships_the_course_and_lab_copies_it(tmp_path):
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(out.glob("wasmlab-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "wasmlab/_course/notebooks/00-welcome.ipynb" in names
    assert "wasmlab/_course/notebooks/configs/hello.yaml" in names
    assert "wasmlab/_course/tests/fixtures/wasm/trap_in_request_headers.wasm" in names  # lessons 04, 06, 07
    assert "wasmlab/cli.py" in names
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    course = tmp_path / "course"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from wasmlab.lab import course_root; "
        "print(course_root(sys.argv[2]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(site), str(course)], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert (course / "notebooks" / "00-welcome.ipynb").is_file()
    assert (course / "notebooks" / "configs" / "hello.yaml").is_file()
    assert (course / "tests" / "fixtures" / "wasm" / "pause_then_continue.wasm").is_file()
