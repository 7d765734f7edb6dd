"""``wasmlab bench --profile KIND``: one request's CPU split into named items that add up to the
measured total (figures are printed, never asserted: only the table's shape is checked)."""

from __future__ import annotations

import json

import pytest

from wasmlab import bench_profile, cli


def test_functions_are_charged_to_the_items_the_table_names():
    assert bench_profile.item_of("host/filter_manager.py:_call") == "filter chain: walk"
    assert bench_profile.item_of("host/filter_manager.py:__init__") == "filter chain: create / release"
    assert bench_profile.item_of("trace/recorder.py:emit") == "trace records"
    assert bench_profile.item_of("proxywasm/<guest call 3-1>:call") == "Wasm: guest calls (crossing + guest code)"
    assert bench_profile.item_of("proxywasm/hostcalls/http.py:_write_header") == "Wasm: host calls"
    assert bench_profile.item_of("http/headers.py:add") == "header maps"
    assert bench_profile.item_of("somewhere.py:else") == "other"


def test_an_unknown_kind_is_a_clear_error(capsys):
    assert cli.main(["bench", "--profile", "turbo"]) == 2
    err = capsys.readouterr().err
    assert "unknown --profile kind 'turbo'" in err and "wasm-traced" in err


@pytest.mark.slow
def test_the_profile_of_a_wasm_request_adds_up_to_its_measured_cpu(capsys):
    assert cli.main(["bench", "--profile", "wasm", "--quick", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "wasm" and out["total_us"] > 0
    items = out["items"]
    assert "Wasm: guest calls (crossing + guest code)" in items and "filter chain: walk" in items
    assert sum(items.values()) == pytest.approx(out["total_us"], rel=0.05)
    assert out["added_us"] == pytest.approx(out["total_us"] - out["direct_us"])
