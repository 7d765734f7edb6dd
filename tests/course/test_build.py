"""``wasmlab course build``: deterministic, committed == fresh, and the two versions differ only
where the cell metadata says (no answer leaks into the student version)."""

from __future__ import annotations

import json
import re

import pytest

from course_helpers import NOTEBOOKS, ROOT, SOURCES
from wasmlab import course

pytestmark = pytest.mark.skipif(not SOURCES, reason="no lesson sources yet")


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _meta(cell):
    return cell.get("metadata", {}).get("wasmlab") or {}


def test_build_is_deterministic_and_equals_the_committed_files(capsys):
    first, second = course.build_all(ROOT), course.build_all(ROOT)
    assert first == second
    assert len(first) == 2 * len(SOURCES)
    assert course.build(ROOT, check=True, verbose=False) == 0, capsys.readouterr().out
    for path, text in first.items():
        assert path.read_text(encoding="utf-8") == text, path


def test_check_fails_when_a_generated_file_is_stale(tmp_path, capsys):
    nb = tmp_path / "notebooks"
    (nb / "source").mkdir(parents=True)
    src = SOURCES[0]
    (nb / "source" / src.name).write_text(src.read_text())
    assert course.build(tmp_path, verbose=False) == 0
    assert course.build(tmp_path, check=True, verbose=False) == 0
    student = nb / src.name
    student.write_text(student.read_text().replace("...", "42", 1))
    assert course.build(tmp_path, check=True, verbose=False) == 1
    assert src.name in capsys.readouterr().out
    assert course.build(tmp_path, missing=True, verbose=False) == 0
    assert "42" in student.read_text()  # --missing never overwrites a learner's file
    assert course.build(tmp_path, verbose=False) == 0
    assert course.build(tmp_path, check=True, verbose=False) == 0


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem[:2])
def test_versions_follow_the_metadata(src):
    source = _cells(src)
    student = _cells(NOTEBOOKS / src.name)
    solution = _cells(NOTEBOOKS / "solutions" / src.name)
    answers = [c for c in source if _meta(c).get("role") == "answer"]
    checks = {_meta(c)["exercise"] for c in source if _meta(c).get("role") == "check"}
    assert {_meta(c)["exercise"] for c in answers} == checks, "every exercise has an answer and a check cell"
    lesson = src.name[:2]
    assert all(ex.split(".")[0] == lesson for ex in checks)
    by_id = {c["id"]: c for c in student}
    sol_by_id = {c["id"]: c for c in solution}
    for a in answers:
        meta = _meta(a)
        blank = meta["student"]
        assert "..." in blank or "None" in blank, f"{meta['exercise']}: the student version must be blank"
        assert blank.lstrip().startswith("#"), f"{meta['exercise']}: start with a one-line instruction"
        assert "".join(by_id[a["id"]]["source"]) == blank
        assert "".join(sol_by_id[a["id"]]["source"]) == "".join(a["source"])
        assert "student" not in _meta(by_id[a["id"]]), "the student text is not repeated in the output"
    for c in source:
        role = _meta(c).get("role")
        assert (c["id"] in by_id) == (role != "solution-only")
        assert (c["id"] in sol_by_id) == (role != "student-only")
    # nothing of a solution-only cell reaches the student version
    keys = ["".join(c["source"]) for c in source if _meta(c).get("role") == "solution-only"]
    text = json.dumps(student)
    assert not any(json.dumps(k)[1:-1] in text for k in keys)


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem[:2])
def test_every_question_has_a_collapsed_answer_key(src):
    """From the "Questions" heading on, each question (a numbered item) sits in its own markdown
    cell, and the cell right under it is a solution-only, collapsed answer."""
    cells = _cells(src)
    text = ["".join(c["source"]) for c in cells]
    heading = re.compile(r"(?m)^(#+ +|\*\*)Questions")
    start = next((i for i, t in enumerate(text) if heading.search(t)), None)
    assert start is not None, "the lesson ends with questions"
    asked = 0
    for i in range(start, len(cells)):
        if cells[i]["cell_type"] != "markdown" or _meta(cells[i]).get("role") == "solution-only":
            continue
        items = re.findall(r"(?m)^\d+\. ", text[i].split("Questions", 1)[-1] if i == start else text[i])
        if not items:
            continue
        assert len(items) == 1, f"cell {cells[i]['id']}: one question per cell, so its answer can sit under it"
        key = cells[i + 1]
        assert _meta(key).get("role") == "solution-only", f"{text[i][:60]!r} has no answer key under it"
        assert "".join(key["source"]).startswith("<details><summary>Answer</summary>")
        asked += 1
    assert asked >= 3


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem[:2])
def test_navigation_links_exist(src):
    names = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
    i = names.index(src.name)
    for path, index in ((NOTEBOOKS / src.name, "README.md"), (NOTEBOOKS / "solutions" / src.name, "../README.md")):
        cells = _cells(path)
        for nav in (cells[0], cells[-1]):
            text = "".join(nav["source"])
            assert f"]({index})" in text
            targets = [t.split(")")[0] for t in text.split("](")[1:]]
            assert index in targets
            if i > 0:
                assert any(t.endswith(names[i - 1]) for t in targets)
            if i + 1 < len(names):
                assert any(t.endswith(names[i + 1]) for t in targets)
            for target in targets:
                assert (path.parent / target).is_file(), target


def test_solution_version_moves_to_the_lessons_folder():
    for src in SOURCES:
        first_code = next(c for c in _cells(NOTEBOOKS / "solutions" / src.name) if c["cell_type"] == "code")
        assert '_os.chdir("..")' in "".join(first_code["source"])
