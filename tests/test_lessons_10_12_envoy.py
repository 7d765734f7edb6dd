"""Lessons 06 and 10 against real Envoy 1.40: the access logger module, one chain of three kinds
(native header_mutation, Lua, Wasm with a stop and a continue) and the two-module VM layout give
the same observable results in wasmlab and in Envoy."""

from __future__ import annotations

import re
import time

import pytest

from conftest import CONFIGS
from wasmlab import Proxy
from wasmlab import envoy as real
from wasmlab.host.grpc_app import GRPC_PERMISSION_DENIED, GrpcError, grpc_unary_app, pb_string, pb_strings

WASM = CONFIGS / "wasm"


def _access_lines(logs: list[str]) -> list[str]:
    """The module's own lines."""
    return [m.group(0) for line in logs if (m := re.search(r"access: .*", line))]


@pytest.mark.envoy
def test_access_logger_sees_every_stream_after_its_response_like_envoy(envoy_bin):
    paths = ["/a", "/direct", "/b/c?q=1"]
    with Proxy.from_yaml(WASM / "access_logger.yaml", workers=1) as p:
        mine = [p.request("GET", path).status for path in paths]
        p.wait_idle()
        mine_lines, mine_stats = _access_lines(p.logs), p.stats()
    with real.run(WASM / "access_logger.yaml", workers=1) as e:
        env = [e.request("GET", path).status for path in paths]
        time.sleep(0.3)
        env_lines, env_stats = _access_lines(e.logs), e.stats()
    assert mine == env == [200, 200, 200]
    assert mine_lines == env_lines
    assert env_lines[1].startswith("access: GET /direct -> 200 (upstream=, ")
    assert mine_stats["wasmcustom.access_logger.logged"] == env_stats["wasmcustom.access_logger.logged"] == 3


@pytest.mark.envoy
def test_one_chain_of_three_kinds_with_a_stop_and_continue_like_envoy(envoy_bin):
    cfg = CONFIGS / "chain_three_kinds.yaml"
    with Proxy.from_yaml(cfg, workers=1) as p:
        r1 = p.request("GET", "/chain")
        mine_pause = [ln.split("pause: ", 1)[1] for ln in p.logs if "pause: " in ln]
    with real.run(cfg, workers=1) as e:
        r2 = e.request("GET", "/chain")
        time.sleep(0.3)
        env_pause = [ln.split("pause: ", 1)[1] for ln in e.logs if "pause: " in ln]
    for r in (r1, r2):
        upstream = dict(map(tuple, r.json()["headers"]))
        assert upstream["x-native"] == "hm" and upstream["x-lua-saw-native"] == "hm"
        assert r.headers.get("x-lua-resp") == "yes" and r.headers.get("x-native-resp") == "hm"
    # the Wasm filter paused the request and its timer resumed it, in both hosts
    assert mine_pause == env_pause
    assert any("-> Pause" in ln for ln in env_pause) and any("continue_stream(0)=0" in ln for ln in env_pause)


@pytest.mark.envoy
def test_two_modules_on_two_workers_create_the_same_vms_as_envoy(envoy_bin):
    names = ("wasm.envoy.wasm.runtime.v8.created", "wasm.envoy.wasm.runtime.v8.active")
    with Proxy.from_yaml(WASM / "two_modules.yaml", workers=2) as p:
        p.request("GET", "/x")
        mine = tuple(p.stats()[n] for n in names)
    with real.run(WASM / "two_modules.yaml", workers=2) as e:
        r = e.request("GET", "/x")
        env = tuple(e.stats()[n] for n in names)
    assert r.status == 200 and r.headers.get("x-b") == "2"
    # 2 modules x (base + canary + main) on main, + 2 modules x 2 workers; the canaries are gone
    assert mine == env == (10, 8)


def _quota(message: bytes) -> bytes:
    user = pb_strings(message).get(1, "")
    if user == "broken":
        raise GrpcError(GRPC_PERMISSION_DENIED, "no quota for you")
    return pb_string(1, "deny" if user == "mallory" else "allow")


QUOTA = grpc_unary_app({"/wasmlab.Quota/Check": _quota})


def _grpc_run(run):
    out = []
    for user in ("alice", "mallory", "broken"):
        r = run(user)
        out.append((r.status, dict(map(tuple, r.json()["headers"])).get("x-quota") if r.status == 200 else None))
    return out


@pytest.mark.envoy
def test_unary_grpc_callout_to_a_python_service_like_envoy(envoy_bin):
    cfg = WASM / "grpc_quota.yaml"
    with Proxy.from_yaml(cfg, workers=1) as p:
        p.upstream("grpc", QUOTA)
        mine = _grpc_run(lambda u: p.request("GET", "/q", headers={"x-user": u}))
        names = [e.name for e in p.trace.filter(kind="callback") if e.data["phase"] == "enter" and "grpc" in e.name]
        mine_logs = [ln.split("grpc_quota: ", 1)[1] for ln in p.logs if "grpc_quota: " in ln]
    with real.run(cfg, workers=1, apps={"grpc": QUOTA}) as e:
        env = _grpc_run(lambda u: e.request("GET", "/q", headers={"x-user": u}))
        time.sleep(0.3)
        env_logs = [ln.split("grpc_quota: ", 1)[1] for ln in e.logs if "grpc_quota: " in ln]
    assert mine == env == [(200, "allow"), (429, None), (503, None)]
    # success -> proxy_on_grpc_receive only; a non-OK grpc-status -> proxy_on_grpc_close only
    assert names == ["proxy_on_grpc_receive", "proxy_on_grpc_receive", "proxy_on_grpc_close"]
    assert mine_logs == env_logs
    assert env_logs[-1].endswith("failed with grpc-status 7")


@pytest.mark.envoy
def test_queue_burn_service_consumes_every_message_like_envoy(envoy_bin):
    """Lesson 07's measured setup: the filter enqueues and continues, the singleton service on
    the main thread processes every message (its counter), in both hosts."""
    cfg = WASM / "queue_burn.yaml"
    with Proxy.from_yaml(cfg, workers=2) as p:
        mine = [p.request("GET", f"/m/{i}").status for i in range(6)]
        p.wait_idle()
        mine_done = p.stats()["wasmcustom.queue_burn.done"]
        deq_threads = {e.thread for e in p.trace.filter(kind="queue", name="dequeue")}
    with real.run(cfg, workers=2) as e:
        env = [e.request("GET", f"/m/{i}").status for i in range(6)]
        deadline = time.time() + 10
        while e.stats().get("wasmcustom.queue_burn.done", 0) < 6 and time.time() < deadline:
            time.sleep(0.1)
        env_done = e.stats().get("wasmcustom.queue_burn.done")
    assert mine == env == [200] * 6
    assert mine_done == env_done == 6
    assert deq_threads == {"main"}


@pytest.mark.envoy
def test_grpc_service_down_is_unavailable_like_envoy(envoy_bin):
    """Lesson 10, question 2: nothing listens on the gRPC cluster -> proxy_on_grpc_close(..., 14)."""
    cfg = WASM / "grpc_quota.yaml"
    with Proxy.from_yaml(cfg, workers=1) as p:
        p.upstream("grpc", None)
        mine = p.request("GET", "/q", headers={"x-user": "a"}).status
        mine_log = [ln for ln in p.logs if "grpc_quota: " in ln][-1]
    with real.run(cfg, workers=1, apps={"grpc": None}) as e:
        env = e.request("GET", "/q", headers={"x-user": "a"}).status
        time.sleep(0.3)
        env_log = [ln for ln in e.logs if "grpc_quota: " in ln][-1]
    assert mine == env == 503
    assert mine_log == env_log and mine_log.endswith("failed with grpc-status 14")
