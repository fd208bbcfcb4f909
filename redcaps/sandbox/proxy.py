"""An HTTP(S) proxy on loopback that answers for the real hostnames itself.

``CONNECT host:443`` is accepted only for hosts the router knows; TLS is terminated with a
certificate for that host issued by a throwaway ``trustme`` CA, and the tunnelled requests
go to the router. Absolute-form ``GET http://host/...`` requests (HTTP_PROXY) take the
same path. Unknown hosts get 502: the sandbox never connects anywhere.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import ssl
import struct
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import trustme

from redcaps.sandbox.app import Request, RequestLog, RequestRecord, Response, Router, now

SLOW_STALL = 120.0  # seconds a "slow" response stalls mid-body: longer than any read timeout
TRICKLE_INTERVAL = 0.5  # seconds between the bytes of a "trickle" body: shorter than any read timeout


class ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], router: Router, log: RequestLog, host_latency: float = 0.0):
        super().__init__(address, _Handler)
        self.router, self.log, self.host_latency = router, log, host_latency
        self.ca = trustme.CA()
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def write_ca(self, path: Path) -> None:
        self.ca.cert_pem.write_to_path(str(path))

    def tls_context(self, host: str) -> ssl.SSLContext:
        with self._lock:
            if host not in self._contexts:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                self.ca.issue_cert(host).configure_cert(context)
                self._contexts[host] = context
            return self._contexts[host]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ProxyServer
    tunnel_host: str | None = None

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Quiet: the request log is the record."""

    def do_CONNECT(self) -> None:  # noqa: N802 - stdlib naming
        host = self.path.rsplit(":", 1)[0].lower()
        if not self.server.router.knows(host):
            self.send_error(502, f"sandbox does not serve {host}")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        try:
            tls = self.server.tls_context(host).wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            self.close_connection = True
            return
        inner = _Handler.__new__(_Handler)
        inner.tunnel_host = host
        with contextlib.suppress(OSError, ssl.SSLError):
            inner.__init__(tls, self.client_address, self.server)  # serves until the client closes
        self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802
        self._serve()

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        self.server.log.begin()
        record: RequestRecord | None = None
        try:
            record = self._answer()
        finally:
            self.server.log.end(record)

    def _answer(self) -> RequestRecord | None:
        """Answer one request; the record of it for the log (None when refused)."""
        started = now()
        if self.tunnel_host:
            host, target = self.tunnel_host, self.path
        else:
            parts = urlsplit(self.path)
            host = (parts.hostname or "").lower()
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            if not host or not self.server.router.knows(host):
                self.send_error(502, f"sandbox does not serve {host or self.path}")
                return None
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = target.partition("?")
        request = Request(
            method=self.command,
            host=host,
            path=path,
            query=parse_qs(query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client=f"{self.client_address[0]}:{self.client_address[1]}",
        )
        response = self.server.router.dispatch(request)
        delay = response.delay + self.server.host_latency
        if delay:
            time.sleep(delay)
        try:
            self._write(response)
        except (OSError, ssl.SSLError):
            self.close_connection = True
        return RequestRecord(
            host,
            self.command,
            path,
            response.status,
            started,
            now(),
            request.client,
            request.headers.get("user-agent", ""),
        )

    def _stall(self, seconds: float) -> None:
        """Wait mid-response until ``seconds`` pass, the sandbox stops, or the client hangs up
        (so the request log's interval ends when the client gave up, as the client saw it)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.server.stopping.is_set():
            self.connection.settimeout(0.1)
            try:
                if self.connection.recv(1) == b"":
                    return
            except TimeoutError:
                continue
            except (OSError, ssl.SSLError):
                return

    def _write(self, response: Response) -> None:
        if response.fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(response.status)
        headers = dict(response.headers)
        if response.fault != "huge":
            headers["Content-Length"] = str(len(response.body))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if response.fault == "truncate":
            self.wfile.write(response.body[: len(response.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif response.fault == "slow":
            self.wfile.write(response.body[:16])
            self.wfile.flush()
            self._stall(SLOW_STALL)
            self.close_connection = True
        elif response.fault == "trickle":  # a byte at a time: only a deadline on the whole body ends it
            for i in range(len(response.body)):
                self.wfile.write(response.body[i : i + 1])
                self.wfile.flush()
                self._stall(TRICKLE_INTERVAL)
                self.connection.settimeout(None)
                if self.server.stopping.is_set():
                    break
            self.close_connection = True
        elif response.fault == "huge":
            remaining = int(headers["Content-Length"])
            block = bytes(1 << 16)
            while remaining > 0 and not self.server.stopping.is_set():
                self.wfile.write(block[: min(remaining, len(block))])
                remaining -= len(block)
        else:
            self.wfile.write(response.body)
