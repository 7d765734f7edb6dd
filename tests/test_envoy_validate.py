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
