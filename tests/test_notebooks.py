"""Every lesson is committed without outputs and runs top to bottom without an error.

Lessons generated from ``notebooks/source/`` (student and solution versions) are executed by
tests/course/test_grade.py, through ``wasmlab grade``, once per version; this file executes only
the lessons that have no source yet, so no notebook runs twice in CI."""

from __future__ import annotations

import json

import pytest

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


def test_every_lesson_is_built_from_a_source():
    """Student and solution versions are executed by tests/course/test_grade.py; a lesson without a
    source would be executed by nobody, so every lesson must have one."""
    assert NOT_GENERATED == [], f"lessons without notebooks/source/: {[p.name for p in NOT_GENERATED]}"
