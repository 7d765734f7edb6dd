"""Build Envoy bootstrap YAML from Python, so a lesson can show what real Envoy would run.

Every function returns plain dicts in Envoy's v3 shape; :func:`to_yaml` prints them. The result
is ordinary Envoy YAML: ``Proxy.from_yaml(to_yaml(cfg))`` runs it in process and
``wasmlab.envoy.run(to_yaml(cfg))`` on real Envoy (unless it uses a ``wasmlab.native`` filter).

    cfg = bootstrap(
        listeners=[http_listener("l0", 10000,
                                 routes=[direct_response("/direct", 200, "hello\\n"),
                                         route("/", cluster="backend")],
                                 http_filters=[lua(inline='function envoy_on_request(h) end'), router()])],
        clusters=[cluster("backend", 8081)],
    )
    print(to_yaml(cfg))
"""

from __future__ import annotations

from typing import Any

import yaml

T = "type.googleapis.com/"
HCM = T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


def _socket(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def bootstrap(
    listeners: list[dict[str, Any]],
    clusters: list[dict[str, Any]] = (),  # type: ignore[assignment]
    bootstrap_extensions: list[dict[str, Any]] = (),  # type: ignore[assignment]
    admin_port: int | None = 9901,
) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if bootstrap_extensions:
        cfg["bootstrap_extensions"] = list(bootstrap_extensions)
    if admin_port is not None:
        cfg["admin"] = {"address": _socket("127.0.0.1", admin_port)}
    cfg["static_resources"] = {"listeners": list(listeners)}
    if clusters:
        cfg["static_resources"]["clusters"] = list(clusters)
    return cfg


def route(
    prefix: str = "/",
    cluster: str = "backend",
    *,
    path: str | None = None,
    prefix_rewrite: str | None = None,
    timeout: str | None = None,
    request_headers_to_add: dict[str, str] | None = None,
    response_headers_to_add: dict[str, str] | None = None,
    typed_per_filter_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    action: dict[str, Any] = {"cluster": cluster}
    if prefix_rewrite is not None:
        action["prefix_rewrite"] = prefix_rewrite
    if timeout is not None:
        action["timeout"] = timeout
    r: dict[str, Any] = {"match": {"path": path} if path is not None else {"prefix": prefix}, "route": action}
    _headers_to_add(r, request_headers_to_add, response_headers_to_add)
    if typed_per_filter_config:
        r["typed_per_filter_config"] = typed_per_filter_config
    return r


def direct_response(
    prefix: str, status: int = 200, body: str | None = None, *, path: str | None = None
) -> dict[str, Any]:
    dr: dict[str, Any] = {"status": status}
    if body is not None:
        dr["body"] = {"inline_string": body}
    return {"match": {"path": path} if path is not None else {"prefix": prefix}, "direct_response": dr}


def _headers_to_add(target: dict[str, Any], req: dict[str, str] | None, resp: dict[str, str] | None) -> None:
    if req:
        target["request_headers_to_add"] = [{"header": {"key": k, "value": v}} for k, v in req.items()]
    if resp:
        target["response_headers_to_add"] = [{"header": {"key": k, "value": v}} for k, v in resp.items()]


def virtual_host(name: str, domains: list[str], routes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    vh = {"name": name, "domains": list(domains), "routes": list(routes)}
    vh.update(extra)
    return vh


def http_listener(
    name: str,
    port: int,
    routes: list[dict[str, Any]] | None = None,
    http_filters: list[dict[str, Any]] | None = None,
    *,
    virtual_hosts: list[dict[str, Any]] | None = None,
    stat_prefix: str = "ingress",
    access_log: list[dict[str, Any]] | None = None,
    address: str = "127.0.0.1",
    trailers: bool = False,
) -> dict[str, Any]:
    """An HTTP listener; ``trailers=True`` lets the client's trailers in and the response's out
    (Envoy's HTTP/1 codec drops them unless ``enable_trailers`` is set)."""
    vhs = virtual_hosts if virtual_hosts is not None else [virtual_host("local", ["*"], routes or [])]
    hcm: dict[str, Any] = {
        "@type": HCM,
        "stat_prefix": stat_prefix,
        "route_config": {"name": "local_route", "virtual_hosts": vhs},
        "http_filters": list(http_filters) if http_filters else [router()],
    }
    if access_log:
        hcm["access_log"] = access_log
    if trailers:
        hcm["http_protocol_options"] = {"enable_trailers": True}
    return {
        "name": name,
        "address": _socket(address, port),
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
        ],
    }


def cluster(name: str, port: int, address: str = "127.0.0.1", trailers: bool = False) -> dict[str, Any]:
    """A static HTTP/1 cluster; ``trailers=True`` sends request trailers to it and reads its
    response trailers (``enable_trailers`` in its upstream ``HttpProtocolOptions``)."""
    out: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket(address, port)}}]}],
        },
    }
    if trailers:
        options = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        http1 = {"http_protocol_options": {"enable_trailers": True}}
        out["typed_extension_protocol_options"] = {options: {"@type": T + options, "explicit_http_config": http1}}
    return out


# ---- HTTP filters ------------------------------------------------------------------------------------
def router() -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": T + "envoy.extensions.filters.http.router.v3.Router"},
    }


def lua(inline: str | None = None, filename: str | None = None, name: str = "envoy.filters.http.lua") -> dict[str, Any]:
    src = {"inline_string": inline} if inline is not None else {"filename": filename}
    return {
        "name": name,
        "typed_config": {"@type": T + "envoy.extensions.filters.http.lua.v3.Lua", "default_source_code": src},
    }


def wasm(
    filename: str,
    name: str = "plugin",
    root_id: str = "",
    vm_id: str = "",
    configuration: str | dict[str, Any] | None = None,
    vm_configuration: str | None = None,
    fail_open: bool | None = None,
    filter_name: str = "envoy.filters.http.wasm",
) -> dict[str, Any]:
    vm: dict[str, Any] = {"runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": filename}}}
    if vm_id:
        vm["vm_id"] = vm_id
    if vm_configuration is not None:
        vm["configuration"] = {"@type": T + "google.protobuf.StringValue", "value": vm_configuration}
    plugin: dict[str, Any] = {"name": name, "root_id": root_id, "vm_config": vm}
    if isinstance(configuration, str):
        plugin["configuration"] = {"@type": T + "google.protobuf.StringValue", "value": configuration}
    elif isinstance(configuration, dict):
        plugin["configuration"] = {"@type": T + "google.protobuf.Struct", "value": configuration}
    if fail_open is not None:
        plugin["fail_open"] = fail_open
    return {
        "name": filter_name,
        "typed_config": {"@type": T + "envoy.extensions.filters.http.wasm.v3.Wasm", "config": plugin},
    }


def native(name: str, **config: Any) -> dict[str, Any]:
    """A wasmlab-only Python native filter (``wasmlab.native.<name>``)."""
    f: dict[str, Any] = {"name": f"wasmlab.native.{name}"}
    if config:
        f["typed_config"] = {"@type": T + "google.protobuf.Struct", "value": config}
    return f


def header_mutation(
    request_add: dict[str, str] | None = None,
    response_add: dict[str, str] | None = None,
    request_remove: list[str] | None = None,
    response_remove: list[str] | None = None,
) -> dict[str, Any]:
    def ops(add: dict[str, str] | None, remove: list[str] | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"remove": n} for n in remove or []]
        out += [{"append": {"header": {"key": k, "value": v}}} for k, v in (add or {}).items()]
        return out

    mutations: dict[str, Any] = {}
    if request_add or request_remove:
        mutations["request_mutations"] = ops(request_add, request_remove)
    if response_add or response_remove:
        mutations["response_mutations"] = ops(response_add, response_remove)
    return {
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": T + "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": mutations,
        },
    }


def local_ratelimit(
    max_tokens: int, fill_interval: str = "60s", tokens_per_fill: int | None = None, stat_prefix: str = "rate_limit"
) -> dict[str, Any]:
    pct = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}, "runtime_key": "local_rate_limit_enabled"}
    return {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": T + "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": stat_prefix,
            "token_bucket": {
                "max_tokens": max_tokens,
                "tokens_per_fill": tokens_per_fill or max_tokens,
                "fill_interval": fill_interval,
            },
            "filter_enabled": pct,
            "filter_enforced": {**pct, "runtime_key": "local_rate_limit_enforced"},
        },
    }


def to_yaml(cfg: dict[str, Any]) -> str:
    """Envoy YAML text for a config built with these functions."""
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False, width=100)
