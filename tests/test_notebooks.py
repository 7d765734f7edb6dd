"""Every lesson is committed without outputs and runs top to bottom without an error.

Lessons generated from ``notebooks/source/`` (student and solution versions) are executed by
tests/course/test_grade.py, through ``wasmlab grade``, once per version; this file executes only
the lessons that have no source yet, so no notebook runs twice in CI."""

from __future__ import annotations

import json
import os

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOURCES = sorted((ROOT / "notebooks" / "source").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))
NOT_GENERATED = [p for p in NOTEBOOKS if not (ROOT / "notebooks" / "source" / p.name).is_file()]


def test_there_is_a_course():
    assert (ROOT / "notebooks" / "00-welcome.ipynb") in NOTEBOOKS


@pytest.mark.parametrize(
    "path", NOTEBOOKS + SOURCES + SOLUTIONS, ids=lambda p: p.relative_to(ROOT / "notebooks").as_posix()
)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", "lessons must carry a kernelspec"
    assert "widgets" not in nb["metadata"], "strip widget state before committing"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"cell {cell.get('id')} has saved outputs"
            assert cell["execution_count"] is None


@pytest.mark.slow
@pytest.mark.parametrize("path", NOT_GENERATED, ids=lambda p: p.name)
def test_runs_top_to_bottom(path, tmp_path):
    nb = nbformat.read(str(path), as_version=4)
    saved = {k: os.environ.get(k) for k in ("WASMLAB_FAST", "PYTHONPATH")}
    os.environ["WASMLAB_FAST"] = "1"
    # the kernel starts in notebooks/, so a relative PYTHONPATH (e.g. ".") would not find this
    # checkout's wasmlab and the kernel would import whatever wasmlab is installed instead
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [saved["PYTHONPATH"]])])
    try:
        client = NotebookClient(
            nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        )
        client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    (tmp_path / path.name).write_text(nbformat.writes(nb))
