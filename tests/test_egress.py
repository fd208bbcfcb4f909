"""The egress guard and the deadlines: no request reaches an internal address, from any spelling,
name, redirect or proxy; a trickling body or a retry storm ends at its deadline.

Loopback is tested on this machine (a listener counts every connection it is offered); the other
internal ranges only inside a network namespace with no route out (``unshare -rn``).
"""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from redcaps.cli.main import main
from redcaps.collect.sources.arctic_shift import ArcticShiftSource
from redcaps.collect.sources.imgur import ImgurResolver
from redcaps.collect.sources.pushshift import PushshiftSource
from redcaps.download.manifest import read_outcomes
from redcaps.download.shard import download_shard
from redcaps.errors import RedCapsError
from redcaps.net.config import HttpConfig
from redcaps.net.egress import EgressGuard, is_internal, parse_ip_literal
from redcaps.net.fetcher import RETRYABLE_STATUSES, Fetcher
from redcaps.net.limits import HostLimiter, HostPolicy
from tests.helpers import free_limiter, jpeg_bytes, record

IMAGE = jpeg_bytes()
FAST = HostPolicy(rate=1000, burst=1000, concurrency=16)


class Listener(http.server.ThreadingHTTPServer):
    """A loopback server that counts every connection offered to it and answers with an image
    (or 503 / 429 for the retry-storm paths)."""

    daemon_threads = True

    def __init__(self, host: str, port: int = 0) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)
        self.connections = 0
        self.paths: list[str] = []

    def verify_request(self, request: object, client_address: object) -> bool:
        self.connections += 1
        return True


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Listener

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.server.paths.append(self.path)
        code, headers = 200, {"Content-Type": "image/jpeg"}
        if self.path.endswith("/503"):
            code = 503
        elif self.path.endswith("/429-long"):
            code, headers = 429, {"Retry-After": "5"}
        body = IMAGE if code == 200 else b""
        self.send_response(code)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _serve(server: Listener) -> Listener:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    server = _serve(Listener("127.0.0.1"))
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def listener6(listener: Listener) -> Iterator[Listener | None]:
    """The same port on ``::1``, so ``[::1]`` and ``[::]`` have somewhere to land."""
    try:
        server = _serve(Listener("::1", listener.server_address[1]))
    except OSError:
        yield None
        return
    yield server
    server.shutdown()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(key, raising=False)


def fetcher(**overrides: object) -> Fetcher:
    config = HttpConfig(
        connect_timeout=1.0, read_timeout=1.0, max_attempts=1, backoff_base=0.01, host_policies={"*": FAST}
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return Fetcher(config)


def seen(*servers: Listener | None) -> int:
    return sum(s.connections for s in servers if s is not None)


SPELLINGS = [
    "127.0.0.1",
    "127.0.0.2",
    "2130706433",
    "0x7f000001",
    "0x7f.1",
    "0177.0.0.1",
    "127.1",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:7f00:1]",
    "localhost",
    "LocalHost",
    "0.0.0.0",
    "0",
    "[::1]",
    "[::]",
]


@pytest.mark.parametrize("host", SPELLINGS)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_loopback_in_any_spelling_is_refused_before_connecting(listener, listener6, host, scheme):
    port = listener.server_address[1]
    before = seen(listener, listener6)
    result = fetcher().get(f"{scheme}://{host}:{port}/secret.jpg")
    assert result.status == "blocked_address" and "refused" in result.error
    assert result.status not in RETRYABLE_STATUSES and result.attempts == 1
    assert seen(listener, listener6) == before


def test_the_spellings_are_real_ways_in(listener, listener6):
    """Control for the test above: an unguarded client reaches the listener with each spelling."""
    port = listener.server_address[1]
    for host in SPELLINGS:
        if host == "127.0.0.2" or (host in ("[::1]", "[::]") and listener6 is None):
            continue  # the listener is bound to 127.0.0.1 and ::1 only
        before = seen(listener, listener6)
        assert requests.get(f"http://{host}:{port}/x.jpg", timeout=2).status_code == 200, host
        assert seen(listener, listener6) == before + 1, host


def _resolve_to(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """``socket.getaddrinfo`` answers for made-up names (in turn, the last repeating); returns
    every host looked up, in order."""
    real = socket.getaddrinfo
    looked_up: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):  # noqa: ANN001, ANN202 - socket's signature
        looked_up.append(host)
        if host not in answers:
            return real(host, port, *args, **kwargs)
        turn = answers[host]
        address = turn.pop(0) if len(turn) > 1 else turn[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up


def test_a_name_resolving_to_loopback_is_refused(listener, monkeypatch):
    port = listener.server_address[1]
    _resolve_to(monkeypatch, {"images.example.com": ["127.0.0.1"]})
    before = listener.connections
    result = fetcher().get(f"http://images.example.com:{port}/a.jpg")
    assert result.status == "blocked_address" and "127.0.0.1" in result.error
    assert listener.connections == before
    # control: allowed, the same name does reach the listener through the same resolver
    assert fetcher(allow_networks=("127.0.0.0/8",)).get(f"http://images.example.com:{port}/a.jpg").ok
    assert listener.connections == before + 1


def test_dns_rebinding_cannot_slip_past_the_check(listener, monkeypatch):
    """First answer allowed (127.0.0.2, allow-listed, nothing listening), every later answer the
    listener's 127.0.0.1: a guard that resolved once to check and again to connect would land on
    the listener."""
    port = listener.server_address[1]
    looked_up = _resolve_to(monkeypatch, {"rebind.example.com": ["127.0.0.2", "127.0.0.1"]})
    before = listener.connections
    result = fetcher(allow_networks=("127.0.0.2/32",)).get(f"http://rebind.example.com:{port}/a.jpg")
    assert result.status == "connection_error"  # 127.0.0.2 refused the connection
    assert looked_up.count("rebind.example.com") == 1
    assert listener.connections == before
    # the next connection resolves again and meets the internal answer: refused
    result = fetcher(allow_networks=("127.0.0.2/32",)).get(f"http://rebind.example.com:{port}/a.jpg")
    assert result.status == "blocked_address" and listener.connections == before


def test_a_redirect_into_the_network_is_refused(sandbox_env, listener, monkeypatch):
    """An i.redd.it image redirecting to 127.0.0.1, directly (NO_PROXY covers it) and through
    the proxy (no NO_PROXY), in three spellings."""
    world, port = sandbox_env.world, listener.server_address[1]
    url = "https://i.redd.it/egressredirect1.jpg"
    monkeypatch.setitem(world.faults, url, "internal_redirect")
    assert world.expected_status(url) == "blocked_address"
    for no_proxy in ("127.0.0.1,localhost", ""):
        monkeypatch.setenv("NO_PROXY", no_proxy)
        monkeypatch.setenv("no_proxy", no_proxy)
        for host in ("127.0.0.1", "localhost", "2130706433"):
            target = f"http://{host}:{port}/secret.jpg"
            monkeypatch.setattr(world, "internal_url", target)
            before = listener.connections
            result = fetcher().get(url)
            assert (result.status, result.final_url) == ("blocked_address", target)
            assert listener.connections == before


def test_the_download_engine_and_cli_record_blocked_images(sandbox_env, listener, monkeypatch, tmp_path):
    port = listener.server_address[1]
    world = sandbox_env.world
    monkeypatch.setitem(world.faults, "https://i.redd.it/egressredirect2.jpg", "internal_redirect")
    monkeypatch.setattr(sandbox_env.world, "internal_url", f"http://127.0.0.1:{port}/secret.jpg")
    records = [
        record("egressredirect2"),
        record("direct1", url=f"http://127.0.0.1:{port}/direct1.jpg"),
        record("integer1", url=f"http://2130706433:{port}/integer1.jpg"),
        record("named1", url=f"http://localhost:{port}/named1.jpg"),
    ]
    before = listener.connections
    outcomes = download_shard(records, tmp_path / "images", tmp_path / "m" / "00000.jsonl", fetcher())
    assert [o.status for o in outcomes] == ["blocked_address"] * 4
    assert not any(o.retryable for o in outcomes)
    assert not list((tmp_path / "images").rglob("*.jpg"))
    # the CLI's own Fetcher (default settings) refuses them too
    src = tmp_path / "roses_2020.json"
    info = {"start_date": "2020-01-01", "end_date": "2020-12-31", "url": "https://redcaps.xyz"}
    src.write_text(json.dumps({"info": {**info, "version": "1.0"}, "annotations": records}))
    result = CliRunner().invoke(main, ["download-imgs", "-a", str(src), "-o", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    manifest = read_outcomes(next((tmp_path / "cli" / ".manifests").rglob("*.jsonl")))
    assert {o.status for o in manifest.values()} == {"blocked_address"}
    assert listener.connections == before


def test_a_proxy_is_trusted_but_internal_hosts_are_not_sent_to_it(listener, monkeypatch):
    """The listener plays the proxy: public names go to it (it is on loopback, the user's own
    choice); IP literals and internal-only names are refused before reaching it."""
    proxy = f"http://127.0.0.1:{listener.server_address[1]}"
    for key in ("HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(key, proxy)
    looked_up = _resolve_to(monkeypatch, {})
    before = listener.connections
    for url in (
        "http://127.0.0.1/a.jpg",
        "http://2130706433/a.jpg",
        "http://[::1]/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/a.jpg",
        "http://localhost/a.jpg",
        "https://api.localhost/a.jpg",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://printer.local/a.jpg",
        "http://intranet/a.jpg",
    ):
        result = fetcher().get(url)
        assert result.status == "blocked_address", url
    assert listener.connections == before
    listener.paths.clear()
    assert fetcher().get("http://i.redd.it/proxied1.jpg").ok
    assert listener.paths == ["http://i.redd.it/proxied1.jpg"] and "i.redd.it" not in looked_up


API_CLIENTS = {
    "arctic-shift": lambda url: ArcticShiftSource(url, limiter=free_limiter()).iter_posts("pics", 0, 10),
    "pushshift": lambda url: PushshiftSource(url, limiter=free_limiter()).iter_posts("pics", 0, 10),
    "imgur": lambda url: [ImgurResolver("id", base_url=url, limiter=free_limiter()).first_image("abcde")],
}


@pytest.mark.parametrize("client", sorted(API_CLIENTS))
@pytest.mark.parametrize("base_url", ["https://169.254.169.254", "http://10.0.0.1", "http://127.0.0.1"])
def test_an_api_client_on_an_internal_address_is_refused_before_connecting(
    listener, monkeypatch, client, base_url
):
    """The API clients use the image fetcher's guarded session: an internal base URL is a clear
    error, and nothing reaches the network (the listener plays the proxy everything would go to)."""
    for key in ("HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(key, f"http://127.0.0.1:{listener.server_address[1]}")
    before = listener.connections
    with pytest.raises(RedCapsError, match="refused internal address"):
        list(API_CLIENTS[client](base_url))
    assert listener.connections == before


def test_the_allow_list_opens_only_the_listed_networks(listener):
    port = listener.server_address[1]
    before = listener.connections
    others = fetcher(allow_networks=("10.0.0.0/8", "fd00::/8"))
    assert others.get(f"http://127.0.0.1:{port}/a.jpg").status == "blocked_address"
    assert listener.connections == before
    mirror = fetcher(allow_networks=("127.0.0.1/32",))
    assert mirror.get(f"http://127.0.0.1:{port}/a.jpg").ok
    assert mirror.get(f"http://127.1:{port}/c.jpg").status == "blocked_address"  # odd spellings never
    assert mirror.get(f"http://127.0.0.2:{port}/d.jpg").status == "blocked_address"
    with pytest.raises(RedCapsError, match="allow_networks"):
        EgressGuard(("10.0.0.0/33",))


def test_address_classification():
    for text in ("127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
                 "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fd00::1",
                 "ff02::1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:a00:1::"):  # fmt: skip
        address, canonical = parse_ip_literal(text)
        assert canonical and is_internal(address), text
    for text in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34"):
        address, _ = parse_ip_literal(text)
        assert not is_internal(address), text
    assert parse_ip_literal("i.redd.it") == (None, False)
    assert parse_ip_literal("0x0a.0x1.0.01")[0] == parse_ip_literal("10.1.0.1")[0]


# -- deadlines ------------------------------------------------------------------------------


def test_a_trickling_body_is_cut_at_the_request_deadline(sandbox_env, monkeypatch):
    url = "https://i.redd.it/egresstrickle1.jpg"
    monkeypatch.setitem(sandbox_env.world.faults, url, "trickle")
    start = time.monotonic()
    result = fetcher(read_timeout=1.5, request_deadline=1.5).get(url)
    elapsed = time.monotonic() - start
    assert result.status == "timeout" and "deadline" in result.error
    assert result.status in RETRYABLE_STATUSES
    assert 1.4 <= elapsed < 3.0


def test_the_url_deadline_bounds_attempts_and_backoff(sandbox_env, listener, monkeypatch):
    url = "https://i.redd.it/egresstrickle2.jpg"
    monkeypatch.setitem(sandbox_env.world.faults, url, "trickle")
    start = time.monotonic()
    result = fetcher(read_timeout=1.5, request_deadline=1.0, url_deadline=2.5, max_attempts=10).get(url)
    assert result.status == "timeout" and 2 <= result.attempts <= 3
    assert time.monotonic() - start < 3.5
    # a 503 storm with long backoff: stops when the next wait would pass the deadline (direct:
    # the sandbox's NO_PROXY covers 127.0.0.1)
    local = fetcher(allow_networks=("127.0.0.0/8",), backoff_base=0.4, max_attempts=100, url_deadline=1.0)
    start = time.monotonic()
    result = local.get(f"http://127.0.0.1:{listener.server_address[1]}/503")
    assert result.status == "http_5xx" and result.attempts < 10 and time.monotonic() - start < 1.5
    # a Retry-After beyond the deadline is not waited for
    start = time.monotonic()
    result = local.get(f"http://127.0.0.1:{listener.server_address[1]}/429-long")
    assert (result.status, result.attempts) == ("http_429", 1) and time.monotonic() - start < 1


def test_waiting_for_our_own_host_limit_does_not_count(listener):
    port = listener.server_address[1]
    slow = fetcher(allow_networks=("127.0.0.0/8",), url_deadline=0.5)
    slow.limiter = HostLimiter({"*": HostPolicy(rate=1, burst=1, concurrency=1)})
    assert slow.get(f"http://127.0.0.1:{port}/one.jpg").ok
    start = time.monotonic()
    assert slow.get(f"http://127.0.0.1:{port}/two.jpg").ok  # waited ~1 s for a token
    assert time.monotonic() - start >= 0.8


# -- other internal ranges, inside a network namespace with no route out ----------------------

_IN_NAMESPACE = r"""
import json, socket, sys
sys.path[:0] = [{root!r}]
from tests.test_egress import Listener, _serve
from redcaps.net.config import HttpConfig
from redcaps.net.fetcher import Fetcher
from redcaps.net.limits import HostPolicy

assert [name for _, name in socket.if_nameindex()] == ["lo"], "not an empty network namespace"
port = 8080
server = _serve(Listener("::", port))  # dual-stack: IPv4 arrives as ::ffff:a.b.c.d
real = socket.getaddrinfo
socket.getaddrinfo = lambda h, *a, **k: real("10.9.8.7" if h == "intranet.example.com" else h, *a, **k)
hosts = ("169.254.169.254", "10.9.8.7", "192.168.1.1", "172.16.0.1", "100.64.0.1", "[fd00::1]",
         "[fe80::1%25lo]", "[::ffff:10.9.8.7]", "0xa.0x9.0x8.0x7", "intranet.example.com")
urls = [f"http://{{h}}:{{port}}/x.jpg" for h in hosts]
def fetch(allow):
    config = HttpConfig(max_attempts=1, connect_timeout=1, host_policies={{"*": HostPolicy(1000, 1000, 16)}},
                        allow_networks=allow)
    return [Fetcher(config).get(u).status for u in urls]
blocked = fetch(()), server.connections
allowed = fetch(("10.0.0.0/8", "169.254.0.0/16", "192.168.0.0/16", "172.16.0.0/12", "100.64.0.0/10",
                 "fd00::/8"))
print(json.dumps({{"blocked": blocked, "allowed": (allowed, server.connections - blocked[1])}}))
"""


def _namespace_available() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    probe = ["unshare", "-rn", "ip", "link", "set", "lo", "up"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _namespace_available(), reason="unshare -rn (user + network namespace) not permitted")
def test_other_internal_ranges_inside_a_namespace_with_no_route_out():
    root = str(Path(__file__).resolve().parents[1])
    script = "ip link set lo up && " + " && ".join(
        f"ip addr add {a} dev lo"
        for a in (
            "169.254.169.254/32",
            "10.9.8.7/32",
            "192.168.1.1/32",
            "172.16.0.1/32",
            "100.64.0.1/32",
            "fd00::1/128",
        )  # fmt: skip
    )
    snippet = textwrap.dedent(_IN_NAMESPACE).format(root=root)
    proc = subprocess.run(
        ["unshare", "-rn", "sh", "-c", f'{script} && exec "$0" -c "$1"', sys.executable, snippet],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["blocked"] == [["blocked_address"] * 10, 0]
    statuses, connections = report["allowed"]
    # listed networks are fetched (the listener answers); link-local fe80:: and odd spellings never are
    assert statuses[:6] == ["ok"] * 6 and statuses[7] == "ok" and statuses[9] == "ok"
    assert statuses[6] == "blocked_address" and statuses[8] == "blocked_address"
    assert connections == 8
