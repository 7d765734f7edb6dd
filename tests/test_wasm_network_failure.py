"""The Wasm network filter follows the plugin's failure policy when its guest traps (the guard it
shares with the HTTP filter, ``filters/wasm/guard.py``): the trapping connection is closed;
FAIL_CLOSED closes the next connection on the failed VM too, FAIL_OPEN lets its bytes through."""

from __future__ import annotations

from typing import Any

import pytest
import wasmtime

from conftest import CONFIGS
from wasmlab import Proxy
from wasmlab import envoy as real

# a network filter whose proxy_on_downstream_data traps
TRAP_WAT = """(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_new_connection") (param i32) (result i32) (i32.const 0))
  (func (export "proxy_on_downstream_data") (param i32 i32 i32) (result i32) unreachable))"""


def _config(tmp_path, policy: str | None) -> str:
    (tmp_path / "trap.wasm").write_bytes(wasmtime.wat2wasm(TRAP_WAT))
    text = (CONFIGS / "wasm" / "tcp_logger.yaml").read_text()
    text = text.replace("../../../modules/tcp_logger.wasm", str(tmp_path / "trap.wasm"))
    if policy is not None:
        text = text.replace(
            "            root_id: tcp_logger\n",
            f"            root_id: tcp_logger\n            failure_policy: {policy}\n",
        )
    return text


@pytest.mark.parametrize("policy", [None, "FAIL_CLOSED"])
def test_a_trap_closes_the_connection_and_fails_the_next_one(tmp_path, policy):
    with Proxy.from_yaml(_config(tmp_path, policy), workers=1) as p:
        first = p.connect()
        first.send(b"hello")
        assert first.recv(timeout=2) == b"" and first.closed
        second = p.connect()
        assert second.recv(timeout=2) == b"" and second.closed
        traps = p.trace.filter(kind="trap")
    assert [t.name for t in traps] == ["proxy_on_downstream_data"]


def test_fail_open_closes_the_trapping_connection_and_lets_the_next_ones_through(tmp_path):
    """As Envoy 1.40 (tests/test_fault_matrix.py compares it): the connection whose callback
    trapped is closed under every policy; FAIL_OPEN lets later connections through."""
    with Proxy.from_yaml(_config(tmp_path, "FAIL_OPEN"), workers=1) as p:
        first = p.connect()
        first.send(b"hello")
        assert first.recv(timeout=2) == b"" and first.closed
        c = p.connect()
        c.send(b"hello")
        assert c.recv_exactly(5, timeout=2) == b"hello"
        c.send(b"again")
        assert c.recv_exactly(5, timeout=2) == b"again"
        c.close()


# proxy_on_downstream_data traps from its second call on (address 800 is a free flag)
SECOND_TRAPS_WAT = """(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_new_connection") (param i32) (result i32) (i32.const 0))
  (func (export "proxy_on_downstream_data") (param i32 i32 i32) (result i32)
    (if (i32.load (i32.const 800)) (then unreachable))
    (i32.store (i32.const 800) (i32.const 1))
    (i32.const 0)))"""


def test_a_connection_open_across_a_trap_is_closed_by_the_released_vm(tmp_path):
    """A connection that began before the trap meets the failed VM at its next bytes, even once
    the VM's Store was freed (the third connection found it failed): FAIL_CLOSED closes it
    instead of letting the bytes through as if the module exported no data callback."""
    text = _config(tmp_path, "FAIL_CLOSED")
    (tmp_path / "trap.wasm").write_bytes(wasmtime.wat2wasm(SECOND_TRAPS_WAT))
    with Proxy.from_yaml(text, workers=1) as p:
        _across_a_trap(p)
        traps = p.trace.filter(kind="trap")
    assert [t.name for t in traps] == ["proxy_on_downstream_data"]


@pytest.mark.envoy
def test_a_connection_open_across_a_trap_is_closed_on_envoy_too(envoy_bin, tmp_path):
    text = _config(tmp_path, "FAIL_CLOSED")
    (tmp_path / "trap.wasm").write_bytes(wasmtime.wat2wasm(SECOND_TRAPS_WAT))
    with real.run(text, workers=1) as e:
        _across_a_trap(e)
        traps = [ln for ln in e.log_lines() if "Function: proxy_on_downstream_data failed" in ln.message]
    assert len(traps) == 1, "real Envoy ran the module and trapped once"


def _across_a_trap(p: Any) -> None:
    first = p.connect()
    first.send(b"hello")
    assert first.recv_exactly(5, timeout=2) == b"hello"
    second = p.connect()
    second.send(b"hello")
    assert second.recv(timeout=2) == b"" and second.closed
    third = p.connect()
    assert third.recv(timeout=2) == b"" and third.closed
    first.send(b"again")
    assert first.recv(timeout=2) == b"" and first.closed
