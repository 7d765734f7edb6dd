"""A closed proxy releases everything it made (issue 14: a learner's kernel never leaks).

Each test builds proxies, sends requests, closes them, drops every reference and runs the garbage
collector; then the proxy, its dispatchers, its Wasm VMs and their wasmtime Stores, its Lua states
must be gone (checked with ``weakref``), and the process must be back to the threads and open file
descriptors it had before. A warm-up proxy of the same config runs first, so what is made once per
process (the wasmtime engine and its epoch timer, compiled modules, imported packages) is part of
the baseline.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from conftest import CONFIGS, FIXTURES
from helpers import config
from wasm_diff import plugin_yaml
from wasmlab import Proxy
from wasmlab.errors import ProxyClosed, WasmlabError
from wasmlab.filters.lua.runtime import LuaVM
from wasmlab.host.dispatcher import Dispatcher
from wasmlab.proxywasm.vm import WasmVm

#: configs covering each kind of extension and what it owns: Wasm VMs (HTTP filter, a singleton
#: WasmService with a shared queue and ticks, an HTTP callout), Lua states, a native filter, the
#: three in one chain
CASES = {
    "wasm": (CONFIGS / "wasm" / "add_header.yaml", {}),
    "wasm-normal-path": (CONFIGS / "wasm" / "add_header.yaml", {"wasm_call_path": "normal"}),
    "wasm-service": (CONFIGS / "wasm" / "stats_service.yaml", {}),
    "wasm-callout": (CONFIGS / "wasm" / "http_auth.yaml", {}),
    "lua": (CONFIGS / "lua" / "add_header.yaml", {}),
    "native": (CONFIGS / "wasmlab-only" / "native_add_header.yaml", {}),
    "chain": (CONFIGS / "chain_three_kinds.yaml", {}),
}


def open_fds() -> set[str]:
    """What this process has open (targets, so a reused number with a new file still differs)."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add(f"{fd}->{os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:  # the fd listdir itself used, closed meanwhile
            pass
    return out


def new_threads(baseline: set[threading.Thread]) -> list[str]:
    """Threads started since ``baseline`` that are still running (by identity: every proxy names
    its threads main, worker_0, ...). A thread told to end may take a moment to leave
    ``threading.enumerate`` after its last line ran: polled up to 5 s, never timed."""
    deadline = time.monotonic() + 5.0
    while True:
        extra = sorted(t.name for t in set(threading.enumerate()) - baseline)
        if not extra or time.monotonic() >= deadline:
            return extra
        time.sleep(0.01)


def exercise(p: Proxy) -> None:
    """Requests that touch the filters, the upstream pool and (for callouts) the async client."""
    for _ in range(3):
        p.request("GET", "/", headers={"authorization": "Bearer good", "x-token": "ok"})
    p.request_many([("GET", "/direct"), ("GET", "/")] * 4)
    p.wait_idle()


def owned(p: Proxy) -> dict[str, list[weakref.ref[Any]]]:
    """Weak references to what the proxy owns, found the way a learner cannot: in gc's objects."""
    srv = p._server
    dispatchers = [srv.main, *srv.workers]
    refs: dict[str, list[weakref.ref[Any]]] = {"proxy": [weakref.ref(p)], "dispatcher": []}
    refs["dispatcher"] = [weakref.ref(d) for d in dispatchers]
    refs["recorder"] = [weakref.ref(srv.recorder)]
    refs["vm"], refs["store"], refs["lua"] = [], [], []
    for obj in gc.get_objects():
        if isinstance(obj, WasmVm) and obj.proxy is srv:
            refs["vm"].append(weakref.ref(obj))
            refs["store"].append(weakref.ref(obj.store))
        elif isinstance(obj, LuaVM) and obj.runtime is not None:
            refs["lua"].append(weakref.ref(obj))
    return refs


def alive(refs: dict[str, list[weakref.ref[Any]]]) -> dict[str, int]:
    return {k: n for k, v in refs.items() if (n := sum(r() is not None for r in v))}


def count(kind: type) -> int:
    return sum(isinstance(o, kind) for o in gc.get_objects())


@pytest.fixture
def clean() -> Iterator[None]:
    gc.collect()
    yield
    gc.collect()


@pytest.mark.parametrize("case", list(CASES))
def test_a_closed_proxy_frees_everything(case: str, clean: None) -> None:
    path, options = CASES[case]
    with Proxy.from_yaml(path, options=options) as warm:  # once-per-process things happen here
        exercise(warm)
    del warm
    gc.collect()
    threads, fds = set(threading.enumerate()), open_fds()
    base = {kind: count(kind) for kind in (Proxy, Dispatcher, WasmVm, wasmtime.Store, LuaVM)}

    p = Proxy.from_yaml(path, options=options)
    exercise(p)
    refs = owned(p)
    if case.startswith("wasm") or case == "chain":
        assert refs["vm"] and refs["store"], "the config runs Wasm: VMs were found"
    if case in ("lua", "chain"):
        assert refs["lua"], "the config runs Lua: states were found"
    p.close()
    del p
    gc.collect()

    assert alive(refs) == {}, f"{case}: still alive after close() and gc.collect()"
    assert all(count(kind) <= n for kind, n in base.items()), "instances left behind"
    assert new_threads(threads) == [], f"{case}: threads left behind"
    assert open_fds() - fds == set(), f"{case}: file descriptors left open"


def test_a_proxy_dropped_without_close_is_collected_and_stops(clean: None) -> None:
    """Nothing of the proxy's own threads keeps it reachable: once a learner drops the last
    reference (rebinding the name), the collector shuts it down and frees it."""
    path = CONFIGS / "wasm" / "add_header.yaml"
    with Proxy.from_yaml(path) as warm:
        exercise(warm)
    del warm
    gc.collect()
    threads = set(threading.enumerate())
    p = Proxy.from_yaml(path)
    exercise(p)
    refs = owned(p)
    del p
    gc.collect()  # collects the proxy and runs its finalizer, which stops the threads and frees the Stores
    gc.collect()  # collects what the finalizer held until it ran
    assert alive(refs) == {}
    assert new_threads(threads) == []


@pytest.mark.parametrize("fixture", ["configure_false", "trap_in_configure", "unknown_import"])
def test_a_proxy_that_fails_to_start_frees_everything(fixture: str, tmp_path: Path, clean: None) -> None:
    """A lesson may show a module that Envoy refuses; each try must not leave VMs or threads."""
    path = tmp_path / "bad.yaml"
    path.write_text(plugin_yaml(FIXTURES / "wasm" / f"{fixture}.wasm"))
    with pytest.raises(WasmlabError):
        Proxy.from_yaml(path)
    gc.collect()
    threads = set(threading.enumerate())
    base = {kind: count(kind) for kind in (Proxy, Dispatcher, WasmVm, wasmtime.Store)}
    for _ in range(3):
        with pytest.raises(WasmlabError):
            Proxy.from_yaml(path)
    gc.collect()
    assert {kind: count(kind) for kind in base} == base
    assert new_threads(threads) == []


def test_views_of_a_closed_proxy_do_not_keep_it_alive(clean: None) -> None:
    """A live VM layout (and the other widgets) keep what they show, not the proxy: once the
    proxy is closed they stop following it and let go of it and of its recorder."""
    p = Proxy.from_yaml(CONFIGS / "chain_three_kinds.yaml")
    exercise(p)
    layout = p.views.vm_layout(engine="builtin")  # live: subscribed to the recorder
    timeline = p.views.timeline()
    flow = p.views.queue_flow()
    refs = owned(p)
    p.close()
    del p
    gc.collect()
    assert alive(refs) == {}, "the widgets still hold the proxy or its recorder"
    # they stopped following it and still show what it did
    assert layout.live is False
    text = layout._repr_mimebundle_()[0]["text/plain"]
    assert "worker_1: 1 Wasm VM, 1 Lua state" in text and "destroyed" in text
    assert "lanes: downstream" in timeline._repr_mimebundle_()[0]["text/plain"]
    assert flow._repr_mimebundle_()[0]["text/plain"]


# ---- close(): idempotent, from any thread, during requests ---------------------------------------
def test_close_is_idempotent_and_with_works() -> None:
    with Proxy.from_yaml(CONFIGS / "wasm" / "add_header.yaml") as p:
        assert p.request("GET", "/").status == 200
    assert p.closed
    p.close()
    p.close()
    with pytest.raises(ProxyClosed, match="this proxy was closed"):
        p.request("GET", "/")


def test_close_from_many_threads_at_once() -> None:
    p = Proxy.from_yaml(CONFIGS / "wasm" / "add_header.yaml")
    p.request("GET", "/")
    errors: list[BaseException] = []

    def close() -> None:
        try:
            p.close()
        except BaseException as e:  # pragma: no cover - what the test looks for
            errors.append(e)

    ts = [threading.Thread(target=close) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert not [t for t in ts if t.is_alive()], "a close() never returned"
    assert errors == []
    assert p.closed
    # every caller returned after the shutdown was complete: the threads are gone
    assert all(d.ended for d in (p._server.main, *p._server.workers))


def _blocking_upstream(p: Proxy) -> tuple[threading.Event, threading.Event]:
    """An upstream app that holds every request until ``release`` is set."""
    entered, release = threading.Event(), threading.Event()

    def app(req: Any) -> Any:
        entered.set()
        release.wait(30)
        return 200, {}, b"late"

    p.upstream("backend", app)
    return entered, release


def test_requests_in_flight_end_with_proxy_closed_and_nothing_hangs() -> None:
    p = Proxy.from_yaml(config())
    entered, release = _blocking_upstream(p)
    outcome: dict[str, BaseException | object] = {}

    def one() -> None:
        try:
            outcome["request"] = p.request("GET", "/", timeout=30)
        except BaseException as e:
            outcome["request"] = e

    def many() -> None:
        try:
            outcome["many"] = p.request_many([("GET", "/")] * 6 + [("GET", "/direct")] * 6, concurrency=2, timeout=30)
        except BaseException as e:
            outcome["many"] = e

    callers = [threading.Thread(target=one), threading.Thread(target=many)]
    for t in callers:
        t.start()
    assert entered.wait(10), "the upstream app was called"
    p.close()  # while both wait for the app
    for t in callers:
        t.join(10)
    try:
        assert not [t for t in callers if t.is_alive()], "a caller still waits after close()"
        assert isinstance(outcome["request"], ProxyClosed), outcome["request"]
        assert "the proxy was closed while GET / was in flight" in str(outcome["request"])
        assert isinstance(outcome["many"], ProxyClosed), outcome["many"]
        assert "the proxy was closed while request_many (" in str(outcome["many"])
        # the app still held its thread when the pool was closed: that is logged, not waited for
        assert any("an upstream app still runs on upstream" in line for line in p.logs), p.logs[-5:]
    finally:
        release.set()
    with pytest.raises(ProxyClosed, match="this proxy was closed; create a new one"):
        p.request_many([("GET", "/")])


def test_close_from_an_upstream_app_on_the_proxys_own_thread() -> None:
    """An app (or a filter) calling close() cannot wait for its own thread: the shutdown runs on
    a thread of its own, and a close() from outside waits until it has finished."""
    threads = set(threading.enumerate())
    p = Proxy.from_yaml(config())

    def app(req: Any) -> Any:
        p.close()
        return 200, {}, b"closed it"

    p.upstream("backend", app)
    try:
        r = p.request("GET", "/", timeout=30)
        assert r.status == 200  # answered before the worker shut down
    except ProxyClosed:
        pass  # or the shutdown reached the worker first
    assert p.closed
    p.close()  # waits for the shutdown started from the app
    assert new_threads(threads) == []
    del app


@pytest.mark.envoy
def test_a_closed_envoy_run_frees_its_loopback_servers(envoy_bin: str, clean: None) -> None:
    """The real-Envoy bridge serves the upstream apps on loopback sockets, each with an accept
    thread: after the run closes, the threads end, the sockets close and the run is collected."""
    from wasmlab.envoy import run

    path = CONFIGS / "hello.yaml"
    with run(path) as warm:
        warm.request("GET", "/")
    del warm
    gc.collect()
    threads, fds = set(threading.enumerate()), open_fds()
    with run(path) as e:
        assert e.request("GET", "/").status == 200
    ref = weakref.ref(e)
    del e
    assert new_threads(threads) == [], "a loopback server thread is still running"
    gc.collect()
    assert ref() is None, "the closed run is still referenced"
    assert open_fds() - fds == set(), "sockets left open"
