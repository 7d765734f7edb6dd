"""Return codes the host-call fuzzer (tests/test_fuzz_hostcalls.py) found wrong, pinned against
real Envoy 1.40: the same module on both, and the wasm:trace lines — every host call with its
arguments and its return code — must be the same.

* stream control outside a stream (a root context) and for a direction the filter does not have
  answers OK and does nothing; continuing the upstream side is UNIMPLEMENTED;
* ``proxy_send_local_response`` outside a stream answers OK;
* ``proxy_log`` checks the level before the message's memory, ``proxy_define_metric`` the name's
  memory before the type;
* ABI 0.1.0 ``proxy_get_configuration`` outside the configure callbacks reads the VM configuration;
* ``proxy_grpc_call`` takes any bytes as service and method names (a non-UTF-8 name made the host
  function fail with INTERNAL_FAILURE).
"""

from __future__ import annotations

import pytest
import wasmtime

from wasm_diff import assert_same_run, plugin_yaml, run_both
from wasmlab import Proxy

BAD_PTR = "(i32.const -256)"  # 0xFFFFFF00: past any memory

ROOT_CALLS = f"""
    (drop (call $close (i32.const 0)))
    (drop (call $continue (i32.const 0)))
    (drop (call $continue (i32.const 3)))
    (drop (call $close (i32.const 3)))
    (drop (call $local (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                       (i32.const 0) (i32.const 0) (i32.const -1)))
    (drop (call $log (i32.const 9) {BAD_PTR} (i32.const 16)))
    (drop (call $define (i32.const 7) {BAD_PTR} (i32.const 4) (i32.const 64)))"""

STREAM_CALLS = """
    (drop (call $continue (i32.const 2)))
    (drop (call $close (i32.const 2)))
    (drop (call $close (i32.const 3)))
    (drop (call $continue (i32.const 3)))"""

CODES_WAT = f"""(module
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_close_stream" (func $close (param i32) (result i32)))
  (import "env" "proxy_send_local_response"
    (func $local (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) {ROOT_CALLS} (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) {STREAM_CALLS} (i32.const 0)))"""

CONFIG_010_WAT = """(module
  (import "env" "proxy_get_configuration" (func $get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "proxy_abi_version_0_1_0"))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32) (result i32)
    (drop (call $get (i32.const 16) (i32.const 20))) (i32.const 0)))"""

REQUESTS = [{"method": "GET", "path": "/a"}, {"method": "GET", "path": "/direct"}]


def _write(tmp_path, name: str, text: str):
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(wasmtime.wat2wasm(text))
    return path


def _returns(proxy: Proxy, thread: str) -> list[str]:
    return [ln for ln in proxy.trace.envoy_lines(thread) if ln.startswith("[vm<-host]")]


def test_stream_control_outside_a_stream_is_ok(tmp_path):
    with Proxy.from_yaml(
        plugin_yaml(_write(tmp_path, "codes", CODES_WAT)), workers=1, component_log_level="wasm:trace"
    ) as p:
        assert p.request("GET", "/a").status == 200  # nothing above stopped or answered the stream
        main = _returns(p, "main")
        worker = _returns(p, "worker_0")
    assert main[-7:] == [
        "[vm<-host] env.proxy_close_stream return: 0",
        "[vm<-host] env.proxy_continue_stream return: 0",
        "[vm<-host] env.proxy_continue_stream return: 12",
        "[vm<-host] env.proxy_close_stream return: 0",
        "[vm<-host] env.proxy_send_local_response return: 0",
        "[vm<-host] env.proxy_log return: 2",
        "[vm<-host] env.proxy_define_metric return: 6",
    ]
    assert worker[-4:] == [
        "[vm<-host] env.proxy_continue_stream return: 0",
        "[vm<-host] env.proxy_close_stream return: 0",
        "[vm<-host] env.proxy_close_stream return: 0",
        "[vm<-host] env.proxy_continue_stream return: 12",
    ]


def test_get_configuration_outside_configure_reads_the_vm_configuration(tmp_path):
    yaml = plugin_yaml(_write(tmp_path, "cfg010", CONFIG_010_WAT), vm_configuration="vm-cfg")
    with Proxy.from_yaml(yaml, workers=1, component_log_level="wasm:trace") as p:
        assert p.request("GET", "/a").status == 200
        assert "[vm<-host] env.proxy_get_configuration return: 0" in _returns(p, "worker_0")


def test_grpc_call_takes_any_bytes_as_names(tmp_path):
    wat = """(module
      (import "env" "proxy_grpc_call" (func $grpc (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 100) "backend")
      (data (i32.const 200) "\\ba\\ff.Svc")
      (data (i32.const 300) "M\\fe")
      (func (export "proxy_abi_version_0_2_1"))
      (func (export "malloc") (param i32) (result i32) (i32.const 1024))
      (func (export "proxy_on_context_create") (param i32 i32))
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (drop (call $grpc (i32.const 100) (i32.const 7) (i32.const 200) (i32.const 6) (i32.const 300)
                          (i32.const 2) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                          (i32.const 1000) (i32.const 64)))
        (i32.const 0)))"""
    with Proxy.from_yaml(plugin_yaml(_write(tmp_path, "grpc", wat)), workers=1, component_log_level="wasm:trace") as p:
        p.request("GET", "/a")
        p.wait_idle(5.0)
        assert "[vm<-host] env.proxy_grpc_call return: 0" in _returns(p, "worker_0")
        assert not any("host function" in ln and "failed" in ln for ln in p.logs)


@pytest.mark.envoy
@pytest.mark.parametrize("wat", ["codes", "config_010"])
def test_return_codes_match_envoy(envoy_bin, tmp_path, wat):
    text = CODES_WAT if wat == "codes" else CONFIG_010_WAT
    path = tmp_path / "codes.yaml"
    path.write_text(plugin_yaml(_write(tmp_path, wat, text), vm_configuration="vm-cfg"))
    ours, theirs, lines = run_both(path, REQUESTS, compare_upstreams=False)
    assert_same_run(ours, theirs, lines)
    assert any(
        "env.proxy_close_stream return: 0" in ln or "proxy_get_configuration return: 0" in ln
        for ln in lines["worker_0"][1]
    )
