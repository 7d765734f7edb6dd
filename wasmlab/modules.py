"""``wasmlab build-modules``: build the teaching Proxy-Wasm modules in ``modules/``.

C sources (``modules/<name>.c``, using ``modules/include/proxy_wasm.h``) are compiled with the
PyPI ``ziglang`` toolchain, pinned exactly so a rebuild is byte-for-byte identical; WAT sources
(``modules/<name>.wat``) are assembled with ``wasmtime.wat2wasm`` into ``<name>_wat.wasm``. The
``.wasm`` files are committed; ``--check`` rebuilds into a temporary folder and fails if any
committed file differs (CI runs it).
"""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys
import tempfile
from pathlib import Path

#: the exact toolchain the committed .wasm files were built with
ZIG_VERSION = "0.17.1"
CFLAGS = [
    "--target=wasm32-freestanding",
    "-nostdlib",
    "-Os",
    "-Wall",
    "-Werror",
    "-Wl,--no-entry",
    "-Wl,--strip-all",
    "-Wl,--export=__heap_base",
]


def modules_dir() -> Path:
    pkg = Path(__file__).resolve().parent
    for cand in (pkg.parent / "modules", pkg / "_course" / "modules"):
        if cand.is_dir():
            return cand
    raise FileNotFoundError("no modules/ folder next to the wasmlab package")


def _compile_c(src: Path, out: Path, include: Path) -> None:
    cmd = [sys.executable, "-m", "ziglang", "cc", *CFLAGS, f"-I{include}", "-o", str(out), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=src.parent, timeout=300)
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        first = next((m for m in msg if "error" in m), msg[0] if msg else "compiler failed")
        raise RuntimeError(f"{src.name}: {first}")


def _compile_wat(src: Path, out: Path) -> None:
    import wasmtime

    try:
        out.write_bytes(wasmtime.wat2wasm(src.read_text()))
    except Exception as e:  # wasmtime raises its own error types
        raise RuntimeError(f"{src.name}: {str(e).splitlines()[0]}") from None


def targets(root: Path) -> list[tuple[Path, str]]:
    """(source, output file name) for every module source."""
    out = [(p, p.with_suffix(".wasm").name) for p in sorted(root.glob("*.c"))]
    out += [(p, f"{p.stem}_wat.wasm") for p in sorted(root.glob("*.wat"))]
    return out


def fetch_ziglang() -> str:
    """ziglang is the ``build`` extra, not part of the course set-up (101 MB, only this command uses
    it): on first use, install the pinned version into this Python, saying so."""
    print(
        f"wasmlab: building C modules needs ziglang=={ZIG_VERSION} (about 100 MB, only for build-modules); "
        f"installing it now: {sys.executable} -m pip install ziglang=={ZIG_VERSION}",
        file=sys.stderr,
        flush=True,
    )
    rc = subprocess.call([sys.executable, "-m", "pip", "install", "-q", f"ziglang=={ZIG_VERSION}"])
    if rc != 0:
        raise RuntimeError(f"could not install ziglang; fix: pip install 'wasmlab[build]' (ziglang=={ZIG_VERSION})")
    return ZIG_VERSION


def build_modules(check: bool = False, verbose: bool = True, root: Path | None = None) -> int:
    root = root or modules_dir()
    have = None
    try:
        have = md.version("ziglang")
    except md.PackageNotFoundError:
        pass
    srcs = targets(root)
    if any(s.suffix == ".c" for s, _ in srcs):
        if have is None:
            have = fetch_ziglang()
        if have != ZIG_VERSION:
            raise RuntimeError(
                f"ziglang {have} is installed but the modules are pinned to {ZIG_VERSION} "
                f"(byte-for-byte builds); fix: pip install 'ziglang=={ZIG_VERSION}'"
            )
    differ = []
    with tempfile.TemporaryDirectory() as tmp:
        for src, name in srcs:
            out = Path(tmp) / name
            if src.suffix == ".c":
                _compile_c(src, out, root / "include")
            else:
                _compile_wat(src, out)
            committed = root / name
            data = out.read_bytes()
            same = committed.is_file() and committed.read_bytes() == data
            if check:
                if not same:
                    differ.append(name)
                if verbose:
                    print(f"{'same   ' if same else 'DIFFERS'} {name} ({len(data)} bytes) from {src.name}")
            else:
                if not same:
                    committed.write_bytes(data)
                if verbose:
                    print(f"{'built  ' if not same else 'up to date'} {name} ({len(data)} bytes) from {src.name}")
    if differ:
        print(
            f"wasmlab: error: {', '.join(differ)} differ from a fresh build; run wasmlab build-modules", file=sys.stderr
        )
        return 1
    return 0
