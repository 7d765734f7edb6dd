"""The AssemblyScript filter of lesson 05 (modules/assemblyscript/, built to modules/add_header_as.wasm):

- it builds from source, and the build equals the committed ``.wasm`` byte for byte (``asc`` with
  the flags in ``wasmlab.assemblyscript.ASC_FLAGS`` writes no custom sections, so nothing needs
  stripping before the comparison);
- the npm project pins its SDK and compiler exactly;
- real Envoy 1.40 and wasmlab agree on it: responses, what the upstream receives, and every
  ``wasm:trace`` line;
- lesson 05 runs with and without Node.js (without: a PATH that has no node/npm, as on a machine
  without Node; the lesson then loads the committed build).
"""

from __future__ import annotations

import json
import os
import shutil

import nbformat
import pytest

from conftest import CONFIGS, ROOT
from wasm_diff import assert_same_run, run_both
from wasmlab import Proxy, assemblyscript, course
from wasmlab.grade import _execute, records

PROJECT = ROOT / "modules" / "assemblyscript"
LESSON = ROOT / "notebooks" / "source" / "05-a-filter-with-an-sdk.ipynb"
CONFIG = CONFIGS / "wasm" / "add_header_as.yaml"
REQUESTS = [
    {"method": "GET", "path": "/hello", "headers": [("user-agent", "t")]},
    {"method": "HEAD", "path": "/hello"},
    {"method": "POST", "path": "/post", "body": "hello world, hello!"},
    {"method": "GET", "path": "/direct"},
    {"method": "GET", "path": "/again"},  # a second response through the same stream-context code
]


def _need_node():
    if not assemblyscript.node_available():
        if os.environ.get("CI"):
            pytest.fail("CI must build the AssemblyScript module from source: install Node.js")
        pytest.skip("Node.js/npm not on PATH")


def test_package_pins_sdk_and_compiler_exactly():
    pkg = json.loads((PROJECT / "package.json").read_text())
    deps = {**pkg.get("dependencies", {}), **pkg.get("devDependencies", {})}
    assert set(deps) == {"@solo-io/proxy-runtime", "assemblyscript"}
    for name, version in deps.items():
        assert version[0].isdigit(), f"{name} is pinned with a range: {version}"
    lock = json.loads((PROJECT / "package-lock.json").read_text())
    for name, version in deps.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version


def test_committed_module_has_no_custom_sections():
    """Nothing to strip before comparing builds: no name section, no sourceMappingURL."""
    data = (ROOT / "modules" / assemblyscript.OUTPUT).read_bytes()
    assert data[:8] == b"\0asm\1\0\0\0"
    i, ids = 8, []
    while i < len(data):
        ids.append(data[i])
        size, shift, i = 0, 0, i + 1
        while True:
            byte = data[i]
            i += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        i += size
    assert 0 not in ids and i == len(data)


@pytest.mark.slow
def test_build_from_source_equals_the_committed_wasm(tmp_path):
    _need_node()
    fresh = assemblyscript.compile_source(tmp_path / "fresh.wasm")
    assert fresh.read_bytes() == (ROOT / "modules" / assemblyscript.OUTPUT).read_bytes()


@pytest.mark.slow
def test_a_changed_source_builds_a_different_module(tmp_path):
    """The build really compiles the source it is given (a check that the comparison above can fail)."""
    _need_node()
    src = (PROJECT / "assembly" / "index.ts").read_text().replace('"assemblyscript")', '"edited")')
    build = assemblyscript.build_or_committed(src, out=tmp_path / "edited.wasm")
    assert build.built and build.path.read_bytes() != (ROOT / "modules" / assemblyscript.OUTPUT).read_bytes()
    with Proxy.from_yaml(CONFIG.read_text().replace("../../../modules/add_header_as.wasm", str(build.path))) as p:
        got = dict(p.request("GET", "/").json()["headers"])
    assert got["x-wasm-sdk"] == "edited"


def test_without_node_the_committed_build_is_used(monkeypatch):
    monkeypatch.setenv("PATH", "")
    build = assemblyscript.build_or_committed("this is not even valid source")
    assert not build.built and build.path == ROOT / "modules" / assemblyscript.OUTPUT
    assert "Node.js" in build.message


def test_wasmlab_runs_the_sdk_module():
    with Proxy.from_yaml(CONFIG, workers=1) as p:
        r = p.request("GET", "/hello")
    assert r.status == 200
    assert r.headers.get("x-hello") == "from AssemblyScript"
    assert ["x-wasm-sdk", "assemblyscript"] in r.json()["headers"]


@pytest.mark.envoy
def test_sdk_module_matches_envoy(envoy_bin):
    ours, theirs, lines = run_both(CONFIG, REQUESTS)
    assert_same_run(ours, theirs, lines)
    assert theirs[0].headers.get("x-hello") == "from AssemblyScript"
    assert ["x-wasm-sdk", "assemblyscript"] in theirs[0].json()["headers"]


def _path_without_node(tmp_path):
    """A PATH like this one, minus node/npm/npx: every other program is linked into one folder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not d or not os.path.isdir(d):
            continue
        for entry in os.scandir(d):
            if entry.name in {"node", "npm", "npx", "corepack", "nodejs"} or (bin_dir / entry.name).exists():
                continue
            (bin_dir / entry.name).symlink_to(entry.path)
    return str(bin_dir)


@pytest.mark.slow
@pytest.mark.parametrize("node", [True, False], ids=["with-node", "without-node"])
def test_lesson_05_runs_with_and_without_node(node, tmp_path, monkeypatch):
    if node:
        _need_node()
    else:
        monkeypatch.setenv("PATH", _path_without_node(tmp_path))
        assert shutil.which("node") is None and shutil.which("npm") is None
    monkeypatch.setenv("WASMLAB_FAST", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    nb = nbformat.reads(json.dumps(course.version(json.loads(LESSON.read_text()), "solution")), as_version=4)
    failure = _execute(nb, ROOT / "notebooks", timeout=300)
    assert failure is None, failure
    results, errors = records(nb)
    assert not errors, errors
    # exercise 3 compiles the learner's TypeScript: without Node.js it can only stay blank
    expected = {"05.1": "passed", "05.2": "passed", "05.3": "passed" if node else "blank"}
    assert {k: r["status"] for k, r in results.items()} == expected, results
    text = "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "stream"
    )
    if node:
        assert "compiled with asc" in text
    else:
        assert "Node.js (with npm) is not on PATH" in text and "committed build" in text


TERNARY = """    const greeting = this.root_context.getConfiguration();
    stream_context.headers.response.add("x-hello", greeting == "" ? "world" : greeting);
"""


@pytest.mark.slow
@pytest.mark.envoy
def test_the_ternary_form_traps_on_the_second_response_on_both_hosts(envoy_bin, tmp_path):
    """Lesson 05 says: the `? :` form compiles, answers once, then traps in proxy_on_response_headers
    on real Envoy and on wasmlab alike, and Envoy answers 503."""
    _need_node()
    src = (PROJECT / "assembly" / "index.ts").read_text()
    start = src.index("    // Written as in the SDK's README.")
    end = src.index("    return FilterHeadersStatusValues.Continue;", start)
    build = assemblyscript.build_or_committed(src[:start] + TERNARY + src[end:], out=tmp_path / "ternary.wasm")
    config = tmp_path / "ternary.yaml"
    config.write_text(CONFIG.read_text().replace("../../../modules/add_header_as.wasm", str(build.path)))
    reqs = [{"method": "GET", "path": "/one"}, {"method": "GET", "path": "/two"}]
    ours, theirs, lines = run_both(config, reqs)
    assert [r.status for r in theirs] == [200, 503]
    assert_same_run(ours, theirs, lines)
    # the second proxy_on_response_headers is entered and never returns
    env = lines["worker_0"][1]
    entered = [i for i, ln in enumerate(env) if ln.startswith("[host->vm] proxy_on_response_headers")]
    returned = [ln for ln in env if ln.startswith("[host<-vm] proxy_on_response_headers")]
    assert len(entered) == 2 and len(returned) == 1
