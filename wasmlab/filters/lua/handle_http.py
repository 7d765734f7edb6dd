"""The handle's local reply and outbound HTTP (Envoy ``StreamHandleWrapper`` ``respond`` and
``httpCall``): both stop the script; a synchronous ``httpCall`` resumes it with the answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...host import async_client
from ...http import HeaderMap
from ...http.inline_headers import REQUEST_HEADERS_INLINE, RESPONSE_HEADERS_INLINE
from .handle_driver import HandleDriver, State
from .luaobject import (
    NOTHING,
    YIELD,
    LuaApiError,
    LuaArgError,
    LuaRawError,
    c_string,
    check_integer,
    check_string,
    check_type,
    export,
    lua_type,
    opt_string,
    text,
    utf8_text,
    wire,
)
from .wrappers_headers import envoy_add

_HTTP_CALL_OPTIONS = ("asynchronous", "timeout_ms", "trace_sampled", "return_duplicate_headers", "send_xff")


class HttpApi(HandleDriver):
    """``handle:respond()`` and ``handle:httpCall()``."""

    return_duplicate_headers = False

    @export("respond", 0)
    def lua_respond(self, *args: Any) -> Any:
        """Send a local reply and end the script. @param 1 (table): headers incl. ``:status``.
        @param 2 (string, optional): body."""
        if self.headers_continued:
            raise LuaApiError("respond() cannot be called if headers have been continued")
        table = check_type(args, 1, "respond", "table")
        body = opt_string(args, 2, "respond")
        headers = self._headers_from_table(table, len(args) + 1, RESPONSE_HEADERS_INLINE)
        status = simple_atoi(headers.get(":status") or "")
        if status is None or not 200 <= status < 600:
            raise LuaApiError(":status must be between 200-599")
        if body is not None:
            headers.set("content-length", str(len(body)))
        self.cb.respond(headers, body)
        self.state = State.RESPONDED
        return YIELD

    def _headers_from_table(self, table: Any, nargs: int, inline: frozenset[str]) -> HeaderMap:
        """Envoy ``buildHeadersFromTable``: keys lower-cased, values strings (numbers coerced) or
        lists of them, in Lua's iteration order, each added as Envoy's ``addCopy`` adds to a
        request (``httpCall``) or response (``respond``) map: ``inline`` names join (see
        ``envoy_add``: ``{["content-type"] = {"a", "b"}}`` is one ``a,b``; ``host`` is
        ``:authority``). ``nargs`` counts the call's stack slots; Envoy walks a copy of the table
        pushed on top, so a bad key is at ``nargs + 2``, its value at ``nargs + 3``, an item of a
        value list at ``nargs + 5`` (LuaJIT numbers errors by slot). A number key is coerced in
        place, which breaks ``lua_next``."""
        pairs, problem = self.vm.header_pairs(table)
        if pairs is None:
            assert problem is not None
            what, tname = problem
            if what == "number_key":
                raise LuaRawError("invalid key to 'next'")
            slot = {"key": nargs + 2, "value": nargs + 3, "item": nargs + 5}[what]
            raise LuaArgError(slot, f"string expected, got {tname}")
        headers = HeaderMap(None, inline)
        for k, v in pairs:
            envoy_add(headers, inline, _c_text(k).lower(), _c_text(v))
        return headers

    # ---- outbound HTTP ---------------------------------------------------------------------------------
    @export("httpCall", 2)
    def lua_http_call(self, *args: Any) -> Any:
        """``httpCall(cluster, headers, body, timeout_ms[, asynchronous])`` or
        ``httpCall(cluster, headers, body, options)``. @return headers table and body (sync)."""
        nargs = len(args) + 1
        if len(args) >= 4 and lua_type(args[3]) == "table":
            opts = _table_options(self.vm.option_pairs(args[3]), nargs)
        else:
            opts = _positional_options(args)
        cluster = utf8_text(c_string(check_string(args, 1, "httpCall")))
        table = check_type(args, 2, "httpCall", "table")
        proxy = self.proxy
        if cluster not in proxy.clusters:
            raise LuaApiError("http call cluster invalid. Must be configured")
        headers = self._headers_from_table(table, nargs, REQUEST_HEADERS_INLINE)
        if headers.get(":path") is None or headers.get(":method") is None or headers.get(":authority") is None:
            raise LuaApiError("http call headers must include ':path', ':method', and ':authority'")
        # (Envoy 1.40 reads the body last: a missing cluster or ':path' is reported before a bad body)
        body = opt_string(args, 3, "httpCall")
        if body is not None:
            headers.set("content-length", str(len(body)))
        timeout_s = opts.timeout_ms / 1000 if opts.timeout_ms else None
        if opts.is_async:
            async_client.send(
                proxy, self.filter.dispatcher, cluster, headers, body or b"", timeout_s, _ignore, send_xff=opts.send_xff
            )
            return NOTHING
        self.http_request = async_client.send(
            proxy, self.filter.dispatcher, cluster, headers, body or b"", timeout_s, self._on_http_complete,
            send_xff=opts.send_xff,
        )  # fmt: skip
        self.state = State.HTTP_CALL
        self.return_duplicate_headers = opts.return_duplicate_headers
        return YIELD

    def _on_http_complete(self, response: async_client.AsyncResponse) -> None:
        """The call's answer, on this worker (Envoy ``onSuccess``/``onFailure``)."""
        self.http_request = None
        if self.filter.destroyed:
            return
        if response.headers is None:
            self.envoy_log("async HTTP failure")
        self.envoy_log("async HTTP response complete")
        if response.headers is None:
            headers = HeaderMap([(":status", "503")])
            body = b"upstream failure"
        else:
            headers, body = response.headers, response.body
        if self.return_duplicate_headers:
            grouped: dict[str, list[str]] = {}
            for k, v in headers:
                grouped.setdefault(k, []).append(v)
            flat: list[Any] = []
            for k, vs in grouped.items():
                flat += [wire(k), wire(vs[0]) if len(vs) == 1 else self.vm.table([wire(v) for v in vs])]
        else:
            flat = []
            for k, v in headers:
                flat += [wire(k), wire(v)]
        table = self.vm.table_from_pairs(flat)
        if self.state is not State.HTTP_CALL:
            return
        self.state = State.RUNNING
        self.mark_live()
        filt = self.filter
        filt.in_http_callback = True  # a respond() now goes out at once (LuaCallbacks.respond)
        try:
            self._run("http_response", table, body if body else None)
        finally:
            filt.in_http_callback = False
        if self.error is None:
            self.mark_dead()
        else:
            self.filter.script_error(self.error)
        if self.state is State.RUNNING:
            self.headers_continued = True
            self.cb.continue_iteration()


@dataclass
class _CallOptions:
    """How ``httpCall`` sends (Envoy's ``options`` table keys; ``trace_sampled`` is accepted and
    ignored: wasmlab has no tracer)."""

    timeout_ms: int = 0
    is_async: bool = False
    return_duplicate_headers: bool = False
    send_xff: bool = True


def _positional_options(args: tuple[Any, ...]) -> _CallOptions:
    """``httpCall(cluster, headers, body, timeout_ms[, asynchronous])``."""
    if len(args) >= 5 and not isinstance(args[4], bool):
        raise LuaApiError("http call asynchronous flag must be 'true', 'false', or empty")
    timeout_ms = check_integer(args, 4, "httpCall")
    if timeout_ms < 0:
        raise LuaApiError("http call timeout must be >= 0")
    return _CallOptions(timeout_ms, len(args) >= 5 and bool(args[4]))


def _table_options(pairs: Any, nargs: int) -> _CallOptions:
    """``httpCall(cluster, headers, body, options)``: the table's keys in Lua's order; a bad key is
    at stack slot ``nargs + 2``, its value at ``nargs + 3`` (see ``_headers_from_table``)."""
    opts = _CallOptions()
    for key, value in pairs:
        if not isinstance(key, bytes):
            raise LuaArgError(nargs + 2, f"string expected, got {lua_type(key)}")
        name = text(key)
        if name not in _HTTP_CALL_OPTIONS:
            raise LuaApiError(f'"{name}" is not valid key for httpCall() options')
        if name == "asynchronous":
            opts.is_async = _truthy(value)
        elif name == "timeout_ms":
            if not _is_number(value):
                raise LuaArgError(nargs + 3, f"number expected, got {lua_type(value)}")
            opts.timeout_ms = check_integer((value,), 1, "httpCall")
            if opts.timeout_ms < 0:
                raise LuaApiError("http call timeout must be >= 0")
        elif name == "return_duplicate_headers":
            opts.return_duplicate_headers = _truthy(value)
        elif name == "send_xff":
            opts.send_xff = _truthy(value)
    return opts


def _c_text(s: str) -> str:
    """A header table's name or value as Envoy reads it (``luaL_checkstring``: up to a NUL)."""
    i = s.find("\0")
    return s if i < 0 else s[:i]


def simple_atoi(value: str) -> int | None:
    """``absl::SimpleAtoi`` into a uint64, as Envoy reads ``:status``: ASCII whitespace around, an
    optional ``+``, decimal digits (`` 404 `` and ``+404`` are 404; ``404.0``, ``0x194`` are not)."""
    v = value.strip(" \t\n\v\f\r").removeprefix("+")
    if not (v.isascii() and v.isdecimal()):
        return None
    n = int(v)
    return n if n < 1 << 64 else None


def _ignore(_response: Any) -> None:
    """Callbacks of an asynchronous httpCall: the answer is dropped."""


def _truthy(v: Any) -> bool:
    return v is not None and v is not False


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int | float):
        return True
    if isinstance(v, bytes):
        from .luaobject import string_to_number

        return string_to_number(v) is not None
    return False
