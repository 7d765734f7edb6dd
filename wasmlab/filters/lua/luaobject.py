"""The base of every object a Lua script gets from Envoy: exported methods, death, argument checks.

Envoy (``filters/common/lua/lua.h``) derives each scriptable C++ class from ``BaseLuaObject<T>``:
its ``exportedFunctions()`` table *is* the Lua API of that object, every method first checks
that the object is still alive (``object used outside of proper scope``), and every object also
has the six ``log*`` methods. We keep that shape: a Python class per wrapper, methods marked with
:func:`export`, and a generated thunk per method that checks death, converts errors and records
the call in the trace. The Lua side (``prelude.lua``) gives each class a userdata metatable whose
methods call these thunks.

A thunk returns a status first (0 done, 1 error at the script's line, 2 the script must wait,
3 done with no value, 4 error without a position) — see ``prelude.lua``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import lupa.luajit21 as lupa

if TYPE_CHECKING:
    from .handle_driver import HandleDriver

DEAD = b"object used outside of proper scope"
#: live objects by number: what Lua's userdata stand for (see ``BaseLuaObject.register``)
OBJECTS: dict[int, BaseLuaObject] = {}
#: handles whose hook runs before the host made them (tracing off: most hooks never call into
#: the host, so they never need one): number -> ``(make, *args)``, and ``make(number, *args)``
#: makes the handle when a call needs it (``materialize``), which then takes the entry's place;
#: the entry goes when the run ends
UNBORN: dict[int, Any] = {}
_ids = itertools.count(1)
#: namespace of the wrappers shared by Envoy's Lua filters (``filters/common/lua``)
COMMON_LUA = ("Envoy", "Extensions", "Filters", "Common", "Lua")
#: a method's return value meaning "the script must wait" (the handle set its state)
YIELD = object()
#: a method's return value meaning "no value at all" (Envoy's ``return 0``): ``select('#', ...)``
#: is 0 and ``tostring(x:get("missing"))`` fails, as in Envoy
NOTHING = object()


class LuaApiError(Exception):
    """An error raised at the script's line (Envoy: ``luaL_error``), e.g. ``header map can no
    longer be modified``."""


class LuaRawError(LuaApiError):
    """An error LuaJIT itself raises without a position (``invalid key to 'next'``)."""


class LuaArgError(LuaApiError):
    """LuaJIT's argument error (``luaL_argerror``). ``slot`` counts the Lua stack from ``self`` = 1;
    the Lua side names the function from the call site and, for a ``:`` call, does not count
    ``self`` — exactly as LuaJIT words it (``bad argument #1 to 'add' (string expected, got nil)``)."""

    def __init__(self, slot: int, detail: str) -> None:
        super().__init__(f"bad argument (slot {slot}): {detail}")
        self.slot = slot
        self.detail = detail


def export(
    name: str, nret: int | str = 1, fast: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a method as part of the object's Lua API under ``name``; ``nret`` is how many values it
    returns to Lua (0, 1, 2, or ``"iter"`` for an iterator function).

    ``fast(thunk)``, for the hottest methods, makes the thunk Lua calls instead of the generic
    one: it answers the common case itself in one step (a live object, plain arguments, tracing
    off) and hands every other call to ``thunk``, so the outcome is always the generic one's."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__lua__ = (name, nret)  # type: ignore[attr-defined]
        fn.__lua_fast__ = fast  # type: ignore[attr-defined]
        return fn

    return deco


# ---- Lua value helpers -------------------------------------------------------------------------
def lua_type(v: Any) -> str:
    """The Lua type name of a value lupa handed to Python."""
    return _LUA_TYPES.get(v.__class__) or lupa.lua_type(v) or "userdata"


#: the Python classes lupa turns Lua's plain values into
_LUA_TYPES = {type(None): "nil", bool: "boolean", int: "number", float: "number", bytes: "string"}


def number_to_string(n: float) -> bytes:
    """Lua's number-to-string coercion (``%.14g``): 10 -> ``10``, 0.1 -> ``0.1``."""
    if isinstance(n, float):
        if math.isnan(n):
            return b"nan" if math.copysign(1, n) > 0 else b"-nan"
        if math.isinf(n):
            return b"inf" if n > 0 else b"-inf"
    return b"%.14g" % n


_NUM = re.compile(rb"^\s*[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def string_to_number(s: bytes) -> float | None:
    """Lua's string-to-number coercion (``lua_isnumber`` on a string), or None."""
    if not _NUM.match(s):
        return None
    t = s.strip()
    neg = t.startswith(b"-")
    body = t.lstrip(b"+-")
    if body[:2].lower() == b"0x":
        v = float(int(body, 16))
        return -v if neg else v
    return float(t)


def bad_argument(index: int, function: str, expected: str, args: tuple[Any, ...]) -> LuaArgError:
    """LuaJIT's argument error for argument ``index`` (1 = the first after ``self``)."""
    got = "no value" if index > len(args) else lua_type(args[index - 1])
    return LuaArgError(index + 1, f"{expected} expected, got {got}")


def check_string(args: tuple[Any, ...], index: int, function: str) -> bytes:
    """``luaL_checkstring``: a string, or a number coerced to one."""
    if index <= len(args):
        v = args[index - 1]
        if isinstance(v, bytes):
            return v
        if isinstance(v, int | float) and not isinstance(v, bool):
            return number_to_string(v)
    raise bad_argument(index, function, "string", args)


def c_string(b: bytes) -> bytes:
    """A Lua string as C++ reads it through ``const char*`` (``luaL_checkstring``): up to the
    first NUL byte. Envoy 1.40 reads header names and values given to ``add``/``replace``/
    ``remove``, ``respond``/``httpCall`` header tables, the cluster name and dynamic metadata
    strings this way; ``get``, bodies and ``base64Escape`` keep every byte."""
    i = b.find(b"\0")
    return b if i < 0 else b[:i]


def opt_string(args: tuple[Any, ...], index: int, function: str) -> bytes | None:
    if index > len(args) or args[index - 1] is None:
        return None
    return check_string(args, index, function)


def check_number(args: tuple[Any, ...], index: int, function: str) -> float:
    """``luaL_checknumber``: a number, or a string that reads as one."""
    if index <= len(args):
        v = args[index - 1]
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
        if isinstance(v, bytes):
            n = string_to_number(v)
            if n is not None:
                return n
    raise bad_argument(index, function, "number", args)


def check_integer(args: tuple[Any, ...], index: int, function: str) -> int:
    """``luaL_checkinteger``: the number truncated towards zero."""
    n = check_number(args, index, function)
    if math.isnan(n) or math.isinf(n):
        return 0
    return int(n)


def check_int32(args: tuple[Any, ...], index: int, function: str) -> int:
    """``luaL_checkint`` in Envoy's LuaJIT (x64): the number truncated to an int64 (NaN, the
    infinities and numbers past 2^63 give INT64_MIN), then cast to a C ``int``: its low 32 bits
    (``2^32 + 1`` is 1, NaN is 0)."""
    n = check_number(args, index, function)
    i = int(n) if -(2.0**63) < n < 2.0**63 else -(2**63)
    return (i + 2**31) % 2**32 - 2**31


def check_type(args: tuple[Any, ...], index: int, function: str, expected: str) -> Any:
    if index <= len(args) and lua_type(args[index - 1]) == expected:
        return args[index - 1]
    raise bad_argument(index, function, expected, args)


def text(b: bytes) -> str:
    """Header names/values and other wire text: bytes <-> str one-to-one (latin-1)."""
    return b.decode("latin-1")


def wire(s: str) -> bytes:
    return s.encode("latin-1", "replace")


def utf8_text(b: bytes) -> str:
    """A script's string compared with configuration text (a metadata key, a cluster or stat
    name): the YAML is UTF-8 and Envoy compares the bytes, so the string is read as UTF-8 (bytes
    that are not UTF-8 kept as surrogates, so they match nothing and round-trip)."""
    return b.decode("utf-8", "surrogateescape")


def utf8_bytes(s: str) -> bytes:
    """Configuration text (metadata, a route name) as Envoy hands it to Lua: its UTF-8 bytes."""
    return s.encode("utf-8", "surrogateescape")


def short(v: Any, limit: int = 200) -> Any:
    """A trace-friendly copy of a Lua value."""
    if isinstance(v, bytes):
        s = v.decode("latin-1")
        return s if len(s) <= limit else s[:limit] + "…"
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if v is NOTHING:
        return None
    if isinstance(v, BaseLuaObject):
        return f"<{v.lua_class}>"
    if isinstance(v, tuple):
        return [short(x, limit) for x in v]
    t = lupa.lua_type(v)
    return f"<{t}>" if t else f"<{type(v).__name__}>"


# ---- exported methods made from a table ----------------------------------------------------------
def _log_method(lua_name: str, level: str) -> Callable[..., None]:
    """One of the six ``log*`` methods every object has. @param 1 (string): the message."""

    @export(lua_name, 0)
    def log(self: BaseLuaObject, *args: Any) -> None:
        msg = check_string(args, 1, lua_name)
        self.h.script_log(level, msg.decode("utf-8", "replace"))

    log.__name__ = f"log_{level}"
    return log


def getter(lua_name: str, read: Callable[[Any], Any], doc: str | None = None) -> Callable[..., Any]:
    """A Lua method that takes no arguments and answers ``read(self)`` (a row of Envoy's
    ``exportedFunctions()`` table whose C++ body is one ``return``)."""

    @export(lua_name)
    def get(self: BaseLuaObject, *args: Any) -> Any:
        return read(self)

    get.__doc__ = doc
    get.__name__ = lua_name
    return get


def child_getter(lua_name: str, slot: str, make: Callable[[Any], BaseLuaObject]) -> Callable[..., Any]:
    """A Lua method that answers the object in ``slot``, made by ``make(self)`` on first use; the
    slot is one of the class's ``dies_with``, so the child dies with its parent."""

    @export(lua_name)
    def get(self: BaseLuaObject, *args: Any) -> BaseLuaObject:
        obj = getattr(self, slot)
        if obj is None:
            obj = make(self)
            setattr(self, slot, obj)
        return obj

    get.__name__ = lua_name
    return get


# ---- the base class ------------------------------------------------------------------------------
class BaseLuaObject:
    """An object handed to Lua: a userdata whose methods are this class's exports."""

    lua_class: ClassVar[str] = "BaseLuaObject"
    #: the C++ namespace of Envoy's class: its mangled name appears in "bad self" errors
    cpp_namespace: ClassVar[tuple[str, ...]] = ("Envoy", "Extensions", "HttpFilters", "Lua")
    #: name used in trace events ("headers:add")
    trace_name: ClassVar[str] = "object"
    _exports: ClassVar[dict[str, tuple[Callable[..., Any], int | str]] | None] = None
    #: this class's number in every Lua state (its place in ``wrappers.all_classes()``, from 1)
    lua_number: ClassVar[int] = 0

    __slots__ = ("dead", "_ud", "lua_id", "h")

    #: the values an object is made from, after its handle: ``Wrapper(h, *values)`` sets these
    #: slots in order and the ``dies_with`` slots start empty. By default the slots a class adds
    #: that are not ``dies_with`` (each class annotates their types).
    init_fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        slots = cls.__dict__.get("__slots__")
        if slots:
            cls.init_fields = tuple(name for name in slots if name not in cls.dies_with)

    def __init__(self, h: HandleDriver, *values: Any) -> None:
        self.dead = False
        self._ud: Any = None
        #: this object's number in ``OBJECTS`` (0: never handed to Lua)
        self.lua_id = 0
        #: the stream handle this object came from (for the VM, logging and the trace)
        self.h = h
        for name, value in zip(self.init_fields, values, strict=True):
            setattr(self, name, value)
        for name in self.dies_with:
            setattr(self, name, None)

    @classmethod
    def cpp_name(cls) -> str:
        """``typeid(T).name()`` of Envoy's class, e.g. ``N5Envoy10Extensions11HttpFilters3Lua16HeaderMapWrapperE``."""
        return "N" + "".join(f"{len(p)}{p}" for p in (*cls.cpp_namespace, cls.lua_class)) + "E"

    # ---- identity in Lua ----------------------------------------------------------------------
    def register(self) -> int:
        """This object's number for Lua. Lua never holds the Python object itself, only this
        number (``OBJECTS`` maps it back): lupa's wrappers for Python objects are keyed by
        ``id()``, which a busy host reuses while Lua still finalizes old wrappers."""
        if not self.lua_id:
            self.lua_id = next(_ids)
            self.h.owned.append(self)
        if not self.dead:
            OBJECTS[self.lua_id] = self
        return self.lua_id

    def ud(self) -> Any:
        """This object's userdata (created once: asking twice gives the same Lua value).

        The reference is dropped when the object dies and, for every object the stream handed
        out, when the stream ends (``release``), so Lua can collect the userdata."""
        if self._ud is None:
            self._ud = self.h.vm.new(self.lua_number, self.register())
        return self._ud

    # ---- death (Envoy markDead/markLive) ------------------------------------------------------
    def mark_dead(self) -> None:
        """Dead: Lua still has the userdata, but its number no longer leads here, so every call
        answers ``object used outside of proper scope``."""
        self.dead = True
        self._ud = None
        if self.lua_id:
            OBJECTS.pop(self.lua_id, None)
        self.on_mark_dead()

    def mark_live(self) -> None:
        self.dead = False
        if self.lua_id:
            OBJECTS[self.lua_id] = self

    #: slots holding child objects that die with this one (Envoy ``onMarkDead``)
    dies_with: ClassVar[tuple[str, ...]] = ()

    def on_mark_dead(self) -> None:
        """Drop child objects: they do not survive yields (Envoy ``onMarkDead``)."""
        for name in self.dies_with:
            child = getattr(self, name)
            if child is not None:
                child.mark_dead()
                setattr(self, name, None)

    def release(self) -> None:
        """The stream is over: forget the userdata and the number."""
        self._ud = None
        if self.lua_id:
            OBJECTS.pop(self.lua_id, None)

    # ---- logging, on every object (Envoy BaseLuaObject) ---------------------------------------

    log_trace = _log_method("logTrace", "trace")
    log_debug = _log_method("logDebug", "debug")
    log_info = _log_method("logInfo", "info")
    log_warn = _log_method("logWarn", "warning")
    log_err = _log_method("logErr", "error")
    log_critical = _log_method("logCritical", "critical")

    # ---- the exported-method table ------------------------------------------------------------
    @classmethod
    def lua_exports(cls) -> dict[str, tuple[Callable[..., Any], int | str]]:
        """``{lua name: (thunk, nret)}`` — the object's Lua API (Envoy ``exportedFunctions()``)."""
        if cls.__dict__.get("_exports") is None:
            out: dict[str, tuple[Callable[..., Any], int | str]] = {}
            for attr_name in dir(cls):
                attr: Any = getattr(cls, attr_name, None)
                spec = getattr(attr, "__lua__", None)
                if spec is not None:
                    name, nret = spec
                    thunk = _thunk(cls, name, attr, nret)
                    fast = getattr(attr, "__lua_fast__", None)
                    out[name] = (thunk if fast is None else fast(thunk), nret)
            cls._exports = out
        return cls._exports  # type: ignore[return-value]


class PairsIterator(BaseLuaObject):
    """A pairs() iterator over a snapshot; it ends its parent's iteration when done (Envoy: one
    iterator class per map; here one for every map but the headers)."""

    lua_class = "Iterator"
    trace_name = "iterator"
    __slots__ = ("parent", "items")

    parent: Any
    items: Iterator[tuple[Any, Any]]

    @classmethod
    def start(cls, parent: Any, items: Any) -> Any:
        """``__pairs`` on ``parent``: a new iterator, unless one is still running (Envoy allows one
        at a time per map)."""
        if parent.iterator is not None:
            raise LuaApiError("cannot create a second iterator before completing the first")
        parent.iterator = iterator = cls(parent.h, parent, items)
        return iterator

    def lua_next(self) -> tuple[Any, ...]:
        if self.dead:
            return 1, b"object used outside of proper scope"
        try:
            k, v = next(self.items)
        except StopIteration:
            self.parent.iterator = None
            return (3,)
        except LuaApiError as e:
            return 1, str(e).encode()
        return 0, k, v


_PLAIN = frozenset({bytes, int, float, bool, type(None)})


def materialize(obj_id: int) -> BaseLuaObject | None:
    """The object numbered ``obj_id`` that Lua made before the host did, made now: a handle
    whose hook started without one (``UNBORN``), or a handle's own header map (number
    ``-handle``), handed out by ``handle:headers()`` in Lua (prelude.lua, ``own_headers``) while
    the handle's first run lasts. None for any other missing number."""
    if obj_id >= 0:
        unborn = UNBORN.get(obj_id)
        if unborn.__class__ is not tuple:
            return None  # no such hook, or its handle was made and has died since
        handle: BaseLuaObject = unborn[0](obj_id, *unborn[1:])
        UNBORN[obj_id] = handle
        return handle
    h = OBJECTS.get(-obj_id) or materialize(-obj_id)
    if h is not None and not h.dead and getattr(h, "own_headers_id", 0) == obj_id:
        return h.own_headers()  # type: ignore[attr-defined]
    return None


def _thunk(cls: type[BaseLuaObject], name: str, fn: Callable[..., Any], nret: int | str) -> Callable[..., Any]:
    """The Python half of a Lua method (the Lua half is ``thunk`` in prelude.lua).

    The common case (a live object, no error, tracing off) takes the fewest steps: a status as a
    bare int when there is no value, an object as ``(6, class number, object number)`` that Lua
    turns into the userdata itself; everything else goes through ``_answer``."""
    trace = f"{cls.trace_name}:{name}"
    objects = OBJECTS
    plain = _PLAIN
    answer = _answer(trace, nret)
    failed = _failed(trace, name)
    no_value = nret == 0
    one_value = nret == 1

    def thunk(obj_id: int, *args: Any) -> Any:
        obj = objects.get(obj_id)
        if obj is None:
            obj = materialize(obj_id)
            if obj is None:
                return 1, DEAD
        if obj.dead:
            return 1, DEAD
        try:
            result = fn(obj, *args)
        except Exception as e:
            return failed(obj, args, e)
        if obj.h.rec.enabled:
            return answer(obj, args, result)
        if one_value:
            if result.__class__ in plain:
                return 0, result
            if isinstance(result, BaseLuaObject):
                return 6, result.lua_number, result.register()
        elif no_value and result is None:
            return 0
        return answer(obj, args, result)

    thunk.__name__ = f"lua_{cls.trace_name}_{name}"
    return thunk


def _answer(trace: str, nret: int | str) -> Callable[[BaseLuaObject, tuple[Any, ...], Any], Any]:
    """What a method's thunk answers when tracing is on or the result is not a plain value: the
    call is recorded, then the status (2 wait, 3 no value, 0 done) with the values Lua gets."""

    def answer(obj: BaseLuaObject, args: tuple[Any, ...], result: Any) -> Any:
        h = obj.h
        if result is YIELD:
            h.trace_call(trace, args, "<yield>", None)
            return 2
        if result is NOTHING:
            h.trace_call(trace, args, None, None)
            return 3
        h.trace_call(trace, args, result, None)
        if nret == 0:
            return 0
        if nret == 2:
            return (0, *result)
        if isinstance(result, BaseLuaObject):
            if nret == "iter":
                return 0, result.register()
            return 6, result.lua_number, result.register()
        return 0, result

    return answer


def _failed(trace: str, name: str) -> Callable[[BaseLuaObject, tuple[Any, ...], Exception], tuple[Any, ...]]:
    """What a method's thunk answers when the method raised: the Lua error it stands for (5 an
    argument error, 4 an error without a position, 1 an error at the script's line)."""

    def failed(obj: BaseLuaObject, args: tuple[Any, ...], e: Exception) -> tuple[Any, ...]:
        h = obj.h
        if isinstance(e, LuaArgError):
            h.trace_call(trace, args, None, f"bad argument #{e.slot - 1} to '{name}' ({e.detail})")
            return 5, e.slot, e.detail.encode()
        if isinstance(e, LuaRawError):
            h.trace_call(trace, args, None, str(e))
            return 4, str(e).encode()
        if isinstance(e, LuaApiError):
            h.trace_call(trace, args, None, str(e))
            return 1, str(e).encode()
        # a wasmlab bug: fail the script, never the worker
        msg = f"wasmlab internal error in {trace}: {type(e).__name__}: {e}"
        h.internal_error(msg, e)
        return 1, msg.encode()

    return failed
