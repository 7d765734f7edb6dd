"""What a Lua script sees of a request's framing, and what the upstream then receives, against real
Envoy 1.40: the HTTP/1 codec takes ``transfer-encoding: chunked`` off the request headers before
any filter runs (the upstream codec frames the body again), and refuses every other
``transfer-encoding`` (501) and ``chunked`` with a ``content-length`` (400) before the filters.
"""

from __future__ import annotations

import pytest

from helpers import file_logs_of_both
from lua_helpers import Req, assert_both, lua_config

pytestmark = pytest.mark.envoy

SCRIPT = r"""
function envoy_on_request(h)
  local hs = h:headers()
  h:logInfo("te=" .. (hs:get("transfer-encoding") or "nil") .. " cl=" .. (hs:get("content-length") or "nil"))
  local names = {}
  for k, _ in pairs(hs) do names[#names + 1] = k end
  h:logInfo(table.concat(names, " "))
  if hs:get(":path") == "/set" then
    h:body():setBytes("new body")
    h:logInfo("after setBytes cl=" .. hs:get("content-length"))
  end
end
"""

ACCESS_LOG = """          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: LOG_PATH
              log_format:
                text_format: "%RESPONSE_CODE% %RESPONSE_CODE_DETAILS% %RESPONSE_FLAGS% %REQ(:METHOD)% %BYTES_RECEIVED%\\n"
"""


def _chunked(path: str, *te: str, body: bytes = b"0123456789", extra: tuple[tuple[str, str], ...] = ()) -> Req:
    # (trailers=[]: the body goes out in chunked encoding, with no trailer lines)
    return Req("POST", path, body, [*(("transfer-encoding", v) for v in te), ("x-a", "1"), *extra], [])


def test_a_chunked_request_reaches_the_script_without_its_transfer_encoding(envoy_bin):
    requests = [
        _chunked("/plain", "chunked"),
        _chunked("/case", " Chunked "),
        _chunked("/empty", "chunked", body=b""),
        _chunked("/set", "chunked"),  # the script's new body goes upstream with a length
        Req("POST", "/set", b"0123456789"),  # (the same with a content-length request)
    ]
    assert_both(lua_config(SCRIPT), requests)


def test_transfer_encodings_the_codec_refuses_never_reach_the_script(envoy_bin, tmp_path):
    requests = [
        _chunked("/gzip", "gzip"),
        _chunked("/identity", "identity"),
        _chunked("/list", "gzip, chunked"),
        _chunked("/twice", "chunked", "chunked"),
        _chunked("/length", "chunked", extra=(("content-length", "10"),)),
        _chunked("/ok", "chunked"),
    ]
    cfg = lua_config(SCRIPT)
    assert_both(cfg, requests)
    with_log = cfg.replace("          http_filters:", ACCESS_LOG + "          http_filters:", 1)
    reqs = [{"method": r.method, "path": r.path, **r.kw()} for r in requests]
    ours, theirs = file_logs_of_both(with_log, reqs, tmp_path)
    assert ours == theirs
    assert ours.count(b" DPE - 0\n") == 5


def test_a_reply_while_the_headers_are_decoded_reads_no_body(envoy_bin, tmp_path):
    """Envoy counts a request's body bytes as its filters are handed them: a ``respond()`` (or
    a ``direct_response``) while the headers are decoded ends the stream with none received."""
    code = r"""
    function envoy_on_request(h)
      local p = h:headers():get(":path")
      if p == "/respond" then h:respond({[":status"] = "403"}, "no") end
      if p == "/respond-after-body" then
        h:body()
        h:respond({[":status"] = "403"}, "no")
      end
    end
    """
    routes = """
              - match: {prefix: "/direct"}
                direct_response: {status: 200, body: {inline_string: "d"}}
              - match: {prefix: "/"}
                route: {cluster: backend}"""
    cfg = lua_config(code, routes=routes).replace("          http_filters:", ACCESS_LOG + "          http_filters:", 1)
    reqs = [
        {"method": "POST", "path": p, "body": b"abc"} for p in ("/respond", "/respond-after-body", "/direct", "/ok")
    ]
    reqs += [
        {"method": r.method, "path": r.path, **r.kw()}
        for r in (_chunked("/respond", "chunked"), _chunked("/ok", "chunked"))
    ]
    ours, theirs = file_logs_of_both(cfg, reqs, tmp_path)
    assert ours.count(b"\n") == 6
    assert ours == theirs
