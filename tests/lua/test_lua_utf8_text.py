"""Text from the YAML reaching a Lua script, against real Envoy 1.40: the YAML is UTF-8 and Envoy
hands its strings to Lua as their UTF-8 bytes — route metadata keys and values, the per-route
``filter_context``, the route name — and looks a script's strings up as those bytes (a cluster
name in ``httpCall``, a stat name). Header bytes are another matter (one byte per character),
tested in the test_lua_differential_*.py files.
"""

from __future__ import annotations

import pytest

from helpers import config
from lua_helpers import Req, assert_both, lua_config, lua_stats

pytestmark = pytest.mark.envoy

SCRIPT = """
function envoy_on_request(h)
  local md = h:metadata()
  h:logInfo("md clé=" .. tostring(md:get("clé")) .. " plain=" .. tostring(md:get("plain")))
  local nested = md:get("imbriqué")
  h:logInfo("nested sous-clé=" .. tostring(nested and nested["sous-clé"]))
  local keys = {}
  for k, v in pairs(md) do keys[#keys + 1] = k .. ":" .. type(v) end
  table.sort(keys)
  h:logInfo("md keys " .. table.concat(keys, ","))
  h:logInfo("route md clé=" .. tostring(h:route():metadata():get("clé")))
  h:logInfo("ctx qui=" .. tostring(h:filterContext():get("qui")))
  h:logInfo("route name " .. h:streamInfo():routeName())
  h:stats():counter("vu_été"):inc()
end
"""


def _yaml() -> str:
    filt = f"""
          - name: envoy.filters.http.lua
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
              filter_context: {{"qui": "personne à qui"}}
              default_source_code:
                inline_string: |
{"".join("                  " + ln + chr(10) for ln in SCRIPT.strip(chr(10)).splitlines())}"""
    routes = """
              - match: {prefix: "/"}
                name: "route-café"
                route: {cluster: backend}
                metadata:
                  filter_metadata:
                    envoy.filters.http.lua:
                      "clé": "valeur é"
                      plain: "ascii"
                      "imbriqué": {"sous-clé": "œuvre"}"""
    return config(filt, routes=routes)


def test_route_metadata_context_and_route_name_cross_as_utf8(envoy_bin):
    ours, _ = assert_both(_yaml(), [Req("GET", "/x")])
    logs = "\n".join(ours.script_logs)
    assert "md clé=valeur é plain=ascii" in logs
    assert "nested sous-clé=œuvre" in logs
    assert "md keys clé:string,imbriqué:table,plain:string" in logs
    assert "route md clé=valeur é" in logs
    assert "ctx qui=personne à qui" in logs
    assert "route name route-café" in logs
    assert lua_stats(ours.stats)["http.ingress.lua.vu_été"] == 1


def test_http_call_finds_a_cluster_named_in_utf8(envoy_bin):
    code = """
    function envoy_on_request(h)
      local hd = h:httpCall("côté", {[":method"] = "GET", [":path"] = "/c", [":authority"] = "côté"}, nil, 1000)
      h:logInfo("callout status " .. hd[":status"])
    end
    """
    side = """
  - name: "côté"
    type: STATIC
    load_assignment:
      cluster_name: "côté"
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8082}}}"""
    yaml = lua_config(code)
    yaml = yaml.rstrip("\n") + side + "\n"
    ours, _ = assert_both(yaml, [Req("GET", "/")], stats=False)
    assert ours.script_logs and "callout status 200" in ours.script_logs[0]


def test_filter_state_set_from_lua_is_utf8_for_the_access_log(envoy_bin):
    """``filterState():set`` stores the script's bytes; the access log's ``%FILTER_STATE%``
    (configured in the UTF-8 YAML) finds the key and prints the value as written."""
    from wasmlab import Proxy
    from wasmlab.envoy import run

    code = """
    function envoy_on_request(h)
      local fs = h:streamInfo():filterState()
      fs:set("wasmlab.clé", "envoy.string", "été")
      h:logInfo("lu " .. fs:get("wasmlab.clé"))
    end
    """
    log = """
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format: {text_format_source: {inline_string: "FS=[%FILTER_STATE(wasmlab.clé:PLAIN)%]\\n"}}"""
    yaml = lua_config(code).replace("          stat_prefix: ingress", "          stat_prefix: ingress" + log)
    with Proxy.from_yaml(yaml, workers=1) as p:
        p.request("GET", "/")
        p.wait_idle(5)
        ours = [ln for ln in p.access_logs if ln.startswith("FS=")]
    with run(yaml, workers=1) as e:
        e.request("GET", "/")
        import time

        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and "FS=" not in e.log_text():
            time.sleep(0.1)
        theirs = [ln for ln in e.log_text().splitlines() if ln.startswith("FS=")]
    assert ours == theirs == ["FS=[été]"]


def test_header_values_from_the_yaml_are_their_utf8_bytes(envoy_bin):
    """A route's ``request_headers_to_add``/``response_headers_to_add`` value "é" is two bytes
    on the wire and in a script (headers are bytes; the YAML's text is UTF-8)."""
    code = """
    function envoy_on_response(h)
      local v = h:headers():get("x-acc")
      h:logInfo("x-acc bytes " .. tostring(v and #v))
    end
    """
    routes = """
              - match: {prefix: "/"}
                route: {cluster: backend}
                request_headers_to_add:
                - header: {key: x-up, value: "à %REQ(:METHOD)%"}
                response_headers_to_add:
                - header: {key: x-acc, value: "é"}"""
    ours, _ = assert_both(lua_config(code, routes=routes), [Req("GET", "/")])
    assert ours.script_logs and ours.script_logs[0].endswith("x-acc bytes 2")
    assert ours.responses[0].headers.get("x-acc") == "é".encode().decode("latin-1")
