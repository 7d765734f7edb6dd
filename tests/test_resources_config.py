"""Absurd limits and header values are refused as Envoy refuses them (issue 14), checked against
``envoy --mode validate`` (Envoy 1.40). Most were already refused on main
(``tests/test_safety_config.py``: CR/LF in ``response_headers_to_add``, a newline in a header
name, buffer limits past UInt32, idle timeouts past Envoy's Duration bound); here the same
refusals are checked side by side with Envoy, plus the gap found: ``max_request_headers_kb``
outside Envoy's range (0, 8192]."""

from __future__ import annotations

import pytest

from helpers import config
from wasmlab import load_config
from wasmlab.envoy import validate
from wasmlab.errors import ConfigError

ROUTE_ADD = """
              - match: {prefix: "/"}
                route: {cluster: backend}
                response_headers_to_add: [{header: %s}]"""


def _hcm(snippet: str) -> str:
    return config().replace("stat_prefix: ingress", "stat_prefix: ingress\n          " + snippet)


def _listener(snippet: str) -> str:
    return config().replace("    filter_chains:", f"    {snippet}\n    filter_chains:")


REFUSED = [
    ("max_request_headers_kb 9000", _hcm("max_request_headers_kb: 9000"), "MaxRequestHeadersKb"),
    ("max_request_headers_kb 0", _hcm("max_request_headers_kb: 0"), "MaxRequestHeadersKb"),
    ("CR/LF in a value", config(routes=ROUTE_ADD % '{key: x-a, value: "a\\r\\nset-cookie: evil"}'), "Value"),
    ("newline in a name", config(routes=ROUTE_ADD % '{key: "x-a\\nb", value: "v"}'), "Key"),
    (
        "lone surrogate in a value",
        config(routes=ROUTE_ADD % '{key: x-a, value: "a\\ud800b"}'),
        "invalid unicode: 55296",
    ),
    ("buffer limit past uint32", _listener("per_connection_buffer_limit_bytes: 100000000000"), "out of range"),
    ("idle timeout past Duration", _hcm("stream_idle_timeout: 10000000000s"), "Duration out-of-range"),
]


@pytest.mark.parametrize(("what", "cfg", "words"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_by_both(envoy_bin, what, cfg, words):
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    ok, envoy_says = validate(cfg)
    assert not ok, f"Envoy accepted {what}"
    assert words in str(e.value) and words in envoy_says, (str(e.value), envoy_says)


def test_max_request_headers_kb_message():
    with pytest.raises(ConfigError) as e:
        load_config(_hcm("max_request_headers_kb: 100000"))
    assert str(e.value).endswith(
        "typed_config.max_request_headers_kb: "
        "Proto constraint validation failed (HttpConnectionManagerValidationError.MaxRequestHeadersKb: "
        "value must be inside range (0, 8192])"
    )


def test_max_request_headers_kb_at_envoys_bound_is_accepted_by_both(envoy_bin):
    cfg = _hcm("max_request_headers_kb: 8192")
    load_config(cfg)
    assert validate(cfg)[0]
