"""``wasmlab grade``: every student notebook runs without an error with every check ``blank``,
every solution notebook with every check ``passed`` (each lesson executed once per version, by
grade itself), plus the table/CSV/exit-code contract on a tiny notebook."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import nbformat
import pytest

from course_helpers import NOTEBOOKS, ROOT, SOURCES, kernel_env
from wasmlab.grade import expected_exercises, table


def _grade(args, tmp_path, limit="300"):
    with kernel_env() as env:
        proc = subprocess.run(
            [sys.executable, "-m", "wasmlab.cli", "grade", *args, "--timeout", limit],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=60 * max(2, len(SOURCES) * 2),
        )
    assert proc.returncode == 0, proc.stderr
    return proc


def _expected(src):
    return expected_exercises(nbformat.read(str(src), as_version=4))


@pytest.mark.slow
@pytest.mark.parametrize("which", ["student", "solution"])
def test_grade_runs_every_lesson_version(which, tmp_path):
    if not SOURCES:
        pytest.skip("no lesson sources yet")
    # the solutions as a folder; the student versions as files (notebooks/ also holds other lessons)
    paths = [str(NOTEBOOKS / "solutions")] if which == "solution" else [str(NOTEBOOKS / s.name) for s in SOURCES]
    out = tmp_path / "class.csv"
    proc = _grade([*paths, "--json", "--csv", str(out)], tmp_path)
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in json.loads(proc.stdout)["notebooks"]}
    want = "blank" if which == "student" else "passed"
    for src in SOURCES:
        row = rows[src.name]
        assert row["error"] is None and row["errors"] == [], (src.name, row["error"], row["errors"])
        exercises = _expected(src)
        assert exercises, f"{src.name} has no checked exercise"
        assert {k: v["status"] for k, v in row["exercises"].items()} == dict.fromkeys(exercises, want)
        assert row["lesson"] == src.name[:2]
        if sys.platform.startswith("linux"):  # measured by a probe cell that is not part of the notebook
            assert 20 < row["kernel_peak_mb"] < 4096, row["kernel_peak_mb"]
        line = next(x for x in table(list(rows.values())).splitlines() if x.startswith(row["path"]))
        assert f"[{0 if want == 'blank' else len(exercises)}/{len(exercises)} passed]" in line
        assert all(f"{e.split('.')[1]}:{want}" in line for e in exercises)
    with out.open() as f:
        got = [r for r in csv.DictReader(f) if r["notebook"].endswith(tuple(s.name for s in SOURCES))]
    assert len(got) == sum(len(_expected(s)) for s in SOURCES)
    assert {r["status"] for r in got} == {want}


TINY = [
    ("code", "from wasmlab.checks import Exercise\nanswer_1, answer_2, answer_3 = ..., 2, 3", None),
    ("code", 'ex = Exercise("42", "1")\nif ex.answered(answer_1):\n    ex.passed()', "42.1"),
    (
        "code",
        'ex = Exercise("42", "2")\nif ex.answered(answer_2):\n'
        '    ex.check(answer_2 == 5, fail="no", hint="h")\n    ex.passed()',
        "42.2",
    ),
    (
        "code",
        'ex = Exercise("42", "3")\nif ex.answered(answer_3):\n    ex.check(answer_3 == 3, "three")\n    ex.passed()',
        "42.3",
    ),
    ("code", 'raise SystemExit("a crash that is not a check")', None),
    ("code", 'ex = Exercise("42", "4")\nex.passed()', "42.4"),
]


def _tiny(path, cells=TINY):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for _, text, ex in cells:
        c = nbformat.v4.new_code_cell(text)
        if ex:
            c.metadata["wasmlab"] = {"role": "check", "exercise": ex}
        nb.cells.append(c)
    nbformat.write(nb, str(path))


def test_grade_table_csv_and_exit_codes(tmp_path):
    class_dir = tmp_path / "hand-ins" / "ada"
    class_dir.mkdir(parents=True)
    _tiny(class_dir / "42-tiny.ipynb")
    out = tmp_path / "class.csv"
    proc = _grade([str(tmp_path / "hand-ins"), "--csv", str(out), "--course", str(NOTEBOOKS)], tmp_path)
    line = proc.stdout.splitlines()[1]
    assert "42" in line and "1:blank" in line and "2:failed" in line and "3:passed" in line
    assert "4:passed" in line and "[2/4 passed]" in line and "1 cell errors" in line
    rows = list(csv.DictReader(out.open()))
    assert [(r["exercise"], r["status"]) for r in rows] == [
        ("1", "blank"),
        ("2", "failed"),
        ("3", "passed"),
        ("4", "passed"),
    ]
    assert (class_dir / "42-tiny.ipynb").read_text().count('"outputs": []') == len(TINY)  # only read


def test_grade_reports_a_notebook_that_runs_out_of_time(tmp_path):
    cells = [("code", "import time\ntime.sleep(30)", None), ("code", 'print("never")', "42.1")]
    _tiny(tmp_path / "slow.ipynb", cells)
    proc = _grade([str(tmp_path / "slow.ipynb"), "--json", "--course", str(NOTEBOOKS)], tmp_path, limit="4")
    row = json.loads(proc.stdout)["notebooks"][0]
    assert row["exercises"] == {"42.1": {"status": "not run", "message": ""}}
    assert "time limit" in row["error"] and row["seconds"] < 20


@pytest.mark.parametrize(
    "args",
    [["does/not/exist.ipynb"], ["README.md"], ["notebooks/configs"], ["--course", "/nonexistent", "notebooks/source"]],
)
def test_bad_input_exits_2_with_one_line(args):
    proc = subprocess.run(
        [sys.executable, "-m", "wasmlab.cli", "grade", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("wasmlab: error:")
