"""Local replies compared with real Envoy 1.40: ``local_reply_config`` (mappers, body formats, path
rejections), direct_response body limits and the text of a local reply. The same YAML and requests
on both; the client's responses must agree. Each probe found a disagreement that is now fixed;
the docstrings say what Envoy does.
"""

from __future__ import annotations

import pytest

from helpers import CAFE, both, config, direct_route, get, hcm_option
from wasmlab import Proxy
from wasmlab import envoy as real
from wasmlab.errors import ConfigError

pytestmark = pytest.mark.envoy


# ---- local_reply_config ----------------------------------------------------------------------------
LOCAL_REPLY = """
          local_reply_config:
            mappers:
            - filter:
                status_code_filter:
                  comparison: {op: EQ, value: {default_value: 404, runtime_key: k1}}
              status_code: 410
              body: {inline_string: "gone: %REQ(:path)%"}
              headers_to_add:
              - header: {key: x-mapped, value: "%RESPONSE_CODE%"}
            - filter:
                header_filter:
                  header: {name: x-json, present_match: true}
              body_format_override:
                json_format:
                  code: "%RESPONSE_CODE%"
                  body: "%LOCAL_REPLY_BODY%"
                  path: "%REQ(:path)%"
                  missing: "%REQ(x-nope)%"
                  u: "%REQ(x-u)%"
            - filter:
                and_filter:
                  filters:
                  - status_code_filter: {comparison: {op: GE, value: {default_value: 500}}}
                  - response_flag_filter: {flags: [UF]}
              status_code: 502
              body_format_override:
                text_format_source: {inline_string: "upstream down (%RESPONSE_FLAGS%)"}
                content_type: "text/x-down"
            body_format:
              text_format: "[%LOCAL_REPLY_BODY%] %RESPONSE_CODE% %RESP(:status)%\\n"
"""
LOCAL_REPLY_ROUTES = (
    direct_route('{prefix: "/d404"}', "direct-404", 404)
    + direct_route('{prefix: "/d200"}', "direct-200")
    + """
              - match: {prefix: "/d503"}
                direct_response: {status: 503}
              - match: {prefix: "/moved"}
                redirect: {path_redirect: "/new"}
              - match: {prefix: "/up"}
                route: {cluster: backend}"""
)


def test_local_reply_config_like_envoy(envoy_bin):
    """Every local reply (no route, direct response, redirect, upstream failure) goes through
    the mappers and the body format: the first passing mapper's literal ``body``, its headers
    (formatted before its ``status_code`` applies), then the format; ``json_format`` is sorted
    with numbers and nulls (old code: ``local_reply_config`` ignored with a warning)."""
    cfg = hcm_option(LOCAL_REPLY.strip(), routes=LOCAL_REPLY_ROUTES)
    reqs = [get("/d404"), get("/nothing"), get("/d200"), get("/d503"), get("/moved?q=1")]
    reqs += [get("/d404", **{"x-json": "1"}), get("/d200", **{"x-json": "1", "x-u": CAFE}), get("/up")]
    reqs += [get("/up", **{"x-json": "1"}), {"method": "HEAD", "path": "/d404"}]
    mine, _ = both(cfg, reqs, apps={"backend": None})
    assert (mine[0].status, mine[0].headers["x-mapped"], mine[0].body) == (
        410,
        "404",
        b"[gone: %REQ(:path)%] 410 410\n",
    )
    assert mine[6].body.startswith(b'{"body":"direct-200","code":200,"missing":null')
    assert (mine[7].status, mine[7].headers["content-type"]) == (502, "text/x-down")


@pytest.mark.parametrize("limit", [None, 6000])
def test_direct_response_body_size_limit_like_envoy(envoy_bin, tmp_path, limit):
    """Envoy refuses a direct response body over ``max_direct_response_body_size_bytes``
    (default 4096; old code accepted any size)."""
    cfg = config(routes=direct_route('{prefix: "/"}', "x" * 5000))
    if limit is not None:
        cfg = cfg.replace(
            "            virtual_hosts:",
            f"            max_direct_response_body_size_bytes: {limit}\n            virtual_hosts:",
        )
    path = tmp_path / "big.yaml"
    path.write_text(cfg)
    assert real.validate(path)[0] == (limit is not None)
    if limit is None:
        with pytest.raises(
            ConfigError, match=r"direct_response.body: response body size is 5000 bytes; maximum is 4096"
        ):
            Proxy.from_yaml(path)
    else:
        both(str(path), [get("/")])


LOCAL_REPLY_UTF8 = """local_reply_config:
            mappers:
            - filter: {header_filter: {header: {name: x-json, present_match: true}}}
              headers_to_add:
              - header: {key: x-m, value: "h\\u00e9-%REQ(x-u)%"}
              body_format_override:
                json_format: {"cl\\u00e9": "v\\u00e9 %REQ(x-u)%", body: "%LOCAL_REPLY_BODY%", n: 5, b: true}
            - filter: {header_filter: {header: {name: x-text, present_match: true}}}
              body: {inline_string: "b\\u00f6dy"}
              body_format_override:
                text_format_source:
                  inline_string: "t\\u00e9xt %LOCAL_REPLY_BODY% %REQ(x-u)% %START_TIME(%Y)% %RESPONSE_CODE_DETAILS%\""""


def test_local_reply_text_is_utf8_and_json_constants_keep_their_type_like_envoy(envoy_bin):
    """Non-ASCII config text and header bytes in local-reply formats come out as UTF-8, a
    number or bool in ``json_format`` stays one, and ``%RESPONSE_CODE_DETAILS%`` is already set
    when the body is formatted (old code: local_reply_config ignored)."""
    cfg = hcm_option(LOCAL_REPLY_UTF8, routes=direct_route('{prefix: "/d"}', "n\\u00f6pe", 404))
    reqs = [get("/d", **{"x-json": "1", "x-u": CAFE}), get("/d", **{"x-text": "1", "x-u": CAFE})]
    reqs += [get("/x", **{"x-text": "1"}), get("/d")]
    mine, _ = both(cfg, reqs)
    assert mine[0].body == '{"b":true,"body":"nöpe","cl\u00e9":"vé café","n":5}\n'.encode()
    assert mine[2].body.endswith(b" route_not_found")


def test_local_reply_config_rewrites_path_rejections_and_keeps_the_original_close(envoy_bin):
    """A path rejection (400) rewritten to 404 still closes the connection, a 404 rewritten to
    400 does not: the close follows the original status; the codec's and the normalizer's
    rejections go through the mappers too."""
    option = """normalize_path: true
          local_reply_config:
            mappers:
            - filter: {status_code_filter: {comparison: {op: EQ, value: {default_value: 404}}}}
              status_code: 400
            - filter: {status_code_filter: {comparison: {op: EQ, value: {default_value: 400}}}}
              status_code: 404
              body: {inline_string: "was 400"}"""
    routes = (
        direct_route('{prefix: "/d"}', "d", 404)
        + '\n              - match: {prefix: "/"}\n                route: {cluster: backend}'
    )
    mine, _ = both(
        hcm_option(option, routes=routes), [get("/d"), get("/a%00b"), get("/x#f"), get("/" + CAFE), get("/ok")]
    )
    assert [(r.status, r.headers.get("connection")) for r in mine[:2]] == [(400, None), (404, "close")]
