"""YAML scalars in a ``google.protobuf.Struct`` as Envoy 1.40 reads them: an integer within
int32 is a number, a bool a bool, and a float or a larger integer the string written
(``wasmlab/config/struct_value.py``). Seen the same in an access log's ``json_format``, in
metadata a Lua script reads, and in a Wasm module's Struct configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import backend_bootstrap, file_log, file_logs_of_both, hcm_of
from wasmlab import Proxy
from wasmlab import envoy as real
from wasmlab.config import builder as b
from wasmlab.config.struct_value import struct_value

pytestmark = pytest.mark.envoy

VALUES = {"f": 1.5, "i": 7, "neg": -3, "big": 5000000000, "t": True, "s": "x", "n": None, "l": [2.5, 3]}


_bootstrap = backend_bootstrap
_hcm = hcm_of


def test_the_rule_itself():
    """Numbers as written in the YAML (Envoy's yaml-cpp reads integers only), keys as written; a
    ``*.json`` config keeps JSON numbers."""
    from wasmlab.config.yaml_source import Source

    text = "{f: 2.50, g: 1.0e+3, u: 1_000, h: 0x10, big: 3000000000, k: 7, t: yes, n: ~, 1: one, l: [2.5, 3]}"
    assert struct_value(Source("<string>", Path.cwd(), f"a: {text}").load().value["a"]) == {
        "f": "2.50",
        "g": "1.0e+3",
        "u": "1_000",
        "h": 16,
        "big": "3000000000",
        "k": 7,
        "t": True,
        "n": None,
        "1": "one",
        "l": ["2.5", 3],
    }
    as_json = Source("c.json", Path.cwd(), '{"a": {"f": 2.50, "big": 5000000000}}').load().value["a"]
    assert struct_value(as_json) == {"f": 2.5, "big": 5000000000}


def test_a_json_format_logs_floats_and_large_integers_as_strings_like_envoy(envoy_bin, tmp_path):
    d = _bootstrap()
    _hcm(d)["access_log"] = [file_log("LOG_PATH", {"json_format": {**VALUES, "code": "%RESPONSE_CODE%"}})]
    ours, theirs = file_logs_of_both(yaml.safe_dump(d), [{"method": "GET", "path": "/"}], tmp_path)
    assert ours == theirs
    assert json.loads(ours)["f"] == "1.5" and json.loads(ours)["i"] == 7


def test_metadata_a_lua_script_reads_has_envoys_types(envoy_bin):
    lua = """function envoy_on_request(h)
      local m = h:metadata()
      for _, k in ipairs({"f", "i", "big", "t", "l"}) do
        local v = m:get(k)
        if type(v) == "table" then v = type(v[1]) .. ":" .. tostring(v[1]) end
        h:headers():add("x-" .. k, type(m:get(k)) .. ":" .. tostring(v))
      end
    end"""
    d = _bootstrap([b.lua(inline=lua)])
    route = _hcm(d)["route_config"]["virtual_hosts"][0]["routes"][0]
    route["metadata"] = {"filter_metadata": {"envoy.filters.http.lua": VALUES}}
    text = yaml.safe_dump(d)
    seen = []
    with Proxy.from_yaml(text, workers=1) as p:
        seen.append(dict(json.loads(p.request("GET", "/").body)["headers"]))
    with real.run(text, workers=1) as e:
        seen.append(dict(json.loads(e.request("GET", "/").body)["headers"]))
    ours, theirs = ({k: v for k, v in h.items() if k in ("x-f", "x-i", "x-big", "x-t", "x-l")} for h in seen)
    assert ours == theirs
    assert ours["x-f"] == "string:1.5" and ours["x-i"] == "number:7" and ours["x-l"] == "table:string:2.5"


def test_numbers_and_keys_are_kept_as_written_like_envoy(envoy_bin, tmp_path):
    """Envoy reads the file itself: ``2.50`` stays ``"2.50"``, a key ``1`` is ``"1"`` (the bridge
    writes the config back for Envoy without respelling them: ``envoy/verbatim_yaml.py``)."""
    d = _bootstrap()
    _hcm(d)["access_log"] = [file_log("LOG_PATH", {"json_format": {"code": "%RESPONSE_CODE%", "zz": "MARK"}})]
    text = yaml.safe_dump(d).replace("zz: MARK", "zz: {f: 2.50, g: 1.0e+3, u: 1_000, 1: one, h: 0x10, x: .Inf}")
    assert "2.50" in text
    ours, theirs = file_logs_of_both(text, [{"method": "GET", "path": "/"}], tmp_path)
    assert ours == theirs
    assert json.loads(ours)["zz"] == {"1": "one", "f": "2.50", "g": "1.0e+3", "h": 16, "u": "1_000", "x": ".Inf"}
