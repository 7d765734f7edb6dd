"""Small helpers shared by tests: YAML snippets and the wasmlab-vs-Envoy comparison."""

from __future__ import annotations

import textwrap
from typing import Any

from wasmlab.envoy.compare import differences

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = """
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"""
LUA = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"


def static_cluster(name: str, port: int) -> str:
    """YAML for one STATIC cluster with one loopback endpoint (a ``clusters`` list entry)."""
    return f"""
  - name: {name}
    type: STATIC
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}"""


def config(filters: str = "", routes: str | None = None, clusters: str | None = None, listener_extra: str = "") -> str:
    """A bootstrap with one HCM; ``filters`` is YAML for http_filters entries before the router
    (indented 10 spaces), ``routes`` YAML for the routes list (indented 14 spaces)."""
    routes = (
        routes
        or """
              - match: {prefix: "/direct"}
                direct_response: {status: 200, body: {inline_string: "direct hello\\n"}}
              - match: {prefix: "/"}
                route: {cluster: backend}"""
    )
    clusters = clusters or static_cluster("backend", 8081)
    return (
        textwrap.dedent(
            f"""\
static_resources:
  listeners:
  - name: l0
    address: {{socket_address: {{address: 127.0.0.1, port_value: 10000}}}}{listener_extra}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:"""
        )
        + routes
        + "\n          http_filters:"
        + filters
        + ROUTER
        + "\n  clusters:"
        + clusters
        + "\n"
    )


def lua_filter(code: str, extra: str = "", name: str = "envoy.filters.http.lua") -> str:
    """An ``http_filters`` entry running ``code`` as ``default_source_code``; ``extra`` is more
    YAML for the ``Lua`` message (indented 14 spaces, starting with a newline)."""
    body = textwrap.indent(textwrap.dedent(code).strip("\n") + "\n", " " * 18)
    return f"""
          - name: {name}
            typed_config:
              "@type": {LUA}{extra}
              default_source_code:
                inline_string: |
{body}"""


def with_trailers(yaml: str) -> str:
    """Turn on HTTP/1 trailers for the downstream and the ``backend`` cluster (Envoy drops them
    by default)."""
    y = yaml.replace(
        "          stat_prefix: ingress",
        "          stat_prefix: ingress\n          http_protocol_options: {enable_trailers: true}",
    )
    return y.replace(
        "  - name: backend\n    type: STATIC",
        """  - name: backend
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http_protocol_options: {enable_trailers: true}""",
    )


def assert_same(wasmlab_resp: Any, envoy_resp: Any, what: str = "") -> None:
    diff = differences(wasmlab_resp, envoy_resp)
    assert not diff, f"{what}: wasmlab and Envoy differ:\n" + "\n".join(diff)


# ---- request and YAML shorthands --------------------------------------------------------------
CAFE = "caf\u00e9".encode().decode("latin-1")  # a UTF-8 header value as the client sends its bytes


def get(path: str, **headers: str) -> dict[str, Any]:
    """A GET request for ``both``."""
    return {"method": "GET", "path": path, "headers": dict(headers)}


def hcm_option(option: str, routes: str | None = None, clusters: str | None = None) -> str:
    """``config`` with ``option`` (one line of YAML) added to the HttpConnectionManager."""
    return config(routes=routes, clusters=clusters).replace(
        "          stat_prefix: ingress", "          stat_prefix: ingress\n          " + option
    )


def body_text(resp: Any) -> str:
    return resp.body.decode()


def direct_route(match: str, body: str, status: int = 200) -> str:
    """A ``routes`` entry (indented 14 spaces) answering ``body`` from a direct_response."""
    return f"""
              - match: {match}
                direct_response: {{status: {status}, body: {{inline_string: "{body}"}}}}"""


# ---- what every upstream receives -------------------------------------------------------------
#: Upstream request headers whose values legitimately differ between two runs; compared by
#: presence only. ``x-request-id`` is a fresh random UUID per request on each proxy. This is the
#: one place such a difference is normalised.
UPSTREAM_PRESENCE_ONLY = ("x-request-id",)


class UpstreamLog:
    """Wraps each cluster's app so that every request an upstream (route or callout) receives is
    recorded as ``(cluster, method, path, headers in order, body)``."""

    def __init__(self) -> None:
        import threading

        self.requests: list[tuple[str, str, str, list[tuple[str, str]], bytes]] = []
        self._lock = threading.Lock()

    def wrap(self, cluster: str, app: Any) -> Any:
        def recording_app(request: Any) -> Any:
            headers = [(k, "<present>" if k in UPSTREAM_PRESENCE_ONLY else v) for k, v in request.headers]
            with self._lock:
                self.requests.append((cluster, request.method, request.path, headers, bytes(request.body)))
            return app(request)

        return recording_app

    def arrivals(self, cluster: str) -> list[tuple[str, str, list[str]]]:
        """What ``cluster`` received, in arrival order, short: method, path, header names (for
        failure messages)."""
        return [(m, path, [k for k, _ in hs]) for c, m, path, hs, _ in self.requests if c == cluster]

    def by_cluster(self) -> dict[str, list[Any]]:
        """Per cluster, the requests received, sorted: the arrival order of concurrent calls
        (asynchronous callouts, several workers) is not deterministic on either proxy, so the
        comparison is of the multiset of requests."""
        out: dict[str, list[Any]] = {}
        for cluster, *rest in self.requests:
            out.setdefault(cluster, []).append(tuple(rest))
        return {k: sorted(v, key=repr) for k, v in out.items()}


def recorded_apps(config_yaml: Any, apps: dict[str, Any] | None, log: UpstreamLog) -> dict[str, Any]:
    """The apps for every HTTP cluster of ``config_yaml`` (given ones, else the echo app where the
    cluster has endpoints), each wrapped to record into ``log``. Clusters served by no app, and
    TCP clusters, are left as they are."""
    import pathlib

    import yaml

    from wasmlab.host.upstream import echo_app

    text = str(config_yaml)
    if isinstance(config_yaml, pathlib.Path) or ("\n" not in text and pathlib.Path(text).is_file()):
        text = pathlib.Path(config_yaml).read_text()
    data = yaml.safe_load(str(text)) or {}
    sr = data.get("static_resources") or {}
    tcp = {
        (f.get("typed_config") or {}).get("cluster")
        for lst in sr.get("listeners") or []
        for ch in lst.get("filter_chains") or []
        for f in ch.get("filters") or []
        if str((f.get("typed_config") or {}).get("@type", "")).endswith("TcpProxy")
    }
    out = dict(apps or {})
    for c in sr.get("clusters") or []:
        name = c["name"]
        if name in tcp:
            continue
        la = c.get("load_assignment") or {}
        has_endpoints = any(g.get("lb_endpoints") for g in la.get("endpoints") or [])
        app = out.get(name, echo_app if has_endpoints else None)
        if app is not None:
            out[name] = log.wrap(name, app)
    return out


def assert_same_upstreams(ours: UpstreamLog, theirs: UpstreamLog) -> None:
    """Every upstream (route and callout clusters) received the same requests: method, path,
    headers in order, body."""
    a, b = ours.by_cluster(), theirs.by_cluster()
    assert set(a) == set(b), f"clusters that received requests: wasmlab {sorted(a)} vs envoy {sorted(b)}"
    for cluster in a:
        for i, (x, y) in enumerate(zip(a[cluster], b[cluster], strict=False)):
            assert x == y, f"cluster {cluster!r} request {i} differs:\n  wasmlab {x}\n  envoy   {y}"
        assert len(a[cluster]) == len(b[cluster]), (
            f"cluster {cluster!r}: wasmlab received {len(a[cluster])} requests, envoy {len(b[cluster])}"
            f"\n  wasmlab, in arrival order: {ours.arrivals(cluster)}"
            f"\n  envoy, in arrival order:   {theirs.arrivals(cluster)}"
        )


# ---- one config, the same requests, on both proxies ---------------------------------------------
def both(
    cfg: Any,
    requests: list[dict[str, Any]],
    apps: dict[str, Any] | None = None,
    stats: tuple[str, ...] = (),
    envoy_upstreams: UpstreamLog | None = None,
) -> tuple[list[Any], list[Any]]:
    """The requests on wasmlab and on real Envoy (one worker each): asserts equal responses
    (and trailers), equal upstream requests and, for the names in ``stats``, equal counters;
    returns (wasmlab responses, Envoy responses). ``envoy_upstreams`` receives what Envoy's
    upstreams got, for a test to look into."""
    from wasmlab import Proxy
    from wasmlab import envoy as real

    ours, theirs = UpstreamLog(), envoy_upstreams if envoy_upstreams is not None else UpstreamLog()
    with Proxy.from_yaml(cfg, workers=1) as p:
        for name, app in recorded_apps(cfg, apps, ours).items():
            p.upstream(name, app)
        mine = [p.request(**kw) for kw in requests]
        p.wait_idle(5)
        my_stats = {k: p.stats().get(k, 0) for k in stats}
    with real.run(cfg, workers=1, apps=recorded_apps(cfg, apps, theirs)) as e:
        env = [e.request(**kw) for kw in requests]
        env_stats = {k: e.stats().get(k, 0) for k in stats}
    for i, (a, b) in enumerate(zip(mine, env, strict=True)):
        assert_same(a, b, f"request {i} {requests[i]}")
        assert a.trailers == b.trailers, f"request {i} trailers: wasmlab {a.trailers} vs envoy {b.trailers}"
    assert_same_upstreams(ours, theirs)
    assert my_stats == env_stats, f"stats: wasmlab {my_stats} vs envoy {env_stats}"
    return mine, env


def file_logs_of_both(template: str, reqs: list[dict[str, Any]], tmp_path: Any) -> tuple[bytes, bytes]:
    """Run ``reqs`` through ``template`` (a config whose file access log writes to ``LOG_PATH``) on
    wasmlab and on real Envoy, one worker each; answers both access logs, Envoy's once it has
    written as many lines as wasmlab's (its file logger flushes on its own time)."""
    import time

    from wasmlab import Proxy
    from wasmlab import envoy as real

    ours_log, envoy_log = tmp_path / "ours.log", tmp_path / "envoy.log"
    env_cfg = tmp_path / "envoy.yaml"
    env_cfg.write_text(template.replace("LOG_PATH", str(envoy_log)))
    with Proxy.from_yaml(template.replace("LOG_PATH", str(ours_log)), workers=1) as p:
        for kw in reqs:
            p.request(**kw)
        p.wait_idle(5)

    def lines(path: Any) -> int:
        return path.read_bytes().count(b"\n") if path.exists() else 0

    with real.run(env_cfg, workers=1) as e:
        for kw in reqs:
            e.request(**kw)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and lines(envoy_log) < lines(ours_log):
            time.sleep(0.05)

    def text(path: Any) -> bytes:
        return path.read_bytes() if path.exists() else b""

    return text(ours_log), text(envoy_log)


def accepted_with_a_warning(data: dict[str, Any], named: str, tmp_path: Any, request: bool = True) -> None:
    """Asserts that the bootstrap ``data`` passes Envoy's ``--mode validate`` and that wasmlab
    loads it (and, with ``request``, serves a request) warning that the field ``named`` (its
    YAML path, or the end of it) has no effect in process."""
    import yaml

    from wasmlab import Proxy
    from wasmlab import envoy as real

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    ok, message = real.validate(path)
    assert ok, message
    with Proxy.from_yaml(path, workers=1) as p:
        if request:
            assert p.request("GET", "/x").status == 200
        logs = p.logs
    assert any(f"{named}: accepted as Envoy does, but has no effect in wasmlab" in ln for ln in logs), logs


def backend_bootstrap(filters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A bootstrap (as data) whose one listener routes ``/`` to cluster ``backend`` through
    ``filters`` and the router."""
    from wasmlab.config import builder as b

    return b.bootstrap(
        [b.http_listener("l0", 10000, routes=[b.route("/", "backend")], http_filters=[*(filters or []), b.router()])],
        clusters=[b.cluster("backend", 8081)],
    )


def hcm_of(data: dict[str, Any]) -> dict[str, Any]:
    """The first listener's http_connection_manager typed_config in bootstrap ``data``."""
    return data["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def file_log(path: str, log_format: dict[str, Any] | None = None) -> dict[str, Any]:
    """A file access logger writing to ``path`` (with ``log_format`` if given)."""
    tc: dict[str, Any] = {"@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"}
    tc["path"] = path
    if log_format is not None:
        tc["log_format"] = log_format
    return {"name": "envoy.access_loggers.file", "typed_config": tc}


def assert_refused_in_envoys_words(data: dict[str, Any], message: str, tmp_path: Any) -> None:
    """Bootstrap ``data`` is refused by Envoy's ``--mode validate`` and by wasmlab, both saying
    ``message``; wasmlab's error names the config file."""
    import pytest
    import yaml

    from wasmlab import Proxy
    from wasmlab import envoy as real
    from wasmlab.errors import ConfigError

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    ok, envoy_message = real.validate(path)
    assert not ok and message in envoy_message
    with pytest.raises(ConfigError) as err:
        Proxy.from_yaml(path)
    assert message in str(err.value) and str(path) in str(err.value)
