"""An offline stand-in for the outside world: Reddit/Imgur/Flickr hosts behind an HTTPS proxy.

Clients reach it only through the standard variables from :meth:`Sandbox.env`
(``HTTPS_PROXY``, ``HTTP_PROXY``, ``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``), so the code
under test is the product code, unchanged. Each module in ``HANDLER_MODULES`` registers
the hosts it simulates.
"""

from __future__ import annotations

import importlib
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from redcaps.sandbox.app import RequestLog, Router
from redcaps.sandbox.cdn import CdnGate, CdnProfile
from redcaps.sandbox.images import bomb_png
from redcaps.sandbox.proxy import ProxyServer
from redcaps.sandbox.world import World

__all__ = ["CdnProfile", "Sandbox"]
HANDLER_MODULES = [
    "redcaps.sandbox.hosts",
    "redcaps.sandbox.previews",
    "redcaps.sandbox.downloads",
    "redcaps.sandbox.reddit_apis",
]


class Sandbox:
    def __init__(
        self,
        world: World | None = None,
        state_dir: Path | None = None,
        port: int = 0,
        host_latency: float = 0.0,
        cdn: dict[str, CdnProfile] | None = None,
    ) -> None:
        self.world = world or World()
        self.router = Router()
        self.log = RequestLog()
        #: Per-client-IP capacities of CDN-like hosts (``cdn.set_capacity`` changes one mid-run).
        self.cdn = CdnGate(cdn or {})
        self.cdn.register(self.router)
        for name in HANDLER_MODULES:
            importlib.import_module(name).register(self.router, self.world)
        self._tmp = None if state_dir else tempfile.TemporaryDirectory(prefix="redcaps-sandbox-")
        self.state_dir = Path(state_dir or self._tmp.name)  # type: ignore[union-attr]
        self._port, self._latency = port, host_latency
        self._server: ProxyServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def proxy_url(self) -> str:
        assert self._server is not None, "sandbox not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def ca_path(self) -> Path:
        return self.state_dir / "ca.pem"

    def start(self) -> Sandbox:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        bomb_png()  # cached: ~1 s to make, which a first client would see as a stalled response
        self._server = ProxyServer(("127.0.0.1", self._port), self.router, self.log, self._latency)
        self._server.write_ca(self.ca_path)
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stopping.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()

    def env(self) -> dict[str, str]:
        return {
            "HTTPS_PROXY": self.proxy_url,
            "HTTP_PROXY": self.proxy_url,
            "https_proxy": self.proxy_url,
            "http_proxy": self.proxy_url,
            "REQUESTS_CA_BUNDLE": str(self.ca_path),
            "SSL_CERT_FILE": str(self.ca_path),
            "NO_PROXY": "127.0.0.1,localhost",  # luigid and other local services bypass the proxy
            "no_proxy": "127.0.0.1,localhost",
        }

    def reset_log(self) -> None:
        self.log.clear()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
