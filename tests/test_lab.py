"""``wasmlab lab`` really starts JupyterLab on the course (headless, 127.0.0.1)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request

from conftest import ROOT
from wasmlab.envoy.wire import free_port


def test_lab_serves_the_course(tmp_path):
    port = free_port()
    token = secrets.token_hex(8)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"))
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
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=2) as r:
                    body = r.read().decode()
                    status = r.status
                break
            except OSError:
                time.sleep(0.3)
        assert body is not None, "JupyterLab did not answer on /lab"
        assert status == 200 and "JupyterLab" in body
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents/notebooks?token={token}", timeout=5) as r:
            names = {item["name"] for item in __import__("json").loads(r.read())["content"]}
        assert "00-welcome.ipynb" in names  # it opened the checkout's course
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    assert (ROOT / "notebooks").is_dir()
