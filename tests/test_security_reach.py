"""What a Wasm module and a Lua script can reach (README "Security notes"), on wasmlab and on
real Envoy 1.40.

* A Wasm module's WASI has no files (``path_open`` fails, no pre-opened directory, stdin reads
  nothing), sees only the environment variables its ``vm_config.environment_variables`` grants,
  and ``proxy_http_call`` reaches only the config's clusters (another name is BAD_ARGUMENT).
  Checked by the wasm:trace lines — every host call with its return code — and a log line with
  the environment's size, the same on both.
* A Lua script on Envoy reaches what the Envoy process can: ``ffi``, ``io``, ``os``. wasmlab's
  classroom sandbox (the default) removes them; ``lua_sandbox=False`` gives what Envoy gives.
"""

from __future__ import annotations

import pytest
import wasmtime
from lua.lua_helpers import Req, lua_config, run_envoy

from wasm_diff import assert_same_run, plugin_yaml, run_both
from wasmlab import Proxy

REACH_WAT = """(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call"
    (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "/etc/passwd")
  (data (i32.const 120) "nope")
  (data (i32.const 600) "environment variables: ?")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) (i32.const 2048))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 11) (i32.const 0)
                           (i64.const 2) (i64.const 2) (i32.const 0) (i32.const 200)))
    (drop (call $prestat (i32.const 3) (i32.const 200)))
    (drop (call $fd_read (i32.const 0) (i32.const 300) (i32.const 1) (i32.const 400)))
    (drop (call $env_sizes (i32.const 500) (i32.const 504)))
    (i32.store8 (i32.const 623) (i32.add (i32.const 48) (i32.load (i32.const 500))))
    (drop (call $log (i32.const 2) (i32.const 600) (i32.const 24)))
    (drop (call $http_call (i32.const 120) (i32.const 4) (i32.const 0) (i32.const 0) (i32.const 0)
                           (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 700)))
    (i32.const 1)))"""


def _reach_yaml(tmp_path) -> str:
    path = tmp_path / "reach.wasm"
    path.write_bytes(wasmtime.wat2wasm(REACH_WAT))
    text = plugin_yaml(path)
    # environment_variables belongs to vm_config
    vm_id = "                  vm_id: p\n"
    assert vm_id in text
    grant = "                  environment_variables:\n                    host_env_keys: [WASMLAB_GRANTED]\n"
    return text.replace(vm_id, vm_id + grant + "                    key_values: {GREETING: hi}\n", 1)


def _returns(lines: list[str]) -> list[str]:
    return [ln.split("] ", 1)[1] for ln in lines if ln.startswith("[vm<-host]")]


def test_a_wasm_module_reaches_no_file_and_only_granted_env(tmp_path, monkeypatch):
    monkeypatch.setenv("WASMLAB_GRANTED", "yes")
    monkeypatch.setenv("WASMLAB_NOT_GRANTED", "secret")
    yaml = _reach_yaml(tmp_path)
    assert "environment_variables" in yaml
    with Proxy.from_yaml(yaml, workers=1, component_log_level="wasm:trace") as p:
        returns = _returns(p.trace.envoy_lines("worker_0"))
        logs = "\n".join(p.logs)
    assert returns[-6:] == [
        "wasi_snapshot_preview1.path_open return: 44",  # ENOENT: no file system
        "wasi_snapshot_preview1.fd_prestat_get return: 8",  # EBADF: no pre-opened directory
        "wasi_snapshot_preview1.fd_read return: 52",  # ENOSYS: nothing to read
        "wasi_snapshot_preview1.environ_sizes_get return: 0",
        "env.proxy_log return: 0",
        "env.proxy_http_call return: 2",  # BAD_ARGUMENT: not a cluster of the config
    ]
    assert "environment variables: 2" in logs  # GREETING and WASMLAB_GRANTED, not WASMLAB_NOT_GRANTED


@pytest.mark.envoy
def test_a_wasm_modules_reach_matches_envoy(envoy_bin, tmp_path, monkeypatch):
    monkeypatch.setenv("WASMLAB_GRANTED", "yes")
    monkeypatch.setenv("WASMLAB_NOT_GRANTED", "secret")
    path = tmp_path / "reach.yaml"
    path.write_text(_reach_yaml(tmp_path))
    ours, theirs, lines = run_both(path, [{"method": "GET", "path": "/direct"}], compare_upstreams=False)
    assert_same_run(ours, theirs, lines)
    assert any("environment variables: 2" in ln for ln in lines["worker_0"][1])
    assert "[vm<-host] wasi_snapshot_preview1.path_open return: 44" in lines["worker_0"][1]


REACH_LUA = """
function envoy_on_request(h)
  local ok, ffi = pcall(require, "ffi")
  local reach = {
    ok and type(ffi.cast) == "function" and "ffi" or "no-ffi",
    type(io) == "table" and type(io.open) == "function" and "io" or "no-io",
    type(os.execute) == "function" and "os.execute" or "no-os.execute",
    type(os.getenv) == "function" and "os.getenv" or "no-os.getenv",
  }
  h:headers():add("x-reach", table.concat(reach, " "))
end
"""


def _seen(req):
    return (200, {}, req.headers.get("x-reach") or "missing")


@pytest.mark.envoy
def test_a_lua_script_on_envoy_reaches_what_the_process_can(envoy_bin):
    out = run_envoy(lua_config(REACH_LUA), [Req()], {"backend": _seen})
    assert out.responses[0].body == b"ffi io os.execute os.getenv"


@pytest.mark.parametrize(("sandbox", "expected"), [(False, b"ffi io os.execute os.getenv"), (True, b"no-ffi")])
def test_wasmlab_lua_reach_with_and_without_the_sandbox(sandbox, expected):
    with Proxy.from_yaml(lua_config(REACH_LUA), workers=1, options={"lua_sandbox": sandbox}) as p:
        p.upstream("backend", _seen)
        body = p.request("GET", "/").body
    assert body.startswith(expected), body
    if sandbox:
        assert body == b"no-ffi io os.execute os.getenv"  # the functions exist; calling one is refused


SHARED_WAT = """(module
  (import "env" "proxy_set_shared_data" (func $set (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_shared_data" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "secret")
  (global $heap (mut i32) (i32.const 4096))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap)) (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $set (i32.const 100) (i32.const 6) (i32.const 100) (i32.const 6) (i32.const 0)))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $get (i32.const 100) (i32.const 6) (i32.const 200) (i32.const 204) (i32.const 208)))
    (i32.const 0)))"""

READER_WAT = SHARED_WAT.replace(
    "(drop (call $set (i32.const 100) (i32.const 6) (i32.const 100) (i32.const 6) (i32.const 0)))", ""
)


def _shared_yaml(tmp_path) -> str:
    from wasmlab.config import builder as b

    (tmp_path / "writer.wasm").write_bytes(wasmtime.wat2wasm(SHARED_WAT))
    (tmp_path / "reader.wasm").write_bytes(wasmtime.wat2wasm(READER_WAT))
    filters = [
        b.wasm(str(tmp_path / "writer.wasm"), name="writer", root_id="writer", vm_id="a"),
        b.wasm(str(tmp_path / "reader.wasm"), name="same_vm", root_id="same_vm", vm_id="a"),
        b.wasm(str(tmp_path / "reader.wasm"), name="other_vm", root_id="other_vm", vm_id="b"),
        b.router(),
    ]
    listener = b.http_listener("l0", 10000, routes=[b.direct_response("/direct", 200, "hi\n")], http_filters=filters)
    return b.to_yaml(b.bootstrap([listener], [b.cluster("backend", 8081)]))


@pytest.mark.envoy
def test_shared_data_is_per_vm_id_as_on_envoy(envoy_bin, tmp_path):
    """A module reads the shared data of its own vm_id only: the reader on vm_id ``a`` finds the
    writer's key, the same code on vm_id ``b`` does not (NOT_FOUND)."""
    path = tmp_path / "shared.yaml"
    path.write_text(_shared_yaml(tmp_path))
    ours, theirs, lines = run_both(path, [{"method": "GET", "path": "/direct"}], compare_upstreams=False)
    assert_same_run(ours, theirs, lines)
    gets = [ln for ln in lines["worker_0"][1] if "proxy_get_shared_data return" in ln]
    assert gets == [
        "[vm<-host] env.proxy_get_shared_data return: 0",  # the writer itself
        "[vm<-host] env.proxy_get_shared_data return: 0",  # same vm_id
        "[vm<-host] env.proxy_get_shared_data return: 1",  # another vm_id: NOT_FOUND
    ]
