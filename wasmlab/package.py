"""``wasmlab package MODULE.wasm --oci DIR``: a Wasm module as an OCI image layout on disk.

Registries (Docker Hub, GHCR, Harbor...) store *artifacts*: a manifest that names a config blob
and layer blobs, every blob addressed by the sha256 of its bytes. The Wasm OCI artifact format
(CNCF TAG Runtime; the ``oci-wasm`` crate, ``wkg`` and ``oras`` write it) is:

- manifest: ``application/vnd.oci.image.manifest.v1+json``, ``schemaVersion`` 2;
- config: ``application/vnd.wasm.config.v0+json`` — JSON with ``created``, ``architecture``
  ``"wasm"``, ``os`` ``"wasip1"`` for a core module, and ``layerDigests`` (the layers' digests in
  order, so that two artifacts with different layers never share a config digest);
- one layer: ``application/wasm``, the ``.wasm`` bytes themselves (no tar, no gzip).

An *OCI image layout* (image-spec ``image-layout.md``) is that artifact as files: ``oci-layout``
(``{"imageLayoutVersion": "1.0.0"}``), ``index.json`` (an image index pointing at the manifest,
with the tag in the annotation ``org.opencontainers.image.ref.name``) and every blob under
``blobs/sha256/<hex digest>``. It is what ``oras push --oci-layout`` or
``skopeo copy oci:DIR docker://REGISTRY/NAME:TAG`` would upload — no network here.

Where we simplify: one module per layout (a layout may hold many manifests), no signatures, no
``artifactType``. Istio's image fetcher reads its own variant of the format as well
(lesson 12 says which).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
WASM_CONFIG_MEDIA_TYPE = "application/vnd.wasm.config.v0+json"
WASM_LAYER_MEDIA_TYPE = "application/wasm"
REF_NAME = "org.opencontainers.image.ref.name"
TITLE = "org.opencontainers.image.title"
WASM_MAGIC = b"\x00asm"


@dataclass(frozen=True)
class Descriptor:
    """What a manifest or index says about a blob: its media type, digest and size."""

    media_type: str
    digest: str
    size: int

    def to_json(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def digest(data: bytes) -> str:
    """A content address: ``sha256:`` and the hex SHA-256 of the bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _canonical(obj: object) -> bytes:
    """JSON as the blob's bytes (sorted keys, no spaces): the digest is of exactly these bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _write_blob(root: Path, media_type: str, data: bytes) -> Descriptor:
    d = digest(data)
    path = root / "blobs" / "sha256" / d.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return Descriptor(media_type, d, len(data))


def package_oci(module: str | Path, out: str | Path, tag: str = "latest", created: str | None = None) -> Descriptor:
    """Write ``module`` as a Wasm OCI artifact in the OCI image layout ``out``; return the
    manifest's descriptor (its digest is what ``image@sha256:...`` pins).

    ``created`` (RFC 3339) defaults to now; give it to make the layout byte-for-byte repeatable.
    """
    module, root = Path(module), Path(out)
    wasm = module.read_bytes()
    if wasm[:4] != WASM_MAGIC:
        raise ValueError(f"{module}: not a WebAssembly binary (it does not start with \\0asm)")
    root.mkdir(parents=True, exist_ok=True)
    layer = _write_blob(root, WASM_LAYER_MEDIA_TYPE, wasm)
    config = {
        "created": created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "architecture": "wasm",
        "os": "wasip1",  # a core module (a component would be wasip2)
        "layerDigests": [layer.digest],
    }
    config_desc = _write_blob(root, WASM_CONFIG_MEDIA_TYPE, _canonical(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config_desc.to_json(),
        "layers": [{**layer.to_json(), "annotations": {TITLE: module.name}}],
    }
    manifest_desc = _write_blob(root, MANIFEST_MEDIA_TYPE, _canonical(manifest))
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [{**manifest_desc.to_json(), "annotations": {REF_NAME: tag}}],
    }
    (root / "index.json").write_bytes(_canonical(index))
    (root / "oci-layout").write_bytes(_canonical({"imageLayoutVersion": "1.0.0"}))
    return manifest_desc


def read_wasm(layout: str | Path, tag: str = "latest") -> bytes:
    """The module stored under ``tag`` — what a runtime pulling the image would get — after
    checking every digest and size on the way, as a registry client does."""
    root = Path(layout)

    def blob(desc: dict[str, object]) -> bytes:
        algo, hexd = str(desc["digest"]).split(":", 1)
        data = (root / "blobs" / algo / hexd).read_bytes()
        if digest(data) != desc["digest"] or len(data) != desc["size"]:
            raise ValueError(f"blob {desc['digest']}: content does not match its digest or size")
        return data

    index = json.loads((root / "index.json").read_text())
    entry = next((m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) == tag), None)
    if entry is None:
        raise KeyError(f"{root}: no manifest tagged {tag!r}")
    manifest = json.loads(blob(entry))
    if manifest["config"]["mediaType"] != WASM_CONFIG_MEDIA_TYPE:
        raise ValueError(f"not a Wasm artifact: config media type {manifest['config']['mediaType']}")
    layers = [x for x in manifest["layers"] if x["mediaType"] == WASM_LAYER_MEDIA_TYPE]
    if len(layers) != 1:
        raise ValueError(f"a Wasm artifact has one {WASM_LAYER_MEDIA_TYPE} layer, this one has {len(layers)}")
    return blob(layers[0])
