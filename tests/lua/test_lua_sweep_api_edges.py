"""Edges of the Lua filter's API and of its LuaJIT state found by a later sweep against real Envoy
1.40 (``lua_helpers.assert_both`` says what is compared and what scripts avoid).
"""

from __future__ import annotations

import pytest

from lua_helpers import Req, assert_both, lua_config, tried

pytestmark = pytest.mark.envoy


def test_set_bytes_empties_the_buffer_before_it_reads_its_argument(envoy_bin):
    # (the script answers itself: a body left shorter than its content-length stalls the upstream)
    code = tried(r"""
    function envoy_on_request(h)
      local b = h:body()
      try(h, "setBytes nil", function() return b:setBytes(nil) end)
      try(h, "setBytes table", function() return b:setBytes({}) end)
      h:respond({[":status"] = "200"}, "len " .. b:length() .. " cl " .. h:headers():get("content-length"))
    end
    """)
    assert_both(lua_config(code), [Req("POST", "/", b"hello world")])


def test_the_state_has_rawlen_and_no_python_module(envoy_bin):
    code = tried(r"""
    function envoy_on_request(h)
      try(h, "string", function() return rawlen("abcd") end)
      try(h, "number", function() return rawlen(5) end)
      try(h, "nothing", function() return rawlen() end)
      try(h, "handle", function() return rawlen(h) end)
      try(h, "__len not called", function() return rawlen(setmetatable({1, 2}, {__len = function() return 9 end})) end)
      try(h, "python", function() return tostring(python) .. " " .. tostring(package.loaded.python) end)
      local names = {}
      for k in pairs(_G) do names[#names + 1] = k end
      table.sort(names)
      h:logInfo(table.concat(names, ","))
      if h:headers():get(":path") == "/fail" then
        local n = rawlen(true)
      end
    end
    """)
    assert_both(lua_config(code), [Req("GET", "/"), Req("GET", "/fail")])
