"""The HTTP layer against a plain local server: statuses, retries, Retry-After, limits, headers."""

from __future__ import annotations

import contextlib
import http.server
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from redcaps.net.config import HttpConfig
from redcaps.net.fetcher import MAX_REDIRECTS, Fetcher, is_placeholder
from redcaps.net.limits import HostLimiter, HostPolicy, parse_host_policy, policy_key
from redcaps.net.retry import retry_after_seconds
from tests.helpers import jpeg_bytes

IMAGE = jpeg_bytes()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: Counter[str] = Counter()
        self.headers_seen: list[dict[str, str]] = []
        self.connections: set[int] = set()
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(code)
        for k, v in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        srv = self.server
        with srv.lock:
            srv.hits[self.path] += 1
            hits = srv.hits[self.path]
            srv.headers_seen.append(dict(self.headers))
            srv.connections.add(self.client_address[1])
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        try:
            self._route(hits)
        finally:
            with srv.lock:
                srv.in_flight -= 1

    def _route(self, hits: int) -> None:
        path = self.path
        if path.startswith("/ok"):
            time.sleep(0.02)
            self._send(200, IMAGE, **{"Content-Type": "image/jpeg"})
        elif path == "/404":
            self._send(404)
        elif path == "/410":
            self._send(410)
        elif path == "/429-then-ok":
            self._send(429, **{"Retry-After": "1"}) if hits == 1 else self._send(200, IMAGE)
        elif path == "/429-forever-long":
            self._send(429, **{"Retry-After": "3600"})
        elif path == "/503-burst":
            self._send(503) if hits <= 2 else self._send(200, IMAGE)
        elif path == "/503":
            self._send(503)
        elif path == "/reset":  # an abortive close: the client sees a connection reset
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", str(len(IMAGE)))
            self.end_headers()
            self.wfile.write(IMAGE[:10])
            self.wfile.flush()
            time.sleep(3)
            self.close_connection = True
        elif path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", str(len(IMAGE)))
            self.end_headers()
            self.wfile.write(IMAGE[: len(IMAGE) // 2])
            self.close_connection = True
        elif path == "/huge":
            self._send(200, b"x" * 5000)
        elif path == "/removed-redirect":
            self._redirect("/removed.png")
        elif path == "/redirect-loop":
            self._redirect("/redirect-loop")
        elif path == "/redirect-ftp":
            self._redirect("ftp://127.0.0.1/x.jpg")
        else:
            self._send(404)


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    srv = _Server()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()


def fetcher(**overrides: object) -> Fetcher:
    config = HttpConfig(
        read_timeout=1.0,
        connect_timeout=1.0,
        max_attempts=3,
        backoff_base=0.01,
        max_bytes=4096,
        host_policies={"*": HostPolicy(rate=1000, burst=1000, concurrency=16)},
        allow_networks=("127.0.0.0/8",),  # the test server is on loopback
    )
    for k, v in overrides.items():
        setattr(config, k, v)
    return Fetcher(config)


def url(server: _Server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(key, raising=False)


@pytest.mark.parametrize(
    ("path", "status", "attempts"),
    [
        ("/404", "http_404", 1),
        ("/410", "http_410", 1),
        ("/503", "http_5xx", 3),
        ("/reset", "connection_error", 3),
        ("/slow", "timeout", 3),
        ("/truncated", "truncated", 3),
    ],
)
def test_final_statuses_and_which_are_retried(server, path, status, attempts):
    f = fetcher(max_bytes=10**6)
    result = f.get(url(server, path))
    assert (result.status, result.attempts) == (status, attempts)
    assert result.body is None and result.error and "\n" not in result.error


def test_retry_after_is_honoured(server):
    start = time.monotonic()
    result = fetcher(max_bytes=10**6).get(url(server, "/429-then-ok"))
    assert result.ok and result.attempts == 2 and result.body == IMAGE
    assert time.monotonic() - start >= 1.0


def test_retry_after_beyond_the_cap_gives_up_at_once(server):
    result = fetcher(retry_after_max=5).get(url(server, "/429-forever-long"))
    assert (result.status, result.attempts) == ("http_429", 1)


def test_5xx_burst_recovers(server):
    result = fetcher(max_bytes=10**6).get(url(server, "/503-burst"))
    assert result.ok and result.attempts == 3


def test_body_limit(server):
    assert fetcher(max_bytes=1000).get(url(server, "/huge")).status == "too_large"


def test_non_http_urls_make_no_request(server):
    for bad in ("file:///etc/passwd", "ftp://x/y", "https://"):
        assert fetcher().get(bad).status == "invalid_url"


def test_placeholder_detection(server):
    assert is_placeholder("https://i.imgur.com/removed.png", b"")
    assert is_placeholder("https://s.yimg.com/pw/images/en-us/photo_unavailable.png", None)
    assert not is_placeholder("https://i.imgur.com/abcdefg.jpg", IMAGE)
    # an imgur-host redirect chain is the real case; on localhost only the final path is checked
    result = fetcher().get(url(server, "/removed-redirect"))
    assert result.final_url.endswith("/removed.png")


def test_headers_and_keep_alive(server):
    server.headers_seen.clear()
    server.connections.clear()
    f = fetcher(max_bytes=10**6, user_agent="redcaps-test/1.0 (+contact)")
    for i in range(5):
        assert f.get(url(server, f"/ok{i}")).ok
    assert all(h["User-Agent"] == "redcaps-test/1.0 (+contact)" for h in server.headers_seen)
    assert all(h["Accept"].startswith("image/*") for h in server.headers_seen)
    assert len(server.connections) == 1  # one pooled keep-alive connection


def test_rate_and_concurrency_limits(server):
    policy = HostPolicy(rate=5, burst=1, concurrency=2)
    f = fetcher(max_bytes=10**6)
    f.limiter = HostLimiter({"*": policy})
    server.max_in_flight = 0
    start = time.monotonic()
    threads = [threading.Thread(target=f.get, args=(url(server, f"/ok-r{i}"),)) for i in range(11)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - start >= 1.9  # 1 burst token, then 10 more at 5/s
    assert server.max_in_flight <= 2


def test_policy_parsing_and_matching():
    assert parse_host_policy("rate=1 burst=2 concurrency=3") == HostPolicy(1, 2, 3)
    with pytest.raises(ValueError):
        parse_host_policy("speed=fast")
    policies = {"imgur.com": HostPolicy(1, 1, 1), "static.flickr.com": HostPolicy(), "*": HostPolicy()}
    assert policy_key("i.imgur.com", policies) == "imgur.com"
    assert policy_key("farm3.static.flickr.com", policies) == "static.flickr.com"
    assert policy_key("notimgur.com", policies) == "*"


def test_retry_after_parsing():
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 10) == pytest.approx(10)
    assert retry_after_seconds("soon") is None


class CountingLimiter(HostLimiter):
    """Records the host of every slot taken (one slot and one token per request)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.requests: list[str] = []

    @contextlib.contextmanager
    def slot(self, host: str) -> Iterator[float]:
        self.requests.append(host)
        with super().slot(host) as waited:
            yield waited


def test_every_redirect_hop_takes_its_own_token(server):
    """imgur's deleted images redirect to removed.png on the same host: two requests, two tokens."""
    config = fetcher().config
    limiter = CountingLimiter(config.host_policies)
    result = Fetcher(config, limiter).get(url(server, "/removed-redirect"))
    assert result.final_url.endswith("/removed.png")
    assert limiter.requests == ["127.0.0.1", "127.0.0.1"]


def test_redirect_loops_and_non_web_redirects_end_cleanly(server):
    config = fetcher().config
    limiter = CountingLimiter(config.host_policies)
    loop = Fetcher(config, limiter).get(url(server, "/redirect-loop"))
    assert loop.status == "connection_error" and "redirects" in loop.error and loop.attempts == 1
    assert len(limiter.requests) == MAX_REDIRECTS + 1
    ftp = Fetcher(config, limiter).get(url(server, "/redirect-ftp"))
    assert ftp.status == "connection_error" and "non-web" in ftp.error
