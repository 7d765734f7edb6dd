"""Every lesson is committed without outputs and runs top to bottom without an error."""

from __future__ import annotations

import json
import os

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_is_a_course():
    assert (ROOT / "notebooks" / "00-welcome.ipynb") in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", "lessons must carry a kernelspec"
    assert "widgets" not in nb["metadata"], "strip widget state before committing"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"cell {cell.get('id')} has saved outputs"
            assert cell["execution_count"] is None


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_runs_top_to_bottom(path, tmp_path):
    nb = nbformat.read(str(path), as_version=4)
    env_before = os.environ.get("WASMLAB_FAST")
    os.environ["WASMLAB_FAST"] = "1"
    try:
        client = NotebookClient(
            nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        )
        client.execute()
    finally:
        if env_before is None:
            os.environ.pop("WASMLAB_FAST", None)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    (tmp_path / path.name).write_text(nbformat.writes(nb))
