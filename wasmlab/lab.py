"""``wasmlab lab``: open the course in JupyterLab.

From a checkout, JupyterLab opens the checkout itself (lessons, configs and modules next to each
other). From an installed wheel, the packaged course is copied once to a folder you can write to
(``--dir``, default ``./wasmlab-course``) and opened there; an existing copy is never overwritten.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

FIRST_LESSON = "notebooks/00-welcome.ipynb"


def course_root(target: str | None = None) -> Path:
    """The folder holding ``notebooks/`` and ``modules/`` to open."""
    pkg = Path(__file__).resolve().parent
    checkout = pkg.parent
    if (checkout / "notebooks").is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout
    packaged = pkg / "_course"
    dest = Path(target or "wasmlab-course").resolve()
    if not (dest / "notebooks").is_dir():
        if not (packaged / "notebooks").is_dir():
            raise FileNotFoundError("the course notebooks are not packaged with this install of wasmlab")
        dest.mkdir(parents=True, exist_ok=True)
        # lessons load some test modules (traps, loops, SDK imitations) from tests/fixtures/wasm
        for part in ("notebooks", "modules", "tests/fixtures/wasm"):
            src = packaged / part
            if src.is_dir():
                shutil.copytree(
                    src, dest / part, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__init__.py", "__pycache__")
                )
        print(f"wasmlab: copied the course to {dest}")
    return dest


def lab(target: str | None, extra: list[str]) -> int:
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        print("wasmlab: error: JupyterLab is not installed; fix: pip install 'jupyterlab>=4.5,<5'", file=sys.stderr)
        return 2
    root = course_root(target)
    args = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", *extra]
    if not any(a.startswith("--ServerApp.default_url") or a.startswith("--LabApp.default_url") for a in extra):
        args.append(f"--ServerApp.default_url=/lab/tree/{FIRST_LESSON}")
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
        # containers and classroom VMs often run as root, where JupyterLab refuses to start
        args.append("--allow-root")
    env = dict(os.environ)
    env.setdefault("WASMLAB_COURSE", str(root))
    try:
        return subprocess.call(args, cwd=root, env=env)
    except KeyboardInterrupt:
        return 0
