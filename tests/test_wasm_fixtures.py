"""Modules that mimic the public SDKs, old ABI versions and broken builds — on wasmlab and on real
Envoy 1.40 (fixtures in tests/fixtures/wasm/, Envoy's behaviour in ENVOY_OBSERVED.md)."""

from __future__ import annotations

import threading
import time

import pytest

from conftest import FIXTURES
from wasm_diff import assert_same_run, plugin_yaml, run_both
from wasmlab import ConfigError, Proxy, StartupError
from wasmlab import envoy as real
from wasmlab.errors import EnvoyFailed

W = FIXTURES / "wasm"
REQUESTS = [
    {"method": "GET", "path": "/hello"},
    {"method": "POST", "path": "/post", "body": "hello body"},
    {"method": "GET", "path": "/direct"},
]


@pytest.mark.envoy
@pytest.mark.parametrize(
    ("fixture", "vm_cfg", "cfg"),
    [
        ("sdk_go", None, None),
        ("sdk_rust", "rust-vm-config", "rust-plugin-config"),
        ("sdk_rust", None, None),
        ("sdk_cpp", None, None),
        ("sdk_tinygo", None, None),
        ("abi_010", "vm-cfg-010", "plugin-cfg-010"),
    ],
)
def test_sdk_conventions_run_like_on_envoy(envoy_bin, tmp_path, fixture, vm_cfg, cfg):
    path = tmp_path / "p.yaml"
    path.write_text(plugin_yaml(W / f"{fixture}.wasm", configuration=cfg, vm_configuration=vm_cfg))
    ours, theirs, lines = run_both(path, REQUESTS)
    assert_same_run(ours, theirs, lines)
    assert [r.status for r in ours] == [200, 200, 200]


def test_tinygo_start_runs_once_per_vm_instance(tmp_path):
    with Proxy.from_yaml(plugin_yaml(W / "sdk_tinygo.wasm"), workers=2) as p:
        starts = [e for e in p.trace if e.kind == "callback" and e.name == "_start" and e.data["phase"] == "enter"]
    assert len(starts) == 5  # base + canary + main + 2 workers


def test_rust_reactor_runs_initialize_then_main(tmp_path):
    with Proxy.from_yaml(plugin_yaml(W / "sdk_rust.wasm"), workers=1) as p:
        names = [e.name for e in p.trace if e.kind == "callback" and e.data["phase"] == "enter"][:2]
    assert names == ["_initialize", "main"]


@pytest.mark.parametrize(
    ("fixture", "words"),
    [
        ("not_wasm", "Wasm VM failed Failed to parse corrupted Wasm module"),
        ("no_marker", "Wasm VM failed Missing or unknown Proxy-Wasm ABI version"),
        ("unknown_import", "Failed to load Wasm module due to a missing import: env.proxy_no_such_call"),
        ("no_allocator", "Wasm VM failed Wasm module is missing malloc function."),
        (
            "abi_010_three_args",
            "Bad function signature for: proxy_on_request_headers, want: i32 i32 -> i32, "
            "but the module exports: i32 i32 i32 -> i32",
        ),
    ],
)
def test_bad_modules_are_refused_in_envoys_words(tmp_path, fixture, words):
    path = tmp_path / "bad.yaml"
    path.write_text(plugin_yaml(W / f"{fixture}.wasm"))
    with pytest.raises(ConfigError) as e:
        Proxy.from_yaml(path)
    msg = str(e.value)
    assert words in msg
    assert str(path) in msg and "http_filters[0].typed_config.config.vm_config.code" in msg
    assert f"{fixture}.wasm" in msg and "Unable to create Wasm plugin p" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("fixture", "words", "why"),
    [
        ("vm_start_false", "Wasm VM failed Failed to start base Wasm", "proxy_on_vm_start returned false"),
        ("configure_false", "Wasm VM failed Failed to configure base Wasm plugin", "proxy_on_configure returned false"),
        ("trap_in_configure", "Wasm VM failed Failed to configure base Wasm plugin", "trapped"),
    ],
)
def test_refusing_to_start_fails_the_proxy_in_envoys_words(tmp_path, fixture, words, why):
    path = tmp_path / "bad.yaml"
    path.write_text(plugin_yaml(W / f"{fixture}.wasm"))
    with pytest.raises(StartupError) as e:
        Proxy.from_yaml(path)
    msg = str(e.value)
    assert words in msg and why in msg and f"{fixture}.wasm" in msg and str(path) in msg


@pytest.mark.envoy
@pytest.mark.parametrize("fixture", ["no_marker", "unknown_import", "no_allocator", "vm_start_false"])
def test_real_envoy_refuses_the_same_modules(envoy_bin, tmp_path, fixture):
    path = tmp_path / "bad.yaml"
    path.write_text(plugin_yaml(W / f"{fixture}.wasm"))
    with pytest.raises(EnvoyFailed, match="Unable to create Wasm plugin p"):
        real.run(path)


def test_trap_logs_envoys_lines_with_the_wasm_backtrace(tmp_path):
    with Proxy.from_yaml(plugin_yaml(W / "trap_in_request_headers.wasm"), workers=1) as p:
        assert p.request("GET", "/trap").status == 503
        logs = p.logs
        trap = p.trace.filter(kind="trap")[0]
    line = next(ln for ln in logs if "Function: proxy_on_request_headers failed" in ln)
    assert line.startswith(
        "[error][wasm] Function: proxy_on_request_headers failed: Uncaught RuntimeError: unreachable"
    )
    assert "\nProxy-Wasm plugin in-VM backtrace:\n  0:  0x" in line
    assert "- crash" in line and "- on_request_headers" in line
    assert trap.args["message"] == "Uncaught RuntimeError: unreachable"


@pytest.mark.envoy
@pytest.mark.parametrize("policy", [None, "FAIL_CLOSED", "FAIL_OPEN"])
def test_failure_policy_after_a_trap_matches_envoy(envoy_bin, tmp_path, policy):
    path = tmp_path / "trap.yaml"
    path.write_text(plugin_yaml(W / "trap_in_request_headers.wasm", failure_policy=policy))
    reqs = [{"method": "GET", "path": p} for p in ("/ok", "/trap", "/ok", "/ok")]
    ours, theirs, lines = run_both(path, reqs, compare_threads=("worker_0",))
    assert_same_run(ours, theirs, lines)
    expected = [200, 503, 200, 200] if policy == "FAIL_OPEN" else [200, 503, 503, 503]
    assert [r.status for r in ours] == expected
    assert ours[1].body == b"" and ours[1].details == "wasm_fail_stream"


def test_fail_reload_rebuilds_the_vm_after_the_backoff(tmp_path):
    text = plugin_yaml(
        W / "trap_in_request_headers.wasm",
        failure_policy="FAIL_RELOAD",
        extra_plugin={"reload_config": {"backoff": {"base_interval": "0.3s"}}},
    )
    with Proxy.from_yaml(text, workers=1) as p:
        statuses = [p.request("GET", path).status for path in ("/ok", "/trap", "/ok")]
        time.sleep(0.35)
        statuses.append(p.request("GET", "/ok").status)
        stats = p.stats()
        reloads = p.trace.filter(kind="vm", name="reload")
    assert statuses == [200, 503, 503, 200]
    assert stats["wasm.p.vm_reload_backoff"] == 1 and stats["wasm.p.vm_reload_success"] == 1
    assert len(reloads) == 1


def test_a_trap_fails_only_its_own_worker(tmp_path):
    with Proxy.from_yaml(plugin_yaml(W / "trap_in_request_headers.wasm"), workers=2) as p:
        assert p.request("GET", "/trap", worker=0).status == 503
        assert p.request("GET", "/ok", worker=0).status == 503
        assert [p.request("GET", "/ok", worker=1).status for _ in range(3)] == [200, 200, 200]


def test_an_infinite_loop_becomes_a_trap_within_the_deadline(tmp_path):
    text = plugin_yaml(W / "infinite_loop.wasm")
    with Proxy.from_yaml(text, workers=2, options={"wasm_callback_deadline_s": 0.3}) as p:
        t0 = time.monotonic()
        result: list = []
        t = threading.Thread(target=lambda: result.append(p.request("GET", "/loop", worker=0, timeout=5)))
        t.start()
        # meanwhile the other worker keeps serving
        assert p.request("GET", "/direct", worker=1).status in (200, 503)
        t.join(5)
        elapsed = time.monotonic() - t0
        logs = p.logs
    assert result and result[0].status == 503
    assert elapsed < 2.0
    assert any("callback deadline exceeded" in ln for ln in logs)


def test_memory_cap_stops_a_growing_module(tmp_path):
    wat = """(module
      (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "proxy_abi_version_0_2_1"))
      (func (export "malloc") (param i32) (result i32) (i32.const 1024))
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
        unreachable))"""
    import wasmtime

    (tmp_path / "bomb.wasm").write_bytes(wasmtime.wat2wasm(wat))
    with Proxy.from_yaml(plugin_yaml(tmp_path / "bomb.wasm"), workers=1, options={"wasm_memory_limit_mb": 8}) as p:
        assert p.request("GET", "/x").status == 503
        assert p.request("GET", "/direct").status == 503  # the VM is failed (FAIL_CLOSED)


@pytest.mark.envoy
def test_pause_then_continue_from_a_tick_matches_envoy(envoy_bin, tmp_path):
    path = tmp_path / "pause.yaml"
    path.write_text(plugin_yaml(W / "pause_then_continue.wasm"))
    reqs = [{"method": "GET", "path": "/hello"}, {"method": "POST", "path": "/post", "body": "0123456789"}]
    ours, theirs, lines = run_both(path, reqs, compare_threads=())
    assert_same_run(ours, theirs, lines)
    assert [r.status for r in ours] == [200, 200]


def test_env_abort_is_provided_with_a_warning(tmp_path):
    wat = """(module
      (import "env" "abort" (func $abort (param i32 i32 i32 i32)))
      (memory (export "memory") 1)
      (func (export "proxy_abi_version_0_2_1"))
      (func (export "malloc") (param i32) (result i32) (i32.const 1024))
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (call $abort (i32.const 0) (i32.const 0) (i32.const 3) (i32.const 4)) (i32.const 0)))"""
    import wasmtime

    (tmp_path / "as.wasm").write_bytes(wasmtime.wat2wasm(wat))
    with Proxy.from_yaml(plugin_yaml(tmp_path / "as.wasm"), workers=1) as p:
        assert p.request("GET", "/x").status == 503
        logs = "\n".join(p.logs)
    assert "imports env.abort: wasmlab provides it, but real Envoy 1.40 refuses" in logs
    assert "abort: abort" in logs
