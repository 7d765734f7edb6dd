"""Network filters through tcp_proxy: the Wasm network filter's callback order and the bytes that
pass, on wasmlab and on real Envoy 1.40 (a loopback TCP upstream serving the same app)."""

from __future__ import annotations

import time

import pytest

from conftest import CONFIGS
from wasm_diff import envoy_lines, wasmlab_lines
from wasmlab import Proxy
from wasmlab import envoy as real

TCP = CONFIGS / "wasm" / "tcp_logger.yaml"


def conversation(conn) -> list[bytes]:
    got = []
    conn.send(b"hello over tcp\n")
    got.append(conn.recv_exactly(15))
    conn.send(b"x" * 100)
    got.append(conn.recv_exactly(100))
    got.append(conn.close())
    return got


def test_bytes_pass_and_the_tcp_order_is_done_log_delete():
    with Proxy.from_yaml(TCP, workers=1) as p:
        assert conversation(p.connect()) == [b"hello over tcp\n", b"x" * 100, b""]
        time.sleep(0.1)
        names = [e.name for e in p.trace.filter(kind="callback") if e.data["phase"] == "enter" and e.context_id == 2]
        stats = p.stats()
    assert names[-6:] == [
        "proxy_on_upstream_data",
        "proxy_on_upstream_connection_close",
        "proxy_on_downstream_connection_close",
        "proxy_on_done",
        "proxy_on_log",
        "proxy_on_delete",
    ]
    assert stats["wasmcustom.tcp_logger.downstream_bytes"] == stats["wasmcustom.tcp_logger.upstream_bytes"] == 115


def test_custom_tcp_app_and_unknown_listener():
    with Proxy.from_yaml(TCP, workers=1) as p:
        p.upstream("echo", lambda data: data.upper())
        c = p.connect()
        c.send("shout")
        assert c.recv_exactly(5) == b"SHOUT"
        c.close()
        with pytest.raises(KeyError, match="no TCP listener named 'nope'"):
            p.connect("nope")


@pytest.mark.envoy
def test_network_filter_matches_envoy(envoy_bin):
    p = Proxy.from_yaml(TCP, workers=1, component_log_level="wasm:trace")
    e = real.run(TCP, workers=1, component_log_level="wasm:trace")
    try:
        ours = conversation(p.connect())
        theirs = conversation(e.connect())
        time.sleep(0.3)
    finally:
        p.close()
        e.close()
    assert ours == theirs
    mine, env = wasmlab_lines(p, "worker_0"), envoy_lines(e, "worker_0")
    # source.address carries the client's ephemeral port: compare everything else
    strip = lambda lines: [ln.split("127.0.0.1:")[0] for ln in lines]  # noqa: E731
    assert strip(mine) == strip(env)
    e.__exit__(None, None, None)
