"""Differential helpers for Proxy-Wasm: the same YAML on wasmlab and real Envoy, compared on
responses and on the wasm:trace lines (callbacks, host calls, their arguments and results, and
``wasm log`` lines) per thread."""

from __future__ import annotations

import re
from typing import Any

from helpers import UpstreamLog, assert_same, assert_same_upstreams, recorded_apps
from wasmlab import Proxy
from wasmlab import envoy as real

WASM_PREFIXES = ("[host->vm]", "[host<-vm]", "[vm->host]", "[vm<-host]", "wasm log")


def envoy_lines(run: real.EnvoyRun, thread: str) -> list[str]:
    out = []
    for ln in run.log_lines():
        if ln.logger == "wasm" and run.thread_name(ln.tid) == thread and ln.message.startswith(WASM_PREFIXES):
            out.append(ln.message)
    return out


def wasmlab_lines(proxy: Proxy, thread: str) -> list[str]:
    return [ln for ln in proxy.trace.envoy_lines(thread) if ln.startswith(WASM_PREFIXES)]


def run_both(
    config: Any,
    requests: list[dict[str, Any]],
    workers: int = 1,
    apps: dict[str, Any] | None = None,
    compare_threads: tuple[str, ...] = ("main", "worker_0"),
    settle: float = 0.3,
    compare_upstreams: bool = True,
    clock: str = "real",
) -> tuple[list[Any], list[Any], dict[str, tuple[list[str], list[str]]]]:
    """Run ``requests`` (dicts of proxy.request kwargs) on both; returns the responses and, per
    thread, (wasmlab lines, envoy lines) including shutdown. What every upstream and callout
    upstream received is compared here (``assert_same_upstreams``)."""
    import time

    our_log, their_log = UpstreamLog(), UpstreamLog()
    p = Proxy.from_yaml(config, workers=workers, component_log_level="wasm:trace", clock=clock)
    for name, app in recorded_apps(config, apps, our_log).items():
        p.upstream(name, app)
    e = real.run(config, workers=workers, apps=recorded_apps(config, apps, their_log), component_log_level="wasm:trace")
    ours, theirs = [], []
    try:
        for kw in requests:
            ours.append(_try(p.request, kw))
            theirs.append(_try(e.request, kw))
        time.sleep(settle)
    finally:
        p.close()
        e.close()
    lines = {t: (wasmlab_lines(p, t), envoy_lines(e, t)) for t in compare_threads}
    e.__exit__(None, None, None)
    if compare_upstreams:
        try:
            assert_same_upstreams(our_log, their_log)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_run_summary(ours, theirs, lines)}") from None
    return ours, theirs, lines


def _run_summary(ours: list[Any], theirs: list[Any], lines: dict[str, tuple[list[str], list[str]]]) -> str:
    """Both sides' answers and wasm log lines, for a failure message."""

    def status(r: Any) -> Any:
        return type(r).__name__ if isinstance(r, Exception) else r.status

    out = [f"  statuses: wasmlab {[status(r) for r in ours]}, envoy {[status(r) for r in theirs]}"]
    for thread, (mine, env) in lines.items():
        out.append(f"  {thread} wasm lines: wasmlab {len(mine)}, envoy {len(env)}; envoy's: {env[:40]}")
    return "\n".join(out)


def _try(fn: Any, kw: dict[str, Any]) -> Any:
    try:
        return fn(**kw)
    except Exception as exc:  # a reset is a result to compare too
        return exc


def assert_same_run(ours: list[Any], theirs: list[Any], lines: dict[str, tuple[list[str], list[str]]]) -> None:
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if isinstance(a, Exception) or isinstance(b, Exception):
            assert type(a).__name__ == type(b).__name__, f"request {i}: {a!r} vs {b!r}"
            continue
        assert_same(a, b, f"request {i}")
    for thread, (mine, env) in lines.items():
        mine, env = _wall_clock_normalized(mine, env)
        if mine != env:
            import difflib

            diff = "\n".join(difflib.unified_diff(env, mine, "envoy", "wasmlab", lineterm="", n=2))
            raise AssertionError(f"wasm trace on {thread} differs:\n{diff}")


_WALL_SECONDS = re.compile(r"seconds=(\d{9,})")


def _wall_clock_normalized(mine: list[str], env: list[str]) -> tuple[list[str], list[str]]:
    """Modules that log the wall clock (``seconds=<unix time>``) ran a moment apart on the two
    proxies: the values must be within two seconds of each other, then compare as equal."""
    a = [int(x) for ln in mine for x in _WALL_SECONDS.findall(ln)]
    b = [int(x) for ln in env for x in _WALL_SECONDS.findall(ln)]
    if len(a) == len(b):
        for x, y in zip(a, b, strict=True):
            assert abs(x - y) <= 2, f"wall clock {x} in wasmlab vs {y} in Envoy"

    def norm(lines: list[str]) -> list[str]:
        return [_WALL_SECONDS.sub("seconds=<wall clock>", ln) for ln in lines]

    return norm(mine), norm(env)


def plugin_yaml(
    wasm: Any,
    name: str = "p",
    root_id: str = "p",
    vm_id: str = "p",
    configuration: str | None = None,
    vm_configuration: str | None = None,
    failure_policy: str | None = None,
    extra_plugin: dict[str, Any] | None = None,
    trailers: bool = False,
) -> str:
    """One HCM: the Wasm filter (module at ``wasm``) + router; /direct answers directly, the rest
    goes to cluster ``backend``. ``trailers``: HTTP/1 trailers enabled on the HCM and ``backend``."""
    from wasmlab.config import builder as b

    f = b.wasm(
        str(wasm),
        name=name,
        root_id=root_id,
        vm_id=vm_id,
        configuration=configuration,
        vm_configuration=vm_configuration,
    )
    plugin = f["typed_config"]["config"]
    if failure_policy:
        plugin["failure_policy"] = failure_policy
    plugin.update(extra_plugin or {})
    cfg = b.bootstrap(
        [
            b.http_listener(
                "l0",
                10000,
                routes=[b.direct_response("/direct", 200, "direct hello\n"), b.route("/", cluster="backend")],
                http_filters=[f, b.router()],
                trailers=trailers,
            )
        ],
        [b.cluster("backend", 8081, trailers=trailers)],
    )
    return b.to_yaml(cfg)
