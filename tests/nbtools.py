"""Write a lesson notebook from a list of cells (authoring helper; notebooks are committed stripped).

from nbtools import md, code, write   (run with tests/ on sys.path)
write("notebooks/00-welcome.ipynb", [md("# Title"), code("print(1)")])
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip("\n"))


def code(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(textwrap.dedent(text).strip("\n"))


def write(path: str | Path, cells: list[nbformat.NotebookNode]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    }
    for i, c in enumerate(nb.cells):
        c.id = f"c{i:02d}"
        if c.cell_type == "code":
            c.outputs = []
            c.execution_count = None
    nbformat.validate(nb)
    Path(path).write_text(nbformat.writes(nb) + "\n")


def strip(path: str | Path) -> None:
    """Remove outputs, execution counts and widget state from a notebook in place."""
    nb = nbformat.read(str(path), as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs = []
            c.execution_count = None
        c.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    Path(path).write_text(nbformat.writes(nb) + "\n")
