"""Exported lessons show every view offline (issue 15, issue 12 item 8).

``nbconvert --execute`` saves the widget state in the notebook, so ``nbconvert --to html`` picks the
widget MIME type for each view and loads the widget manager from a CDN: offline that output is
blank. Each view therefore leaves its static picture as an output of its own (widget.py); here a
lesson is executed and exported as a class would, and the page is opened in Chromium with the
network cut: every view must show a non-empty static picture saying how to get the interactive
view back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import browser_checks
import pytest

from conftest import ROOT, need

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
LESSONS = ("02", "07", "09")


def course_copy(tmp: Path) -> Path:
    root = tmp / "course"
    root.mkdir()
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    for name in ("modules", "tests"):
        (root / name).symlink_to(ROOT / name)
    return root / "notebooks"


def nbconvert(*args: str, cwd: Path) -> None:
    env = dict(os.environ, WASMLAB_FAST="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or "/usr/bin/chromium"
    need(Path(exe).exists(), "Debian chromium (apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.mark.parametrize("lesson", LESSONS)
def test_an_executed_and_exported_lesson_shows_every_view_offline(browser, tmp_path, lesson):
    notebooks = course_copy(tmp_path)
    found = sorted(notebooks.glob(f"{lesson}-*.ipynb"))
    assert found, f"no lesson notebooks/{lesson}-*.ipynb"
    src = found[0]
    out = tmp_path / "out"
    nbconvert("--to", "notebook", "--execute", src.name, "--output-dir", str(out), cwd=notebooks)
    executed = out / src.name
    nb = json.loads(executed.read_text())
    # the case that used to be blank: the widget state is saved, so nbconvert picks the widget
    assert nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
    n_views = sum(1 for o in outputs if WIDGET_MIME in o.get("data", {}))
    assert n_views >= 1, f"{src.name} shows no view"
    html = ["".join(o.get("data", {}).get("text/html", "")) for o in outputs]  # nbformat: a str or lines
    pictures = [h for h in html if 'class="wl-static"' in h]
    assert len(pictures) == n_views
    nbconvert("--to", "html", executed.name, "--output-dir", str(out), cwd=out)
    browser_checks.check_offline_html(browser, out / (executed.stem + ".html"), n_views, f"nbconvert-{lesson}")
