"""One wasmtime Engine per process, each distinct code compiled once (and cached on disk).

Envoy compiles a module once and clones VMs from it; wasmtime's ``Module`` is the compiled code and
is safe to share between threads, so each distinct ``.wasm`` is compiled once per process and
every VM (base, canary, per-worker replicas) is an ``Instance`` of it in its own ``Store``.
Compiled code is also kept on disk (``$WASMLAB_CACHE_DIR`` or ``~/.cache/wasmlab``), keyed by the
code's SHA-256, the wasmtime version and the engine settings, so a second start skips Cranelift.

The engine has epoch interruption on: a ticker advances the epoch every 10 ms and every guest
call gets a deadline (default 1 s), so an infinite loop in a callback becomes a trap. The ticker
is a kernel timer calling wasmtime directly (:mod:`.epoch_timer`), so it needs no GIL and the
deadline holds while Python threads are busy; a Python thread is the fallback.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from .callseam import wasmtime_version
from .epoch_timer import start_native_ticker

EPOCH_TICK_S = 0.01
ENGINE_SETTINGS = "epoch_interruption=1"

_engine: wasmtime.Engine | None = None
_engine_lock = threading.Lock()
_modules: dict[str, wasmtime.Module] = {}
_modules_lock = threading.Lock()
_ticker_started = False


def engine() -> wasmtime.Engine:
    global _engine
    with _engine_lock:
        if _engine is None:
            cfg = wasmtime.Config()
            cfg.epoch_interruption = True
            _engine = wasmtime.Engine(cfg)
        return _engine


def ensure_epoch_ticker() -> None:
    """Start the process-wide epoch ticker (a daemon thread) once."""
    global _ticker_started
    with _engine_lock:
        if _ticker_started:
            return
        _ticker_started = True
    eng = engine()
    if start_native_ticker(eng, EPOCH_TICK_S):  # no GIL per tick: the deadline holds under load
        return

    def tick() -> None:
        while True:
            time.sleep(EPOCH_TICK_S)
            eng.increment_epoch()

    threading.Thread(target=tick, name="wasm-epoch", daemon=True).start()


def deadline_ticks(seconds: float) -> int:
    return max(1, int(seconds / EPOCH_TICK_S))


def cache_dir() -> Path:
    base = os.environ.get("WASMLAB_CACHE_DIR")
    return Path(base) if base else Path.home() / ".cache" / "wasmlab" / "modules"


@dataclass
class CompiledCode:
    module: wasmtime.Module
    sha256: str
    size: int
    #: "memory", "disk" or "compiled": where this process got the compiled code from
    source: str
    seconds: float


def compile_code(code: bytes) -> CompiledCode:
    """The compiled Module for ``code`` (validates it; raises wasmtime errors on bad bytes)."""
    t0 = time.perf_counter()
    digest = hashlib.sha256(code).hexdigest()
    with _modules_lock:
        mod = _modules.get(digest)
    if mod is not None:
        return CompiledCode(mod, digest, len(code), "memory", time.perf_counter() - t0)
    eng = engine()
    key = hashlib.sha256(f"{digest}|{wasmtime_version()}|{ENGINE_SETTINGS}".encode()).hexdigest()
    path = cache_dir() / f"{key}.cwasm"
    source = "compiled"
    mod = None
    if path.is_file():
        try:
            mod = wasmtime.Module.deserialize(eng, path.read_bytes())
            source = "disk"
        except Exception:
            mod = None
    if mod is None:
        mod = wasmtime.Module(eng, code)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(mod.serialize())
            tmp.replace(path)
        except OSError:
            pass  # a read-only home is fine: we just compile again next time
    with _modules_lock:
        _modules.setdefault(digest, mod)
        mod = _modules[digest]
    return CompiledCode(mod, digest, len(code), source, time.perf_counter() - t0)


def clear_memory_cache() -> None:
    """Forget compiled modules held in memory (benchmarks measure cold starts with it)."""
    with _modules_lock:
        _modules.clear()
