"""Access logs (``envoy.access_loggers.stdout``/``stderr``/``file``), written at stream end.

Envoy writes stdout/stderr access logs to its process streams; in a notebook those would land in
whatever cell runs next, so wasmlab keeps them in ``proxy.access_logs`` (a list of lines). File
access logs are appended to their file (relative paths resolve against the YAML's folder, the
folder the Envoy bridge starts real Envoy in).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ..http import HeaderMap

if TYPE_CHECKING:
    from ..config.bootstrap import AccessLogConfig
    from ..http.stream_info import StreamInfo


class _DownstreamEnd:
    """A stream's info as an HCM access log sees it (``%ACCESS_LOG_TYPE%`` is
    ``DownstreamEnd``)."""

    access_log_type = "DownstreamEnd"

    def __init__(self, info: StreamInfo) -> None:
        self._info = info

    def __getattr__(self, name: str) -> Any:
        return getattr(self._info, name)


def render(log: AccessLogConfig, info: StreamInfo) -> str:
    assert log.format is not None
    return log.format.render(_DownstreamEnd(info))


class AccessLogWriter:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def write(self, log: AccessLogConfig, info: StreamInfo, stream: Any) -> None:
        if log.filter is not None and not log.filter(info, info.request_headers or HeaderMap()):
            return
        if log.sink == "wasm":
            if log.plugin is not None:
                log.plugin.log(info, stream)
            return
        line = render(log, info)
        if log.sink == "file" and log.path not in ("/dev/stdout", "/dev/stderr"):
            assert log.path is not None
            with self._lock, open(log.path, "a", encoding="utf-8", errors="surrogateescape") as f:
                f.write(line)
            return
        with self._lock:
            self.lines.append(line.rstrip("\n"))
