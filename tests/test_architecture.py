"""The layering in ``wasmlab/ARCHITECTURE.md`` holds: no import cycle between wasmlab's packages,
each package imports only the packages the document allows, and units stay small (files up to
600 lines, functions up to 80 lines, except the ones the document lists with a reason).

Imports are read with ``ast`` from every module's top level (including ``if``/``try`` blocks);
``if TYPE_CHECKING:`` blocks and imports inside functions are not package dependencies at import
time and are left out, as the document says.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from conftest import ROOT

PKG = ROOT / "wasmlab"
DOC = PKG / "ARCHITECTURE.md"
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80


def _modules() -> Iterator[tuple[Path, list[str]]]:
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        yield path, parts


def _unit(parts: list[str]) -> str:
    """The package a module belongs to: ``wasmlab.host.hcm`` -> ``host``, ``wasmlab.cli`` ->
    ``cli``, ``wasmlab/__init__.py`` -> ``wasmlab``."""
    if len(parts) == 2 and parts[1] == "__init__":
        return "wasmlab"
    return parts[1]


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def _top_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _top_level_imports(node.body)
            yield from _top_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _top_level_imports(block)


def _targets(node: ast.Import | ast.ImportFrom, parts: list[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = parts[:-1]  # the module's package (for __init__ the package itself)
        base = base[: len(base) - (node.level - 1)]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    # `from . import x` may name a submodule: count both the package and `package.x`
    return [mod, *(f"{mod}.{a.name}" for a in node.names)]


def _unit_of_target(target: str) -> str | None:
    parts = target.split(".")
    if parts[0] != "wasmlab" or len(parts) < 2:
        return None
    name = parts[1]
    if (PKG / name).is_dir() or (PKG / f"{name}.py").is_file():
        return name
    return None


def import_graph() -> dict[str, set[str]]:
    """Package -> packages it imports at module level (type-only imports excluded)."""
    graph: dict[str, set[str]] = {}
    for path, parts in _modules():
        unit = _unit(parts)
        deps = graph.setdefault(unit, set())
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in _top_level_imports(tree.body):
            for target in _targets(node, parts):
                dep = _unit_of_target(target)
                if dep is not None and dep != unit:
                    deps.add(dep)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def allowed_imports() -> dict[str, set[str]]:
    """The "Allowed imports" table of ARCHITECTURE.md: ``| `pkg` | `a`, `b` |`` rows; ``*`` means any."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Allowed imports", 1)[1].split("\n## ", 1)[0]
    out: dict[str, set[str]] = {}
    for line in section.splitlines():
        m = re.match(r"\|\s*`([\w.]+)`\s*\|(.*)\|\s*$", line)
        if m:
            out[m.group(1)] = set(re.findall(r"`([\w*]+)`", m.group(2)))
    return out


def size_exceptions() -> set[str]:
    """The "Size exceptions" list: ``- `wasmlab/x.py` — reason`` or ``- `wasmlab/x.py:func` — reason``."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Size exceptions", 1)[1].split("\n## ", 1)[0]
    out = set()
    for line in section.splitlines():
        m = re.match(r"-\s*`([^`]+)`\s*[—-]+\s*\S", line)
        if m:
            out.add(m.group(1))
    return out


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_import_reader_skips_type_checking_and_function_imports():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "from ..http import HeaderMap\n"
        "if TYPE_CHECKING:\n    from ..host.proxy import Proxy\n"
        "try:\n    from .. import trace\nexcept ImportError:\n    pass\n"
        "def f():\n    from ..filters import base\n"
    )
    parts = ["wasmlab", "config", "bootstrap"]
    units = {_unit_of_target(t) for n in _top_level_imports(tree.body) for t in _targets(n, parts)}
    assert units - {None} == {"http", "trace"}


def test_no_package_import_cycle():
    found = cycles(import_graph())
    assert not found, f"package import cycles (module-level imports): {found}"


def test_packages_import_only_what_architecture_allows():
    allowed = allowed_imports()
    graph = import_graph()
    missing = sorted(set(graph) - set(allowed))
    assert not missing, f"ARCHITECTURE.md has no 'Allowed imports' row for {missing}"
    wrong = {
        unit: sorted(deps - allowed[unit])
        for unit, deps in graph.items()
        if "*" not in allowed[unit] and deps - allowed[unit]
    }
    assert not wrong, f"imports ARCHITECTURE.md does not allow: {wrong}"


def test_files_are_small():
    exceptions = size_exceptions()
    big = []
    for path, _ in _modules():
        rel = path.relative_to(ROOT).as_posix()
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_FILE_LINES and rel not in exceptions:
            big.append(f"{rel} ({n} lines)")
    assert not big, f"files over {MAX_FILE_LINES} lines not listed in ARCHITECTURE.md: {big}"


def test_functions_are_short():
    exceptions = size_exceptions()
    long = []
    for path, _ in _modules():
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES and f"{rel}:{node.name}" not in exceptions:
                    long.append(f"{rel}:{node.name} ({n} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines not listed in ARCHITECTURE.md: {long}"


def test_listed_exceptions_exist():
    """An exception for a file or function that is gone (or now small) is stale: remove it."""
    stale = []
    for entry in size_exceptions():
        rel, _, func = entry.partition(":")
        path = ROOT / rel
        if not path.is_file():
            stale.append(entry)
            continue
        text = path.read_text(encoding="utf-8")
        if not func:
            if len(text.splitlines()) <= MAX_FILE_LINES:
                stale.append(entry)
            continue
        sizes = [
            (n.end_lineno or n.lineno) - n.lineno + 1
            for n in ast.walk(ast.parse(text))
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == func
        ]
        if not sizes or max(sizes) <= MAX_FUNCTION_LINES:
            stale.append(entry)
    assert not stale, f"stale size exceptions in ARCHITECTURE.md: {stale}"
