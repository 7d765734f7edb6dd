"""Every Envoy config shipped in the repo passes ``envoy --mode validate`` (wasmlab-only ones and
malformed-on-purpose fixtures excepted), and wasmlab loads every one of them."""

from __future__ import annotations

import pytest

from conftest import ROOT
from wasmlab import load_config
from wasmlab.envoy import validate

pytestmark = pytest.mark.envoy


def shipped_configs() -> list:
    out = []
    for p in sorted((ROOT / "notebooks").rglob("*.yaml")):
        if "wasmlab-only" in p.parts or ".ipynb_checkpoints" in p.parts:
            continue
        out.append(p)
    return out


def test_there_are_configs_to_check():
    assert len(shipped_configs()) >= 5


@pytest.mark.parametrize("path", shipped_configs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_real_envoy_accepts(envoy_bin, path):
    ok, msg = validate(path)
    assert ok, f"{path.relative_to(ROOT)}: {msg}"


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").rglob("*.yaml")), ids=lambda p: str(p.relative_to(ROOT)))
def test_wasmlab_accepts(path):
    load_config(path)


def test_validate_reports_envoys_reason(envoy_bin):
    bad = (ROOT / "notebooks" / "configs" / "hello.yaml").read_text().replace("cluster: backend}", "cluster: nosuch}")
    ok, msg = validate(bad)
    assert not ok
    assert msg == "route: unknown cluster 'nosuch'"


def test_a_port_taken_before_envoy_binds_it_is_tried_again(envoy_bin, monkeypatch):
    """The bridge picks free ports, then Envoy binds them; another process can take one in
    between (it happened in a CI run). The run starts again with fresh ports."""
    import socket

    from helpers import config
    from wasmlab.envoy import bridge

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    real, calls = bridge.free_port, []

    def first_one_taken() -> int:
        calls.append(1)
        return taken.getsockname()[1] if len(calls) == 2 else real()  # the listener's port

    monkeypatch.setattr(bridge, "free_port", first_one_taken)
    try:
        with bridge.run(config()) as run:
            assert run.request("GET", "/").status == 200
            assert taken.getsockname()[1] not in run.listener_ports.values()
    finally:
        taken.close()
