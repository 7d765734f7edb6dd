"""HTTP/1.1 on raw sockets: the bridge's client and its loopback upstream server.

Neither adds a header of its own (no ``User-Agent``, ``Server``, ``Date``, ``Accept-Encoding``),
so real Envoy receives exactly the request ``proxy.request`` models and the upstream answers
exactly what the app returned. Both bind/connect on 127.0.0.1 only.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from ..http import HeaderMap, Request, Response, reason_phrase

MAX_HEADER_BYTES = 256 * 1024


class WireError(Exception):
    """The peer closed or sent something that is not HTTP/1.1."""


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def readline(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            if len(self.buf) > MAX_HEADER_BYTES:
                raise WireError("header line too long")
            if not self._fill():
                raise WireError("connection closed")

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise WireError("connection closed before the body was complete")
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_all(self) -> bytes:
        while self._fill():
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def has_data(self) -> bool:
        return bool(self.buf)


def _read_headers(r: _Reader) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    total = 0
    while True:
        line = r.readline()
        if not line:
            return headers
        total += len(line)
        if total > MAX_HEADER_BYTES:
            raise WireError("headers too large")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise WireError(f"malformed header line {line[:80]!r}")
        headers.append((name.strip().lower(), value.strip()))


def _read_body(r: _Reader, headers: HeaderMap, until_close: bool) -> tuple[bytes, HeaderMap | None]:
    te = (headers.get("transfer-encoding") or "").lower()
    if "chunked" in te:
        body = bytearray()
        while True:
            size_line = r.readline().split(b";", 1)[0].strip()
            size = int(size_line, 16)
            if size == 0:
                trailers = HeaderMap(_read_headers(r))
                return bytes(body), (trailers if len(trailers) else None)
            body += r.read(size)
            r.readline()
    cl = headers.get("content-length")
    if cl is not None:
        return r.read(int(cl)), None
    if until_close:
        return r.read_all(), None
    return b"", None


def _chunked(body: bytes, trailers: Any) -> bytes:
    """A body in chunked encoding, ending with ``trailers`` (name, value pairs)."""
    out = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
    lines = "".join(f"{k}: {v}\r\n" for k, v in (trailers or []))
    return out + b"0\r\n" + lines.encode("latin-1") + b"\r\n"


def _encode_headers(start_line: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [start_line] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# ---- client -------------------------------------------------------------------------------------
def send_request(
    host: str,
    port: int,
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    timeout: float = 10.0,
    trailers: list[tuple[str, str]] | None = None,
) -> Response:
    """One request on a fresh connection; headers are sent exactly as given. With ``trailers``
    the body goes chunked (the headers must then say ``transfer-encoding: chunked``)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        payload = _chunked(body, trailers) if trailers is not None else body
        sock.sendall(_encode_headers(f"{method} {path} HTTP/1.1", headers) + payload)
        r = _Reader(sock)
        try:
            status_line = r.readline().decode("latin-1")
        except WireError:
            raise WireError("the server closed the connection without a response") from None
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise WireError(f"not an HTTP response: {status_line[:80]!r}")
        status = int(parts[1])
        hm = HeaderMap(_read_headers(r))
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return Response(status, hm, b"")
        try:
            body_out, resp_trailers = _read_body(r, hm, until_close=True)
        except WireError as e:
            raise WireError(f"response body incomplete: {e}") from None
        return Response(status, hm, body_out, resp_trailers)


# ---- loopback upstream server ----------------------------------------------------------------------
class _Listener:
    """A loopback listener for one app: a socket on 127.0.0.1, an accept thread, a thread per
    connection running ``_handle``, and ``close()`` that drops them all."""

    def __init__(self, get_app: Callable[[], Any], name: str, thread_name: str) -> None:
        self.get_app = get_app
        self.name = name
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept_loop, name=thread_name, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._handle(conn)
        except (OSError, WireError, ValueError):
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        try:
            # close() alone does not wake a thread blocked in accept() on Linux: that thread (and
            # through get_app, the run that made this server) would stay for good; shutdown does
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass


class LoopbackServer(_Listener):
    """Serves one upstream app over HTTP/1.1 keep-alive on 127.0.0.1.

    ``get_app()`` is read per request, so ``bridge.upstream(name, app)`` can swap apps. An app
    that raises makes the server close the connection without answering (Envoy then reports a
    connection termination), as a crashing upstream would.
    """

    def __init__(self, get_app: Callable[[], Any], name: str = "upstream") -> None:
        self.errors: list[str] = []
        super().__init__(get_app, name, f"loopback-{name}")

    def _handle(self, conn: socket.socket) -> None:
        from ..http.message import Response as Resp

        r = _Reader(conn)
        while not self._stop.is_set():
            try:
                line = r.readline().decode("latin-1")
            except WireError:
                return
            if not line:
                continue
            method, path, _version = line.split(" ", 2)
            headers = HeaderMap(_read_headers(r))
            body, trailers = _read_body(r, headers, until_close=False)
            app = self.get_app()
            try:
                response = Resp.coerce(app(Request(method, path, headers, body, trailers)))
            except Exception as e:
                self.errors.append(f"{type(e).__name__}: {e}")
                return  # close without answering
            conn.sendall(self._encode(response, method))

    @staticmethod
    def _encode(response: Response, method: str) -> bytes:
        status = response.status
        headers = list(response.headers)
        body = response.body
        no_body = status in (204, 304) or 100 <= status < 200
        names = {k for k, _ in headers}
        trailers = list(response.trailers) if response.trailers and not no_body else None
        if no_body:
            headers = [(k, v) for k, v in headers if k != "content-length"]
            body = b""
        elif trailers is not None and "content-length" not in names:
            if "transfer-encoding" not in names:
                headers.append(("transfer-encoding", "chunked"))
            body = _chunked(body, trailers)
        elif "content-length" not in names and "transfer-encoding" not in names:
            headers.append(("content-length", str(len(body))))
        if method == "HEAD":
            body = b""
        return _encode_headers(f"HTTP/1.1 {status} {reason_phrase(status)}", headers) + body


def free_port() -> int:
    """A port nothing listens on right now (127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TcpLoopbackServer(_Listener):
    """Serves a TCP app (``app(data) -> bytes``) on 127.0.0.1: one reply per chunk received, and
    its own FIN when the client half-closes (like an echo server). An app that raises drops the
    connection."""

    def __init__(self, get_app: Callable[[], Any], name: str = "tcp") -> None:
        super().__init__(get_app, name, f"tcp-loopback-{name}")

    def _handle(self, conn: socket.socket) -> None:
        while True:
            data = conn.recv(65536)
            if not data:
                conn.shutdown(socket.SHUT_WR)
                return
            try:
                reply = self.get_app()(data)
            except Exception:
                return
            if isinstance(reply, str):
                reply = reply.encode()
            if reply:
                conn.sendall(reply)


class TcpClient:
    """A client connection to real Envoy's TCP listener, with ``proxy.connect``'s API."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._eof = False
        self._buf = bytearray()

    def send(self, data: bytes | str) -> None:
        self._sock.sendall(data.encode() if isinstance(data, str) else data)

    def _read_some(self, timeout: float) -> None:
        self._sock.settimeout(timeout)
        try:
            chunk = self._sock.recv(65536)
        except TimeoutError:
            return
        except OSError:
            chunk = b""
        if chunk:
            self._buf += chunk
        else:
            self._eof = True

    def recv(self, size: int | None = None, timeout: float = 5.0) -> bytes:
        if not self._buf and not self._eof:
            self._read_some(timeout)
        n = len(self._buf) if size is None else min(size, len(self._buf))
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def recv_exactly(self, n: int, timeout: float = 5.0) -> bytes:
        import time

        deadline = time.monotonic() + timeout
        while len(self._buf) < n and not self._eof and time.monotonic() < deadline:
            self._read_some(max(0.01, deadline - time.monotonic()))
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def close(self, timeout: float = 5.0) -> bytes:
        import time

        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        while not self._eof and time.monotonic() < deadline:
            self._read_some(max(0.01, deadline - time.monotonic()))
        out = bytes(self._buf)
        self._buf.clear()
        self._sock.close()
        return out

    @property
    def closed(self) -> bool:
        return self._eof
