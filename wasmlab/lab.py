"""``wasmlab lab``: open the course in JupyterLab.

From a checkout, JupyterLab opens the checkout itself (lessons, configs and modules next to each
other). From an installed wheel, the packaged course is copied once to a folder you can write to
(``--dir``, default ``./wasmlab-course``) and opened there; an existing copy is never overwritten.

JupyterLab opens lesson 00. The lesson is set with ``--LabApp.default_url``: JupyterLab's LabApp
sets the server's default URL itself, so a ``--ServerApp.default_url`` is overridden (given on the
command line, it is passed on as ``--LabApp.default_url``). The terminal shows the URL opened
(``wasmlab: the course is open at http://…/lab/tree/notebooks/00-welcome.ipynb?token=...``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

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
    args = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", *lab_args(extra)]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
        # containers and classroom VMs often run as root, where JupyterLab refuses to start
        args.append("--allow-root")
    env = dict(os.environ)
    env.setdefault("WASMLAB_COURSE", str(root))
    try:
        proc = subprocess.Popen(args, cwd=root, env=env, stderr=subprocess.PIPE, text=True, bufsize=1)
    except KeyboardInterrupt:
        return 0
    relay = threading.Thread(target=_relay, args=(proc.stderr, sys.stderr), daemon=True)
    relay.start()
    try:
        return wait_through_ctrl_c(proc)
    finally:
        relay.join(2)


def wait_through_ctrl_c(proc: subprocess.Popen[str]) -> int:
    """Wait for JupyterLab, which handles Ctrl-C itself (in a terminal it gets the same signal and
    asks "Shut down this Jupyter server?"; a second Ctrl-C stops it). Without a terminal nobody can
    answer that question, so Ctrl-C asks it to stop (SIGTERM: it shuts its kernels down)."""
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            if not (sys.stdin and sys.stdin.isatty()):
                proc.terminate()


def lab_args(extra: list[str]) -> list[str]:
    """``extra`` with the default URL set on LabApp (lesson 00 unless the user chose one)."""
    out = []
    chosen = False
    for a in extra:
        if a.startswith("--ServerApp.default_url"):
            a = "--LabApp.default_url" + a[len("--ServerApp.default_url") :]
        chosen = chosen or a.startswith("--LabApp.default_url")
        out.append(a)
    if not chosen:
        out.append(f"--LabApp.default_url=/lab/tree/{FIRST_LESSON}")
    return out


_URL = re.compile(r"(https?://\S+/lab\S*)")


def _relay(src: IO[str] | None, dest: IO[str]) -> None:
    """Pass JupyterLab's log through, and say once which URL the course opened at."""
    if src is None:
        return
    said = False
    for line in src:
        dest.write(line)
        dest.flush()
        m = _URL.search(line)
        if m and not said:
            said = True
            print(f"wasmlab: the course is open at {m.group(1)}", flush=True)
