"""WasmManager: the VM layout Envoy 1.40 builds, per proxy, and the services VMs share.

What Envoy does, observed on 1.40 and copied here:

* on the main thread, one **base** VM per ``vm_key`` (vm_id + VM configuration + code): started
  (``_initialize``/``_start``) and then only kept as the template replicas are cloned from;
* per plugin, a short-lived **canary** VM on the main thread: start, ``proxy_on_context_create(1,0)``,
  ``proxy_on_vm_start``, ``proxy_on_configure`` — a false answer or a trap rejects the config — and
  it is dropped without ``on_done``/``on_delete``;
* the **main thread's own** VM per vm_key with one root context per plugin (started before the
  workers, ``on_done``/``on_delete`` at shutdown);
* on **each worker**, one VM per vm_key shared by the plugins that use it, with one root context
  per plugin; ``_start``/``_initialize`` runs once per VM instance;
* a VM that traps is failed and forgotten by its thread; later streams follow the plugin's
  failure policy (FAIL_RELOAD builds a fresh VM, no more often than the backoff allows).

It also owns what crosses threads: shared data, shared queues, and the tick timers of root
contexts (each on its own thread's dispatcher).
"""

from __future__ import annotations

import struct
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import StartupError
from ..host import async_client
from ..host.options import mib
from ..http import HeaderMap
from ..http.grpc import http_to_grpc_status
from . import callseam
from .abi import ModuleRejected
from .hostcalls import Linker
from .shared import SharedData, SharedQueues
from .types import FailurePolicy
from .vm import RootContext, Trapped, WasmVm

if TYPE_CHECKING:
    from ..host.dispatcher import Dispatcher
    from ..host.services import ServerContext
    from .plugin import PluginConfig


@dataclass
class PluginHandle:
    """A plugin's root context in one thread's VM (or the record that that VM failed)."""

    plugin: PluginConfig
    vm: WasmVm | None
    root: RootContext | None
    failed_at_ns: int | None = None
    reloads: int = 0
    #: when this handle was (re)loaded: Envoy's ``last_load``, from which FAIL_RELOAD's backoff counts
    loaded_at_ns: int = 0

    @property
    def usable(self) -> bool:
        return self.vm is not None and self.vm.failed is None and self.root is not None


class WasmManager:
    def __init__(self, proxy: ServerContext) -> None:
        self.proxy = proxy
        self.shared_data = SharedData(proxy.recorder, mib(proxy.options, "wasm_shared_data_limit_mb"), proxy)
        self.queues = SharedQueues(proxy)
        self.histograms: dict[str, list[int]] = {}
        self._base: dict[str, WasmVm] = {}
        #: every VM made for this proxy that is still referenced (:meth:`close` frees their Stores)
        self._vms: weakref.WeakSet[WasmVm] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.seam, why = callseam.seam(proxy.options.get("wasm_call_path"))
        # on wasmlab's own logger at debug: Envoy's log has no such line
        proxy.log("debug", "wasmlab", f"Wasm call path: {self.seam.name} ({why})")

    # ---- building VMs ----------------------------------------------------------------------------
    def _new_vm(self, plugin: PluginConfig, role: str, dispatcher: Dispatcher) -> WasmVm:
        assert plugin.compiled is not None and plugin.info is not None
        try:
            vm = WasmVm(
                self.proxy,
                plugin.compiled,
                plugin.info,
                plugin.vm_config,
                role,
                dispatcher,
                Linker(plugin.info.version),
            )
        except ModuleRejected as e:
            raise StartupError(f"{plugin.where}: Wasm VM failed {e} (module {plugin.vm_config.code_name})") from None
        with self._lock:
            self._vms.add(vm)
        try:
            vm.start()
        except Trapped:
            vm.release()
            # Envoy logs the guest's stderr at error ("wasm log: fatal error: ...") before it
            # refuses the VM; the error names those lines so a failed start shows them
            wrote = "; the module wrote to stderr: " + " | ".join(vm.stderr_tail) if vm.stderr_tail else ""
            raise StartupError(
                f"{plugin.where}: Wasm VM failed Failed to start base Wasm: the module's start function trapped "
                f"(module {plugin.vm_config.code_name}){wrote}"
            ) from None
        return vm

    def start_root(self, vm: WasmVm, plugin: PluginConfig) -> RootContext:
        """Envoy's plugin start on a VM: create, ``on_vm_start``, ``on_configure``."""
        root = RootContext(vm.next_context_id(), vm, plugin)
        vm.add_context(root)
        root.config_phase = "create"
        try:
            vm.call(root, "proxy_on_context_create", root.id, 0)
            root.config_phase = "vm_start"
            ok = vm.call(root, "proxy_on_vm_start", root.id, len(plugin.vm_config.configuration))
        except Trapped:  # Envoy: a trap before configure fails the start, not the configure
            root.config_phase = False
            raise _Refused("Failed to start base Wasm", "trapped") from None
        if ok == 0:
            root.config_phase = False
            raise _Refused("Failed to start base Wasm", "proxy_on_vm_start returned false")
        root.config_phase = "configure"
        ok = vm.call(root, "proxy_on_configure", root.id, len(plugin.configuration))
        root.config_phase = False
        if ok == 0:
            raise _Refused("Failed to configure base Wasm plugin", "proxy_on_configure returned false")
        return root

    def _started_root(self, vm: WasmVm, plugin: PluginConfig, what: str) -> RootContext:
        try:
            return self.start_root(vm, plugin)
        except _Refused as e:
            why = f"{what} trapped; see the log" if e.why == "trapped" else e.why
            raise StartupError(
                f"{plugin.where}: Wasm VM failed {e.words} ({why}; module {plugin.vm_config.code_name})"
            ) from None
        except Trapped:
            raise StartupError(
                f"{plugin.where}: Wasm VM failed Failed to configure base Wasm plugin ({what} trapped; see the log; "
                f"module {plugin.vm_config.code_name})"
            ) from None

    def base_vm(self, plugin: PluginConfig) -> WasmVm:
        key = plugin.vm_config.vm_key
        with self._lock:
            vm = self._base.get(key)
        if vm is None:
            vm = self._new_vm(plugin, "base", self.proxy.main)
            with self._lock:
                self._base[key] = vm
            for imp in plugin.compiled.module.imports if plugin.compiled else []:
                if imp.module == "env" and imp.name == "abort":
                    self.proxy.log(
                        "warning",
                        "wasm",
                        f"{plugin.vm_config.code_name} imports env.abort: wasmlab provides it, but real Envoy 1.40 "
                        "refuses to load such a module (build AssemblyScript with --use abort=...)",
                    )
        return vm

    def canary(self, plugin: PluginConfig) -> None:
        vm = self._new_vm(plugin, "canary", self.proxy.main)
        try:
            self._started_root(vm, plugin, "the canary VM")
        finally:
            vm.destroy()  # dropped without on_done/on_delete, as Envoy does

    def thread_handle(self, plugin: PluginConfig, dispatcher: Dispatcher, role: str) -> PluginHandle:
        """This thread's VM for the plugin's vm_key (shared by plugins) and the plugin's root."""
        slots = dispatcher.slots
        vkey = ("wasm_vm", plugin.vm_config.vm_key)
        vm = slots.get(vkey)
        if vm is None or vm.failed is not None:
            vm = self._new_vm(plugin, role, dispatcher)
            slots[vkey] = vm
        root = self._started_root(vm, plugin, "proxy_on_configure")
        handle = PluginHandle(plugin, vm, root, loaded_at_ns=self.proxy.clock.monotonic_ns())
        slots[plugin.slot] = handle
        return handle

    # ---- plugin lifecycle (called on the right threads by filter factories) ---------------------------
    def stop_plugin(self, plugin: PluginConfig, dispatcher: Dispatcher) -> None:
        handle: PluginHandle | None = dispatcher.slots.pop(plugin.slot, None)
        if handle is None or handle.vm is None or handle.root is None:
            return
        vm, root = handle.vm, handle.root
        if root.tick_timer is not None:
            root.tick_timer.disable()
        if vm.failed is None and not root.deleted:
            try:
                done = vm.call(root, "proxy_on_done", root.id)
                if done is None or done != 0:
                    vm.call(root, "proxy_on_delete", root.id)
                    vm.remove_context(root)
                else:
                    root.done_pending = True
            except Trapped:
                pass
        if not any(c.is_root and not c.deleted for c in vm.contexts.values()) or vm.failed is not None:
            vkey = ("wasm_vm", plugin.vm_config.vm_key)
            if dispatcher.slots.get(vkey) is vm:
                del dispatcher.slots[vkey]
                vm.destroy()

    def drop_base_vms_except(self, vm_keys: set[str]) -> None:
        """Destroy the base VMs of vm keys no plugin uses any more (after a config update)."""
        with self._lock:
            gone = [k for k in self._base if k not in vm_keys]
            vms = [self._base.pop(k) for k in gone]
        for vm in vms:
            vm.destroy()

    def stop_base_vms(self) -> None:
        with self._lock:
            bases, self._base = list(self._base.values()), {}
        for vm in bases:
            vm.destroy()

    def close(self) -> None:
        """The proxy is closed: free the Store of every VM still standing (a root waiting for
        ``proxy_done``, a failed VM, one whose start failed). Only VMs whose thread has ended:
        a thread that did not stop in time may still be inside one of them."""
        with self._lock:
            vms, self._base = list(self._vms), {}
        for vm in vms:
            if vm.dispatcher.ended:
                vm.release()

    def handle_for_stream(self, plugin: PluginConfig, dispatcher: Dispatcher) -> PluginHandle | None:
        """The plugin's usable handle on this worker, reloading a failed VM under FAIL_RELOAD
        once the backoff has passed since the handle was last (re)loaded -- not since the failure:
        Envoy's ``maybeReloadHandleIfNeeded`` compares with ``last_load``, so a VM that served
        longer than the backoff is replaced by the next stream after its trap. Envoy draws each
        interval between ``base_interval`` and 1.5 times it; wasmlab uses ``base_interval``, the
        earliest Envoy may reload (Envoy counts ``wasm.<plugin>.vm_reload_backoff`` /
        ``_success`` / ``_failure``)."""
        handle = dispatcher.slots.get(plugin.slot)
        if handle is None:
            return None
        vm = handle.vm
        if vm is not None and vm.failed is None and handle.root is not None:
            return handle
        now = self.proxy.clock.monotonic_ns()
        if handle.failed_at_ns is None:  # a root callback (timer, callout, queue) failed the VM
            handle.failed_at_ns = vm.failed_at_ns if vm is not None and vm.failed_at_ns is not None else now
        vkey = ("wasm_vm", plugin.vm_config.vm_key)
        failed = handle.vm
        if failed is not None and dispatcher.slots.get(vkey) is handle.vm:
            del dispatcher.slots[vkey]  # Envoy forgets the failed thread-local VM
            failed.release()  # nothing runs in it again: its Store can go now
        if plugin.failure_policy != FailurePolicy.FAIL_RELOAD:
            return None
        stats = self.proxy.stat_store
        prefix = f"wasm.{plugin.name}."
        backoff_ns = int(plugin.reload_backoff_s * 1e9)
        if now - handle.loaded_at_ns < backoff_ns:
            stats.inc(prefix + "vm_reload_backoff")
            self._record(handle.vm, "reload_backoff", {"plugin": plugin.name})
            return None
        try:
            new = self.thread_handle(plugin, dispatcher, "replica")
        except StartupError as e:
            stats.inc(prefix + "vm_reload_failure")
            self.proxy.log("error", "wasm", f"Wasm VM reload failed: {e}")
            handle.loaded_at_ns = now  # Envoy sets last_load before the attempt, whatever its outcome
            return None
        stats.inc(prefix + "vm_reload_success")
        new.reloads = handle.reloads + 1
        self._record(new.vm, "reload", {"plugin": plugin.name, "reloads": new.reloads})
        return new

    def mark_failed(self, handle: PluginHandle) -> None:
        if handle.failed_at_ns is None:
            handle.failed_at_ns = self.proxy.clock.monotonic_ns()

    def _record(self, vm: WasmVm | None, name: str, args: dict[str, Any]) -> None:
        rec = self.proxy.recorder
        if rec.enabled:
            rec.record("vm", name, args, None, None, vm=vm.label if vm is not None else None)

    # ---- timers -------------------------------------------------------------------------------------------
    def set_tick_period(self, root: RootContext, period_ms: int) -> None:
        vm = root.vm
        if root.tick_timer is None:
            root.tick_timer = vm.dispatcher.create_timer(lambda: self._tick(root), "wasm_tick")
        root.tick_period_ms = period_ms
        if period_ms == 0:
            root.tick_timer.disable()
        else:
            root.tick_timer.enable_ms(period_ms)

    def _tick(self, root: RootContext) -> None:
        vm = root.vm
        if vm.failed is not None or root.deleted or not vm.alive:
            return
        rec = self.proxy.recorder
        if rec.enabled:
            rec.record(
                "timer",
                "tick",
                {"root": root.id, "period_ms": root.tick_period_ms},
                None,
                None,
                vm=vm.label,
                context_id=root.id,
            )
        try:
            vm.call(root, "proxy_on_tick", root.id)
        except Trapped:
            return
        if root.tick_period_ms > 0 and not root.deleted and root.tick_timer is not None:
            root.tick_timer.enable_ms(root.tick_period_ms)

    # ---- HTTP callouts ------------------------------------------------------------------------------------
    def next_http_call_token(self, vm: WasmVm) -> int:
        return 4 * vm.next_token()

    def deliver_http_call_response(
        self, vm: WasmVm, root: RootContext, token: int, resp: async_client.AsyncResponse
    ) -> None:
        root.http_calls.pop(token, None)
        if vm.failed is not None or root.deleted:
            return
        if resp.headers is None:
            root.status = (11, b"reset")
            args = (root.id, token, 0, 0, 0)
            root.callout_response = None
        else:
            root.status = (0, b"")
            ntr = len(resp.trailers) if resp.trailers is not None else 0
            args = (root.id, token, len(resp.headers), len(resp.body), ntr)
            root.callout_response = resp
        try:
            vm.call(root, "proxy_on_http_call_response", *args)
        except Trapped:
            # Envoy fails the VM and leaves a stream paused for this callout paused: it hangs
            # until a timeout (wasmlab's StreamTimeout); the next streams follow the policy
            pass
        finally:
            root.callout_response = None

    # ---- gRPC (unary) ---------------------------------------------------------------------------------------
    def grpc_call(
        self,
        vm: WasmVm,
        root: RootContext,
        cluster: str,
        service: str,
        method: str,
        md: bytes,
        message: bytes,
        timeout_ms: int,
    ) -> int:
        from . import pairs

        token = 4 * vm.next_token() + 1
        headers = grpc_request_headers(cluster, service, method, timeout_ms)
        for k, v in pairs.decode(md) or []:
            headers.add(k.lower(), v)
        frame = b"\x00" + struct.pack(">I", len(message)) + message

        def done(resp: async_client.AsyncResponse) -> None:
            self._grpc_done(vm, root, token, resp)

        timeout_s = timeout_ms / 1000.0 if timeout_ms else None
        # Envoy's gRPC async client: no x-forwarded-for, the message streamed (chunked on HTTP/1)
        req = async_client.send(
            self.proxy,
            vm.dispatcher,
            cluster,
            headers,
            frame,
            timeout_s,
            done,
            token=token,
            send_xff=False,
            streamed=True,
        )
        root.grpc_calls[token] = req
        return token

    def _grpc_done(self, vm: WasmVm, root: RootContext, token: int, resp: async_client.AsyncResponse) -> None:
        """A unary call's end, as Envoy's ``GrpcCallClientHandler`` reports it: on success
        (grpc-status 0) only ``proxy_on_grpc_receive`` with the reply; on failure only
        ``proxy_on_grpc_close`` with the status. Unary calls get no metadata callbacks."""
        if root.grpc_calls.pop(token, None) is None or vm.failed is not None or root.deleted:
            return
        status, msg, reply = grpc_outcome(resp)
        try:
            if reply is not None:
                root.grpc_current = {"message": reply}
                vm.call(root, "proxy_on_grpc_receive", root.id, token, len(reply))
            else:
                root.status = (status, msg)
                vm.call(root, "proxy_on_grpc_close", root.id, token, status)
        except Trapped:
            pass
        finally:
            root.grpc_current = None

    def record_histogram(self, stat: str, value: int) -> None:
        with self._lock:
            samples = self.histograms.setdefault(stat, [])
            if len(samples) < 10_000:
                samples.append(value)


class _Refused(Exception):
    def __init__(self, words: str, why: str) -> None:
        super().__init__(words)
        self.words = words
        self.why = why


def grpc_request_headers(cluster: str, service: str, method: str, timeout_ms: int) -> HeaderMap:
    """The headers Envoy's gRPC async client starts a call with, in its order: ``te`` before
    ``grpc-timeout`` (the call's timeout; a Wasm call always has one, 0 too) and
    ``content-type``, as the gRPC protocol asks; the module's initial metadata follows."""
    headers = HeaderMap([(":method", "POST"), (":path", f"/{service}/{method}"), (":authority", cluster)])
    headers.add("te", "trailers")
    headers.add("grpc-timeout", grpc_timeout(timeout_ms))  # "0m" for no timeout, as Envoy sends
    headers.add("content-type", "application/grpc")
    return headers


def grpc_timeout(timeout_ms: int) -> str:
    """A ``grpc-timeout`` value: at most 8 digits, in milliseconds (``m``) while they fit, else
    seconds (``S``), minutes (``M``), hours (``H``, clipped at 99999999), each unit truncating."""
    limit = 99_999_999
    value, unit = timeout_ms, "m"
    for bigger, factor in (("S", 1000), ("M", 60), ("H", 60)):
        if value <= limit:
            break
        value, unit = value // factor, bigger
    return f"{min(value, limit)}{unit}"


def grpc_outcome(resp: async_client.AsyncResponse) -> tuple[int, bytes, bytes | None]:
    """(gRPC status, message, reply) of a unary call's answer, as Envoy's gRPC async client
    makes them: the status from ``grpc-status`` (trailers, else headers, on any HTTP status),
    else from the HTTP status; the reply is the last message; the message is ``grpc-message``
    as sent (not decoded), then the call's details in braces, or the details alone. Its
    router's own replies (a timeout, no upstream) are gRPC replies: their body is the message.
    A success without a message is INTERNAL with no message."""
    if resp.headers is None:
        return 14, b"upstream failure", None  # UNAVAILABLE
    trailers = resp.trailers or HeaderMap()
    src = trailers if "grpc-status" in trailers else resp.headers
    if resp.local:
        status, msg = http_to_grpc_status(resp.status), resp.body
    elif "grpc-status" in src or resp.status == 200:
        try:
            status = int(src.get("grpc-status") or 2)
        except ValueError:
            status = 2  # UNKNOWN
        msg = (src.get("grpc-message") or "").encode("latin-1")
    else:
        status, msg = http_to_grpc_status(resp.status), b""
    reply = _last_message(resp.body) if status == 0 and resp.status == 200 else None
    if status == 0 and reply is None:
        return 13, b"", None  # INTERNAL, with no message: Envoy's unary client says nothing more
    if resp.details:
        msg = msg + b"{" + resp.details.encode() + b"}" if msg else resp.details.encode()
    return status, msg, reply


def _last_message(body: bytes) -> bytes | None:
    """The last length-prefixed message of a gRPC body (a unary client keeps the last one)."""
    last, pos = None, 0
    while pos + 5 <= len(body):
        n = struct.unpack(">I", body[pos + 1 : pos + 5])[0]
        last, pos = body[pos + 5 : pos + 5 + n], pos + 5 + n
    return last
