"""The fast Wasm call path gives exactly what the normal path gives, on every module we ship."""

from __future__ import annotations

import json

import pytest
import wasmtime

from conftest import CONFIGS, FIXTURES
from wasm_diff import _wall_clock_normalized, plugin_yaml
from wasmlab import Proxy, Response, cli
from wasmlab.proxywasm import callseam, fastpath

MODULE_CONFIGS = sorted(p for p in (CONFIGS / "wasm").glob("*.yaml") if p.stem != "tcp_logger")
REQUESTS = [
    {"method": "GET", "path": "/hello", "headers": {"authorization": "Bearer good"}},
    {"method": "POST", "path": "/post", "body": "hello world, hello!"},
    {"method": "GET", "path": "/direct"},
    {"method": "GET", "path": "/trap"},
    {"method": "GET", "path": "/ok"},
]


def auth(req):
    ok = req.headers.get("authorization") == "Bearer good"
    return Response(200 if ok else 403, {}, b"")


def run(config, path: str) -> tuple[list, dict[str, list[str]]]:
    # the service's 1 s tick must not land at different moments in the two runs
    clock = "virtual" if "stats_service" in str(config) else "real"
    with Proxy.from_yaml(
        config, workers=1, clock=clock, options={"wasm_call_path": path}, component_log_level="wasm:trace"
    ) as p:
        if "auth" in p.config.clusters:
            p.upstream("auth", auth)
        out = []
        for kw in REQUESTS:
            r = p.request(**kw)
            body = r.body
            try:
                d = json.loads(body)
                if isinstance(d, dict) and "headers" in d:
                    d["headers"] = [h for h in d["headers"] if h[0] != "x-request-id"]
                body = d
            except ValueError:
                pass
            out.append(
                (r.status, [h for h in r.headers if h[0] not in ("date", "x-envoy-upstream-service-time")], body)
            )
        p.wait_idle()
    prefixes = ("[host", "[vm", "wasm log")
    trace = p.trace
    per_thread = {t: [ln for ln in trace.envoy_lines(t) if ln.startswith(prefixes)] for t in ("main", "worker_0")}
    # How many queued messages one proxy_on_queue_ready drains depends on when the main thread
    # wakes relative to the worker's enqueues (in Envoy too), so on the main thread only what the
    # module logs — the dequeued messages, in FIFO order — has to match call for call.
    per_thread["main"] = [ln for ln in per_thread["main"] if ln.startswith("wasm log")]
    return out, per_thread


def test_fast_path_is_available_here():
    ok, why = fastpath.available()
    assert ok, why
    seam, _ = callseam.seam("auto")
    assert seam.name == "fast"


@pytest.mark.parametrize(
    "config",
    [*MODULE_CONFIGS, "trap", "sdk_go", "sdk_rust", "abi_010"],
    ids=lambda c: c if isinstance(c, str) else c.stem,
)
def test_identical_results_and_traces(config, tmp_path):
    if isinstance(config, str):
        path = tmp_path / "p.yaml"
        name = "trap_in_request_headers" if config == "trap" else config
        path.write_text(plugin_yaml(FIXTURES / "wasm" / f"{name}.wasm"))
        config = path
    fast = run(config, "fast")
    normal = run(config, "normal")
    assert fast[0] == normal[0]
    for thread in fast[1]:  # a module that logs the wall clock may see the next second
        ours, theirs = _wall_clock_normalized(fast[1][thread], normal[1][thread])
        assert ours == theirs, thread


def test_fast_path_reports_traps_exactly():
    eng = wasmtime.Engine()
    store = wasmtime.Store(eng)
    mod = wasmtime.Module(
        eng, '(module (func (export "f") (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0))))'
    )
    f = fastpath.bind_export(store, wasmtime.Instance(store, mod, []).exports(store)["f"])
    assert f(1) == 1
    with pytest.raises(wasmtime.Trap) as e:
        f(0)
    assert e.value.trap_code == wasmtime.TrapCode.INTEGER_DIVISION_BY_ZERO


@pytest.mark.parametrize("seam", [callseam.NORMAL, callseam.FAST], ids=lambda s: s.name)
def test_text_pair_reads_both_strings_or_none_and_follows_growth(seam):
    assert fastpath.available()[0]  # resolves the C functions the fast memory uses
    eng = wasmtime.Engine()
    store = wasmtime.Store(eng)
    mod = wasmtime.Module(eng, '(module (memory (export "memory") 1) (data (i32.const 8) "x-a\\001"))')
    memory = wasmtime.Instance(store, mod, []).exports(store)["memory"]
    assert isinstance(memory, wasmtime.Memory)
    mem = seam.memory(store, memory)
    assert mem.text_pair(8, 3, 12, 1) == ("x-a", "1")
    assert mem.text_pair(8, 0, 12, 0) == ("", "")
    assert mem.text_pair(8, 3, 65536 - 1, 2) is None  # the value runs past the end
    assert mem.text_pair(65536, 1, 8, 3) is None  # the name does
    memory.grow(store, 1)  # a span in the new page is readable at once (the fast view refreshes)
    assert mem.write(65536, b"late")
    assert mem.text_pair(65536, 4, 8, 3) == ("late", "x-a")


def test_wrong_path_name_is_a_clear_error():
    with pytest.raises(ValueError, match="wasm_call_path must be auto, fast or normal"):
        callseam.seam("turbo")


def test_bench_runs_and_prints_named_figures(capsys):
    assert cli.main(["bench", "--quick", "--only", "call", "--json"]) == 0
    results = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for name in ("call.export.normal_ns", "call.export.fast_ns", "call.host.fast_ns"):
        assert results[name]["value"] > 0 and results[name]["unit"] == "ns"
        assert set(results[name]) == {"name", "value", "unit", "spread"}


def test_bench_filters_of_each_kind_add_the_same_headers():
    """``filter_for(kind)`` measures the same work for every kind: native, Lua and Wasm add the
    same request and response headers."""
    from wasmlab import bench

    seen = {}
    for kind in ("native", "lua", "wasm"):
        with Proxy.from_yaml(bench.direct_config(bench.filter_for(kind)), workers=1) as p:
            seen[kind] = [(k, v) for k, v in p.request("GET", "/").headers if k.startswith("x-")]
    assert seen["native"] == seen["lua"] == seen["wasm"] == [("x-b", "2")]


REQUIRED_BENCH_NAMES = [
    "call.export.normal_ns",
    "call.export.fast_ns",
    "call.host.fast_ns",
    "wasm.added_us_per_request.wasmlab",
    "wasm.added_us_per_request.envoy",
    "lua.added_us_per_request.wasmlab",
    "lua.added_us_per_request.envoy",
    "request.direct.many_rps_1worker",
    "request.native.added_cpu_us",
    "request.native.added_cpu_us_per_filter_of_8",
    "request.wasm.cpu_us_per_request.wasmlab",
    "start.4workers_3plugins_s",
    "scaling.cpu_heavy_wasm.2v1",
    "memory.rss_growth_100k_pct",
    "bench.quick_s",
]


@pytest.mark.envoy
@pytest.mark.slow
def test_bench_vs_envoy_reports_every_named_figure_once(envoy_bin, capsys):
    """The whole ``wasmlab bench --vs-envoy --json`` (quick rounds): one JSON list, each name
    once, every figure a finite number, and the names the performance issue asks for."""
    import math
    import shutil

    from conftest import need

    need(shutil.which("wrk") is not None, "wrk (apt-get install wrk)")
    assert cli.main(["bench", "--quick", "--vs-envoy", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in results]
    assert len(names) == len(set(names)), "a figure is reported twice"
    assert all(math.isfinite(r["value"]) and math.isfinite(r["spread"]) for r in results)
    missing = [n for n in REQUIRED_BENCH_NAMES if n not in names]
    assert not missing
    by = {r["name"]: r for r in results}
    assert by["wasm.added_us_per_request.envoy"]["unit"] == "us"
    assert by["request.direct.many_rps_1worker"]["value"] > 0
