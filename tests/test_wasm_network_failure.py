"""The Wasm network filter follows the plugin's failure policy when its guest traps (the guard it
shares with the HTTP filter, ``filters/wasm/guard.py``): the trapping connection is closed;
FAIL_CLOSED closes the next connection on the failed VM too, FAIL_OPEN lets its bytes through."""

from __future__ import annotations

import pytest
import wasmtime

from conftest import CONFIGS
from wasmlab import Proxy

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
