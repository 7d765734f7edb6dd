"""``wasmlab build assemblyscript``: build the AssemblyScript filter of lesson 05 from source.

The npm project is ``modules/assemblyscript/`` (``package.json`` pins the Proxy-Wasm AssemblyScript
SDK ``@solo-io/proxy-runtime`` and the ``assemblyscript`` compiler exactly; ``package-lock.json``
pins everything under them). Its build is committed as ``modules/add_header_as.wasm``.

A build never writes ``node_modules`` into the repository: the project's ``package.json`` and
``package-lock.json`` are copied to a cache folder (``$WASMLAB_CACHE_DIR`` or ``~/.cache/wasmlab``,
one folder per lock-file hash), ``npm ci`` installs there once, and every build copies the
``assembly/`` sources next to it and runs ``asc``. The ``asc`` flags below give byte-for-byte the
same ``.wasm`` on every run (no source map, no debug names: the module has no custom sections),
so ``--check`` can compare a fresh build with the committed one.

Node.js and npm are needed only to *build*. Without them, :func:`build_or_committed` returns the
committed build of the same source and says how to get Node.js.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .modules import modules_dir

#: the compiler flags of the committed build (see the module docstring)
ASC_FLAGS = ["--use", "abort=abort_proc_exit", "--optimize", "--noColors"]
OUTPUT = "add_header_as.wasm"
NODE_HELP = (
    "Node.js (with npm) is not on PATH, so the AssemblyScript source cannot be compiled here. "
    "Install Node.js 18 or newer (https://nodejs.org, `apt-get install nodejs npm`, "
    "or `conda install -c conda-forge nodejs`), then run `wasmlab build assemblyscript`."
)


def project_dir() -> Path:
    return modules_dir() / "assemblyscript"


def committed_wasm() -> Path:
    return modules_dir() / OUTPUT


def node_available() -> bool:
    """True when both ``node`` and ``npm`` are on PATH (the lesson's test hides them via PATH)."""
    return shutil.which("node") is not None and shutil.which("npm") is not None


def _cache_base() -> Path:
    base = os.environ.get("WASMLAB_CACHE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "wasmlab") / "assemblyscript"


def _installed_project(project: Path) -> Path:
    """A folder holding the project's package files and an ``npm ci`` install of them."""
    lock = (project / "package-lock.json").read_bytes()
    pkg = (project / "package.json").read_bytes()
    key = hashlib.sha256(pkg + b"\0" + lock).hexdigest()[:16]
    work = _cache_base() / key
    if (work / "node_modules" / ".bin" / "asc").exists():
        return work
    work.mkdir(parents=True, exist_ok=True)
    (work / "package.json").write_bytes(pkg)
    (work / "package-lock.json").write_bytes(lock)
    npm = shutil.which("npm") or "npm"
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"npm ci failed: {(proc.stderr or proc.stdout).strip()[-800:]}")
    return work


def compile_source(out: Path, source: str | None = None, project: Path | None = None) -> Path:
    """Compile the project's ``assembly/index.ts`` (or ``source`` in its place) to ``out``."""
    if not node_available():
        raise RuntimeError(NODE_HELP)
    project = project or project_dir()
    work = _installed_project(project)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        src = Path(tmp) / "assembly"
        shutil.copytree(project / "assembly", src)
        if source is not None:
            (src / "index.ts").write_text(source)
        node = shutil.which("node") or "node"
        asc = work / "node_modules" / "assemblyscript" / "bin" / "asc"
        cmd = [node, str(asc), os.path.relpath(src / "index.ts", work), "-b", str(Path(out).resolve()), *ASC_FLAGS]
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        errors = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise RuntimeError("asc failed:\n" + "\n".join(errors[:30]))
    return Path(out)


@dataclass
class Build:
    """What :func:`build_or_committed` produced: the module's path and how it got there."""

    path: Path
    built: bool  # True: compiled here from source; False: the committed build
    message: str


def build_or_committed(source: str | None = None, out: Path | None = None) -> Build:
    """Compile ``source`` (default: the committed ``index.ts``) when Node.js is present; otherwise
    return the committed ``modules/add_header_as.wasm`` and say how to get Node.js. Compile errors
    are raised (a learner's typo should be seen, not hidden behind the committed build). Without
    ``out``, builds are kept in the cache folder by a hash of the source, the flags and the package
    files: the same source is compiled once."""
    if not node_available():
        return Build(committed_wasm(), False, NODE_HELP + f"\nUsing the committed build {committed_wasm().name}.")
    if out is None:  # keyed by everything that decides the bytes, so re-running a cell does not recompile
        project = project_dir()
        text = source if source is not None else (project / "assembly" / "index.ts").read_text()
        parts = [text.encode(), " ".join(ASC_FLAGS).encode()]
        parts += [(project / name).read_bytes() for name in ("package.json", "package-lock.json")]
        key = hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]
        out = _cache_base() / "builds" / key / OUTPUT
        if out.is_file():
            return Build(
                out, True, f"compiled with asc earlier from this same source -> {out} ({out.stat().st_size} bytes)"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".partial")
        compile_source(partial, source)
        partial.replace(out)
        return Build(out, True, f"compiled with asc -> {out} ({out.stat().st_size} bytes)")
    compile_source(Path(out), source)
    return Build(Path(out), True, f"compiled with asc -> {out} ({Path(out).stat().st_size} bytes)")


def build(check: bool = False, verbose: bool = True) -> int:
    """``wasmlab build assemblyscript [--check]``: rebuild the committed module (or compare)."""
    if not node_available():
        print(f"wasmlab: {NODE_HELP}")
        return 2
    target = committed_wasm()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = compile_source(Path(tmp) / OUTPUT)
        data = fresh.read_bytes()
    if check:
        same = target.is_file() and target.read_bytes() == data
        if verbose:
            print(f"{target.name}: {'matches the source' if same else 'DIFFERS from a fresh build'}")
        return 0 if same else 1
    target.write_bytes(data)
    if verbose:
        print(f"{target.name}: {len(data)} bytes (asc {' '.join(ASC_FLAGS)})")
    return 0
