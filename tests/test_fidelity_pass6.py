"""Fidelity pass 6 (stop 23): boundary values of fields wasmlab parses, each where Envoy 1.40 and
wasmlab disagreed — configs Envoy takes that wasmlab refused (and what Envoy then does with them),
and configs Envoy refuses that wasmlab took (refused now in Envoy's words)."""

from __future__ import annotations

import json

import pytest
import yaml

from helpers import assert_refused_in_envoys_words, backend_bootstrap, both, hcm_of
from wasmlab import Proxy
from wasmlab import envoy as real
from wasmlab.config import builder as b
from wasmlab.errors import ConfigError

pytestmark = pytest.mark.envoy


_bootstrap = backend_bootstrap
_hcm = hcm_of


def _routes(d: dict) -> list:
    return _hcm(d)["route_config"]["virtual_hosts"][0]["routes"]


def _accepted_by_both(d: dict, tmp_path) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(d))
    ok, message = real.validate(path)
    assert ok, message
    return str(path)


def test_a_token_bucket_of_zero_tokens_limits_every_request_like_envoy(envoy_bin, tmp_path):
    cfg = _accepted_by_both(_bootstrap([b.local_ratelimit(0, tokens_per_fill=1)]), tmp_path)
    ours, _ = both(cfg, [{"method": "GET", "path": "/"}] * 2)
    assert [r.status for r in ours] == [429, 429]


def test_a_listener_buffer_limit_of_zero_means_no_limit_like_envoy(envoy_bin, tmp_path):
    """A Lua filter reads a 2 MB body whole: past the default 1 MiB limit Envoy would answer 413;
    with ``per_connection_buffer_limit_bytes: 0`` the body goes through."""
    lua = "function envoy_on_request(h) local n = h:body():length() h:headers():add('x-n', tostring(n)) end"
    d = _bootstrap([b.lua(inline=lua)])
    d["static_resources"]["listeners"][0]["per_connection_buffer_limit_bytes"] = 0
    cfg = _accepted_by_both(d, tmp_path)
    ours, _ = both(cfg, [{"method": "POST", "path": "/", "body": b"x" * 2_000_000, "timeout": 30}])
    assert ours[0].status == 200
    assert dict(json.loads(ours[0].body)["headers"])["x-n"] == "2000000"


def test_a_path_match_without_its_slash_is_accepted_and_matches_nothing_like_envoy(envoy_bin, tmp_path):
    d = _bootstrap()
    _routes(d).insert(0, {"match": {"path": "nos"}, "direct_response": {"status": 201}})
    _routes(d).insert(0, {"match": {"path": ""}, "direct_response": {"status": 202}})
    cfg = _accepted_by_both(d, tmp_path)
    ours, _ = both(cfg, [{"method": "GET", "path": "/nos"}, {"method": "GET", "path": "/"}])
    assert [r.status for r in ours] == [200, 200]  # both reached the backend route


def _weighted(headers: list) -> dict:
    return {"name": "backend", "weight": 1, "request_headers_to_add": headers}


def _stdout_log(log_format: dict) -> dict:
    return {
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": log_format,
        },
    }


REFUSED = {
    "max_headers_count 0": (
        lambda d: _hcm(d).update(common_http_protocol_options={"max_headers_count": 0}),
        "HttpProtocolOptionsValidationError.MaxHeadersCount: value must be greater than or equal to 1)",
    ),
    "a host_rewrite_literal with a line break": (
        lambda d: _routes(d)[0]["route"].update(host_rewrite_literal="a\nb"),
        'RouteActionValidationError.HostRewriteLiteral: value does not match regex pattern "^[^\\x00\\n\\r]*$")',
    ),
    "a via with a line break": (
        lambda d: _hcm(d).update(via="a\nb"),
        'HttpConnectionManagerValidationError.Via: value does not match regex pattern "^[^\\x00\\n\\r]*$")',
    ),
    "a redirect's host with a line break": (
        lambda d: _routes(d)[0].update(redirect={"host_redirect": "a\nb"}) or _routes(d)[0].pop("route"),
        'RedirectActionValidationError.HostRedirect: value does not match regex pattern "^[^\\x00\\n\\r]*$")',
    ),
    "a disabled router": (
        lambda d: _hcm(d)["http_filters"][-1].update(disabled=True),
        "Error: the last (terminal) filter (envoy.filters.http.router) in the chain cannot be disabled by default.",
    ),
    "a CLUSTER_PROVIDED lb_policy on a static cluster": (
        lambda d: d["static_resources"]["clusters"][0].update(lb_policy="CLUSTER_PROVIDED"),
        "cluster manager: cluster provided LB specified but cluster 'backend' did not provide one.",
    ),
    **{
        f"{where} with 1001 headers to add": (
            lambda d, f=change: f(d, [{"header": {"key": f"x-{i}", "value": "v"}} for i in range(1001)]),
            f"{message}: value must contain no more than 1000 item(s))",
        )
        for where, change, message in (
            (
                "a route",
                lambda d, h: _routes(d)[0].update(response_headers_to_add=h),
                "RouteValidationError.ResponseHeadersToAdd",
            ),
            (
                "a virtual host",
                lambda d, h: _hcm(d)["route_config"]["virtual_hosts"][0].update(request_headers_to_add=h),
                "VirtualHostValidationError.RequestHeadersToAdd",
            ),
            (
                "a route configuration",
                lambda d, h: _hcm(d)["route_config"].update(response_headers_to_add=h),
                "RouteConfigurationValidationError.ResponseHeadersToAdd",
            ),
            (
                "a weighted cluster",
                lambda d, h: _routes(d)[0].update(route={"weighted_clusters": {"clusters": [_weighted(h)]}}),
                "ClusterWeightValidationError.RequestHeadersToAdd",
            ),
        )
    },
    **{
        f"a {where} with no format": (change, 'caused by field: "format", reason: is required)')
        for where, change in (
            ("stdout access log", lambda d: _hcm(d).update(access_log=[_stdout_log({"omit_empty_values": True})])),
            ("local reply", lambda d: _hcm(d).update(local_reply_config={"body_format": {}})),
            (
                "direct response",
                lambda d: (
                    _routes(d)[0].update(direct_response={"status": 200, "body_format": {}})
                    or _routes(d)[0].pop("route")
                ),
            ),
        )
    },
    **{
        f"a line break in {where}": (change, f'{message}: value does not match regex pattern "^[^\\x00\\n\\r]*$")')
        for where, change, message in (
            (
                "a prefix_rewrite",
                lambda d: _routes(d)[0]["route"].update(prefix_rewrite="/a\nb"),
                "RouteActionValidationError.PrefixRewrite",
            ),
            (
                "a host_rewrite_header",
                lambda d: _routes(d)[0]["route"].update(host_rewrite_header="a\nb"),
                "RouteActionValidationError.HostRewriteHeader",
            ),
            (
                "a path_redirect",
                lambda d: _routes(d)[0].update(redirect={"path_redirect": "/a\nb"}) or _routes(d)[0].pop("route"),
                "RedirectActionValidationError.PathRedirect",
            ),
            (
                "a headers_to_remove entry",
                lambda d: _routes(d)[0].update(request_headers_to_remove=["a\nb"]),
                "RouteValidationError.RequestHeadersToRemove[0]",
            ),
            (
                "an internal_only_headers entry",
                lambda d: _hcm(d)["route_config"].update(internal_only_headers=["a\nb"]),
                "RouteConfigurationValidationError.InternalOnlyHeaders[0]",
            ),
            (
                "a header matcher's name",
                lambda d: _routes(d)[0]["match"].update(headers=[{"name": "a\nb", "present_match": True}]),
                "HeaderMatcherValidationError.Name",
            ),
        )
    },
    **{
        f"path_separated_prefix {value!r}": (
            lambda d, v=value: _routes(d)[0].update(match={"path_separated_prefix": v}),
            'RouteMatchValidationError.PathSeparatedPrefix: value does not match regex pattern "^[^?#]+[^?#/]$")',
        )
        for value in ("/a/", "", "/a?b", "/", "a")
    },
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_config_envoy_refuses_is_refused_in_envoys_words(envoy_bin, tmp_path, case):
    """(A redirect with both ``https_redirect`` and ``scheme_redirect``, one protobuf oneof, Envoy
    cannot parse; wasmlab names the two fields: ``test_a_redirect_oneof_names_both_fields``.)"""
    change, message = REFUSED[case]
    d = _bootstrap()
    change(d)
    assert_refused_in_envoys_words(d, message, tmp_path)


def test_a_path_separated_prefix_envoy_takes_still_matches_by_segment(envoy_bin, tmp_path):
    d = _bootstrap()
    _routes(d).insert(0, {"match": {"path_separated_prefix": "/api"}, "direct_response": {"status": 201}})
    cfg = _accepted_by_both(d, tmp_path)
    ours, _ = both(cfg, [{"method": "GET", "path": p} for p in ("/api", "/api/x", "/apix", "/api?q")])
    assert [r.status for r in ours] == [201, 201, 200, 201]


def test_a_redirect_oneof_names_both_fields(envoy_bin, tmp_path):
    d = _bootstrap()
    _routes(d)[0].update(redirect={"https_redirect": True, "scheme_redirect": "http"})
    _routes(d)[0].pop("route")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(d))
    ok, envoy_message = real.validate(path)
    assert not ok and "Unable to parse JSON as proto" in envoy_message and "scheme_redirect" in envoy_message
    with pytest.raises(ConfigError, match="only one of https_redirect, scheme_redirect may be set"):
        Proxy.from_yaml(path)


def test_a_route_may_add_exactly_1000_headers_like_envoy(envoy_bin, tmp_path):
    d = _bootstrap()
    _routes(d)[0]["response_headers_to_add"] = [{"header": {"key": f"x-{i}", "value": "v"}} for i in range(1000)]
    with Proxy.from_yaml(_accepted_by_both(d, tmp_path), workers=1) as p:
        assert p.request("GET", "/").headers.get("x-999") == "v"
