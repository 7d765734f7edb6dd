"""Fuzz every Proxy-Wasm host function from inside a running VM (issue 14: a learner's kernel
never dies).

A generated module (:mod:`fuzz_module`) imports every host function wasmlab links — the
``env`` functions of ABI 0.2.1 and 0.1.0 and the WASI ones — and from inside its callbacks
(request headers, request body, response headers, log, tick, and at start-up ``proxy_on_vm_start``
and ``proxy_on_configure``) the test calls them with hypothesis-drawn arguments: random and
edge-case pointers and lengths, enums in and out of range, pointers at valid names, and pair blobs
that are valid, truncated or lie about their count. Every call must return, without a Python
exception escaping the host function (the wrapper would answer INTERNAL_FAILURE and log
"host function ... failed"), with a code Envoy could return for that function.

The codes come from Envoy's sources: proxy-wasm-cpp-host ``src/exports.cc`` (memory checks:
InvalidMemoryAccess; enum ranges: BadArgument) and Envoy's ``source/extensions/common/wasm/context.cc``
(what each context method answers). Bounded and reproducible: ``derandomize=True`` (a fixed seed),
no example database, a fixed number of examples (``WASMLAB_FUZZ_EXAMPLES``, default 40 batches of
1-4 calls per function, each batch run in every callback); the count and the time go to the
pytest summary (``fuzz: ...``).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import Any

import pytest
import wasmtime
from fuzz_module import (
    BLOB,
    BLOB_MAX,
    FIXTURE_WRITES,
    FIXTURES,
    MEM_END,
    OUT_SLOTS,
    PHASES,
    SPANS,
    fuzzed_names,
    hostcall_of,
    wat,
)
from fuzz_stats import STATS, fuzz_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CONFIGS
from wasm_diff import plugin_yaml
from wasmlab import Proxy
from wasmlab.host.proxy import StreamReset
from wasmlab.proxywasm import pairs
from wasmlab.proxywasm.hostcalls import ENV, HostBinding, hostcall
from wasmlab.proxywasm.types import WasmResult as R

EXAMPLES = int(os.environ.get("WASMLAB_FUZZ_EXAMPLES", "40"))
FUZZ_SETTINGS = fuzz_settings(EXAMPLES)

OK, NF, BAD, SER, PARSE = R.OK, R.NOT_FOUND, R.BAD_ARGUMENT, R.SERIALIZATION_FAILURE, R.PARSE_FAILURE
MEM, EMPTY, CAS, INTERNAL, UNIMPL = (
    R.INVALID_MEMORY_ACCESS,
    R.EMPTY,
    R.CAS_MISMATCH,
    R.INTERNAL_FAILURE,
    R.UNIMPLEMENTED,
)
_MAP = {OK, BAD, NF, MEM}
#: what Envoy can answer, per host function (exports.cc checks memory and enum ranges first, then
#: the context method answers)
ENVOY_CODES: dict[str, set[int]] = {
    "proxy_log": {OK, BAD, MEM},
    "proxy_get_log_level": {OK, MEM},
    "proxy_get_current_time_nanoseconds": {OK, MEM},
    "proxy_set_tick_period_milliseconds": {OK},
    "proxy_set_effective_context": {OK, BAD},
    "proxy_done": {OK, NF},
    "proxy_call_foreign_function": {OK, NF, MEM, SER},
    "proxy_get_status": {OK, MEM},
    "proxy_get_configuration": {OK, MEM},
    "proxy_continue_request": {OK},
    "proxy_continue_response": {OK},
    "proxy_clear_route_cache": {OK},
    "proxy_continue_stream": {OK, BAD, UNIMPL},
    "proxy_close_stream": {OK, BAD},
    "proxy_send_local_response": {OK, MEM},
    "proxy_get_header_map_pairs": _MAP,
    "proxy_set_header_map_pairs": _MAP,
    "proxy_get_header_map_size": _MAP,
    "proxy_get_header_map_value": _MAP,
    "proxy_add_header_map_value": _MAP,
    "proxy_replace_header_map_value": _MAP,
    "proxy_remove_header_map_value": _MAP,
    "proxy_get_buffer_bytes": _MAP,
    "proxy_set_buffer_bytes": _MAP,
    "proxy_get_buffer_status": _MAP,
    "proxy_http_call": {OK, BAD, MEM, INTERNAL},
    "proxy_get_property": {OK, NF, MEM, SER},
    "proxy_set_property": {OK, NF, BAD, MEM},
    "proxy_get_shared_data": {OK, NF, MEM},
    "proxy_set_shared_data": {OK, CAS, MEM},
    "proxy_register_shared_queue": {OK, MEM},
    "proxy_resolve_shared_queue": {OK, NF, MEM},
    "proxy_enqueue_shared_queue": {OK, NF, MEM},
    "proxy_dequeue_shared_queue": {OK, NF, EMPTY, MEM},
    "proxy_define_metric": {OK, BAD, MEM},
    "proxy_increment_metric": {OK, NF, BAD},
    "proxy_record_metric": {OK, NF},
    "proxy_get_metric": {OK, NF, BAD, MEM},
    "proxy_grpc_call": {OK, PARSE, BAD, MEM, INTERNAL},
    "proxy_grpc_stream": {OK, PARSE, BAD, MEM, INTERNAL},
    "proxy_grpc_send": {OK, NF, BAD, MEM},
    # BAD_ARGUMENT for a token of neither gRPC kind (measured on Envoy 1.40:
    # test_wasm_sweep_edges.py::test_grpc_tokens_answer_by_their_kind_like_envoy)
    "proxy_grpc_cancel": {OK, NF, BAD},
    "proxy_grpc_close": {OK, NF, BAD},
    "pthread_equal": {0, 1},
    "emscripten_notify_memory_growth": {-1},  # no result (the fz_ wrapper answers -1)
    "proc_exit": {-1},
}
#: WASI errnos exports.cc returns: ESUCCESS, EBADF, EFAULT, EINVAL, ENOENT, ENOSYS, ENOTSUP
WASI_ERRNOS = {0, 8, 21, 28, 44, 52, 58}
#: wasmlab's documented simplifications (README / module docstrings), not Envoy's codes
WASMLAB_ONLY: dict[str, set[int]] = {
    "proxy_grpc_stream": {UNIMPL},  # gRPC streams are not supported (hostcalls/grpc.py)
}


def _readable(ptr: int, size: int) -> bool:
    return size == 0 or ptr + size <= MEM_END


def allowed(name: str, args: tuple[int, ...] = ()) -> set[int]:
    """The codes Envoy could answer for ``name`` — exactly, where the arguments decide it."""
    if name == "proxy_log" and args:
        return {BAD} if args[0] > 5 else {MEM} if not _readable(args[1], args[2]) else {OK}
    if name == "proxy_define_metric" and args:
        return {MEM} if not _readable(args[1], args[2]) else {BAD} if args[0] > 2 else {OK, MEM}
    if name == "proxy_close_stream" and args:
        return {OK} if args[0] <= 3 else {BAD}
    if name == "proxy_continue_stream" and args:
        return {OK} if args[0] < 3 else {UNIMPL} if args[0] == 3 else {BAD}
    if name in ENVOY_CODES:
        return ENVOY_CODES[name] | WASMLAB_ONLY.get(name, set())
    return WASI_ERRNOS | ({-1} if not hostcall_of(name).results else set())


# ---- strategies -----------------------------------------------------------------------------------
U32_EDGES = [0, 1, 2, 3, 4, 8, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, MEM_END - 1, MEM_END - 4, MEM_END, MEM_END + 1]
U32 = st.one_of(
    st.sampled_from(U32_EDGES + OUT_SLOTS),
    st.integers(0, 9),  # enums in range
    st.integers(0, 16),  # and just past it
    st.integers(0, MEM_END + 64),
    st.integers(0, 2**32 - 1),
)
I64 = st.one_of(st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63)]), st.integers(-(2**63), 2**63 - 1))
_PAIRS = st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=12)), max_size=6)
_CALL = [(b":method", b"GET"), (b":path", b"/"), (b":authority", b"backend")]
BLOBS = st.one_of(
    _PAIRS.map(pairs.encode),  # valid
    _PAIRS.map(lambda p: pairs.encode(_CALL + p)),  # valid, with what an http_call needs
    st.tuples(_PAIRS.map(pairs.encode), st.integers(1, 16)).map(lambda t: t[0][: -t[1]]),  # truncated
    st.tuples(_PAIRS.map(lambda p: pairs.encode(_CALL + p)), st.integers(0, 2**32 - 1)).map(
        lambda t: struct.pack("<I", t[1]) + t[0][4:]  # a count that lies
    ),
    st.binary(max_size=256),
)


@st.composite
def _args(draw: Any, name: str, blob_len: int) -> tuple[int, ...]:
    """Arguments for ``name``: each i32 random/edge, or a pointer and its length together."""
    params = hostcall_of(name).params
    spans = [*SPANS, (BLOB, blob_len), (BLOB, max(0, blob_len - 3)), (BLOB, blob_len + 9)]
    out: list[int] = []
    while len(out) < len(params):
        i = len(out)
        if params[i] == "i64":
            out.append(draw(I64))
        elif i + 1 < len(params) and params[i + 1] == "i32" and draw(st.booleans()):
            out.extend(draw(st.sampled_from(spans)))
        else:
            out.append(draw(U32))
    return tuple(out)


@st.composite
def batches(draw: Any, names: list[str], max_calls: int = 4) -> tuple[bytes, list[tuple[str, tuple[int, ...]]]]:
    blob = draw(BLOBS)[:BLOB_MAX]
    calls = [
        (n, draw(_args(n, len(blob)))) for n in draw(st.lists(st.sampled_from(names), min_size=1, max_size=max_calls))
    ]
    return blob, calls


# ---- the hook: runs the pending calls inside a callback ------------------------------------------
PENDING: dict[int, tuple[bytes, list[tuple[str, tuple[int, ...]]]]] = {}
RESULTS: list[tuple[str, str, tuple[int, ...], Any]] = []
ESCAPED: list[str] = []
_PHASE_NAMES = {v: k for k, v in PHASES.items()}


def _signed(v: int, kind: str) -> int:
    if kind == "i32":
        return v - 2**32 if v >= 2**31 else v
    return v


def _hook(vm: Any, phase: int, context_id: int) -> int:
    batch = PENDING.pop(phase, None)
    if batch is None:
        return 0
    blob, calls = batch
    for addr, data in FIXTURE_WRITES:
        vm.memory.write(addr, data)
    vm.memory.write(BLOB, blob)
    exports = vm.instance.exports(vm.store)
    for name, args in calls:
        params = hostcall_of(name).params
        try:
            rc: Any = exports[f"fz_{name}"](vm.store, *(_signed(a, p) for a, p in zip(args, params, strict=True)))
        except wasmtime.Trap as e:
            rc = f"trap: {str(e).splitlines()[0]}"
        RESULTS.append((_PHASE_NAMES[phase], name, args, rc))
        STATS.hostcalls[name] += 1
    exports["fz_proxy_set_tick_period_milliseconds"](vm.store, 1000)  # keep the ticks coming
    return 0


@pytest.fixture(scope="module", autouse=True)
def _fuzz_hook() -> Iterator[None]:
    """Register the hook import and count host-function bugs, for this module only."""
    hostcall("wasmlab_fuzz_hook", 2)(_hook)
    original = HostBinding.host_bug

    def counting(self: HostBinding, e: BaseException) -> R:
        ESCAPED.append(f"{self.full}: {type(e).__name__}: {e}")
        STATS.escaped += 1
        return original(self, e)

    HostBinding.host_bug = counting  # type: ignore[method-assign]
    try:
        yield
    finally:
        HostBinding.host_bug = original  # type: ignore[method-assign]
        ENV.pop("wasmlab_fuzz_hook", None)


def _proxy(tmp: Any, version: str, network: bool = False) -> Proxy:
    path = tmp / f"fuzz_{version.replace('.', '_')}.wasm"
    path.write_bytes(wasmtime.wat2wasm(wat(version)))
    if network:  # the module as a network filter in front of tcp_proxy
        yaml = (CONFIGS / "wasm" / "tcp_logger.yaml").read_text()
        yaml = yaml.replace("../../../modules/tcp_logger.wasm", str(path))
    else:
        yaml = plugin_yaml(path, configuration="fuzz", vm_configuration="vm")
    return Proxy.from_yaml(yaml, workers=1, clock="virtual", options={"wasm_callback_deadline_s": 30.0})


def _check(expect_ran: bool = True) -> None:
    """Every recorded call answered a code Envoy could answer; nothing escaped; nothing left."""
    bad = [
        f"{phase}: {name}{args} -> {rc!r} (Envoy: {sorted(allowed(name, args))})"
        for phase, name, args, rc in RESULTS
        if not isinstance(rc, int) or rc not in allowed(name, args)
    ]
    escaped = list(ESCAPED)
    left = sorted(_PHASE_NAMES[p] for p in PENDING)
    RESULTS.clear()
    ESCAPED.clear()
    PENDING.clear()
    assert not escaped, escaped
    assert not bad, "\n".join(bad)
    if expect_ran:
        assert not left, f"the callbacks {left} did not run (the VM failed?)"


def _drive(p: Proxy, phase: str) -> None:
    try:
        if phase == "tick":
            p.advance(1.0)
        elif phase == "request_body":
            p.request("POST", "/fuzz", body=b"0123456789")
        elif phase == "http_call_response":  # a valid callout first; its answer runs the batch
            PENDING[PHASES["request_headers"]] = (b"", [("proxy_http_call", CALLOUT)])
            p.request("GET", "/fuzz")
        else:
            p.request("GET", "/fuzz", headers={"x-fuzz": "1"})
    except StreamReset:  # proxy_close_stream did what it says
        pass
    p.wait_idle(5.0)


def _drive_connection(p: Proxy) -> None:
    """One TCP connection: new connection, downstream data, the echo's upstream data, close."""
    c = p.connect()
    c.send(b"hello")
    c.recv(timeout=1.0)
    c.close(timeout=2.0)
    p.wait_idle(5.0)


STREAM_PHASES = ["request_headers", "request_body", "response_headers", "log", "tick", "http_call_response"]
#: proxy_http_call to cluster "backend" with :method, :path, :authority; the token to an out-slot
CALLOUT = (*SPANS[0], FIXTURES["call_headers"][0], len(FIXTURES["call_headers"][1]), 0, 0, 0, 0, 1000, OUT_SLOTS[0])


def _in_every_callback(p: Proxy, batch: Any) -> None:
    """The same calls in each callback of :data:`STREAM_PHASES`, checked after each."""
    for phase in STREAM_PHASES:
        PENDING[PHASES[phase]] = batch
        with STATS.timed():
            _drive(p, phase)
        _check()


@pytest.fixture(scope="module")
def fuzz_proxy(tmp_path_factory: Any) -> Iterator[Proxy]:
    p = _proxy(tmp_path_factory.mktemp("fuzz"), "0.2.1")
    try:
        yield p
    finally:
        p.close()


@pytest.mark.parametrize("name", fuzzed_names("0.2.1"))
def test_host_function_fuzz(fuzz_proxy: Proxy, name: str) -> None:
    @FUZZ_SETTINGS
    @given(batch=batches([name]))
    def run(batch: Any) -> None:
        _in_every_callback(fuzz_proxy, batch)

    run()


ALL_NAMES = fuzzed_names("0.2.1")


@FUZZ_SETTINGS
@given(batch=batches(ALL_NAMES, max_calls=8))
def test_mixed_sequences_fuzz(fuzz_proxy: Proxy, batch: Any) -> None:
    """Calls of different functions in one callback: state one call leaves (an effective context,
    a queue, a metric, a pending callout) meets the next."""
    _in_every_callback(fuzz_proxy, batch)


@settings(FUZZ_SETTINGS, max_examples=max(5, EXAMPLES // 4))
@given(start=batches(ALL_NAMES, max_calls=8), configure=batches(ALL_NAMES, max_calls=8))
def test_start_up_callbacks_fuzz(tmp_path_factory: Any, start: Any, configure: Any) -> None:
    """``proxy_on_vm_start`` and ``proxy_on_configure`` (root context, configuration readable):
    a new proxy per example; it must start, serve and close."""
    PENDING[PHASES["vm_start"]] = start
    PENDING[PHASES["configure"]] = configure
    with STATS.timed():
        p = _proxy(tmp_path_factory.mktemp("start"), "0.2.1")
        try:
            _drive(p, "request_headers")
        finally:
            p.close()
    _check()


@pytest.fixture(scope="module")
def fuzz_proxy_010(tmp_path_factory: Any) -> Iterator[Proxy]:
    p = _proxy(tmp_path_factory.mktemp("fuzz010"), "0.1.0")
    try:
        yield p
    finally:
        p.close()


@pytest.mark.parametrize("name", fuzzed_names("0.1.0"))
def test_abi_010_host_function_fuzz(fuzz_proxy_010: Proxy, name: str) -> None:
    """The four functions only ABI 0.1.0 modules get."""

    @FUZZ_SETTINGS
    @given(batch=batches([name]))
    def run(batch: Any) -> None:
        _in_every_callback(fuzz_proxy_010, batch)

    run()


@pytest.fixture(scope="module")
def fuzz_proxy_tcp(tmp_path_factory: Any) -> Iterator[Proxy]:
    p = _proxy(tmp_path_factory.mktemp("fuzztcp"), "0.2.1", network=True)
    try:
        yield p
    finally:
        p.close()


@settings(FUZZ_SETTINGS, max_examples=EXAMPLES * 4)
@given(batch=batches(ALL_NAMES, max_calls=8))
def test_network_filter_fuzz(fuzz_proxy_tcp: Proxy, batch: Any) -> None:
    """The same module as a network filter: a connection's context has no header maps and its
    own stream types (downstream, upstream). The batch runs in each connection callback."""
    for phase in ("new_connection", "downstream_data", "upstream_data"):
        PENDING[PHASES[phase]] = batch
        with STATS.timed():
            _drive_connection(fuzz_proxy_tcp)
        _check()
