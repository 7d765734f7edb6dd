"""Shared by the course tests: the lessons that have a source, and a kernel environment that
imports this checkout's wasmlab (the kernel starts in notebooks/, so a relative PYTHONPATH would
not find it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted((NOTEBOOKS / "source").glob("[0-9][0-9]-*.ipynb"))
WRONG = Path(__file__).resolve().parent / "wrong"


@contextmanager
def kernel_env() -> Iterator[dict[str, str]]:
    saved = {k: os.environ.get(k) for k in ("WASMLAB_FAST", "PYTHONPATH")}
    os.environ["WASMLAB_FAST"] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [saved["PYTHONPATH"]])])
    try:
        yield dict(os.environ)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
