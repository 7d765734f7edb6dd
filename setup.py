"""Packaging hook: ship the course (notebooks/, modules/ and the test modules the lessons load from
tests/fixtures/wasm/) inside the wheel as wasmlab/_course, so ``wasmlab lab`` works from a
non-editable install too. Everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithCourse(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        dest = Path(self.build_lib) / "wasmlab" / "_course"
        for part in ("notebooks", "modules", "tests/fixtures/wasm"):
            src = root / part
            if src.is_dir():
                shutil.copytree(
                    src,
                    dest / part,
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc"),
                )


setup(cmdclass={"build_py": BuildPyWithCourse})
