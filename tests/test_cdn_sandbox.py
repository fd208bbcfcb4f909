"""The sandbox's CDN hosts: a hidden per-client-IP capacity, 429 above it, load latency, live changes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from redcaps.net.egress import SourceAddressAdapter
from redcaps.sandbox import CdnProfile, Sandbox

UA = {"User-Agent": "redcaps-test/1.0"}


@pytest.fixture()
def cdn_box() -> Iterator[Sandbox]:
    profiles = {
        "i.redd.it": CdnProfile(capacity=5, retry_after_share=0.5, retry_after=2),
        "i.imgur.com": CdnProfile(capacity=1000, load_latency=0.2),
    }
    with Sandbox(cdn=profiles) as box:
        yield box


def client(box: Sandbox, source: str = "") -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.proxies = {"https": box.proxy_url, "http": box.proxy_url}
    session.verify = str(box.ca_path)
    session.headers.update(UA)
    session.mount("https://", SourceAddressAdapter(source))
    return session


def burst(session: requests.Session, host: str, n: int, tag: str = "") -> list[requests.Response]:
    return [session.get(f"https://{host}/{tag}img{i}.jpg", timeout=5) for i in range(n)]


def test_capacity_is_per_client_ip_with_and_without_retry_after(cdn_box):
    first = burst(client(cdn_box), "i.redd.it", 15)
    codes = [r.status_code for r in first]
    assert codes[:5] == [200] * 5  # a second's worth of burst, then the bucket is empty
    assert codes.count(429) >= 5
    refused = [r for r in first if r.status_code == 429]
    with_header = [r for r in refused if "Retry-After" in r.headers]
    assert 0 < len(with_header) < len(refused)  # both kinds, as configured (half and half)
    assert all(r.headers["Retry-After"] == "2" for r in with_header)
    # another client IP has its own bucket: the proxy sees the source address it binds
    other = burst(client(cdn_box, "127.0.0.2"), "i.redd.it", 5, "b")
    assert [r.status_code for r in other] == [200] * 5
    clients = {r.client.rsplit(":", 1)[0] for r in cdn_box.log.for_host("i.redd.it")}
    assert clients == {"127.0.0.1", "127.0.0.2"}
    assert cdn_box.cdn.answers[("i.redd.it", "127.0.0.2", "passed")] == 5


def test_refills_at_capacity_and_capacity_changes_mid_run(cdn_box):
    session = client(cdn_box, "127.0.0.3")
    burst(session, "i.redd.it", 10)  # empty the bucket
    time.sleep(1.0)
    assert [r.status_code for r in burst(session, "i.redd.it", 4, "x")].count(200) == 4
    cdn_box.cdn.set_capacity("i.redd.it", 50)
    time.sleep(1.0)
    assert [r.status_code for r in burst(session, "i.redd.it", 40, "y")].count(200) >= 40
    cdn_box.cdn.set_capacity("i.redd.it", 2)  # the bucket shrinks to the new size at once
    assert [r.status_code for r in burst(session, "i.redd.it", 6, "z")].count(429) >= 3


def test_latency_rises_under_load(cdn_box):
    session = client(cdn_box, "127.0.0.4")
    burst(session, "i.imgur.com", 2)  # connection and TLS set up

    def timed(tag: str) -> float:
        start = time.perf_counter()
        session.get(f"https://i.imgur.com/{tag}.jpg", timeout=5)
        return time.perf_counter() - start

    idle = timed("idle1")
    cdn_box.cdn.set_capacity("i.imgur.com", 1, burst=10)
    burst(session, "i.imgur.com", 9, "load")
    loaded = timed("load9")
    assert loaded > idle + 0.1  # 0.2 s extra with the bucket nearly empty
