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
    # the floor of this design: the add_header module makes 2 guest calls (request and response
    # headers) and 2 host calls (one add each) per request, counted exactly
    floor = out["floor"]
    assert floor["target_figure"] == "wasm.added_us_per_request.wasmlab" and floor["target_us"] == 10.0
    parts = floor["parts_us"]
    assert any(k.startswith("2 guest calls x ") for k in parts), parts
    assert any(k.startswith("2 host calls x ") for k in parts), parts
    assert all(v > 0 for v in parts.values())
    assert floor["floor_us"] == pytest.approx(sum(parts.values()))
    # the same work where it runs: a skeleton filter side by side, its steps timed in context
    ctx = out["in_context"]
    assert ctx["target_us"] == 10.0 and ctx["copies"] == 1
    assert ctx["steps_us"]["the 2 header guest calls, with their host calls"] > 0
    assert ctx["steps_us"]["a stream context (made, registered)"] > 0


def test_floor_counts_calls_of_the_named_functions_only():
    from wasmlab.bench import floor

    stats = [
        {
            ("/x/wasmlab/proxywasm/vm.py", 1, "invoke"): (6, 6, 0.0, 0.0, {}),
            ("/x/wasmlab/proxywasm/vm.py", 2, "call"): (9, 9, 0.0, 0.0, {}),
            ("/x/other/proxywasm/vm2.py", 3, "invoke"): (9, 9, 0.0, 0.0, {}),
        },
        {("/x/wasmlab/proxywasm/vm.py", 1, "invoke"): (2, 2, 0.0, 0.0, {})},
    ]
    assert floor.count_calls(stats, 2, "proxywasm/vm.py", ("invoke",)) == 4.0
    generated = [
        {
            ("/x/wasmlab/proxywasm/hostcalls/<host call 5-1>", 1, "cb"): (3, 3, 0.0, 0.0, {}),
            ("/x/wasmlab/proxywasm/hostcalls/<host call 2-0>", 1, "cb"): (1, 1, 0.0, 0.0, {}),
            ("/x/wasmlab/proxywasm/hostcalls/http.py", 1, "cb"): (5, 5, 0.0, 0.0, {}),
            ("/x/wasmlab/proxywasm/<host call 1-1>", 1, "cb"): (7, 7, 0.0, 0.0, {}),
        }
    ]
    assert floor.count_calls(generated, 2, "proxywasm/hostcalls/<host call*", ("cb",)) == 2.0


def test_floor_verdict_says_whether_the_target_is_out_of_reach():
    from wasmlab.bench.floor import Floor

    over = Floor("noop", [("a", 1.0), ("b", 1.0)], 1.5, 4.0).lines()
    assert "out of reach" in over[-1] and "2.00 us > the target 1.5 us" in over[-1]
    under = Floor("lua", [("a", 3.0)], 8.0, 20.0).lines()
    assert "under the target 8 us" in under[-1] and "17.00 us is glue" in under[-1]
    assert Floor("wasm", [], 10.0, 1.0).to_dict()["target_figure"] == "wasm.added_us_per_request.wasmlab"


@pytest.mark.parametrize("kind", ["noop", "wasm", "lua"])
@pytest.mark.parametrize("timed", [False, True])
def test_a_skeleton_does_the_filters_visible_work(kind, timed, monkeypatch):
    """The skeleton (bench/skeleton.py) skips what makes the filter Envoy's, not what the bench's
    request shows: the chain runs it (not the real filter), and the request and the response get
    the same status, body and added headers as with the real filter."""
    from wasmlab.bench import skeleton
    from wasmlab.bench.core import direct_config, filter_for
    from wasmlab.host.proxy import Proxy

    cls = skeleton._SKELETONS[kind][1 if timed else 0]
    seen: list[tuple[str | None, str | None]] = []
    decode, encode = cls.decode_headers, cls.encode_headers

    def spy_decode(self, headers, end_stream):  # what the request headers hold after the skeleton
        status = decode(self, headers, end_stream)
        seen.append(("request", headers.get("x-a")))
        return status

    def spy_encode(self, headers, end_stream):
        status = encode(self, headers, end_stream)
        seen.append(("response", headers.get("x-b")))
        return status

    monkeypatch.setattr(cls, "decode_headers", spy_decode)
    monkeypatch.setattr(cls, "encode_headers", spy_encode)
    text = direct_config(filter_for(kind))
    with Proxy.from_yaml(text, workers=1, trace=False) as real, Proxy.from_yaml(text, workers=1, trace=False) as skel:
        skeleton._with_skeletons(skel, kind, timed=timed)
        ours, theirs = skel.request("GET", "/x"), real.request("GET", "/x")
    skeleton._steps.clear()
    expected = (None, None) if kind == "noop" else ("1", "2")  # the bench's add-header config
    assert seen == [("request", expected[0]), ("response", expected[1])]
    assert (ours.status, ours.body) == (theirs.status, theirs.body) == (200, b"direct hello\n")
    assert ours.headers.get("x-b") == theirs.headers.get("x-b") == expected[1]


def test_in_context_figures_are_per_filter_and_the_verdict_compares_the_skeleton():
    from wasmlab.bench.skeleton import InContext, per_filter

    assert per_filter([50.0, 60.0], [34.0, 36.0], 8) == [2.0, 3.0]
    over = InContext("wasm", 10.0, 35.0, [20.0, 22.0, 21.0], [12.0, 13.0, 14.0], {"guest calls": 7.0}).lines()
    assert "the skeleton adds 13.00 us, over the target 10 us" in over[-1]
    assert "beyond it (8.00 us" in over[-1] and "out of reach" not in over[-1]
    under = InContext("noop", 1.5, 35.0, [2.0, 2.2], [1.0, 1.2], {}, copies=8)
    assert "<= the target 1.5 us" in under.lines()[-1] and "average per filter of 8" in under.lines()[0]
    assert under.to_dict()["copies"] == 8
