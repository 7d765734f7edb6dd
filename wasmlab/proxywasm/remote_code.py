"""Remote code: ``vm_config.code.remote``, fetched through a cluster of the config at start-up.

What Envoy 1.40 does (measured on the real binary, see ``tests/test_remote_code.py``):

* while the listener is built it warns ``Wasm remote code fetch is unstable and may cause a
  crash`` and starts a ``RemoteAsyncDataProvider``; the server's init manager waits for it, so
  the workers start only once the fetch is over;
* the fetch is a GET of ``http_uri.uri`` through ``http_uri.cluster`` with its async client (the
  upstream sees ``host`` from the uri, ``x-envoy-internal``, ``x-forwarded-for`` and
  ``x-envoy-expected-rq-timeout-ms`` from ``http_uri.timeout``);
* a 200 whose body hashes to ``sha256`` is the module; a body with another hash ("data is
  invalid"), another status, or a cluster the config does not have ("no cluster") is a failed
  attempt, retried ``retry_policy.num_retries`` times (default 1) after a jittered backoff;
* when every attempt failed it logs ``Retry limit exceeded for fetching data from remote data
  source.`` (``config``) and ``Plugin <name> failed to load`` (``wasm``, critical) — the config is
  **not** refused: the listener serves, and the plugin behaves as a VM that failed. With
  FAIL_CLOSED each thread logs ``Plugin configured to fail closed failed to load`` and every
  stream gets a 503 (``wasm_fail_stream``); with ``fail_open`` the filter steps aside.

Where wasmlab simplifies: the upstream is the cluster's in-process app (``Proxy(upstreams=...)``
plugs one in before start-up); a retry runs at once instead of after Envoy's random backoff (the
log line says how long Envoy would have waited at most); no code cache across restarts.
"""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..host.async_client import _upstream_headers
from ..host.upstream import UpstreamResult
from ..http import HeaderMap, Request
from .plugin import compile_plugin

if TYPE_CHECKING:
    from ..host.services import ServerContext
    from .plugin import PluginConfig, RemoteCode

#: Envoy's ``RemoteAsyncDataProvider`` backoff base interval when ``retry_back_off`` is unset
BACKOFF_BASE_MS = 1000

UNSTABLE_WARNING = "Wasm remote code fetch is unstable and may cause a crash"
RETRY_LIMIT = "Retry limit exceeded for fetching data from remote data source."


def _attempt(proxy: ServerContext, remote: RemoteCode) -> bytes | str:
    """One GET through the cluster: the body when it is the module, else why not (Envoy's
    debug words, and its ``FailureReason``: 0 network, 1 invalid data)."""
    uri = remote.uri
    proxy.log("debug", "config", f"fetch remote data from [uri = {uri}]: start")
    cluster = proxy.clusters.get(remote.cluster)
    if cluster is None:
        return f"no cluster {remote.cluster}"
    parts = urlsplit(uri)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = HeaderMap([(":method", "GET"), (":path", path), (":authority", parts.netloc)])
    request = Request("GET", path, _upstream_headers(headers, b"", remote.timeout_s, True)[0], b"")
    done = threading.Event()
    box: list[UpstreamResult] = []

    def finished(result: UpstreamResult) -> None:
        box.append(result)
        done.set()

    if cluster.app is None:  # no endpoint: the async client's router answers 503 at once
        return "response status code 503"
    call = proxy.upstream_pool.call(cluster, request, finished)
    if not done.wait(remote.timeout_s):
        call.abandon()  # a stuck app no longer holds an upstream thread
        return "response status code 504"
    response = box[0].response
    if response is None:
        return "response status code 503"
    if response.status != 200:
        return f"response status code {response.status}"
    proxy.log("debug", "config", f"fetch remote data [uri = {uri}]: success")
    if hashlib.sha256(response.body).hexdigest() != remote.sha256:
        return "data is invalid"
    return bytes(response.body)


def fetch_code(proxy: ServerContext, plugin: PluginConfig) -> bool:
    """Fetch and compile the plugin's remote code on the main thread (Envoy: before the
    workers start); False when the plugin failed to load (logged with Envoy's words)."""
    remote = plugin.vm_config.remote
    assert remote is not None
    rec = proxy.recorder
    for attempt in range(remote.num_retries + 1):
        got = _attempt(proxy, remote)
        if rec.enabled:
            result = "ok" if isinstance(got, bytes) else got
            args = {"uri": remote.uri, "cluster": remote.cluster, "attempt": attempt + 1}
            rec.record("vm", "fetch_code", args, result, data={"plugin": plugin.name, "sha256": remote.sha256})
        if isinstance(got, bytes):
            plugin.vm_config.code = got
            why = compile_plugin(plugin)
            if why is None:
                return True
            proxy.log("error", "wasm", f"{plugin.where}: {why}")
            break
        proxy.log("debug", "config", f"fetch remote data [uri = {remote.uri}]: {got}")
        reason = 1 if got == "data is invalid" else 0
        proxy.log("debug", "config", f"Failed to fetch remote data, failure reason: {reason}")
        if attempt < remote.num_retries:
            proxy.log("debug", "config", f"Remote data provider will retry in {BACKOFF_BASE_MS} ms.")
    else:
        proxy.log("warning", "config", RETRY_LIMIT)
    proxy.log("critical", "wasm", f"Plugin {plugin.name} failed to load")
    return False


def log_failed_on_thread(proxy: ServerContext, plugin: PluginConfig) -> None:
    """What each thread logs for a plugin that failed to load (only under FAIL_CLOSED)."""
    if not plugin.fail_open:
        proxy.log("critical", "wasm", "Plugin configured to fail closed failed to load")
