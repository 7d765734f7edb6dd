"""The teaching modules (modules/) and WAT fixtures (tests/fixtures/wasm/) build reproducibly and
behave on real Envoy as ENVOY_OBSERVED.md records (checks live in tests/fixtures/wasm/observe_envoy.py)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from conftest import FIXTURES, need

WASM = FIXTURES / "wasm"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"wasm_fixtures_{name}", WASM / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_fixture_wasm_files_match_their_wat() -> None:
    assert _load("build").build(check=True) == []


def test_modules_rebuild_byte_for_byte() -> None:
    try:
        import ziglang  # noqa: F401
    except ImportError:
        need(False, "ziglang (pip install 'ziglang==0.17.1')")
    from wasmlab.modules import build_modules

    assert build_modules(check=True, verbose=False) == 0


ENVOY_SCENARIOS = [
    "validate_configs",
    "hello",
    "add_header",
    "body_rewrite",
    "rate_limiter",
    "stats_service",
    "http_auth",
    "tcp_logger",
    "cpu_burn",
    "sdk_fixtures",
    "log_levels",
    "pause_then_continue",
    "traps",
    "bad_modules",
]


@pytest.mark.envoy
@pytest.mark.slow
@pytest.mark.parametrize("scenario", ENVOY_SCENARIOS)
def test_on_real_envoy(scenario: str, envoy_bin: str, tmp_path) -> None:
    obs = _load("observe_envoy")
    obs.RUN.out = tmp_path
    obs.RUN.current = scenario
    obs.RESULTS.clear()
    obs.SCENARIOS[scenario]()
    failed = [f"{name}: {detail}" for _, name, ok, detail in obs.RESULTS if not ok]
    assert obs.RESULTS and not failed, failed
