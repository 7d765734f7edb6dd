"""``vm_config.code.remote``: the module is fetched through a cluster of the config at start-up.

Differential: the same YAML and the same upstream app (served in process to wasmlab, over
loopback to real Envoy) must give the same responses, the same warning/critical log lines and the
same fetch requests on the module server — for a good hash, a wrong hash, a cluster with nothing
listening and a cluster the config does not have.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from helpers import assert_same
from wasmlab import Proxy
from wasmlab import envoy as real
from wasmlab.errors import ConfigError
from wasmlab.http import Response

MODULE = Path(__file__).resolve().parents[1] / "modules" / "add_header.wasm"
CODE = MODULE.read_bytes()
GOOD = hashlib.sha256(CODE).hexdigest()

CONFIG = """
static_resources:
  listeners:
  - name: main
    address: {{socket_address: {{address: 127.0.0.1, port_value: 10000}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
          http_filters:
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: add_header
                {fail_open}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{{"response_headers": {{"x-remote": "yes"}}}}'
                vm_config:
                  runtime: envoy.wasm.runtime.v8
                  code:
                    remote:
                      http_uri:
                        uri: http://modules.example/wasm/add_header.wasm
                        cluster: {cluster}
                        timeout: 5s
                      sha256: {sha}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: backend
    type: STATIC
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 10001}}}}}}
  - name: wasm_server
    type: STATIC
    load_assignment:
      cluster_name: wasm_server
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 10002}}}}}}
"""


def config(sha: str = GOOD, cluster: str = "wasm_server", fail_open: bool = False) -> str:
    return CONFIG.format(sha=sha, cluster=cluster, fail_open="fail_open: true" if fail_open else "")


class ModuleServer:
    """An upstream app serving the module; it remembers what each fetch looked like."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, list[tuple[str, str]]]] = []

    def __call__(self, request: Any) -> Response:
        self.seen.append((request.method, request.path, list(request.headers)))
        return Response(200, [("content-type", "application/wasm")], CODE)


def notable(logs: list[str]) -> list[str]:
    """The start-up lines a learner sees at the default level: warnings and worse, from the
    ``config`` and ``wasm`` loggers (plus the module's own configure line)."""
    keep = ("[warning][config]", "[critical][wasm]", "[warning][wasm]", "[error][wasm]")
    return [ln for ln in logs if ln.startswith(keep) or "wasm log: add_header" in ln]


def run_both(yaml_text: str, app: Any) -> dict[str, Any]:
    ours_app, theirs_app = (ModuleServer(), ModuleServer()) if app == "server" else (app, app)
    with Proxy.from_yaml(yaml_text, workers=1, upstreams={"wasm_server": ours_app}) as p:
        ours = p.request("GET", "/remote")
    with real.run(yaml_text, workers=1, apps={"wasm_server": theirs_app}) as e:
        theirs = e.request("GET", "/remote")
    return {
        "responses": (ours, theirs),
        "logs": (notable(p.logs), notable(e.logs)),
        "fetches": (getattr(ours_app, "seen", None), getattr(theirs_app, "seen", None)),
    }


@pytest.mark.envoy
def test_good_hash_loads_like_envoy(envoy_bin):
    out = run_both(config(), "server")
    ours, theirs = out["responses"]
    assert_same(ours, theirs, "good hash")
    assert ours.headers.get("x-remote") == "yes"  # the fetched module runs
    mine, env = out["logs"]
    assert mine == env
    assert "[warning][wasm] Wasm remote code fetch is unstable and may cause a crash" in mine
    seen_ours, seen_env = out["fetches"]
    assert seen_ours == seen_env  # one GET with the same path and headers on both
    assert len(seen_ours) == 1 and seen_ours[0][1] == "/wasm/add_header.wasm"


@pytest.mark.envoy
def test_bad_hash_is_refused_with_envoys_words(envoy_bin):
    out = run_both(config(sha=hashlib.sha256(b"another module").hexdigest()), "server")
    ours, theirs = out["responses"]
    assert_same(ours, theirs, "bad hash")
    assert ours.status == 503  # fail closed: the plugin did not load, every stream is refused
    mine, env = out["logs"]
    assert mine == env
    assert "[warning][config] Retry limit exceeded for fetching data from remote data source." in mine
    assert "[critical][wasm] Plugin add_header failed to load" in mine
    seen_ours, seen_env = out["fetches"]
    assert seen_ours == seen_env and len(seen_ours) == 2  # one retry by default


@pytest.mark.envoy
@pytest.mark.parametrize("cluster,app", [("wasm_server", None), ("nosuch", "server")], ids=["unreachable", "unknown"])
def test_unreachable_cluster_like_envoy(envoy_bin, cluster, app):
    out = run_both(config(cluster=cluster), app)
    assert_same(*out["responses"], f"cluster {cluster}")
    mine, env = out["logs"]
    assert mine == env
    assert "[critical][wasm] Plugin configured to fail closed failed to load" in mine


@pytest.mark.envoy
def test_fail_open_lets_streams_through_like_envoy(envoy_bin):
    out = run_both(config(sha="ab" * 32, fail_open=True), "server")
    ours, theirs = out["responses"]
    assert_same(ours, theirs, "fail open")
    assert ours.status == 200 and "x-remote" not in ours.headers
    assert out["logs"][0] == out["logs"][1]


def test_remote_fetch_is_in_the_trace():
    server = ModuleServer()
    with Proxy.from_yaml(config(), workers=1, upstreams={"wasm_server": server}) as p:
        fetches = [e for e in p.trace if e.kind == "vm" and e.name == "fetch_code"]
    assert [(e.args["cluster"], e.result) for e in fetches] == [("wasm_server", "ok")]


@pytest.mark.parametrize(
    "edit,words",
    [
        (lambda y: y.replace("sha256: " + GOOD, ""), "sha256"),
        (lambda y: y.replace("timeout: 5s", ""), "timeout"),
        (lambda y: y.replace("cluster: wasm_server\n", "\n"), "cluster"),
    ],
)
def test_remote_config_errors_name_the_field(edit, words):
    with pytest.raises(ConfigError) as err:
        Proxy.from_yaml(edit(config()), workers=1)
    assert words in str(err.value)
    assert "remote" in str(err.value)
