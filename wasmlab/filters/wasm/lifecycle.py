"""The VMs of one Wasm extension, thread by thread, as Envoy starts and stops them.

Every Wasm extension — HTTP filter, network filter, access logger, WasmService — does the same:
on the main thread a base VM (the template), a canary that checks the configuration, and the
main-thread VM; then one VM per worker as each worker starts (none for a singleton service).
At shutdown each thread's root context gets ``proxy_on_done``/``proxy_on_delete`` and its VM goes
away, the base VMs last. A runtime other than V8 runs on wasmtime here with a warning: Envoy 1.40
only has V8 compiled in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...proxywasm import remote_code
from ...proxywasm.plugin import V8

if TYPE_CHECKING:
    from ...host.dispatcher import Dispatcher
    from ...host.services import ServerContext
    from ...proxywasm.manager import WasmManager
    from ...proxywasm.plugin import PluginConfig


class WasmExtension:
    """Mixin: ``plugin`` and ``proxy`` attributes, the VM roles, and the thread lifecycle."""

    plugin: PluginConfig
    proxy: ServerContext | None
    #: ``proxy.wasm`` once started, kept so a stream reaches it without two property lookups
    manager: WasmManager | None = None
    #: the role of the main-thread VM ("main"; "service" for a WasmService)
    main_role = "main"
    #: the role of each worker's VM, or None for no VM on workers (a singleton WasmService)
    worker_role: str | None = "replica"
    #: the plugin's remote code could not be fetched: no VM anywhere, streams follow the policy
    load_failed = False

    def start_main(self, proxy: ServerContext) -> None:
        self.proxy = proxy
        self.manager = proxy.wasm
        plugin = self.plugin
        if plugin.vm_config.remote is not None and plugin.compiled is None:
            proxy.log("warning", "wasm", remote_code.UNSTABLE_WARNING)
            if not remote_code.fetch_code(proxy, plugin):
                self.load_failed = True
                remote_code.log_failed_on_thread(proxy, plugin)
                return
        if plugin.vm_config.runtime != V8:
            proxy.log(
                "warning",
                "wasm",
                f"{plugin.where}: runtime {plugin.vm_config.runtime} runs on wasmtime here; "
                f"real Envoy 1.40 refuses it (only {V8} is compiled in)",
            )
        proxy.wasm.base_vm(plugin)
        proxy.wasm.canary(plugin)
        proxy.wasm.thread_handle(plugin, proxy.main, self.main_role)

    def start_worker(self, dispatcher: Dispatcher) -> None:
        if self.worker_role is not None:
            assert self.proxy is not None
            if self.load_failed:
                remote_code.log_failed_on_thread(self.proxy, self.plugin)
                return
            self.proxy.wasm.thread_handle(self.plugin, dispatcher, self.worker_role)

    def stop_worker(self, dispatcher: Dispatcher) -> None:
        if self.worker_role is not None and not self.load_failed:
            assert self.proxy is not None
            self.proxy.wasm.stop_plugin(self.plugin, dispatcher)

    def stop_main_root(self) -> None:
        """The main thread's part of retiring this plugin after an update: its root context
        (base VMs stay; the updater drops those no plugin uses any more)."""
        if self.proxy is not None and not self.load_failed:
            self.proxy.wasm.stop_plugin(self.plugin, self.proxy.main)

    def stop_main(self) -> None:
        assert self.proxy is not None
        if self.load_failed:
            return
        self.proxy.wasm.stop_plugin(self.plugin, self.proxy.main)
        self.proxy.wasm.stop_base_vms()
