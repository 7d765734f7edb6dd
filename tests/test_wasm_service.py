"""Proxy-Wasm part 2: WasmService, shared queues and data, timers, callouts, access loggers."""

from __future__ import annotations

import struct
import threading
import time

import pytest
import yaml

from conftest import CONFIGS, FIXTURES
from helpers import UpstreamLog, assert_same_upstreams, recorded_apps
from wasm_diff import envoy_lines, plugin_yaml, wasmlab_lines
from wasmlab import Proxy, Response
from wasmlab import envoy as real

WASM = CONFIGS / "wasm"
W = FIXTURES / "wasm"


def without_ticks(lines: list[str]) -> list[str]:
    out, skipping = [], False
    for ln in lines:
        if ln.startswith("[host->vm] proxy_on_tick("):
            skipping = True
        if not skipping:
            out.append(ln)
        if ln.startswith("[host<-vm] proxy_on_tick return"):
            skipping = False
    return out


def _queue_reads(lines: list[str]) -> int:
    return sum(ln.startswith("[host<-vm] proxy_on_queue_ready") for ln in lines)


def _log_calls(lines: list[str]) -> int:
    return sum(ln.startswith("[host<-vm] proxy_on_log") for ln in lines)


@pytest.mark.envoy
@pytest.mark.parametrize("workers", [1, 2])
def test_service_start_order_and_queue_flow_on_main_match_envoy(envoy_bin, workers):
    cfg = WASM / "stats_service.yaml"
    our_log, their_log = UpstreamLog(), UpstreamLog()
    p = Proxy.from_yaml(cfg, workers=workers, component_log_level="wasm:trace")
    for name, app in recorded_apps(cfg, None, our_log).items():
        p.upstream(name, app)
    e = real.run(cfg, workers=workers, apps=recorded_apps(cfg, None, their_log), component_log_level="wasm:trace")
    try:
        for i in range(4):
            p.request("GET", f"/r/{i}")
            e.request("GET", f"/r/{i}")
            # the service reads the queue on the main thread after the request answered. Wait until
            # both main threads ran this request's proxy_on_queue_ready before the next request: a
            # record enqueued while the service is still draining the last one would be read by
            # that drain (and its own notification find the queue EMPTY) on whichever side is
            # slower at that moment, a race of timing, not a difference between the two hosts
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not (
                _queue_reads(wasmlab_lines(p, "main")) > i and _queue_reads(envoy_lines(e, "main")) > i
            ):
                time.sleep(0.02)
        time.sleep(0.3)
    finally:
        p.close()
        e.close()
    mine, env = without_ticks(wasmlab_lines(p, "main")), without_ticks(envoy_lines(e, "main"))
    e.__exit__(None, None, None)
    assert mine == env
    assert sum(ln == "[host->vm] proxy_on_queue_ready(1, 1)" for ln in mine) == 4
    assert_same_upstreams(our_log, their_log)


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "run"), [(2, 1), (4, 1), (2, 2), (4, 2), (3, 3)])
def test_stress_every_record_dequeued_exactly_once(workers, run):
    n = 1500
    with Proxy.from_yaml(WASM / "stats_service.yaml", workers=workers, clock="virtual") as p:
        rs = p.request_many([("GET", f"/r/{i}") for i in range(n)], concurrency=64, timeout=120)
        assert [r.status for r in rs] == [200] * n
        p.wait_idle()
        p.advance(1.0)  # one tick of the service: it reports what it dequeued
        stats = p.stats()
        trace = p.trace
    assert stats["wasmcustom.stats_service.requests"] == n
    assert stats["wasmcustom.stats_service.responses_2xx"] == n
    enq = trace.filter(kind="queue", name="enqueue")
    deq = trace.filter(kind="queue", name="dequeue")
    assert len(enq) == len(deq) == n
    assert {e.thread for e in enq} == {f"worker_{i}" for i in range(workers)}
    notified = trace.filter(kind="callback", name="proxy_on_queue_ready")
    assert {e.thread for e in notified} == {"main"}


def test_shared_data_cas_is_exact_across_workers(tmp_path):
    text = (WASM / "rate_limiter.yaml").read_text()
    data = yaml.safe_load(text)
    f = data["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]
    f["typed_config"]["config"]["configuration"]["value"] = (
        '{"max_tokens": 100, "tokens_per_fill": 0, "fill_interval_ms": 1000}'
    )
    cfg = tmp_path / "rl.yaml"
    cfg.write_text(yaml.safe_dump(data).replace("../../../modules/", str(CONFIGS.parent.parent / "modules") + "/"))
    with Proxy.from_yaml(cfg, workers=2) as p:
        out: list[int] = []
        lock = threading.Lock()

        def client() -> None:
            for r in p.request_many([("GET", "/x")] * 40, concurrency=8):
                with lock:
                    out.append(r.status)

        threads = [threading.Thread(target=client) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = p.stats()
        sets = p.trace.filter(kind="shared_data", name="set")
    assert sorted(out).count(200) == 100 and out.count(429) == 100
    assert stats["wasmcustom.rate_limiter.allowed"] == 100
    assert stats["wasmcustom.rate_limiter.denied"] == 100
    ok_cas = [e.data["new_cas"] for e in sets if e.result == "OK"]
    assert ok_cas == sorted(ok_cas) and len(set(ok_cas)) == len(ok_cas)  # one process-wide counter
    assert {e.thread for e in sets} >= {"worker_0", "worker_1"}


def test_virtual_clock_gives_exactly_n_ticks_per_thread():
    with Proxy.from_yaml(plugin_yaml(W / "tick_counter.wasm"), workers=2, clock="virtual") as p:
        p.advance(1.0)
        ticks = p.trace.filter(kind="timer", name="tick")
        by_thread = {t: sum(1 for e in ticks if e.thread == t) for t in ("main", "worker_0", "worker_1")}
        p.advance(0.25)
        more = len(p.trace.filter(kind="timer", name="tick")) - len(ticks)
    assert by_thread == {"main": 10, "worker_0": 10, "worker_1": 10}
    assert more == 6
    times = [e.t_ns for e in ticks if e.thread == "worker_0"]
    assert times == [i * 100_000_000 for i in range(1, 11)]


def test_callout_timeouts_fire_on_the_virtual_clock_in_order():
    release = threading.Event()

    def slow_auth(req):
        release.wait(10)
        return Response(200, {}, b"late")

    with Proxy.from_yaml(WASM / "http_auth.yaml", workers=1, clock="virtual") as p:
        p.upstream("auth", slow_auth)
        results: dict[int, int] = {}

        def go(i: int) -> None:
            results[i] = p.request("GET", f"/{i}", headers={"authorization": "Bearer good"}, timeout=10).status

        threads = [threading.Thread(target=go, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
            time.sleep(0.1)
        p.advance(0.999)
        assert results == {}
        p.advance(0.001)
        for t in threads:
            t.join(5)
        release.set()
        calls = p.trace.filter(kind="callback", name="proxy_on_http_call_response")
    assert results == {0: 403, 1: 403, 2: 403}  # the 504 from the timeout means deny
    tokens = [e.args[1] for e in calls if e.data["phase"] == "enter"]
    assert tokens == [4, 8, 12]  # answered in the order they were made


def test_trace_records_queue_timer_and_callout_events_with_their_threads():
    with Proxy.from_yaml(WASM / "stats_service.yaml", workers=2, clock="virtual") as p:
        p.request("GET", "/a", worker=1)
        p.wait_idle()
        p.advance(1.0)
        t = p.trace
    enq = t.filter(kind="queue", name="enqueue")[0]
    notify = t.filter(kind="queue", name="notify")[0]
    deq = t.filter(kind="queue", name="dequeue")[0]
    tick = t.filter(kind="timer", name="tick")[0]
    assert (enq.thread, notify.thread, deq.thread, tick.thread) == ("worker_1", "main", "main", "main")
    assert enq.args["name"] == "stats" and enq.args["vm_id"] == "stats_service"


def grpc_app(req):
    assert req.method == "POST" and req.path == "/pkg.Echo/Say"
    assert req.headers.get("content-type") == "application/grpc"
    n = struct.unpack(">I", req.body[1:5])[0]
    msg = req.body[5 : 5 + n]
    reply = b"pong:" + msg
    return Response(
        200,
        {"content-type": "application/grpc"},
        b"\x00" + struct.pack(">I", len(reply)) + reply,
        trailers=[("grpc-status", "0")],
    )


def _grpc_yaml(trailers: bool) -> str:
    """The grpc_unary plugin with a ``grpc`` cluster; ``grpc-status`` is a trailer, which an
    HTTP/1 cluster passes only with ``enable_trailers``."""
    options = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    tpo = (
        f"    typed_extension_protocol_options: {{{options}: {{'@type': type.googleapis.com/{options}, "
        "explicit_http_config: {http_protocol_options: {enable_trailers: true}}}}\n"
    )
    return plugin_yaml(W / "grpc_unary.wasm").replace(
        "  clusters:\n",
        "  clusters:\n  - name: grpc\n    type: STATIC\n"
        + (tpo if trailers else "")
        + "    load_assignment: {cluster_name: grpc, endpoints: "
        "[{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9000}}}}]}]}\n",
    )


def test_grpc_without_trailers_closes_with_unknown(tmp_path):
    """Without enable_trailers the cluster's HTTP/1 codec drops ``grpc-status``: the call ends
    in proxy_on_grpc_close (status 2, UNKNOWN, as Envoy's gRPC client reports a missing status)."""
    with Proxy.from_yaml(_grpc_yaml(False), workers=1) as p:
        p.upstream("grpc", grpc_app)
        r = p.request("GET", "/x")
        names = [e.name for e in p.trace.filter(kind="callback") if e.data["phase"] == "enter"]
    assert ["x-grpc-reply", "pong:ping"] not in r.json()["headers"]
    assert [n for n in names if "grpc" in n] == ["proxy_on_grpc_close"]


def test_grpc_unary_call_to_an_in_process_app(tmp_path):
    text = _grpc_yaml(True)
    with Proxy.from_yaml(text, workers=1) as p:
        p.upstream("grpc", grpc_app)
        r = p.request("GET", "/x")
        logs = p.logs
        names = [e.name for e in p.trace.filter(kind="callback") if e.data["phase"] == "enter"]
    assert ["x-grpc-reply", "pong:ping"] in r.json()["headers"]
    assert not any("grpc close" in line for line in logs)
    # as in Envoy, a unary call that succeeds gets proxy_on_grpc_receive only (close is for failures)
    assert [n for n in names if "grpc" in n] == ["proxy_on_grpc_receive"]


def test_grpc_streams_are_reported_unimplemented():
    """To a known cluster (an unknown one is PARSE_FAILURE first, as on Envoy)."""
    from types import SimpleNamespace

    from wasmlab.proxywasm.hostcalls import ENV

    names = {0: b"grpc", 8: b"nosuch"}
    vm = SimpleNamespace(
        memory=SimpleNamespace(read=lambda ptr, n: names[ptr]), proxy=SimpleNamespace(clusters={"grpc"})
    )
    code, detail = ENV["proxy_grpc_stream"].fn(vm, 0, 4, 0, 0, 0, 0, 0, 0, 0)
    assert code == 12 and "not supported" in detail["error"]  # UNIMPLEMENTED, documented in the README
    assert ENV["proxy_grpc_stream"].fn(vm, 8, 6, 0, 0, 0, 0, 0, 0, 0)[0] == 4  # PARSE_FAILURE


ACCESS_LOG = """
          access_log:
          - name: envoy.access_loggers.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.wasm.v3.WasmAccessLog
              config:
                name: logger
                root_id: logger_root
                vm_config:
                  vm_id: logger_vm
                  runtime: envoy.wasm.runtime.v8
                  code: {local: {filename: MODULE}}
"""


@pytest.mark.envoy
def test_wasm_access_logger_matches_envoy(envoy_bin, tmp_path):
    base = (CONFIGS / "hello.yaml").read_text()
    module = str(CONFIGS.parent.parent / "modules" / "hello.wasm")
    text = base.replace(
        "          stat_prefix: ingress\n",
        "          stat_prefix: ingress\n" + ACCESS_LOG.replace("MODULE", module).lstrip("\n"),
    )
    cfg = tmp_path / "al.yaml"
    cfg.write_text(text)
    p = Proxy.from_yaml(cfg, workers=1, component_log_level="wasm:trace")
    e = real.run(cfg, workers=1, component_log_level="wasm:trace")
    try:
        for path in ("/direct", "/hello"):
            p.request("GET", path)
            e.request("GET", path)
        # the access log runs after the answer went out: wait for both loggers' two proxy_on_log
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (
            _log_calls(wasmlab_lines(p, "worker_0")) >= 2 and _log_calls(envoy_lines(e, "worker_0")) >= 2
        ):
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        p.close()
        e.close()
    mine, env = wasmlab_lines(p, "worker_0"), envoy_lines(e, "worker_0")
    e.__exit__(None, None, None)
    assert mine == env
    assert sum(ln == "[host->vm] proxy_on_log(1)" for ln in mine) == 2


def test_every_wasm_extension_warns_about_a_runtime_envoy_does_not_have(tmp_path):
    """A WasmService and an HTTP filter (the same module in two roles) both say that
    ``envoy.wasm.runtime.wasmtime`` runs on wasmtime here but would be refused by Envoy 1.40."""
    text = (
        (CONFIGS / "wasm" / "stats_service.yaml")
        .read_text()
        .replace("envoy.wasm.runtime.v8", "envoy.wasm.runtime.wasmtime")
    )
    text = text.replace("../../../modules/", str(CONFIGS.parent.parent / "modules") + "/")
    with Proxy.from_yaml(text, workers=1) as p:
        warnings = [line for line in p.logs if "runs on wasmtime here" in line]
    assert len(warnings) == 2
    assert all(line.startswith("[warning][wasm]") and "real Envoy 1.40 refuses it" in line for line in warnings)
