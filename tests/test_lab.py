"""``wasmlab lab`` really starts JupyterLab on the course (headless, 127.0.0.1) and opens lesson 00:
the server's default URL (what ``/`` redirects to, and what a browser opens) is the lesson, and
the terminal says which URL that is."""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT
from wasmlab.envoy.wire import free_port
from wasmlab.lab import FIRST_LESSON, lab_args


def test_default_url_goes_to_labapp():
    assert lab_args([]) == [f"--LabApp.default_url=/lab/tree/{FIRST_LESSON}"]
    # LabApp overrides ServerApp.default_url, so a user's choice is passed on where it works
    assert lab_args(["--ServerApp.default_url=/lab/tree/x.ipynb"]) == ["--LabApp.default_url=/lab/tree/x.ipynb"]
    assert lab_args(["--LabApp.default_url=/tree", "--no-browser"]) == ["--LabApp.default_url=/tree", "--no-browser"]


def _redirect(port: int, token: str) -> tuple[int, str]:
    """Where ``/`` redirects. A refused connection is tried again for up to 30 s: the URL line
    can reach the log a moment before the server accepts (seen once in CI, with the lab
    installing into a fresh .venv); a server that never answers still fails the test."""
    deadline = time.monotonic() + 30
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", f"/?token={token}")
            r = conn.getresponse()
            return r.status, r.getheader("Location") or ""
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
        finally:
            conn.close()


def _served_port(proc: subprocess.Popen, out, seconds: float) -> int:
    """The port from "wasmlab: the course is open at http://127.0.0.1:PORT/..." (JupyterLab moves to
    another port when the one asked for got taken meanwhile, so the printed URL is the truth)."""
    deadline = time.monotonic() + seconds
    pattern = re.compile(r"^wasmlab: the course is open at http://127\.0\.0\.1:(\d+)/", re.M)
    while time.monotonic() < deadline and proc.poll() is None:
        m = pattern.search(out.read_text())
        if m:
            return int(m.group(1))
        time.sleep(0.3)
    raise AssertionError("wasmlab lab never said where the course is open:\n" + out.read_text()[-3000:])


def _stop_group(proc: subprocess.Popen) -> None:
    """Ctrl-C as a terminal sends it (to the whole group); nothing may outlive it."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True).stdout:
        time.sleep(0.2)
    leftover = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    if leftover:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    assert not leftover, "JupyterLab outlived Ctrl-C"


def test_lab_serves_the_course_and_opens_lesson_00(tmp_path):
    port = free_port()
    token = secrets.token_hex(8)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"))
    # run this checkout's wasmlab (a relative PYTHONPATH would not reach it from tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    log = (tmp_path / "out.txt").open("w+")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wasmlab.cli",
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--LabApp.workspaces_dir={tmp_path / 'ws'}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C in a terminal reaches the whole group: wasmlab and JupyterLab
    )
    try:
        port = _served_port(proc, tmp_path / "out.txt", 90)
        status, location = _redirect(port, token)
        assert status == 302 and location.startswith(f"/lab/tree/{FIRST_LESSON}"), (status, location)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{location}", timeout=5) as r:
            assert r.status == 200 and "JupyterLab" in r.read().decode()
        url = f"http://127.0.0.1:{port}/api/contents/{FIRST_LESSON}?token={token}&content=0"
        with urllib.request.urlopen(url, timeout=5) as r:
            assert json.loads(r.read())["type"] == "notebook"  # the lesson it opens is there
    finally:
        _stop_group(proc)
    out = (tmp_path / "out.txt").read_text()
    said = [line for line in out.splitlines() if line.startswith("wasmlab: the course is open at ")]
    assert said and said[0].endswith(f"127.0.0.1:{port}/lab/tree/{FIRST_LESSON}?token=..."), out[-2000:]
    assert (ROOT / "notebooks").is_dir()


@pytest.mark.slow
def test_bootstrap_lab_on_a_fresh_clone_opens_lesson_00(tmp_path):
    """The README's first command, on a copy of the tracked files (what a fresh clone holds): it makes
    its own .venv, installs wasmlab[envoy] (no ziglang) and serves lesson 00."""
    import shutil

    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, timeout=30)
    if files.returncode != 0 or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    for name in filter(None, files.stdout.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / name)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"))
    log = (tmp_path / "out.txt").open("w+")
    proc = subprocess.Popen(
        [
            shutil.which("python3") or sys.executable,
            "bootstrap.py",
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--IdentityProvider.token=t0k",
            f"--LabApp.workspaces_dir={tmp_path / 'ws'}",
        ],
        cwd=clone,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        served = _served_port(proc, tmp_path / "out.txt", 600)
        status, location = _redirect(served, "t0k")
        assert status == 302 and location.startswith(f"/lab/tree/{FIRST_LESSON}"), (status, location)
    finally:
        _stop_group(proc)
    site = next((clone / ".venv" / "lib").glob("python3*/site-packages"))
    assert (clone / ".venv" / "bin" / "wasmlab").is_file()
    assert not list(site.glob("ziglang*")), "the lab set-up must not install ziglang"
