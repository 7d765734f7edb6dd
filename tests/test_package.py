"""``wasmlab package``: the OCI image layout a registry client (skopeo, oras) would accept —
media types, sha256 digests and sizes of every blob, the Wasm artifact's config and one layer."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import CONFIGS
from wasmlab.cli import main
from wasmlab.package import package_oci, read_wasm

MODULE = CONFIGS.parent.parent / "modules" / "add_header.wasm"


def _blob(root: Path, desc: dict) -> bytes:
    """Read a blob the way skopeo's oci: transport does: by digest, verified, size checked."""
    algo, hexd = desc["digest"].split(":")
    assert algo == "sha256" and len(hexd) == 64
    data = (root / "blobs" / algo / hexd).read_bytes()
    assert hashlib.sha256(data).hexdigest() == hexd, desc
    assert len(data) == desc["size"], desc
    return data


def test_cli_writes_a_wasm_oci_artifact_in_an_image_layout(tmp_path, capsys):
    out = tmp_path / "layout"
    assert main(["package", str(MODULE), "--oci", str(out), "--tag", "v1"]) == 0
    assert "manifest sha256:" in capsys.readouterr().out
    assert json.loads((out / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((out / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    [entry] = index["manifests"]
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "v1"}
    manifest = json.loads(_blob(out, entry))
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == entry["mediaType"]
    assert manifest["config"]["mediaType"] == "application/vnd.wasm.config.v0+json"
    config = json.loads(_blob(out, manifest["config"]))
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/wasm"
    assert _blob(out, layer) == MODULE.read_bytes()
    assert layer["annotations"]["org.opencontainers.image.title"] == "add_header.wasm"
    assert config["architecture"] == "wasm" and config["os"] == "wasip1"
    assert config["layerDigests"] == [layer["digest"]]
    # every file under blobs/ is named by its own digest, and nothing else is there
    names = {p.name for p in (out / "blobs" / "sha256").iterdir()}
    assert names == {d["digest"].split(":")[1] for d in (entry, manifest["config"], layer)}


def test_layout_is_repeatable_and_read_back_verified(tmp_path):
    a = package_oci(MODULE, tmp_path / "a", created="2026-01-01T00:00:00Z")
    b = package_oci(MODULE, tmp_path / "b", created="2026-01-01T00:00:00Z")
    assert a == b  # same bytes, same manifest digest: a pinned image@sha256 stays valid
    assert read_wasm(tmp_path / "a") == MODULE.read_bytes()
    # one flipped byte in the layer: the digest no longer matches, the reader refuses it
    layer = tmp_path / "a" / "blobs" / "sha256" / hashlib.sha256(MODULE.read_bytes()).hexdigest()
    data = bytearray(layer.read_bytes())
    data[-1] ^= 1
    layer.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match its digest"):
        read_wasm(tmp_path / "a")


def test_refuses_a_file_that_is_not_wasm(tmp_path):
    bad = tmp_path / "x.wasm"
    bad.write_bytes(b"not wasm")
    with pytest.raises(ValueError, match="not a WebAssembly binary"):
        package_oci(bad, tmp_path / "out")
    assert main(["package", str(bad), "--oci", str(tmp_path / "out")]) == 2
