"""Lua states: one ``lupa.luajit21`` runtime per script per thread, as Envoy's ``ThreadLocalState``.

Envoy gives every worker its own ``lua_State`` for each script (``luaL_newstate`` +
``luaL_openlibs``, then the whole chunk runs), plus one more on the main thread at config load
that only validates the script. :class:`LuaVM` is one such state. Creating one:

1. a LuaJIT 2.1 runtime (lupa) with Lua strings kept as bytes (bodies are binary);
2. ``prelude.lua``: the Lua 5.2 compatibility set Envoy's LuaJIT build has, the userdata class
   per wrapper (``HeaderMapWrapper``, ``BufferWrapper``, ...), the coroutine driver and the
   classroom guards; then ``sandbox.lua``: what keeps the guards from being switched off, and
   the classroom sandbox (option ``lua_sandbox``);
3. the script, loaded with Lua's own ``loadstring(code)`` so the chunk is named after its code and
   messages carry Envoy's prefixes: ``[string "..."]:3:`` for code starting with a newline,
   ``[string "function envoy_on_request(handle)..."]:3:`` for code starting on line 1;
4. ``EnvoyTimestampResolution`` installed and the two hooks looked up once
   (``envoy_on_request``, ``envoy_on_response``), as Envoy keeps registry refs to them.

A state belongs to the thread that created it: only that thread calls into it (lupa releases
the GIL while Lua runs, so a busy state never stops other workers).
"""

from __future__ import annotations

import os
import stat
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lupa.luajit21 as lupa

if TYPE_CHECKING:
    from .config import LuaScript

#: LuaJIT's default ``package.path``/``package.cpath``; ``./`` is replaced by the YAML file's folder
DEFAULT_PACKAGE_PATH = (
    "./?.lua;/usr/local/share/luajit-2.1/?.lua;/usr/local/share/lua/5.1/?.lua;/usr/local/share/lua/5.1/?/init.lua"
)
DEFAULT_PACKAGE_CPATH = "./?.so;/usr/local/lib/lua/5.1/?.so;/usr/local/lib/lua/5.1/loadall.so"


@dataclass(frozen=True)
class Guards:
    """Classroom guards (a wasmlab addition; Envoy has none): see the package docstring.

    ``instruction_limit``: Lua VM instructions per run of Lua code (one hook start or one
    resume), 0 = unlimited; ``memory_limit_mb``: memory per Lua state, 0 = unlimited;
    ``hook_every``: instructions between two checks; ``time_limit_s``: wall-clock seconds per
    run, checked by the instruction guard's hook (so only while that guard is on), 0 = unlimited:
    the instruction budget alone misses instructions that are slow (``s = s .. "x"`` copies the
    whole string each time).
    """

    instruction_limit: int = 100_000_000
    memory_limit_mb: int = 64
    hook_every: int = 10_000
    #: the classroom sandbox (``sandbox.lua``); ``False`` is what Envoy allows
    sandbox: bool = True
    time_limit_s: float = 10.0

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Guards:
        # the values were checked with the proxy's other options (host/options.py), so a bad one
        # is refused even in a config without a Lua filter
        def get(name: str, default: int) -> int:
            return int(options.get(name, default))

        sandbox = bool(options.get("lua_sandbox", True))
        return cls(
            get("lua_instruction_limit", cls.instruction_limit),
            get("lua_memory_limit_mb", cls.memory_limit_mb),
            max(100, get("lua_hook_every", cls.hook_every)),
            sandbox,
            float(options.get("lua_time_limit_s", cls.time_limit_s)),
        )

    @property
    def hard_memory_bytes(self) -> int:
        """lupa's allocator cap: above the soft cap the hook enforces, so the host itself always
        has room to report the error (an allocation failure outside Lua's protection would abort
        the whole process)."""
        if not self.memory_limit_mb:
            return 0
        return (self.memory_limit_mb + max(16, self.memory_limit_mb // 4)) * 1024 * 1024

    def instruction_message(self) -> str:
        return f"instruction limit exceeded (wasmlab classroom guard: {self.instruction_limit} per run)"

    def time_message(self) -> str:
        return f"time limit exceeded (wasmlab classroom guard: {self.time_limit_s:g} s per run)"

    def memory_message(self) -> str:
        return f"memory limit exceeded (wasmlab classroom guard: {self.memory_limit_mb} MB per Lua state)"


@lru_cache(maxsize=1)
def prelude_source() -> bytes:
    return (Path(__file__).with_name("prelude.lua")).read_bytes()


@lru_cache(maxsize=1)
def sandbox_source() -> bytes:
    return (Path(__file__).with_name("sandbox.lua")).read_bytes()


#: ``LuaVM.run`` operations and answers (``driver.runner`` in prelude.lua)
RUN_RESUME, RUN_REQUEST, RUN_RESPONSE, RUN_FORGET = 0, 1, 2, 3
#: start a hook with tracing off: ``handle:headers()`` is answered in Lua during the first run
RUN_REQUEST_UNTRACED, RUN_RESPONSE_UNTRACED = 4, 5
FINISHED, YIELDED, FAILED = 0, 1, 2


class ScriptLoadError(Exception):
    """The script failed to compile or its top-level code failed (Envoy: ``script load error``)."""


def _host_print(text: bytes) -> None:
    try:
        sys.stdout.write(text.decode("utf-8", "replace") + "\n")
        sys.stdout.flush()
    except Exception:  # never raise into Lua
        pass


def _may_block(path: bytes) -> bool:
    """Whether reading ``path`` could block the worker: a FIFO, a device or a socket (a missing
    file is io.open's own error; a regular file or a folder never blocks)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode)


def _iter_next(it_id: int) -> tuple[Any, ...]:
    from .luaobject import OBJECTS

    it = OBJECTS.get(it_id)
    if it is None:
        return 1, b"object used outside of proper scope"
    try:
        return it.lua_next()  # type: ignore[attr-defined]
    except Exception as e:  # never raise into Lua
        return 1, f"wasmlab internal error in pairs(): {type(e).__name__}: {e}".encode()


def _new_runtime(guards: Guards) -> Any:
    kw: dict[str, Any] = {
        "encoding": None,
        "unpack_returned_tuples": True,
        "register_eval": False,
        "register_builtins": False,
    }
    if guards.hard_memory_bytes:
        kw["max_memory"] = guards.hard_memory_bytes
    return lupa.LuaRuntime(**kw)


def _search_path(base_dir: Path, prefix: str, default: str) -> bytes:
    """``package_paths`` patterns first (Envoy prepends them), then LuaJIT's defaults."""
    base = str(base_dir).rstrip("/") + "/"
    path = default.replace("./", base)
    return (f"{prefix};{path}" if prefix else path).encode()


def new_state(guards: Guards, package_path: bytes, package_cpath: bytes) -> tuple[Any, Any]:
    """A LuaJIT runtime with ``prelude.lua`` run in it: ``(runtime, driver)``, no script yet."""
    from .wrappers import all_classes

    rt = _new_runtime(guards)
    classes = all_classes()
    host = rt.table_from(
        {
            b"print": _host_print,
            b"may_block": _may_block,
            b"iter_next": _iter_next,
            b"package_path": package_path,
            b"package_cpath": package_cpath,
            b"instruction_limit": guards.instruction_limit,
            b"memory_limit_mb": guards.memory_limit_mb,
            b"hook_every": guards.hook_every,
            b"instruction_message": guards.instruction_message().encode(),
            b"memory_message": guards.memory_message().encode(),
            b"time_limit_s": guards.time_limit_s,
            b"time_message": guards.time_message().encode(),
            b"monotonic": time.monotonic,
            b"cpp_names": rt.table_from({c.lua_class.encode(): c.cpp_name().encode() for c in classes}),
            b"headers_class": next(c.lua_number for c in classes if c.lua_class == "HeaderMapWrapper"),
            b"sandbox": guards.sandbox,
        }
    )
    driver = rt.execute(prelude_source(), host)
    rt.execute(sandbox_source(), host)
    return rt, driver


class LuaVM:
    """One Lua state for one script (Envoy: the ``lua_State`` of one ``ThreadLocalState`` slot)."""

    def __init__(self, script: LuaScript, guards: Guards, thread: str) -> None:
        from .wrappers import all_classes

        self.script = script
        self.guards = guards
        self.thread = thread
        base = script.base_dir
        rt, self.driver = new_state(
            guards,
            _search_path(base, script.package_path_prefix(), DEFAULT_PACKAGE_PATH),
            _search_path(base, script.package_cpath_prefix(), DEFAULT_PACKAGE_CPATH),
        )
        self.runtime = rt
        for number, cls in enumerate(all_classes(), 1):
            spec = {name.encode(): rt.table_from([fn, nret]) for name, (fn, nret) in cls.lua_exports().items()}
            self.driver.define(cls.lua_class.encode(), number, rt.table_from(spec))
        # lupa cannot look up table fields while a Lua coroutine calls into Python (it returns
        # stack garbage), so every driver function is fetched here, once; calls are fine.
        d = self.driver
        self._new = d.new
        self._closure = d.closure
        self.after_error = d.after_error
        self._header_pairs = d.header_pairs
        self._option_pairs = d.option_pairs
        self._table_from_pairs = d.table_from_pairs
        self._memory_kb = d.memory_kb
        self._runner_fn = d.runner
        self._runner: Any = None  # for runs started from the host
        self._busy = False  # a run is in progress: a nested one takes a spare runner
        self._spare: list[Any] = []
        err = self.driver.load(script.code)
        if err is not None:
            raise ScriptLoadError(_text(err))
        g = rt.globals()
        g.EnvoyTimestampResolution = rt.table_from({b"MILLISECOND": 0, b"MICROSECOND": 1})
        # the hooks, looked up once (Envoy keeps registry refs); the runner starts them
        get = self.driver[b"global"]
        self.on_request = get(b"envoy_on_request")
        self.on_response = get(b"envoy_on_response")
        d.set_hooks(self.on_request, self.on_response)
        self._runner = self._new_runner()

    def _new_runner(self) -> Any:
        runner = self._runner_fn.coroutine(RUN_FORGET, 0)
        runner.send(None)  # runs to its first yield
        return runner

    def run(self, op: int, handle_id: int, *args: Any) -> Any:
        """One step of a hook coroutine (``prelude.lua``, ``driver.runner``): ``op`` is
        :data:`RUN_REQUEST`/:data:`RUN_RESPONSE` (start that hook with the handle numbered
        ``handle_id``), :data:`RUN_RESUME` (resume it with ``args``) or :data:`RUN_FORGET`.
        Answers :data:`FINISHED`, :data:`YIELDED`, :data:`FAILED` or ``(FAILED, message)``.

        A hook may run while another is running (a local reply sent from the request hook runs
        the response hook): a nested run takes a runner of its own."""
        if self._busy:
            return self._run_nested((op, handle_id, *args))
        runner = self._runner
        if runner is None:
            runner = self._runner = self._new_runner()
        self._busy = True
        try:
            # (concatenated: `(op, handle_id, *args)` would build a list on the way, once per run)
            return runner.send((op, handle_id) + args)  # noqa: RUF005
        except lupa.LuaError as e:
            self._runner = None  # a fresh one next time
            return self._runner_failed(e)
        finally:
            self._busy = False

    def _run_nested(self, step: tuple[Any, ...]) -> Any:
        spare = self._spare
        runner = spare.pop() if spare else self._new_runner()
        try:
            answer = runner.send(step)
        except lupa.LuaError as e:
            return self._runner_failed(e)
        spare.append(runner)
        return answer

    def _runner_failed(self, e: lupa.LuaError) -> Any:
        """The runner itself failed (out of memory between two hook steps)."""
        self.after_error()
        if isinstance(e, lupa.LuaMemoryError) and not str(e):
            return FAILED, b"not enough memory"
        return FAILED, str(e).encode("latin-1", "replace")

    # ---- objects ---------------------------------------------------------------------------------
    def new(self, number: int, obj_id: int) -> Any:
        """The userdata of class number ``number`` standing for the Python wrapper numbered
        ``obj_id`` (the same userdata while Lua holds it)."""
        return self._new(number, obj_id)

    def closure(self, fn: Any, arg: Any) -> Any:
        return self._closure(fn, arg)

    def table(self, value: Any) -> Any:
        """A Lua table (nested) from Python dicts/lists with bytes strings."""
        return self.runtime.table_from(value, recursive=True)

    def list_table(self, items: list[Any]) -> Any:
        """A Lua array of ``len(items)`` slots (``lua_createtable(n, 0)``, as Envoy builds a
        Struct list), filled where the item is not None: ``#`` counts the holes too, as in Envoy
        (a table lupa builds from a list with holes would not). Items are Lua values already."""
        new_array = self._new_array
        if new_array is None:
            new_array = self._new_array = self.runtime.eval('require("table.new")')
        t = new_array(len(items), 0)
        for i, v in enumerate(items, 1):
            if v is not None:
                t[i] = v
        return t

    _new_array: Any = None

    def table_from_pairs(self, flat: list[Any]) -> Any:
        return self._table_from_pairs(self.runtime.table_from(flat))

    def header_pairs(self, table: Any) -> tuple[list[tuple[str, str]], None] | tuple[None, tuple[str, str]]:
        """A Lua header table as (name, value) pairs in Lua's iteration order, or (None, (what
        went wrong, Lua type)) — see ``driver.header_pairs``."""
        r = self._header_pairs(table)
        if r[0] is None:
            return None, (_text(r[1]), _text(r[2]))
        values = _array(r[0], r[1])
        return [(_latin(values[i]), _latin(values[i + 1])) for i in range(0, len(values), 2)], None

    def option_pairs(self, table: Any) -> list[tuple[Any, Any]]:
        flat, n = self._option_pairs(table)
        values = _array(flat, n)
        return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]

    def memory_kb(self) -> float:
        return float(self._memory_kb())

    def close(self) -> None:
        """Drop the state (Envoy: ``lua_close`` when the thread-local slot goes)."""
        self.on_request = self.on_response = None
        self._runner = self._runner_fn = None
        self._spare = []
        self.driver = None
        self.runtime = None


def compile_check(code: bytes) -> str | None:
    """The syntax error of ``code`` (Envoy's message), or None. Runs nothing."""
    rt = lupa.LuaRuntime(encoding=None, register_eval=False, register_builtins=False)
    fn = rt.eval(b"function(code) local f, err = loadstring(code) if f then return nil end return err end")
    err = fn(code)
    return None if err is None else _text(err)


def _array(table: Any, n: int) -> list[Any]:
    """Items 1..n of a Lua sequence (via ``items()``: safe inside coroutine callbacks)."""
    items = dict(table.items())
    return [items.get(i) for i in range(1, n + 1)]


def _text(b: Any) -> str:
    if isinstance(b, bytes):
        return b.decode("utf-8", "replace")
    return str(b)


def _latin(b: Any) -> str:
    if isinstance(b, bytes):
        return b.decode("latin-1")
    return str(b)
