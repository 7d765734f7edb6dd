"""``install.*`` (``wasmlab bench --install``; never in the default or ``--quick`` set: it takes
about half a minute and a few hundred MB of disk while it runs): what a learner's first
``python3 bootstrap.py lab`` costs. It clones this checkout's committed HEAD into a temporary
folder, runs ``python3 bootstrap.py setup lab`` there (the install ``lab`` does before it opens
JupyterLab), and reports the wall time and the size of the ``.venv`` it made (as ``du -sm``
counts it); the folder is removed afterwards. pip takes packages from wherever it is set up to
(an index, its cache, local wheels), so the time depends on the network and caches; the size
does not."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .core import BenchError, Result


def checkout_root() -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "bootstrap.py").is_file() or not (root / ".git").exists():
        raise BenchError(f"--install measures a fresh clone of a git checkout of wasmlab; {root} is not one")
    return root


def disk_mb(path: Path) -> float:
    """Disk used under ``path`` in MiB, as ``du -sm`` counts it (allocated blocks, links not followed)."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total / 2**20


def bench_install(args: argparse.Namespace) -> Iterator[Result]:
    root = checkout_root()
    python = getattr(sys, "_base_executable", None) or sys.executable  # the Python a learner starts from
    with tempfile.TemporaryDirectory(prefix="wasmlab-install-") as tmp:
        repo = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(root), str(repo)], check=True, capture_output=True)
        t0 = time.perf_counter()
        out = subprocess.run(
            [python, "bootstrap.py", "setup", "lab"], cwd=repo, capture_output=True, text=True, timeout=1800
        )
        seconds = time.perf_counter() - t0
        if out.returncode != 0:
            raise BenchError(f"bootstrap.py setup lab failed in a fresh clone: {out.stderr.strip().splitlines()[-1:]}")
        mb = disk_mb(repo / ".venv")
    yield Result("install.lab_first_run_s", seconds, "s", 0.0)
    yield Result("install.lab_venv_mb", mb, "MiB", 0.0)
