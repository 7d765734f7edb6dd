"""Fuzz what a learner types and what a module hands over: the config loader and the pairs decoder.

* The YAML loader (``wasmlab.load_config``: YAML text -> Envoy bootstrap) gets the course's own
  configs mutated line by line and node by node, and random text. It must either load or raise
  the documented :class:`wasmlab.ConfigError` with a one-line message — no other exception, no
  hang (the test's ``timeout`` mark bounds the whole run).
* The pairs decoder (``wasmlab.proxywasm.pairs.decode``) gets valid, truncated, lying and random
  blobs: it answers the pairs or None, never raises, and round-trips what ``encode`` wrote.

Reproducible and bounded: a fixed seed (``derandomize``), no example database, a fixed number of
examples (``WASMLAB_FUZZ_YAML``, default 500; ``WASMLAB_FUZZ_PAIRS``, default 1000).
"""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest
import yaml
from fuzz_stats import STATS, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from conftest import CONFIGS, ROOT
from wasmlab import ConfigError, load_config
from wasmlab.proxywasm import pairs

YAML_EXAMPLES = int(os.environ.get("WASMLAB_FUZZ_YAML", "500"))
PAIRS_EXAMPLES = int(os.environ.get("WASMLAB_FUZZ_PAIRS", "1000"))


# ---- YAML ---------------------------------------------------------------------------------------------
SEEDS = [
    CONFIGS / "hello.yaml",
    CONFIGS / "routing.yaml",
    CONFIGS / "header_mutation.yaml",
    CONFIGS / "local_ratelimit.yaml",
    CONFIGS / "chain_three_kinds.yaml",
    CONFIGS / "lua" / "add_header.yaml",
    CONFIGS / "wasm" / "add_header.yaml",
    CONFIGS / "wasm" / "tcp_logger.yaml",
]


def _seed_text(path: Any) -> str:
    # module paths made absolute: the mutated text is loaded from a string (relative to the cwd)
    return path.read_text().replace("../../../modules/", f"{ROOT}/modules/")


SEED_TEXTS = [_seed_text(p) for p in SEEDS]
SIGNIFICANT = ":-{}[]&*!|>'\"#%@`,? \t\n0123456789"
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 2**32, 2**63, float("inf"), float("nan"), -0.5]),
    st.text(max_size=20),
    st.sampled_from(["", "0s", "1.5s", "-1s", "99999999999s", "type.googleapis.com/x", "*", "~"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def line_mutations(draw: Any) -> str:
    lines = draw(st.sampled_from(SEED_TEXTS)).split("\n")
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "insert", "char", "truncate", "indent"]))
        if op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "insert":
            lines.insert(i, draw(st.text(alphabet=SIGNIFICANT + "abcxyz_", max_size=30)))
        elif op == "char" and lines[i]:
            j = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:j] + draw(st.sampled_from(SIGNIFICANT)) + lines[i][j + 1 :]
        elif op == "truncate":
            lines = lines[: i + 1]
        elif op == "indent":
            lines[i] = draw(st.sampled_from(["", " ", "  ", "\t"])) + lines[i]
    return "\n".join(lines)


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*here, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*here, i))
    return out


SEED_TREES = [yaml.safe_load(t) for t in SEED_TEXTS]


@st.composite
def tree_mutations(draw: Any) -> str:
    """A seed config with one node replaced (or removed) — every type and value in every place."""
    import copy

    tree = copy.deepcopy(draw(st.sampled_from(SEED_TREES)))
    path = draw(st.sampled_from(_paths(tree)[1:]))
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(VALUES)
    return yaml.safe_dump(tree)


YAML_DOCS = st.one_of(line_mutations(), tree_mutations(), st.text(max_size=200))


@pytest.mark.timeout(600)
@fuzz_settings(YAML_EXAMPLES)
@given(text=YAML_DOCS)
def test_yaml_loader_fuzz(text: str) -> None:
    STATS.yaml_docs += 1
    with STATS.timed():
        try:
            load_config(text)
        except ConfigError as e:
            message = str(e)
            assert message and "\n" not in message.strip(), repr(message)
        except Exception as e:  # anything else escaped the loader
            STATS.escaped += 1
            raise AssertionError(f"{type(e).__name__} escaped load_config: {e}") from e


# ---- pairs ------------------------------------------------------------------------------------------------
PAIRS = st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=20)), max_size=12)


@st.composite
def blobs(draw: Any) -> bytes:
    data = pairs.encode(draw(PAIRS))
    kind = draw(st.sampled_from(["valid", "truncated", "lying", "extended", "random", "flipped"]))
    if kind == "truncated" and data:
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "lying":
        return struct.pack("<I", draw(st.integers(0, 2**32 - 1))) + data[4:]
    if kind == "extended":
        return data + draw(st.binary(min_size=1, max_size=8))
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "flipped" and data:
        i = draw(st.integers(0, len(data) - 1))
        return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
    return data


@fuzz_settings(PAIRS_EXAMPLES)
@given(blob=blobs())
def test_pairs_decoder_fuzz(blob: bytes) -> None:
    STATS.pairs_blobs += 1
    with STATS.timed():
        try:
            out = pairs.decode(blob)
        except Exception as e:
            STATS.escaped += 1
            raise AssertionError(f"{type(e).__name__} escaped pairs.decode") from e
    assert out is None or all(isinstance(k, str) and isinstance(v, str) for k, v in out)
    if out is not None and out:
        assert pairs.encode(out) == blob  # what decodes is exactly one encoding


@fuzz_settings(max(100, PAIRS_EXAMPLES // 5))
@given(items=PAIRS)
def test_pairs_round_trip(items: list[tuple[bytes, bytes]]) -> None:
    blob = pairs.encode(items)
    assert pairs.decode(blob) == [(k.decode("latin-1"), v.decode("latin-1")) for k, v in items]
    if blob:
        assert pairs.decode(blob[:-1]) is None  # every proper prefix is malformed


def test_a_control_character_is_a_config_error_with_its_line():
    """Found by the fuzzer: PyYAML's reader error spans two lines and names no line."""
    with pytest.raises(ConfigError) as e:
        load_config("static_resources:\n  listeners: []\n  clusters: [\x1f]\n")
    assert str(e.value) == (
        "<string>:3: YAML syntax error: unacceptable character #x001f "
        "(YAML allows no control characters other than tab, CR and LF)"
    )
