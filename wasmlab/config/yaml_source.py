"""Loading Envoy YAML with line numbers, and walking it with a YAML path for errors.

Envoy reports config errors in protobuf terms; a learner needs to know *where* in the file the
problem is. We load YAML with a loader that remembers the line of every mapping key and sequence
item, and walk the tree with :class:`Node`, which knows its YAML path
(``static_resources.listeners[0].filter_chains[0]...``) so every error names it.
"""

from __future__ import annotations

import builtins
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .struct_value import YamlFloat, YamlInt

#: the largest ``google.protobuf.Duration`` seconds Envoy's bootstrap validation accepts
MAX_DURATION_SECONDS = 9_223_372_035
#: ``google.protobuf.UInt32Value``'s bound (buffer limits, header size limits)
UINT32_MAX = 4_294_967_295


class _LineDict(dict):
    __slots__ = ("line", "key_lines", "key_texts")
    line: int
    key_lines: dict[Any, int]
    #: a key that is not a string (``1:``, ``yes:``), as written: Envoy keeps a Struct's keys so
    key_texts: dict[Any, str]


class _LineList(list):
    __slots__ = ("line", "item_lines")
    line: int
    item_lines: list[int]


#: nodes that YAML aliases may add to a document once expanded. Envoy expands aliases while
#: parsing; a few anchors reused across a config add hundreds, a "billion laughs" bomb (nine
#: aliases of nine aliases of ...) adds billions and froze the kernel for 40 s in several GB.
ALIAS_EXPANSION_BUDGET = 10_000


class AliasBudgetError(Exception):
    """The document's aliases expand past :data:`ALIAS_EXPANSION_BUDGET` (or refer to themselves)."""

    def __init__(self, message: str, path: str, line: int) -> None:
        super().__init__(message)
        self.message, self.path, self.line = message, path, line


def _expanded_size(node: yaml.Node, memo: dict[int, int], active: set[int], path: str) -> int:
    """How many nodes ``node`` stands for with every alias below it expanded (memoised: linear)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise AliasBudgetError("a YAML alias refers to a node that contains it", path, node.start_mark.line + 1)
    active.add(key)
    n = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            n += _expanded_size(child, memo, active, path)
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            n += _expanded_size(k, memo, active, path) + _expanded_size(v, memo, active, path)
    active.discard(key)
    memo[key] = n
    return n


def _check_aliases(root: yaml.Node) -> None:
    """Walk the document once in order; every reuse of a node (an alias) adds its expanded size
    to the budget, and the first one past it is reported with its YAML path and line."""
    memo: dict[int, int] = {}
    seen: set[int] = set()
    extra = 0
    stack: list[tuple[yaml.Node, str, int]] = [(root, "", root.start_mark.line + 1)]
    while stack:
        node, path, line = stack.pop()
        if id(node) in seen:
            extra += _expanded_size(node, memo, set(), path)
            if extra > ALIAS_EXPANSION_BUDGET:
                raise AliasBudgetError(
                    f"YAML aliases expand to more than {ALIAS_EXPANSION_BUDGET} nodes here (an alias bomb?); "
                    "write the values out, or reuse fewer anchors",
                    path,
                    line,
                )
            continue
        seen.add(id(node))
        children: list[tuple[yaml.Node, str, int]] = []
        if isinstance(node, yaml.SequenceNode):
            children = [(c, f"{path}[{i}]", c.start_mark.line + 1) for i, c in enumerate(node.value)]
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                name = k.value if isinstance(k, yaml.ScalarNode) else "?"
                children.append((v, f"{path}.{name}" if path else str(name), k.start_mark.line + 1))
        stack.extend(reversed(children))
    _expanded_size(root, memo, set(), "")  # an alias cycle nobody reused twice is still refused


class _Loader(yaml.SafeLoader):
    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check_aliases(node)
        return self.construct_document(node)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    d = _LineDict()
    d.line = node.start_mark.line + 1
    d.key_lines = {}
    d.key_texts = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str) and isinstance(key_node, yaml.ScalarNode):
            d.key_texts[key] = key_node.value
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(None, None, "found an unhashable key", key_node.start_mark)
        if key in d:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        d[key] = loader.construct_object(value_node, deep=True)
        d.key_lines[key] = key_node.start_mark.line + 1
    return d


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> _LineList:
    lst = _LineList(loader.construct_object(child, deep=True) for child in node.value)
    lst.line = node.start_mark.line + 1
    lst.item_lines = [child.start_mark.line + 1 for child in node.value]
    return lst


def _construct_str(loader: _Loader, node: yaml.ScalarNode) -> str:
    """A string; a lone surrogate (``"\\ud800"``) is not Unicode text, and Envoy's YAML reader
    refuses it in the same words (``yaml-cpp: ... invalid unicode: 55296``)."""
    s = loader.construct_scalar(node)
    bad = next((c for c in s if "\ud800" <= c <= "\udfff"), None)
    if bad is not None:
        raise yaml.constructor.ConstructorError(None, None, f"invalid unicode: {ord(bad)}", node.start_mark)
    return s


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    """An integer that keeps its text (a Struct keeps some as written: ``struct_value.py``)."""
    return YamlInt(loader.construct_yaml_int(node), node.value)


def _construct_float(loader: _Loader, node: yaml.ScalarNode) -> float:
    """A float that keeps its text (a Struct keeps it as written: ``struct_value.py``)."""
    return YamlFloat(loader.construct_yaml_float(node), node.value)


class _JsonLoader(_Loader):
    """A ``*.json`` config: Envoy reads it as JSON, whose numbers stay numbers in a Struct."""


def _plain_int(loader: _JsonLoader, node: yaml.ScalarNode) -> int:
    return int(loader.construct_yaml_int(node))


def _plain_float(loader: _JsonLoader, node: yaml.ScalarNode) -> float:
    return float(loader.construct_yaml_float(node))


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_JsonLoader.add_constructor("tag:yaml.org,2002:int", _plain_int)
_JsonLoader.add_constructor("tag:yaml.org,2002:float", _plain_float)
_Loader.add_constructor("tag:yaml.org,2002:str", _construct_str)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


#: the largest file a config may name (a Lua script, a direct response body) or be
MAX_FILE_BYTES = 16 * 1024 * 1024


class FileRefused(Exception):
    """A file a config names cannot be read safely; ``str()`` says why, in a learner's words."""


def read_regular_file(path: Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """Read a file a config names, refusing what would freeze the kernel: Envoy's "Invalid path"
    for ``/dev/``, ``/proc/`` and ``/sys/`` (``/dev/zero`` never ends), anything that is not a
    regular file (a FIFO blocks until a writer comes: real Envoy hangs on one), and files over
    ``max_bytes``. ``OSError`` (missing file, no permission) passes through."""
    resolved = str(path.resolve())
    if resolved.startswith(("/dev/", "/proc/", "/sys/")):
        raise FileRefused(f"Invalid path: {path}")
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode) else "a device"
            raise FileRefused(f"{path} is {kind}, not a regular file")
        if st.st_size > max_bytes:
            raise FileRefused(f"{path} is {st.st_size} bytes; wasmlab reads at most {max_bytes} bytes from a file")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise FileRefused(f"{path} grew past {max_bytes} bytes while being read")
        return data
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Source:
    """Where a config came from: a file (errors cite it) or text (errors cite ``<string>``)."""

    name: str  # file path as given, or "<string>"
    base_dir: Path  # relative filenames resolve here
    text: str
    #: fields Envoy accepts that wasmlab parses past without effect (``check_fields(ignored=...)``);
    #: the proxy logs each as a warning, so a valid config is never refused yet nothing is hidden
    ignored: list[str] = field(default_factory=list, compare=False)
    #: other things of the config Envoy accepts and acts on without a word (or only at debug
    #: level), said as whole warning lines (:meth:`Node.notice`); the proxy logs each
    notices: list[str] = field(default_factory=list, compare=False)

    @classmethod
    def from_arg(cls, source: str | os.PathLike[str]) -> Source:
        if isinstance(source, os.PathLike):
            path = Path(source)
            return cls._from_file(path)
        if not isinstance(source, str):
            raise TypeError(f"config source must be a path or YAML text, got {type(source).__name__}")
        one_line = "\n" not in source and source.strip() != ""
        if one_line and _names(source, Path.is_file):
            return cls._from_file(Path(source))
        if one_line and _names(source, Path.is_dir):
            raise ConfigError(f"{source}: is a folder, not a config file")
        if one_line and re.search(r"\.(ya?ml|json)$", source.strip()):
            raise ConfigError(f"{source}: no such config file")
        return cls("<string>", Path.cwd(), source)

    @classmethod
    def _from_file(cls, path: Path) -> Source:
        try:
            text = read_regular_file(path).decode("utf-8", "replace")
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except FileRefused as e:
            raise ConfigError(f"{path}: cannot read config file: {e}") from None
        except OSError as e:
            raise ConfigError(f"{path}: cannot read config file: {e.strerror}") from None
        return cls(str(path), path.resolve().parent, text)

    def load(self) -> Node:
        try:
            loader = _JsonLoader if self.name.lower().endswith(".json") else _Loader
            data = yaml.load(self.text, Loader=loader)
        except AliasBudgetError as e:
            raise ConfigError(f"{self.name}:{e.line}: {e.path or '(top level)'}: {e.message}") from None
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f":{mark.line + 1}" if mark is not None else ""
            problem = e.problem or e.context or "invalid YAML"
            raise ConfigError(f"{self.name}{where}: YAML syntax error: {problem}") from None
        except yaml.reader.ReaderError as e:  # a control character: PyYAML's own text spans two lines
            line = self.text.count("\n", 0, e.position) + 1
            code = e.character if isinstance(e.character, int) else ord(e.character)
            raise ConfigError(
                f"{self.name}:{line}: YAML syntax error: unacceptable character #x{code:04x} "
                "(YAML allows no control characters other than tab, CR and LF)"
            ) from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{self.name}: YAML syntax error: {e}") from None
        if data is None:
            raise ConfigError(f"{self.name}: the config is empty")
        if not isinstance(data, dict):
            raise ConfigError(
                f"{self.name}: the top level must be a mapping (an Envoy bootstrap), got {_type_name(data)}"
            )
        return Node(data, "", self, getattr(data, "line", 1))

    def resolve(self, filename: str) -> Path:
        p = Path(filename)
        return p if p.is_absolute() else self.base_dir / p


def _names(text: str, test: Any) -> bool:
    """Whether one line of text names a file (``test`` is ``Path.is_file`` or ``Path.is_dir``). A
    line that cannot be a path (one-line YAML or JSON longer than a file name may be) is not one."""
    try:
        return bool(test(Path(text)))
    except (OSError, ValueError):
        return False


def _type_name(v: Any) -> str:
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if v is None:
        return "nothing (null)"
    return type(v).__name__


class Node:
    """A value in the YAML tree plus its path and line, with typed accessors that raise
    ``ConfigError("<file>:<line>: <yaml path>: <problem>")``."""

    __slots__ = ("value", "path", "source", "line")

    def __init__(self, value: Any, path: str, source: Source, line: int) -> None:
        self.value = value
        self.path = path
        self.source = source
        self.line = line

    # ---- errors --------------------------------------------------------------------------
    def error(self, message: str, key: str | None = None) -> ConfigError:
        path = self.path
        line = self.line
        if key is not None:
            path = f"{path}.{key}" if path else key
            kl = getattr(self.value, "key_lines", None)
            if kl and key in kl:
                line = kl[key]
        where = f"{self.source.name}:{line}" if line else self.source.name
        text = f"{where}: {path or '(top level)'}: {message}"
        # one line, even when a key or value quoted in it holds a line break
        return ConfigError(text.replace("\r", "\\r").replace("\n", "\\n"))

    def notice(self, message: str) -> None:
        """Keep a warning about this node for the proxy to log (``Source.notices``), located as
        :meth:`error` locates an error."""
        where = f"{self.source.name}:{self.line}" if self.line else self.source.name
        self.source.notices.append(f"{where}: {self.path or '(top level)'}: {message}")

    # ---- navigation ----------------------------------------------------------------------
    def child(self, key: str | int) -> Node:
        if isinstance(key, int):
            lines = getattr(self.value, "item_lines", None)
            line = lines[key] if lines else self.line
            return Node(self.value[key], f"{self.path}[{key}]", self.source, line)
        kl = getattr(self.value, "key_lines", None)
        line = kl.get(key, self.line) if kl else self.line
        path = f"{self.path}.{key}" if self.path else str(key)
        return Node(self.value[key], path, self.source, line)

    def mapping(self, what: str = "a mapping") -> Node:
        if not isinstance(self.value, dict):
            raise self.error(f"expected {what}, got {_type_name(self.value)}")
        return self

    def check_fields(
        self,
        known: str | set[str] | frozenset[str] | tuple[str, ...],
        required: tuple[str, ...] = (),
        ignored: tuple[str, ...] | frozenset[str] = (),
        message: str = "",
    ) -> Node:
        """Reject unknown keys (as Envoy does) and report missing required ones."""
        self.mapping()
        if isinstance(known, str):
            known = set(known.split())
        allowed = set(known) | set(ignored)
        for key in self.value:
            if key not in allowed:
                supported = ", ".join(sorted(known))
                extra = f"; {message}" if message else ""
                raise self.error(f"unknown field '{key}' (wasmlab supports: {supported}){extra}", key=str(key))
        for key in self.value:
            if key in ignored and key not in known:
                where = f"{self.path}.{key}" if self.path else str(key)
                if where not in self.source.ignored:
                    self.source.ignored.append(where)
        for key in required:
            if key not in self.value or self.value[key] is None:
                raise self.error(f"missing required field '{key}'")
        for key in ignored:
            if key in self.value and self.value[key] is not None:
                self.child(key)._check_ignored(key)
        return self

    def _check_ignored(self, key: builtins.str, depth: builtins.int = 0) -> None:
        """An ignored field is still validated as Envoy validates it where a learner could trip:
        durations (``*timeout``, ``*_interval``, ``*refresh_rate``) within Envoy's bound, and
        ``*_bytes``/``*_kb`` limits within ``UInt32Value``."""
        v = self.value
        if isinstance(v, dict) and depth < 4:
            if key.endswith(("timeout", "_interval", "refresh_rate")) and set(v) <= {"seconds", "nanos"}:
                self.duration()
                return
            if key.endswith(("_bytes", "_kb")) and set(v) == {"value"}:
                self.uint32()
                return
            for k in list(v):
                if isinstance(k, builtins.str):
                    self.child(k)._check_ignored(k, depth + 1)
        elif key.endswith(("timeout", "_interval", "refresh_rate")) and isinstance(v, builtins.str):
            self.duration()
        elif key.endswith(("_bytes", "_kb")) and isinstance(v, builtins.int | builtins.str):
            self.uint32()

    def uint32(self) -> builtins.int:
        """``google.protobuf.UInt32Value``/``uint32``: 0..4294967295 (Envoy: "integer out of range")."""
        v = self.value
        if isinstance(v, dict):
            self.check_fields("value")
            return self.child("value").uint32() if self.has("value") else 0
        if isinstance(v, builtins.int) and not isinstance(v, builtins.bool) and v > UINT32_MAX:
            raise self.error(f"integer out of range: {v} does not fit a uint32 (Envoy's bound: {UINT32_MAX})")
        return self.int(0, UINT32_MAX)

    def has(self, key: str) -> bool:
        return isinstance(self.value, dict) and key in self.value and self.value[key] is not None

    def get(self, key: str) -> Node | None:
        if not self.has(key):
            return None
        return self.child(key)

    def req(self, key: str) -> Node:
        if not self.has(key):
            raise self.error(f"missing required field '{key}'")
        return self.child(key)

    def items(self) -> Iterator[tuple[str, Node]]:
        self.mapping()
        for key in self.value:
            yield key, self.child(key)

    def list(self, what: str = "a list") -> list[Node]:
        if self.value is None:
            return []
        if not isinstance(self.value, list):
            raise self.error(f"expected {what}, got {_type_name(self.value)}")
        return [self.child(i) for i in range(len(self.value))]

    # ---- scalars -------------------------------------------------------------------------
    def str(self, allow_empty: bool = True) -> str:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise self.error(f"expected a string, got {_type_name(v)}")
        s = str(v)
        if not allow_empty and not s:
            raise self.error("must not be empty")
        return s

    def header_text(self, where: builtins.str, allow_empty: builtins.bool = True) -> builtins.str:
        """A string that goes into a header (a name, a value, a path or host to rewrite to):
        Envoy's ``well_known_regex`` rule refuses a NUL, CR or LF in it; ``where`` is the field
        as Envoy's validation names it (``RouteActionValidationError.PrefixRewrite``)."""
        s = self.str(allow_empty)
        if "\x00" in s or "\n" in s or "\r" in s:
            raise self.error(
                f'Proto constraint validation failed ({where}: value does not match regex pattern "^[^\\x00\\n\\r]*$")'
            )
        return s

    def int(self, minimum: int | None = None, maximum: int | None = None) -> int:
        v = self.value
        if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(f"expected an integer, got {_type_name(self.value)}")
        if minimum is not None and v < minimum:
            raise self.error(f"must be >= {minimum}, got {v}")
        if maximum is not None and v > maximum:
            raise self.error(f"must be <= {maximum}, got {v}")
        return v

    def bool(self) -> bool:
        v = self.value
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false"):
            return v.lower() == "true"
        raise self.error(f"expected true or false, got {_type_name(v)}")

    def bool_value(self) -> builtins.bool:
        """``google.protobuf.BoolValue``: a bare bool or ``{value: bool}``."""
        if isinstance(self.value, dict):
            self.check_fields("value")
            n = self.get("value")
            return n.bool() if n is not None else False
        return self.bool()

    def enum(self, choices: tuple[builtins.str, ...] | builtins.list[builtins.str]) -> builtins.str:
        s = self.str()
        if s not in choices:
            raise self.error(f"unknown value '{s}' (expected one of: {', '.join(choices)})")
        return s

    def duration(self) -> float:
        """``google.protobuf.Duration``: ``"1.5s"`` or ``{seconds, nanos}``; returns seconds."""
        v = self.value
        if isinstance(v, dict):
            self.check_fields("seconds nanos")
            secs = self.get("seconds")
            nanos = self.get("nanos")
            seconds = secs.int(0) if secs else 0
            return self._duration_in_range(seconds, (nanos.int(0, 999_999_999) if nanos else 0) / 1e9)
        if isinstance(v, str):
            m = re.fullmatch(r"\s*(\d+)(\.\d{1,9})?s\s*", v)
            if m:
                return self._duration_in_range(builtins.int(m.group(1)), float(m.group(2) or 0))
        raise self.error(f'expected a duration such as "1.5s", got {v!r}')

    def _duration_in_range(self, seconds: builtins.int, fraction: float) -> float:
        # Envoy checks every Duration in the bootstrap against a bound that keeps it convertible to
        # nanoseconds in an int64 (measured with `envoy --mode validate`: 9223372035s passes,
        # 9223372036s fails); a larger one would overflow the timer it arms
        if seconds > MAX_DURATION_SECONDS:
            raise self.error(
                f"Invalid duration: Duration out-of-range: seconds: {seconds} "
                f"(Envoy's bound: {MAX_DURATION_SECONDS} s, about 292 years)"
            )
        return seconds + fraction
