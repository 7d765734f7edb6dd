"""The ``wasmlab`` command: output shapes, and bad input as one line on stderr with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import CONFIGS
from wasmlab import cli

HELLO = str(CONFIGS / "hello.yaml")


def run(capsys, *argv):
    capsys.readouterr()
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_request_prints_status_headers_body(capsys):
    rc, out, err = run(capsys, "request", HELLO, "GET", "/direct")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "HTTP 200"
    assert "content-type: text/plain" in lines
    assert lines[-1] == "direct hello"


def test_request_json_shape(capsys):
    rc, out, _ = run(capsys, "request", HELLO, "POST", "/x", "-H", "x-a: b: c", "--body", "hi", "--json")
    d = json.loads(out)
    assert set(d) == {"status", "headers", "body", "trace"}
    echoed = json.loads(d["body"])
    assert ["x-a", "b: c"] in echoed["headers"]  # -H splits at the first colon
    assert echoed["body"] == "hi"
    assert all(not k.startswith(":") for k, _ in d["headers"])
    assert d["trace"][0]["kind"] in ("log", "stream")


@pytest.mark.parametrize("fmt", ["text", "json", "envoy"])
def test_trace_formats(capsys, fmt):
    rc, out, _ = run(capsys, "trace", HELLO, "GET", "/direct", "--format", fmt)
    assert rc == 0
    if fmt == "json":
        events = json.loads(out)
        assert [e["name"] for e in events if e["kind"] == "stream"][:1] == ["request"]
    elif fmt == "text":
        assert "decode_headers(filter=envoy.filters.http.router" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["request", "missing.yaml", "GET", "/"], "wasmlab: error: missing.yaml: no such config file"),
        (["request", HELLO, "GET", "nopath"], "wasmlab: error: path must start with '/', got 'nopath'"),
        (["request", HELLO, "GET", "/", "-H", "novalue"], "wasmlab: error: -H 'novalue': expected 'name: value'"),
        (
            ["request", HELLO, "GET", "/", "--workers", "0"],
            "wasmlab: error: workers must be an int from 1 to 64, got 0",
        ),
        (["request"], "wasmlab request: error: the following arguments are required: config, method, path"),
        (["frobnicate"], "wasmlab: error: argument command: invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, expected):
    rc, out, err = run_expect_exit(capsys, argv)
    assert rc == 2
    assert err.count("\n") == 1, err
    assert err.startswith(expected), err


def run_expect_exit(capsys, argv):
    try:
        return run(capsys, *argv)
    except SystemExit as e:
        out = capsys.readouterr()
        return e.code, out.out, out.err


def test_bad_config_through_the_real_console_script(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("static_resources:\n  listeners: 3\n")
    proc = subprocess.run(
        [sys.executable, "-m", "wasmlab.cli", "request", str(bad), "GET", "/"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr == f"wasmlab: error: {bad}:2: static_resources.listeners: expected a list, got a number\n"
    assert "Traceback" not in proc.stderr


def test_doctor_lists_every_component(capsys):
    rc, out, _ = run(capsys, "doctor")
    assert rc == 0
    for name in ("wasmtime", "lupa (LuaJIT)", "jupyterlab", "ipywidgets", "anywidget", "graphviz dot", "envoy"):
        assert name in out
