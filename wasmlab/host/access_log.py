"""Access logs (``envoy.access_loggers.stdout``/``stderr``/``file``), written at stream end.

Envoy writes stdout/stderr access logs to its process streams; in a notebook those would land in
whatever cell runs next, so wasmlab keeps them in ``proxy.access_logs`` (a list of lines). File
access logs are appended to their file (relative paths resolve against the YAML's folder, the
folder the Envoy bridge starts real Envoy in).
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config.bootstrap import AccessLogConfig
    from ..http.stream_info import StreamInfo


def _render_json(spec: dict[str, Any], info: StreamInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in spec.items():
        if isinstance(v, dict):
            out[k] = _render_json(v, info)
        else:
            out[k] = v.value(info)
    return out


def render(log: AccessLogConfig, info: StreamInfo) -> str:
    if log.json is not None:
        return json.dumps(_render_json(log.json, info), separators=(",", ":")) + "\n"
    assert log.text is not None
    return log.text.format(info, for_header=False)


class AccessLogWriter:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def write(self, log: AccessLogConfig, info: StreamInfo, stream: Any) -> None:
        if log.sink == "wasm":
            if log.plugin is not None:
                log.plugin.log(info, stream)
            return
        line = render(log, info)
        if log.sink == "file" and log.path not in ("/dev/stdout", "/dev/stderr"):
            assert log.path is not None
            with self._lock, open(log.path, "a") as f:
                f.write(line)
            return
        with self._lock:
            self.lines.append(line.rstrip("\n"))
