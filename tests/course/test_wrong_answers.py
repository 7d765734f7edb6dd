"""Every exercise fails on a plausible wrong answer (tests/course/wrong/NN.yaml), and what the
learner sees — message and hint — does not give the answer away.

A lesson runs once per *round*: round k puts the k-th wrong answer of every exercise in place at
the same time (the solution version with those answer cells replaced), stops after the last check
cell concerned, and reads the check records. Errors are allowed: a wrong answer raises
``AssertionError`` in its check cell and the run goes on."""

from __future__ import annotations

import json
from collections import defaultdict

import nbformat
import pytest
import yaml

from course_helpers import NOTEBOOKS, SOURCES, WRONG, kernel_env
from wasmlab import course
from wasmlab.grade import _execute, records

FILES = sorted(WRONG.glob("[0-9][0-9].yaml"))


def _source(lesson):
    return next(s for s in SOURCES if s.name.startswith(f"{lesson}-"))


def _entries(path):
    entries = yaml.safe_load(path.read_text())
    assert isinstance(entries, list) and entries
    for e in entries:
        assert set(e) == {"exercise", "answer", "must_not_contain"}, e
        assert isinstance(e["exercise"], str) and e["must_not_contain"]
    return entries


def _rounds(entries):
    per_ex = defaultdict(list)
    for e in entries:
        per_ex[e["exercise"]].append(e)
    return [
        [per_ex[ex][k] for ex in per_ex if k < len(per_ex[ex])] for k in range(max(len(v) for v in per_ex.values()))
    ]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_exercise_has_a_wrong_answer(path):
    lesson = path.stem
    src = json.loads(_source(lesson).read_text())
    exercises = {
        c["metadata"]["wasmlab"]["exercise"].split(".", 1)[1]
        for c in src["cells"]
        if c.get("metadata", {}).get("wasmlab", {}).get("role") == "check"
    }
    assert {e["exercise"] for e in _entries(path)} == exercises


def test_every_lesson_with_exercises_has_wrong_answers():
    for src in SOURCES:
        if '"role": "check"' in src.read_text():
            assert (WRONG / f"{src.name[:2]}.yaml").is_file(), src.name


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_wrong_answers_fail_without_giving_the_answer(path):
    lesson = path.stem
    source = json.loads(_source(lesson).read_text())
    for entries in _rounds(_entries(path)):
        nb = course.version(source, "solution")
        wanted = {f"{lesson}.{e['exercise']}": e for e in entries}
        last = 0
        for i, cell in enumerate(nb["cells"]):
            meta = cell.get("metadata", {}).get("wasmlab") or {}
            if meta.get("exercise") in wanted:
                if meta["role"] == "answer":
                    cell["source"] = wanted[meta["exercise"]]["answer"]
                else:
                    last = i
        nb["cells"] = nb["cells"][: last + 1]
        node = nbformat.reads(json.dumps(nb), as_version=4)
        with kernel_env():
            error = _execute(node, NOTEBOOKS, 300)
        assert error is None, error
        got, _ = records(node)
        for key, e in wanted.items():
            assert key in got, f"{key}: the check reported nothing"
            assert got[key]["status"] == "failed", (key, e["answer"], got[key])
            shown = got[key]["message"] + " " + got[key]["hint"]
            assert got[key]["hint"], f"{key}: a failed check gives a hint"
            for secret in e["must_not_contain"]:
                assert secret not in shown, (key, secret, shown)
