"""Extensions the proxy starts besides HTTP filters: Wasm access loggers, network filter chains
and bootstrap extensions (WasmService), in the order Envoy starts them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..host.proxy import Proxy


def collect_extensions(proxy: Proxy) -> list[Any]:
    out: list[Any] = []
    for lst in proxy.config.listeners:
        if lst.hcm is not None:
            for log in lst.hcm.access_logs:
                if log.sink == "wasm" and log.plugin is not None:
                    out.append(log.plugin)
        for nf in lst.network_filters:
            if hasattr(nf.config, "start_main"):
                out.append(nf.config)
    for ext in proxy.config.bootstrap_extensions:
        if ext.config is not None:
            from .wasm.service import WasmService

            out.append(WasmService(ext.config))
    return out
