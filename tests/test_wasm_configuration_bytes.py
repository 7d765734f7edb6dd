"""What a Wasm module receives as its configuration, as Envoy 1.40 hands it over: a ``Struct``
as its protobuf bytes (not JSON), and an empty or absent ``vm_config.runtime`` as Envoy's first
engine (V8). Also: ``wasmlab.envoy.validate`` survives Envoy quoting those bytes in its log."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wasmlab import Proxy
from wasmlab import envoy as real
from wasmlab.config import builder as b
from wasmlab.proxywasm.struct_wire import encode_struct

MODULES = Path(__file__).resolve().parent.parent / "modules"


def _config(module: str, configuration: object, runtime: str | None = "envoy.wasm.runtime.v8") -> str:
    w = b.wasm(str(MODULES / module), configuration=configuration)  # type: ignore[arg-type]
    vm = w["typed_config"]["config"]["vm_config"]
    if runtime is None:
        del vm["runtime"]
    else:
        vm["runtime"] = runtime
    return yaml.safe_dump(
        b.bootstrap(
            [b.http_listener("l0", 10000, routes=[b.route("/", "backend")], http_filters=[w, b.router()])],
            clusters=[b.cluster("backend", 8081)],
        )
    )


def test_a_struct_is_encoded_as_protobuf_does():
    """The bytes protobuf's own serializer gives for these Structs (deterministic order)."""
    assert encode_struct({"a": 1}) == b"\n\x0e\n\x01a\x12\t\x11\x00\x00\x00\x00\x00\x00\xf0?"
    assert encode_struct({}) == b""
    assert encode_struct({"b": True, "l": [None, "x"]}) == (
        b"\n\x07\n\x01b\x12\x02 \x01\n\x10\n\x01l\x12\x0b2\t\n\x02\x08\x00\n\x03\x1a\x01x"
    )


@pytest.mark.envoy
@pytest.mark.parametrize(
    "configuration",
    [{"a": 1}, {"response_headers": {"x-a": "1"}}, {"n": None, "l": [1.5, "x", {"k": False}]}, {"f": 2.0, "b": 2**40}],
)
def test_a_struct_configuration_reaches_the_module_as_envoy_hands_it(envoy_bin, configuration):
    """hello.wasm logs the size of the configuration it was given (a float or a large integer is a
    string there, as everywhere in a Struct Envoy reads from YAML)."""
    text = _config("hello.wasm", configuration)
    with real.run(text, workers=1, component_log_level="wasm:info") as e:
        theirs = [ln for ln in e.logs if "plugin_config_size" in ln][:1]
    with Proxy.from_yaml(text, workers=1) as p:
        ours = [ln for ln in p.logs if "plugin_config_size" in ln][:1]
    assert ours == theirs and ours
    if configuration == {"a": 1}:
        assert "plugin_config_size=16" in ours[0]  # protobuf (JSON would be 7 bytes)


@pytest.mark.envoy
def test_a_json_module_given_a_struct_is_refused_by_both_and_validate_survives_the_bytes(envoy_bin):
    """add_header parses JSON: the protobuf bytes of a Struct are not JSON, its
    proxy_on_configure fails, and Envoy logs the bytes (not UTF-8) while it refuses the plugin."""
    text = _config("add_header.wasm", {"response_headers": {"x-a": "1"}})
    ok, message = real.validate(text)
    assert not ok and "Unable to create Wasm plugin plugin" in message
    with pytest.raises(Exception, match="proxy_on_configure returned false"):
        Proxy.from_yaml(text, workers=1)


@pytest.mark.envoy
@pytest.mark.parametrize("runtime", ["", None], ids=["empty", "absent"])
def test_an_empty_or_absent_runtime_is_v8_like_envoy(envoy_bin, runtime):
    text = _config("add_header.wasm", '{"response_headers": {"x-a": "1"}}', runtime)
    with real.run(text, workers=1) as e:
        assert e.request("GET", "/").headers.get("x-a") == "1"
    with Proxy.from_yaml(text, workers=1) as p:
        assert p.request("GET", "/").headers.get("x-a") == "1"
