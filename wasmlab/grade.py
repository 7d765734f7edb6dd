"""``wasmlab grade PATH...``: run learners' notebooks headless and count their exercise checks.

Each notebook runs top to bottom in a fresh ``python3`` kernel (nbclient), with errors allowed (a
wrong answer raises ``AssertionError`` and the run goes on, as "Run All" would not) and a time
limit per notebook. Every check shows one ``application/vnd.wasmlab.check+json`` record
(:mod:`wasmlab.checks`); grading collects them into lesson × exercise → blank / failed / passed.
An exercise whose check cell never reported (the notebook stopped or timed out before it) is
``not run``. Grading reports, it does not judge: the exit code is 0 whatever the learners did, and
2 on bad input.

Where a notebook runs: lessons open files relative to the course's ``notebooks/`` folder
(``configs/hello.yaml``). A notebook whose own folder has ``configs/`` runs there (as do the
solution versions in ``notebooks/solutions/``: their first cell moves the kernel up); one collected
from anywhere else (a class's hand-ins) runs with the kernel's working directory set to the
course's ``notebooks/`` (``--course DIR``, default: this checkout, or the
installed course as ``wasmlab lab`` places it). The notebook file itself is only read.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

from .checks import MIME

STATUSES = ("blank", "failed", "passed")
# appended to each run and removed after: the kernel's peak memory, for sizing a classroom hub
_PROBE = (
    "import resource as _r, sys as _s\n"
    "_kib = _r.getrusage(_r.RUSAGE_SELF).ru_maxrss // (1024 if _s.platform == 'darwin' else 1)\n"
    "_s.stdout.write(f'wasmlab-peak-rss-kib {_kib}')"
)


def collect(paths: list[str]) -> list[Path]:
    """The notebooks named by ``paths`` (files, or folders searched recursively), in order."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
            if not found:
                raise ValueError(f"{raw}: no notebooks in this folder")
            out.extend(found)
        elif p.is_file():
            if p.suffix != ".ipynb":
                raise ValueError(f"{raw}: not a notebook (.ipynb)")
            out.append(p)
        else:
            raise ValueError(f"{raw}: no such file or folder")
    unique: dict[Path, Path] = {}  # resolved path -> the first spelling given, in order
    for p in out:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def course_notebooks(course: str | None) -> Path:
    if course:
        d = Path(course)
        if not (d / "configs").is_dir():
            raise ValueError(f"--course {course}: not the course's notebooks/ folder (no configs/ in it)")
        return d.resolve()
    from contextlib import redirect_stdout

    from .lab import course_root

    with redirect_stdout(sys.stderr):  # "copied the course to ..." must not mix with --json on stdout
        return course_root(None) / "notebooks"


def expected_exercises(nb: Any) -> list[str]:
    """Exercise ids ("06.2") of the notebook's check cells, in order (cell metadata only)."""
    out = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("wasmlab") or {}
        if meta.get("role") == "check" and meta.get("exercise") and meta["exercise"] not in out:
            out.append(meta["exercise"])
    return out


def _execute(nb: Any, cwd: Path, timeout: float) -> str | None:
    from nbclient import NotebookClient

    client = NotebookClient(
        nb,
        timeout=int(timeout) + 30,  # the per-notebook limit below stops it first
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(cwd)}},
    )
    t0 = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(client.async_execute(), timeout))
    except Exception as e:  # a kernel that dies, does not start, or is stopped at the limit: report, go on
        if isinstance(e, TimeoutError) or time.monotonic() - t0 >= timeout:
            # (cancelling nbclient mid-cell may surface as DeadKernelError rather than TimeoutError)
            return f"stopped after the time limit of {timeout:g} s"
        return f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
    return None


def records(nb: Any) -> tuple[dict[str, dict[str, str]], list[str]]:
    """The check records of an executed notebook ("06.2" -> status, message, hint) and its errors
    other than a check's ``AssertionError`` (a wrong answer is not an error)."""
    results: dict[str, dict[str, str]] = {}
    errors: list[str] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        is_check = (cell.get("metadata", {}).get("wasmlab") or {}).get("role") == "check"
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error" and not (is_check and o.get("ename") == "AssertionError"):
                errors.append(f"{o.get('ename')}: {' '.join(str(o.get('evalue', '')).split())[:200]}")
            rec = o.get("data", {}).get(MIME) if o.get("output_type") in ("display_data", "execute_result") else None
            if rec:
                results[f"{rec['lesson']}.{rec['exercise']}"] = {
                    "status": rec["status"],
                    "message": rec.get("message", ""),
                    "hint": rec.get("hint", ""),
                }
    return results, errors


def grade_one(path: Path, course: Path, timeout: float) -> dict[str, Any]:
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as e:
        raise ValueError(f"{path}: not a readable notebook ({type(e).__name__})") from e
    here = path.parent
    # the solution versions run where JupyterLab starts them; their first cell moves up to notebooks/
    own = (here / "configs").is_dir() or (here.name == "solutions" and (here.parent / "configs").is_dir())
    cwd = here if own else course
    probe = nbformat.v4.new_code_cell(_PROBE)
    nb.cells.append(probe)
    t0 = time.monotonic()
    error = _execute(nb, cwd, timeout)
    seconds = time.monotonic() - t0
    nb.cells.pop()
    peak = "".join(o.get("text", "") for o in probe.get("outputs", []) if o.get("name") == "stdout")
    peak_mb = round(int(peak.split()[-1]) / 1024) if peak.startswith("wasmlab-peak-rss-kib ") else None
    results, errors = records(nb)
    lesson = next(iter(results), "").split(".")[0]
    for key in expected_exercises(nb):
        results.setdefault(key, {"status": "not run", "message": ""})
        lesson = lesson or key.split(".")[0]
    ordered = dict(sorted(results.items(), key=lambda kv: [int(x) if x.isdigit() else x for x in kv[0].split(".")]))
    return {
        "path": str(path),
        "lesson": lesson,
        "exercises": ordered,
        "errors": errors,
        "error": error,
        "seconds": round(seconds, 1),
        "kernel_peak_mb": peak_mb,  # the kernel's peak resident memory (Linux/macOS), None if unknown
    }


def table(rows: list[dict[str, Any]]) -> str:
    """One line per notebook: its lesson and each exercise's status, then a count."""
    width = max(len("notebook"), *(len(r["path"]) for r in rows))
    lines = []
    for r in rows:
        cells = [f"{k.split('.', 1)[1]}:{v['status']}" for k, v in r["exercises"].items()]
        passed = sum(v["status"] == "passed" for v in r["exercises"].values())
        note = f"  ({r['error']})" if r["error"] else ""
        note += f"  ({len(r['errors'])} cell errors)" if r["errors"] else ""
        lines.append(
            f"{r['path']:<{width}}  {r['lesson'] or '--':>6}  {'  '.join(cells) or '(no checks)'}"
            f"  [{passed}/{len(r['exercises'])} passed]{note}"
            + (f"  {r['seconds']:.0f} s, kernel {r['kernel_peak_mb']} MB" if r.get("kernel_peak_mb") else "")
        )
    return "\n".join([f"{'notebook':<{width}}  {'lesson':>6}  exercise:status", *lines])


def write_csv(path: str, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["notebook", "lesson", "exercise", "status", "message"])
        for r in rows:
            for key, v in r["exercises"].items():
                lesson, ex = key.split(".", 1)
                w.writerow([r["path"], lesson, ex, v["status"], v["message"]])


def main(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        raise ValueError("--timeout must be positive")
    paths = collect(args.paths)
    course = course_notebooks(args.course)
    rows = []
    for p in paths:
        if not args.json:
            print(f"grading {p} ...", file=sys.stderr, flush=True)
        rows.append(grade_one(p, course, args.timeout))
    if args.csv:
        write_csv(args.csv, rows)
    if args.json:
        print(json.dumps({"course": str(course), "notebooks": rows}, indent=1))
    else:
        print(table(rows))
    return 0
