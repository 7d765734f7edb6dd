"""Route matching, route actions, host rewrites, redirects, URI templates and RE2 rewrites compared
with real Envoy 1.40: the same YAML and requests on both; the client's responses (status, headers in
order, body, trailers) and what every upstream received must agree.

Each probe here found a disagreement that is now fixed (the old code answered differently or
refused the config); the docstrings say what Envoy does. The other classes of config are in the
other ``test_config_sweep_*.py`` files.
"""

from __future__ import annotations

import pytest

from helpers import CAFE, body_text, both, config, direct_route, get, static_cluster
from wasmlab import Proxy
from wasmlab import envoy as real
from wasmlab.config.uri_template import REWRITE_TYPE
from wasmlab.errors import ConfigError

pytestmark = pytest.mark.envoy


# ---- route matching ------------------------------------------------------------------------------


def _header_route(prefix: str, body: str, matcher: str) -> str:
    return f"""
              - match:
                  prefix: "{prefix}"
                  headers:
                  - {matcher}
                direct_response: {{status: 200, body: {{inline_string: "{body}"}}}}"""


MATCH_ROUTES = (
    direct_route('{path: "/Exact", case_sensitive: false}', "exact-ci")
    + direct_route('{prefix: "/pre?x"}', "prefix-with-query")
    + direct_route('{path_separated_prefix: "/sep"}', "sep")
    + direct_route('{safe_regex: {regex: "/re/[a-z]+"}}', "regex")
    + direct_route('{safe_regex: {regex: "/u/caf\\u00e9/."}}', "regex-utf8")
    + _header_route("/h", "inverted", '{name: x-inv, string_match: {exact: "no"}, invert_match: true}')
    + _header_route("/p", "absent", "{name: x-p, present_match: false}")
    + _header_route("/pi", "present-inverted", "{name: x-p, present_match: true, invert_match: true}")
    + _header_route("/r", "range", "{name: x-n, range_match: {start: 10, end: 20}}")
    + _header_route("/ri", "range-inverted", "{name: x-n, range_match: {start: 10, end: 20}, invert_match: true}")
    + _header_route("/u", "utf8", '{name: x-u, string_match: {exact: "caf\\u00e9"}}')
    + _header_route("/ic", "ignore-case", '{name: x-ic, string_match: {prefix: "AB", ignore_case: true}}')
    + _header_route("/icu", "ignore-case-utf8", '{name: x-u, string_match: {exact: "CAF\\u00c9", ignore_case: true}}')
    + _header_route("/hr", "header-regex-bytes", "{name: x-u, string_match: {safe_regex: {regex: 'caf..'}}}")
    + _header_route("/hr", "header-regex", "{name: x-u, string_match: {safe_regex: {regex: 'caf.'}}}")
    + _header_route(
        "/tm", "missing-as-empty", "{name: x-t, string_match: {exact: ''}, treat_missing_header_as_empty: true}"
    )
    + """
              - match:
                  prefix: "/q"
                  query_parameters:
                  - {name: a, string_match: {exact: "1"}}
                  - {name: b, present_match: true}
                direct_response: {status: 200, body: {inline_string: "query"}}"""
    + direct_route('{prefix: "/"}', "fallthrough", 404)
)


def test_route_matching_like_envoy(envoy_bin):
    """Paths are matched without their query (every kind), ``case_sensitive: false`` folds ASCII
    only, an absent header matches no inverted value matcher (only an inverted
    ``present_match``), ``range_match`` reads an integer, and config text and header bytes
    compare as UTF-8 bytes; a regex runs on bytes (old code: ``range_match`` refused;
    ``/pre?xy``, ``/h``, ``/u``, ``/hr`` answered differently)."""
    reqs = [get("/exact"), get("/EXACT?x"), get("/pre?xy"), get("/sep"), get("/sep/a"), get("/sepx"), get("/sep?q")]
    reqs += [get("/re/abc"), get("/re/abc?x=1"), get("/re/ABC"), get("/u/" + CAFE + "/x")]
    reqs += [
        get("/h"),
        get("/h", **{"x-inv": "no"}),
        get("/h", **{"x-inv": "yes"}),
        get("/p"),
        get("/p", **{"x-p": "1"}),
    ]
    reqs += [get("/pi"), get("/pi", **{"x-p": ""})]
    reqs += [get("/r", **{"x-n": v}) for v in ("15", "20", "10", "abc", "-5", " 12 ", "+11", "1.5")] + [get("/r")]
    reqs += [get("/ri"), get("/ri", **{"x-n": "abc"}), get("/ri", **{"x-n": "12"})]
    reqs += [get("/u", **{"x-u": CAFE}), get("/u", **{"x-u": "caf\u00e9"}), get("/hr", **{"x-u": CAFE})]
    reqs += [get("/ic", **{"x-ic": "abc"}), get("/icu", **{"x-u": CAFE}), get("/tm"), get("/tm", **{"x-t": "v"})]
    reqs += [get("/q?a=1&b"), get("/q?a=1"), get("/q?b=2&a=1"), get("/q?a=%31&b=1"), get("/q?a=1&a=2&b")]
    reqs += [get("/exact#frag")]
    mine, _ = both(config(routes=MATCH_ROUTES), reqs)
    bodies = [body_text(r) for r in mine]
    assert bodies[2] == "absent"  # "/pre?x" is no prefix of the path "/pre": the "/p" route answers
    assert bodies[reqs.index(get("/h"))] == "fallthrough"
    assert bodies[reqs.index(get("/u", **{"x-u": CAFE}))] == "utf8"
    assert bodies[reqs.index(get("/hr", **{"x-u": CAFE}))] == "header-regex-bytes"  # a regex runs on bytes
    assert mine[-1].status == 400


def test_header_matchers_match_any_value_of_a_repeated_header_like_envoy(envoy_bin):
    """Envoy 1.40 matches a repeated header value by value: ``exact: b`` matches ``a`` then ``b``,
    the values are not joined with ``,`` (old code joined them), and an inverted matcher fails
    when any value matches."""
    routes = "".join(
        _header_route(f"/m{i}", name, f"{{name: x-m, string_match: {sm}, invert_match: {inv}}}")
        for i, (name, sm, inv) in enumerate(
            [
                ("b", "{exact: b}", "false"),
                ("joined", "{exact: 'a,b'}", "false"),
                ("inv-a", "{exact: a}", "true"),
                ("regex", "{safe_regex: {regex: 'a.*b'}}", "false"),
                ("inv-c", "{exact: c}", "true"),
            ]
        )
    ) + direct_route('{prefix: "/"}', "none", 404)
    hh = [("x-m", "a"), ("x-m", "b")]
    mine, _ = both(config(routes=routes), [{"method": "GET", "path": f"/m{i}", "headers": hh} for i in range(5)])
    assert [body_text(r) for r in mine] == ["b", "none", "none", "none", "inv-c"]


# ---- route actions ---------------------------------------------------------------------------------
ACTION_ROUTES = """
              - match: {prefix: "/pr/"}
                route: {cluster: backend, prefix_rewrite: "/new/"}
              - match: {prefix: "/pr2"}
                route: {cluster: backend, prefix_rewrite: "/"}
              - match: {path_separated_prefix: "/ps"}
                route: {cluster: backend, prefix_rewrite: "/x"}
              - match: {prefix: "/rr/"}
                route:
                  cluster: backend
                  regex_rewrite: {pattern: {regex: "^/rr/(\\\\w+)/(\\\\w+)"}, substitution: "/\\\\2/\\\\1"}
              - match: {prefix: "/auto"}
                route: {cluster: backend, auto_host_rewrite: true}
              - match: {prefix: "/to0"}
                route: {cluster: backend, timeout: 0s}
              - match: {prefix: "/to"}
                route: {cluster: backend, timeout: 3s}
              - match: {prefix: "/wc"}
                route:
                  weighted_clusters:
                    clusters:
                    - {name: other, weight: 100}
                    - {name: backend, weight: 0}
              - match: {prefix: "/ch"}
                route: {cluster_header: "x-cluster"}
              - match: {prefix: "/cnf5"}
                route: {cluster_header: "x-cluster", cluster_not_found_response_code: INTERNAL_SERVER_ERROR}
              - match: {prefix: "/cnf"}
                route: {cluster_header: "x-cluster", cluster_not_found_response_code: NOT_FOUND}
              - match: {prefix: "/d1"}
                direct_response: {status: 503}
              - match: {prefix: "/d2"}
                direct_response: {status: 200, body: {filename: "BODY_FILE"}}
              - match: {prefix: "/d3"}
                direct_response: {status: 418, body: {inline_bytes: "aGk="}}
              - match: {prefix: "/d4"}
                direct_response: {status: 204, body: {inline_string: "vanishes"}}
              - match: {prefix: "/d5"}
                direct_response: {status: 200, body: {inline_string: "caf\\u00e9"}}
              - match: {prefix: "/"}
                route: {cluster: backend}"""


def test_route_actions_like_envoy(envoy_bin, tmp_path):
    """``cluster_header`` (absent header or unknown cluster -> ``cluster_not_found_response_code``,
    default 503), ``weighted_clusters``, rewrites, timeouts and direct responses (old code refused
    ``weighted_clusters`` and ``cluster_header``)."""
    (tmp_path / "body.txt").write_text("from a file\n")
    routes = ACTION_ROUTES.replace("BODY_FILE", str(tmp_path / "body.txt"))
    cfg = config(routes=routes, clusters=static_cluster("backend", 8081) + static_cluster("other", 8082))
    reqs = [get("/pr/a?q=1"), get("/pr2/b"), get("/pr2"), get("/ps/z?k"), get("/ps"), get("/rr/one/two?x")]
    reqs += [get("/auto"), get("/to"), get("/to0"), get("/wc")]
    reqs += [get("/ch", **{"x-cluster": "other"}), get("/ch", **{"x-cluster": "nope"}), get("/ch")]
    reqs += [get("/cnf", **{"x-cluster": "nope"}), get("/cnf5")]
    reqs += [get("/d1"), get("/d2"), get("/d3"), get("/d4"), get("/d5"), {"method": "HEAD", "path": "/d2"}]
    reqs += [{"method": "POST", "path": "/d1", "body": b"abc"}]
    mine, _ = both(cfg, reqs)
    statuses = [r.status for r in mine]
    assert statuses[11:15] == [503, 503, 404, 500]


HOST_ROUTES = """
              - match: {prefix: "/host"}
                route:
                  cluster: backend
                  host_rewrite_literal: "rewritten.example"
                  prefix_rewrite: "/p"
                  append_x_forwarded_host: true
              - match: {prefix: "/same"}
                route: {cluster: backend, host_rewrite_literal: "localhost"}
              - match: {prefix: "/hdr"}
                route: {cluster: backend, host_rewrite_header: "x-host", append_x_forwarded_host: true}
              - match: {prefix: "/hre"}
                route:
                  cluster: backend
                  host_rewrite_path_regex: {pattern: {regex: "^/hre/(\\\\w+).*$"}, substitution: "\\\\1.example"}
              - match: {prefix: "/"}
                route: {cluster: backend}"""


@pytest.mark.parametrize("suppress", [False, True], ids=["envoy_headers", "suppress_envoy_headers"])
def test_host_rewrites_like_envoy(envoy_bin, suppress):
    """A host rewrite keeps the old host in ``x-envoy-original-host`` (even with
    ``suppress_envoy_headers``, measured) and, with ``append_x_forwarded_host``, appends it to
    ``x-forwarded-host`` in place (old code: neither header; ``host_rewrite_header`` and
    ``host_rewrite_path_regex`` refused)."""
    cfg = config(routes=HOST_ROUTES)
    if suppress:
        cfg = cfg.replace("router.v3.Router\n", "router.v3.Router\n              suppress_envoy_headers: true\n")
        assert "suppress_envoy_headers" in cfg
    reqs = [get("/host/a"), get("/host/b", **{"x-forwarded-host": "a.b"}), get("/same"), get("/hdr", **{"x-host": ""})]
    reqs += [get("/hdr", **{"x-host": "n.example", "x-forwarded-host": "z"}), get("/hre/abc/d")]
    both(cfg, reqs)


REDIRECT_ROUTES = """
              - match: {prefix: "/https"}
                redirect: {https_redirect: true}
              - match: {prefix: "/pathr"}
                redirect: {path_redirect: "/new/place", response_code: TEMPORARY_REDIRECT}
              - match: {prefix: "/pathq"}
                redirect: {path_redirect: "/new?a=b", strip_query: true}
              - match: {prefix: "/strip"}
                redirect: {path_redirect: "/s", strip_query: true, response_code: FOUND}
              - match: {prefix: "/pre/"}
                redirect: {prefix_rewrite: "/after/", response_code: PERMANENT_REDIRECT}
              - match: {prefix: "/hostr"}
                redirect: {host_redirect: "other.example", port_redirect: 8443, scheme_redirect: "https"}
              - match: {prefix: "/port"}
                redirect: {port_redirect: 9000}
              - match: {prefix: "/rx"}
                redirect: {regex_rewrite: {pattern: {regex: "^/rx/(.*)$"}, substitution: "/y/\\\\1"}}
              - match: {prefix: "/see"}
                redirect: {response_code: SEE_OTHER, strip_query: true}
              - match: {prefix: "/"}
                route: {cluster: backend}"""


def test_redirects_like_envoy(envoy_bin):
    """Envoy's ``newUri``: the request's port is dropped when a ``port_redirect`` replaces it or
    the scheme changes away from that port's default, ``path_redirect``'s own query wins over
    ``strip_query`` (old code: ``regex_rewrite`` refused, ports kept)."""
    reqs = [get("/https/a?q=1"), get("/https", host="h.example:80"), get("/https", host="h.example:8080")]
    reqs += [get("/https", host="h.example:443", **{"x-forwarded-proto": "https"}), get("/pathr?x=1")]
    reqs += [get("/pathq?x=1"), get("/strip?x=1"), get("/pre/z?k=v"), get("/hostr/a", host="h:1")]
    reqs += [get("/port/a", host="h:1"), get("/port", host="h"), get("/port", host="[::1]:5"), get("/rx/abc?q")]
    reqs += [get("/see?x=1"), get("/https", **{"x-forwarded-proto": "https"})]
    reqs += [{"method": "POST", "path": "/pathr", "body": b"x"}]
    mine, _ = both(config(routes=REDIRECT_ROUTES), reqs)
    assert mine[1].headers["location"] == "https://h.example/https"
    assert mine[9].headers["location"] == "http://h:9000/port/a"


# ---- path_match_policy / path_rewrite_policy (URI templates) -------------------------------------------
def _template_route(template: str, rewrite: str | None = None) -> str:
    policy = (
        f"""
                  path_rewrite_policy:
                    name: envoy.path.rewrite.uri_template.uri_template_rewriter
                    typed_config:
                      "@type": {REWRITE_TYPE}
                      path_template_rewrite: "{rewrite}\""""
        if rewrite
        else ""
    )
    return f"""
              - match:
                  path_match_policy:
                    name: envoy.path.match.uri_template.uri_template_matcher
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig
                      path_template: "{template}"
                route:
                  cluster: backend{policy}"""


TEMPLATE_ROUTES = (
    _template_route("/one/{a}/{b}", "/{b}/x/{a}")
    + _template_route("/glob/*/end")
    + _template_route("/deep/{rest=**}", "/d/{rest}")
    + _template_route("/v/{id=items/*}/z", "/{id}")
    + _template_route("/media/{f}.mpd", "/m/{f}")
    + _template_route("/star/**")
    + _template_route("/mid/**/end")
    + direct_route('{prefix: "/"}', "none", 404)
)


def test_uri_template_matching_and_rewriting_like_envoy(envoy_bin):
    """``path_match_policy``/``path_rewrite_policy`` (old code: refused as unknown fields)."""
    paths = ["/one/x/y", "/one/x/y?q=1", "/one/x", "/one/x/y/z", "/glob/a/end", "/glob/a/b/end", "/glob//end"]
    paths += ["/deep/", "/deep", "/deep/a/b/c?k", "/v/items/3/z", "/v/items/3/4/z", "/media/video.mpd"]
    paths += ["/media/video.mp4", "/star/", "/star", "/star/a/b", "/one/a!b/c:d", "/one/a*b/c", "/one/a|b/c"]
    paths += ["/mid/end", "/mid//end", "/mid/a/b/end", "/one/a%2Fb/c"]
    mine, _ = both(config(routes=TEMPLATE_ROUTES), [get(p) for p in paths])
    assert mine[0].json()["path"] == "/y/x/x"


BAD_TEMPLATES = {
    "repeated": (
        _template_route("/{a}/{a}"),
        'path_match_policy.path_template /{a}/{a} is invalid: Repeated variable name: "a"',
    ),
    "unknown_variable": (_template_route("/{a}", "/{b}"), "mismatch between variables in path_match_policy /{a}"),
    "relative": (_template_route("a/{b}"), 'is invalid: Invalid pattern: "a/{b}"'),
    "six_variables": (_template_route("/{a}/{b}/{c}/{d}/{e}/{f}"), "Exceeded variable count limit (5)"),
    "space": (_template_route("/a b"), 'is invalid: Invalid pattern: "/a b"'),
    "empty_segment": (_template_route("/a//b"), 'is invalid: Invalid literal: ""'),
    "rewrite_without_match": ("", ""),  # built in the test: a prefix route with a template rewrite
}


@pytest.mark.parametrize("case", list(BAD_TEMPLATES))
def test_uri_templates_envoy_refuses_are_refused(envoy_bin, tmp_path, case):
    routes, message = BAD_TEMPLATES[case]
    if case == "rewrite_without_match":  # a prefix route with a template rewrite
        routes = _template_route("/x", "/y")
        head, _, tail = routes.partition("                  path_match_policy:")
        routes = (
            head + '                  prefix: "/"\n                route:' + tail.split("                route:", 1)[1]
        )
        message = "unable to use envoy.path.rewrite.uri_template.uri_template_rewriter extension without"
    path = tmp_path / "bad.yaml"
    path.write_text(config(routes=routes))
    ok, envoy_message = real.validate(path)
    assert not ok and message in envoy_message
    with pytest.raises(ConfigError) as err:
        Proxy.from_yaml(path)
    assert message in str(err.value)


MISC_MATCH_ROUTES = (
    direct_route('{prefix: "/rf0", runtime_fraction: {default_value: {numerator: 0}, runtime_key: k0}}', "rf0")
    + direct_route('{prefix: "/rf100", runtime_fraction: {default_value: {numerator: 100}, runtime_key: k1}}', "rf100")
    + direct_route(
        '{prefix: "/rfm", runtime_fraction: {default_value: {numerator: 1000000, denominator: MILLION}}}', "rfm"
    )
    + direct_route(
        '{prefix: "/q1", query_parameters: [{name: a, string_match: {exact: "X", ignore_case: true}}]}', "q-ic"
    )
    + direct_route('{prefix: "/q2", query_parameters: [{name: a, present_match: false}]}', "q-absent")
    + direct_route('{prefix: "/q3", query_parameters: [{name: a}]}', "q-bare")
    + direct_route('{prefix: "/q4", query_parameters: [{name: a, string_match: {exact: "x y"}}]}', "q-decoded")
    + direct_route('{prefix: "/h1", headers: [{name: x-e, string_match: {exact: ""}}]}', "h-empty")
    + direct_route('{prefix: "/h2", headers: [{name: x-e}]}', "h-bare")
    + direct_route('{prefix: "/h3", headers: [{name: x-e, exact_match: ""}]}', "h-legacy-empty")
    + direct_route('{prefix: "/"}', "none", 404)
)


def test_runtime_fraction_query_and_empty_matchers_like_envoy(envoy_bin):
    """``runtime_fraction`` 0% never matches (old code: warned, always matched); a query
    ``present_match: false`` matches an absent parameter, and a legacy ``exact_match: ""`` any
    value (old code: neither)."""
    reqs = [get("/rf0"), get("/rf100"), get("/rfm"), get("/q1?a=x"), get("/q2"), get("/q2?a=1"), get("/q2?b")]
    reqs += [get("/q3?a"), get("/q3?a="), get("/q3?a=1"), get("/q3"), get("/q4?a=x%20y"), get("/q4?a=x+y")]
    reqs += [get("/h1", **{"x-e": ""}), get("/h1"), get("/h2", **{"x-e": ""}), get("/h2"), get("/h3", **{"x-e": "v"})]
    mine, _ = both(config(routes=MISC_MATCH_ROUTES), reqs)
    assert mine[0].body == b"none" and mine[4].body == b"q-absent"


# ---- RE2 rewrite strings --------------------------------------------------------------------------
RE2_ROUTES = r"""
              - match: {prefix: "/q"}
                route: {cluster: backend, regex_rewrite: {pattern: {regex: "^/q/(.*)$"}, substitution: "/x\\q\\1"}}
              - match: {prefix: "/two"}
                route: {cluster: backend, regex_rewrite: {pattern: {regex: "^/two/(.*)$"}, substitution: "/y/\\2"}}
              - match: {prefix: "/zero"}
                route: {cluster: backend, regex_rewrite: {pattern: {regex: "o"}, substitution: "[\\0]"}}
              - match: {prefix: "/amp"}
                route: {cluster: backend, regex_rewrite: {pattern: {regex: "a"}, substitution: "\\g<0>&$"}}
              - match: {prefix: "/same"}
                route: {cluster: backend, regex_rewrite: {pattern: {regex: "nomatch"}, substitution: "x"}}
              - match: {prefix: "/hp"}
                route:
                  cluster: backend
                  host_rewrite_path_regex: {pattern: {regex: "^/hp/(.*)$"}, substitution: "\\2"}
              - match: {prefix: "/rd"}
                redirect: {regex_rewrite: {pattern: {regex: "^/rd/(.*)$"}, substitution: "/x/\\2"}}"""


def test_regex_rewrites_follow_re2s_rewrite_rules_like_envoy(envoy_bin):
    """Substitutions are RE2 rewrite strings, not Python's: ``\\0`` is the whole match, a
    rewrite naming a missing group changes nothing (old code: a 500 from Python's IndexError),
    an unknown escape ends the replacement (``\\q``, ``\\g<0>``); and a configured rewrite adds
    ``x-envoy-original-path`` even when the path stays the same."""
    paths = ["/q/abc", "/two/abc", "/zero/foo", "/amp/a", "/same/a", "/hp/a", "/rd/a"]
    mine, env = both(config(routes=RE2_ROUTES), [get(p) for p in paths])
    assert [r.status for r in env] == [200, 200, 200, 200, 200, 200, 301]
    assert b'"/zer[o]/f[o][o]"' in env[2].body and b'"/mp/"' in env[3].body
