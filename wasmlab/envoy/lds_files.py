"""Listeners for real Envoy from a file (LDS over ``path_config_source``), and updates to them.

Envoy reads dynamic listeners from a file when the bootstrap says
``dynamic_resources.lds_config.path_config_source`` — the file holds a ``DiscoveryResponse``
(``resources: [Listener, ...]``). With ``watched_directory`` Envoy reloads the file when a file
is *moved* into that folder, so an update is written next to it and renamed over it (one atomic
step: Envoy never reads half a file). Envoy then applies the new listeners as an LDS update: a
listener whose config changed is rebuilt on the main thread, warmed, and swapped in on the
workers; the old one drains (``--drain-time-s``) and is then destroyed. Envoy counts each
update in ``listener_manager.lds.update_success`` or ``update_rejected`` and logs why it
rejected one (``lds: add/update listener 'NAME' failed: ...``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ..host.update import UpdateResult
from .verbatim_yaml import dump_verbatim

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"


class LdsFiles:
    """The watched folder and the LDS file inside it."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "xds"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "lds.yaml"
        self.version = 0

    def bootstrap(self) -> dict[str, Any]:
        """The ``dynamic_resources`` section pointing Envoy at the file."""
        source = {"path": str(self.path), "watched_directory": {"path": str(self.dir)}}
        return {"lds_config": {"path_config_source": source, "resource_api_version": "V3"}}

    def write(self, listeners: list[dict[str, Any]]) -> None:
        """Write the listeners next to the file, then rename over it (the atomic update)."""
        self.version += 1
        doc = {"version_info": str(self.version), "resources": [{"@type": LISTENER_TYPE, **ls} for ls in listeners]}
        tmp = self.dir / f".lds.{self.version}.tmp"
        tmp.write_text(dump_verbatim(doc))
        os.rename(tmp, self.path)


def wait_update(stats: Any, log_text: Any, before: dict[str, int], timeout: float, names: list[str]) -> UpdateResult:
    """Wait until Envoy counted the update (success or rejected) and no listener is warming."""
    deadline = time.monotonic() + timeout
    ok_key, bad_key = "listener_manager.lds.update_success", "listener_manager.lds.update_rejected"
    while time.monotonic() < deadline:
        now = stats()
        if now.get(bad_key, 0) > before.get(bad_key, 0):
            return UpdateResult(False, rejection_reason(log_text()), tuple(names))
        if now.get(ok_key, 0) > before.get(ok_key, 0) and now.get("listener_manager.total_listeners_warming", 0) == 0:
            return UpdateResult(True, "", tuple(names))
        time.sleep(0.02)
    raise TimeoutError(f"real Envoy did not apply the listener update within {timeout:g}s")


def rejection_reason(text: str) -> str:
    """Envoy's reason from its last ``... config update rejected: REASON`` line."""
    marker = "config update rejected: "
    for line in reversed(text.splitlines()):
        if marker in line:
            return line.split(marker, 1)[1].strip()
    return "rejected (no reason in the log)"
