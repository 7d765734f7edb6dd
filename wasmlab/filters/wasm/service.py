"""``envoy.bootstrap.wasm`` (WasmService): a Proxy-Wasm plugin that is not a filter.

With ``singleton: true`` Envoy runs it in one VM on the main thread, started (after its canary)
before the workers; its root context gets ticks and queue notifications on the main thread and
never a stream context. With ``singleton: false`` there is one on the main thread *and* one per
worker, each with its own root context and its own ticks. At shutdown it gets ``on_done`` /
``on_delete`` after the filters' VMs are gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...config.bootstrap import WASM_SERVICE_TYPE
from ...host.extensions import BOOTSTRAP_EXTENSIONS
from ...proxywasm.plugin import PluginConfig, parse_plugin_config
from .lifecycle import WasmExtension

if TYPE_CHECKING:
    from ...config.yaml_source import Node
    from ...host.dispatcher import Dispatcher
    from ...host.services import ServerContext


@dataclass
class WasmServiceConfig:
    plugin: PluginConfig
    singleton: bool


def parse_wasm_service(node: Node) -> WasmServiceConfig:
    node.check_fields("@type config singleton", required=("config",), ignored=("stat_prefix",))
    singleton = node.req("singleton").bool() if node.has("singleton") else False
    return WasmServiceConfig(parse_plugin_config(node.req("config")), singleton)


class WasmService(WasmExtension):
    """The extension object the proxy starts and stops on the right threads."""

    #: started after the listeners' filters, stopped after them (Envoy's order)
    bootstrap = True

    main_role = "service"

    def __init__(self, config: WasmServiceConfig) -> None:
        self.config = config
        self.plugin = config.plugin
        self.proxy: ServerContext | None = None
        # singleton: one VM on the main thread only; otherwise one more per worker
        self.worker_role = None if config.singleton else "service"

    def handle(self, dispatcher: Dispatcher) -> Any:
        assert self.proxy is not None
        return dispatcher.slots.get(self.config.plugin.slot)


BOOTSTRAP_EXTENSIONS[WASM_SERVICE_TYPE] = (parse_wasm_service, WasmService)
