"""YAML alias bombs and unreadable files (``/dev/zero``, FIFOs, folders, huge files) named by a
config: each used to freeze the kernel; now each is a ``ConfigError`` naming the YAML path.
Every reproduction runs in its own process with a time limit, so a regression fails the test
instead of freezing pytest."""

from __future__ import annotations

import os
import re

import pytest

from conftest import CONFIGS
from helpers import config
from safety_helpers import run_isolated
from wasmlab import load_config
from wasmlab.errors import ConfigError

LUA = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
WASM_CFG = (CONFIGS / "wasm" / "add_header.yaml").read_text()

BOMB = """
        a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
        b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
        c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
        d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
        e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
        f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
        g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
        h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]"""


def _in_plugin_configuration() -> str:
    # a Struct-typed field: the Wasm plugin's configuration (google.protobuf.Struct)
    bomb = BOMB.replace("\n        ", "\n                    ")
    old = WASM_CFG[WASM_CFG.index('                  "@type": type.googleapis.com/google.protobuf.StringValue') :]
    old = old[: old.index("                vm_config:") - 1]
    return WASM_CFG.replace(
        old,
        """                  "@type": type.googleapis.com/google.protobuf.Struct
                  value:"""
        + bomb,
    )


def _in_json_format() -> str:
    bomb = BOMB.replace("\n        ", "\n                  ")
    return config().replace(
        "          stat_prefix: ingress",
        """          stat_prefix: ingress
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format:
                json_format:"""
        + bomb,
    )


@pytest.mark.parametrize(
    ("where", "make"), [("configuration.value", _in_plugin_configuration), ("json_format", _in_json_format)]
)
def test_alias_bomb_is_refused_quickly_with_its_yaml_path(tmp_path, where, make):
    path = tmp_path / "bomb.yaml"
    path.write_text(make())
    out = run_isolated(
        f"""
        import time
        from wasmlab import load_config
        from wasmlab.errors import ConfigError
        t0 = time.monotonic()
        try:
            load_config({str(path)!r})
        except ConfigError as e:
            print("ERROR", e)
        print("took", round(time.monotonic() - t0, 3))
        """,
        timeout=60,
    )
    assert out.returncode == 0, out.explain()
    assert "ERROR " + str(path) in out.stdout, out.stdout
    assert "YAML aliases expand to more than 10000 nodes" in out.stdout
    assert re.search(re.escape(where) + r"\.[a-h]\[\d\]: ", out.stdout), out.stdout
    assert float(out.stdout.split("took")[1]) < 2.0


def test_reused_anchors_within_the_budget_still_load():
    cfg = config().replace("  - name: backend\n    type: STATIC\n", "  - name: backend\n    type: &static STATIC\n")
    cfg += "  - name: other\n    type: *static\n    load_assignment: {cluster_name: other}\n"
    assert [c.name for c in load_config(cfg).clusters.values()] == ["backend", "other"]


def test_recursive_alias_is_refused():
    with pytest.raises(ConfigError, match=r"x-loop\[0\]: a YAML alias refers to a node that contains it"):
        load_config(config() + "x-loop: &r [*r]\n")


# ---- files ---------------------------------------------------------------------------------------------
def _direct_response_file(path: str) -> str:
    return config(
        routes=f"""
              - match: {{prefix: "/"}}
                direct_response: {{status: 200, body: {{filename: "{path}"}}}}"""
    )


def _lua_file(path: str) -> str:
    return config(
        f"""
          - name: envoy.filters.http.lua
            typed_config:
              "@type": {LUA}
              default_source_code: {{filename: "{path}"}}"""
    )


def _wasm_file(path: str) -> str:
    return WASM_CFG.replace("../../../modules/add_header.wasm", path)


_MAKERS = {"direct_response": _direct_response_file, "lua": _lua_file, "wasm": _wasm_file}
_WHERE = {
    "direct_response": "routes[0].direct_response.body.filename",
    "lua": "default_source_code.filename",
    "wasm": "code.local.filename",
}


@pytest.mark.parametrize("kind", sorted(_MAKERS))
@pytest.mark.parametrize("target", ["/dev/zero", "fifo", "folder", "huge"])
def test_unreadable_files_are_refused_not_read(tmp_path, kind, target):
    if target == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
        expect = "is a FIFO, not a regular file"
    elif target == "folder":
        path = tmp_path / "dir"
        path.mkdir()
        expect = "is a folder, not a regular file"
    elif target == "huge":
        path = tmp_path / "huge.bin"
        with open(path, "wb") as f:
            f.truncate(300 * 1024 * 1024)  # sparse: no disk used
        expect = "bytes; wasmlab reads at most"
    else:
        path = target
        expect = "Invalid path: /dev/zero"  # Envoy's words
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(_MAKERS[kind](str(path)))
    out = run_isolated(
        f"""
        from wasmlab import load_config
        from wasmlab.errors import ConfigError
        try:
            load_config({str(cfg)!r})
            print("LOADED")
        except ConfigError as e:
            print("ERROR", e)
        """,
        timeout=60,
    )
    assert out.returncode == 0, out.explain()
    assert expect in out.stdout and _WHERE[kind] in out.stdout, out.stdout


def test_config_file_itself_may_not_be_a_fifo(tmp_path):
    path = tmp_path / "cfg.yaml"
    os.mkfifo(path)
    with pytest.raises(ConfigError, match="is a FIFO, not a regular file"):
        load_config(path)
