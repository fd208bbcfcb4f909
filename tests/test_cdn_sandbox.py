"""The sandbox's CDN hosts: a hidden per-client-IP capacity, 429 above it, load latency, live changes."""

from __future__ import annotations

import email.utils
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

    idle = min(timed(f"idle{n}") for n in range(3))  # the quickest: a busy machine adds noise
    cdn_box.cdn.set_capacity("i.imgur.com", 1, burst=10)
    burst(session, "i.imgur.com", 9, "load")
    loaded = timed("load9")
    assert loaded > idle + 0.1  # 0.2 s extra with the bucket nearly empty


# -- the axes real CDNs vary on, each on its own -------------------------------------------------


def gate_box(profile: CdnProfile) -> Sandbox:
    return Sandbox(cdn={"i.redd.it": profile})


def test_bucket_size_is_independent_of_capacity():
    with gate_box(CdnProfile(capacity=1, burst=3, retry_after=None)) as box:
        codes = [r.status_code for r in burst(client(box), "i.redd.it", 5)]
    assert codes == [200, 200, 200, 429, 429]  # three at once, at 1/s


@pytest.mark.parametrize(("retry_after", "expected"), [(None, None), (0, "0"), (1, "1"), (30, "30")])
def test_retry_after_absent_or_seconds(retry_after, expected):
    with gate_box(CdnProfile(capacity=1, burst=1, retry_after=retry_after, retry_after_share=1.0)) as box:
        refused = burst(client(box), "i.redd.it", 3)[1:]
    assert [r.status_code for r in refused] == [429, 429]
    assert all(r.headers.get("Retry-After") == expected for r in refused)


def test_retry_after_as_an_http_date():
    profile = CdnProfile(capacity=1, burst=1, retry_after=30, retry_after_share=1.0, retry_after_date=True)
    with gate_box(profile) as box:
        refused = burst(client(box), "i.redd.it", 2)[1]
    when = email.utils.parsedate_to_datetime(refused.headers["Retry-After"]).timestamp()
    assert 29 <= when - time.time() <= 32


def test_over_capacity_answers_503_or_resets_the_connection():
    with gate_box(CdnProfile(capacity=1, burst=1, over="503", retry_after=None)) as box:
        codes = [r.status_code for r in burst(client(box), "i.redd.it", 3)]
    assert codes == [200, 503, 503]
    with gate_box(CdnProfile(capacity=1, burst=1, over="reset")) as box:
        session = client(box)
        assert session.get("https://i.redd.it/a.jpg", timeout=5).status_code == 200
        with pytest.raises(requests.ConnectionError):
            session.get("https://i.redd.it/b.jpg", timeout=5)
        assert box.cdn.answers[("i.redd.it", "127.0.0.1", 0)] == 1


def test_sliding_window_counts_a_rolling_period_not_a_refill():
    with gate_box(CdnProfile(capacity=2, window=2.0, retry_after=None)) as box:
        session = client(box)
        first = burst(session, "i.redd.it", 5)
        started = time.monotonic()
        assert [r.status_code for r in first] == [200] * 4 + [429]  # 2/s x 2 s
        time.sleep(1.0)  # a token bucket of 2/s would have refilled two by now; the window has not
        assert session.get("https://i.redd.it/one-second.jpg", timeout=5).status_code == 429
        time.sleep(max(0.0, started + 1.2 - time.monotonic() + 1.0))  # the first four slid out
        assert [r.status_code for r in burst(session, "i.redd.it", 5, "later")].count(200) == 4


def test_sliding_window_per_minute():
    with gate_box(CdnProfile(capacity=3 / 60, window=60.0, retry_after=None)) as box:
        codes = [r.status_code for r in burst(client(box), "i.redd.it", 5)]
    assert codes == [200, 200, 200, 429, 429]


def test_capacity_drops_and_recovers_mid_run():
    profile = CdnProfile(capacity=20, burst=1, retry_after=None, load_latency=0, dip=(1.0, 1.5, 0.1))
    with gate_box(profile) as box:
        session = client(box)
        start = time.monotonic()
        while time.monotonic() < start + 3.5:  # ~10 requests/s, under the capacity except in the dip
            session.get(f"https://i.redd.it/dip{time.monotonic()}.jpg", timeout=5)
            time.sleep(0.1)
        records = box.log.for_host("i.redd.it")
    t0 = min(r.started for r in records)

    def passed(low: float, high: float) -> tuple[int, int]:
        during = [r for r in records if t0 + low <= r.started < t0 + high]
        return sum(r.status != 429 for r in during), len(during)

    ok, sent = passed(0.0, 0.9)
    assert ok == sent >= 6  # before the dip all pass
    ok, sent = passed(1.1, 2.4)
    assert ok <= 4 and sent >= 9  # 2/s in the dip
    ok, sent = passed(2.6, 3.5)
    assert ok == sent >= 6  # recovered
