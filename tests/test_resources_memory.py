"""Memory a learner's module can take outside any cap (issue 14), and the caps now in place.

Envoy bounds none of these (``proxy-wasm-cpp-host`` keeps every shared-data value and queued
item, its log goes to a file): they are wasmlab's own bounds, each a proxy option
(``host/options.py``), each counted in ``proxy.stats()`` and logged once. A shared queue whose
consumer's VM failed used to keep its items for good (4,009 of 5,000 in the reproduction)."""

from __future__ import annotations

import re

import pytest
import wasmtime

from conftest import CONFIGS, ROOT
from helpers import config
from wasm_diff import plugin_yaml
from wasmlab import Proxy

# on each request: shared data key "key-<n>" := 3 MiB, then one 20 KiB proxy_log line (info)
BIG_WAT = r"""
(module
  (import "env" "proxy_set_shared_data" (func $set (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 60)
  (data (i32.const 0) "key-")
  (data (i32.const 65536) "start of a long line")
  (global $n (mut i32) (i32.const 65))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 0))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (i32.store8 (i32.const 4) (global.get $n))
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (drop (call $set (i32.const 0) (i32.const 5) (i32.const 65536) (i32.const 3145728) (i32.const 0)))
    (drop (call $log (i32.const 2) (i32.const 65536) (i32.const 20480)))
    (i32.const 0)))
"""


@pytest.fixture(scope="module")
def big_yaml(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("big") / "big.wasm"
    path.write_bytes(wasmtime.wat2wasm(BIG_WAT))
    return plugin_yaml(path)


# ---- options: checked once, in range --------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("wasm_memory_limit_mb", -1, "proxy option wasm_memory_limit_mb must be an int from 1 to 4096, got -1"),
        ("wasm_memory_limit_mb", 0, "proxy option wasm_memory_limit_mb must be an int from 1 to 4096, got 0"),
        ("wasm_memory_limit_mb", 8192, "must be an int from 1 to 4096, got 8192"),
        ("wasm_memory_limit_mb", "512", "must be an int from 1 to 4096, got '512'"),
        (
            "wasm_callback_deadline_s",
            0,
            "proxy option wasm_callback_deadline_s must be seconds from 0.01 to 3600, got 0",
        ),
        ("wasm_callback_deadline_s", -1.0, "wasm_callback_deadline_s must be seconds from 0.01 to 3600"),
        ("wasm_shared_data_limit_mb", -1, "wasm_shared_data_limit_mb must be an int from 0 to"),
        ("wasm_shared_queue_limit_mb", 1.5, "wasm_shared_queue_limit_mb must be an int from 0 to"),
        ("log_line_limit_kb", True, "log_line_limit_kb must be an int from 0 to"),
        ("log_memory_limit_mb", -5, "log_memory_limit_mb must be an int from 0 to"),
    ],
)
def test_proxy_options_out_of_range_are_refused(name, value, message):
    """``wasm_memory_limit_mb: -1`` silently lifted the cap (wasmtime reads a negative limit as
    none). Envoy has no such field at all (``VmConfig``: vm_id, runtime, code, configuration,
    allow_precompiled, nack_on_code_cache_miss, environment_variables): it is wasmlab's knob, so
    wasmlab says what it takes."""
    with pytest.raises(ValueError, match=re.escape(message)):
        Proxy.from_yaml(config(), workers=1, options={name: value})


# ---- shared data --------------------------------------------------------------------------------
def test_shared_data_over_its_cap_is_refused_and_counted(big_yaml):
    with Proxy.from_yaml(big_yaml, workers=1, options={"wasm_shared_data_limit_mb": 8}) as p:
        assert [p.request("GET", f"/{i}").status for i in range(4)] == [200] * 4
        results = [e.result for e in p.trace if (e.kind, e.name) == ("shared_data", "set")]
        held = p._server.wasm.shared_data.held
        stats, logs = p.stats(), p.logs
    assert results == ["OK", "OK", "BAD_ARGUMENT", "BAD_ARGUMENT"]
    assert held == 2 * (3 * 1024 * 1024 + 5) <= 8 * 1024 * 1024
    assert stats["wasmlab.shared_data.refused"] == 2
    warned = [ln for ln in logs if "shared data is full (" in ln]
    assert len(warned) == 1 and "wasm_shared_data_limit_mb" in warned[0] and "BAD_ARGUMENT" in warned[0]


def test_shared_data_cap_zero_lifts_it(big_yaml):
    with Proxy.from_yaml(big_yaml, workers=1, options={"wasm_shared_data_limit_mb": 0}) as p:
        for i in range(4):
            p.request("GET", f"/{i}")
        assert [e.result for e in p.trace if (e.kind, e.name) == ("shared_data", "set")] == ["OK"] * 4


# ---- logs ---------------------------------------------------------------------------------------
def test_a_long_log_line_is_cut_in_the_logs_and_the_trace(big_yaml):
    with Proxy.from_yaml(big_yaml, workers=1) as p:  # default log_line_limit_kb: 4
        p.request("GET", "/")
        line = next(ln for ln in p.logs if "start of a long line" in ln)
        traced = [e for e in p.trace if "start of a long line" in repr(e.args)]
        stats = p.stats()
    # 20,480 bytes + the 16-character prefix, less 4,096 kept
    assert line.endswith("... [wasmlab cut 16400 characters: log_line_limit_kb]")
    assert len(line) < 4096 + 200
    assert "log" in {e.kind for e in traced} and all(
        len(repr(e.args)) < 4 * (4096 + 100) for e in traced
    )  # \x00 is 4 in a repr
    assert stats["wasmlab.log.lines_cut"] == 1


def test_kept_log_lines_stay_within_their_memory_cap(big_yaml):
    opts = {"log_line_limit_kb": 32, "log_memory_limit_mb": 1, "wasm_shared_data_limit_mb": 0}
    with Proxy.from_yaml(big_yaml, workers=1, trace=False, options=opts) as p:
        for i in range(80):  # 80 lines of 20 KiB: 1.6 MiB
            p.request("GET", f"/{i}")
        kept = p.logs
        stats = p.stats()
    assert sum(len(ln) for ln in kept) <= 1024 * 1024
    assert stats["wasmlab.log.lines_evicted"] > 0
    assert "start of a long line" in kept[-1]  # the newest stay


# ---- shared queues ------------------------------------------------------------------------------
def _queue_burn(iterations: int) -> str:
    text = (CONFIGS / "wasm" / "queue_burn.yaml").read_text()
    text = text.replace("../../../modules/", f"{ROOT / 'modules'}/")
    return re.sub(r'"iterations": *\d+', f'"iterations": {iterations}', text)


def _queue_counts(p: Proxy) -> tuple[int, int, int, int]:
    """From the trace: (items queued, dequeued, dropped at enqueue, dropped from the queue)."""
    enq = deq = dropped_new = dropped_queued = 0
    for e in p.trace:
        if e.kind == "queue":
            if e.name == "enqueue":
                enq += 1
            elif e.name == "dequeue":
                deq += 1
            elif e.name == "drop":
                dropped_new += e.args["new"]
                dropped_queued += e.args["items"] - e.args["new"]
    return enq, deq, dropped_new, dropped_queued


def test_a_queue_whose_consumer_failed_lets_go_of_its_items():
    """The WasmService drains its queue in one callback; flooded, that callback passes the
    deadline, the VM stops, and nothing would ever drain the queue again."""
    with Proxy.from_yaml(_queue_burn(1_000_000), workers=2) as p:  # deadline 1 s: ~1,000 messages
        out = p.request_many([("GET", f"/{i}") for i in range(3000)], timeout=120)
        assert p.wait_idle(30.0)
        depths = p._server.wasm.queues.depths()
        stats, logs = p.stats(), p.logs
        enq, deq, dropped_new, dropped_queued = _queue_counts(p)
    assert [r.status for r in out] == [200] * 3000  # the requests never waited for the service
    assert any("callback deadline exceeded" in ln for ln in logs)
    assert depths[("queue_burn", "work")] == 0  # before: thousands, for good
    assert stats["wasmlab.shared_queue.dropped"] == dropped_new + dropped_queued > 0
    assert enq + dropped_new == 3000  # every record pushed once
    assert deq + dropped_queued == enq  # every queued record received or dropped, none twice
    said = [ln for ln in logs if "nothing drains it" in ln]
    assert len(said) == 1 and "shared queue 'work' of vm_id 'queue_burn': its registrant's VM has failed" in said[0]


def test_a_full_queue_drops_new_items_and_counts_them():
    opts = {"wasm_shared_queue_limit_mb": 1, "wasm_callback_deadline_s": 60}
    long = "/" + "x" * 8000  # one item: 8 KB + 64 bytes; the queue holds about 130
    with Proxy.from_yaml(_queue_burn(3_000_000), workers=2, options=opts) as p:
        out = p.request_many([("GET", f"{long}{i}") for i in range(400)], timeout=120)
        assert p.wait_idle(60.0)
        stats, logs = p.stats(), p.logs
        enq, deq, dropped_new, dropped_queued = _queue_counts(p)
        depths = [e.args["depth"] for e in p.trace if e.kind == "queue" and e.name == "enqueue"]
    assert [r.status for r in out] == [200] * 400
    assert max(depths) * (8005 + 64) <= 1024 * 1024
    assert stats["wasmlab.shared_queue.dropped"] == dropped_new > 0 and dropped_queued == 0
    assert enq + dropped_new == 400 and deq == enq  # every item either queued (and drained) or counted
    assert stats["wasmcustom.queue_burn.done"] == deq
    said = [ln for ln in logs if "it is full" in ln]
    assert len(said) == 1 and "shared queue 'work' of vm_id 'queue_burn': it is full (" in said[0]
    assert "wasm_shared_queue_limit_mb); dropping items (wasmlab's bound, Envoy keeps them" in said[0]
