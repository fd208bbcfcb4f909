"""Adaptive per-host control against the sandbox's CDN hosts: 429 cuts the rate, Retry-After pauses
the whole host (every thread and process), processes on one machine share a host's budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from redcaps.net import throttle
from redcaps.net.budget import MachineBudget
from redcaps.net.config import HttpConfig
from redcaps.net.fetcher import Fetcher
from redcaps.net.limits import HostLimiter, HostPolicy, parse_host_policy
from redcaps.sandbox import CdnProfile, Sandbox
from redcaps.sandbox.app import RequestRecord
from tests.helpers import annotation_file, record

HOST = "i.redd.it"


# -- the controller's rules, on a fake clock --------------------------------------------------


def test_cut_on_congestion_at_most_once_per_hold():
    state = throttle.fresh_state(20.0, now=0.0)
    throttle.congested(state, 1.0, None, 120)
    assert state.rate == 20.0 * throttle.CUT and state.found == 20.0
    throttle.congested(state, 1.0 + throttle.HOLD / 2, None, 120)  # an answer already in flight
    assert state.rate == 14.0
    throttle.congested(state, 1.0 + throttle.HOLD, None, 120)  # below the last cut: capacity fell
    assert state.rate == pytest.approx(14.0 * throttle.DROP_CUT)
    for step in range(200):
        throttle.congested(state, 10.0 + step, None, 120)
    assert state.rate == throttle.FLOOR


def test_retry_after_pauses_the_group_and_takes_wait():
    state = throttle.fresh_state(10.0, now=0.0)
    throttle.congested(state, 5.0, 3.0, 120)
    assert throttle.take(state, 10, 5.5) == pytest.approx(2.5)
    assert throttle.take(state, 10, 8.0) == 0.0  # paused until 8, then a token is there
    throttle.congested(state, 9.0, 1000.0, max_pause=60)
    assert state.paused_until == 69.0
    assert state.paused_total == pytest.approx(3.0 + 60.0)


def test_growth_only_while_rate_limited_healthy_and_under_the_ceiling():
    state = throttle.fresh_state(5.0, now=0.0)
    throttle.healthy(state, 0.1, 0.01, ceiling=8.0)
    assert state.rate == 5.0  # never waited for a token: the rate is not what limits us
    waits = [throttle.take(state, 10, 0.2) for _ in range(3)]
    assert waits[0] == 0.0 and waits[-1] > 0  # had to wait: now the rate is what limits us
    for i in range(20):
        throttle.healthy(state, 0.3 + i * 0.01, 0.01, ceiling=8.0)
    assert state.rate == 8.0  # slow start, then the ceiling
    state.rate = 5.0
    throttle.healthy(state, 0.6, 0.5, ceiling=8.0)  # latency climbing: hold
    assert state.rate == 5.0


def test_an_idle_gap_does_not_count_as_a_slow_host():
    """A shard that starts after the previous one ended (the group idle for 30 s) and meets a 429
    at once cuts from what the host delivered while busy, not from answers spread over the gap."""
    state = throttle.fresh_state(10.0, now=0.0)
    for tick in range(1, 31):  # busy at 10/s for 3 s: every token taken as it arrives
        assert throttle.take(state, 10, tick / 10) == 0.0
        throttle.healthy(state, tick / 10 + 0.01, 0.01, ceiling=10.0)
    assert state.delivered == pytest.approx(10.0, rel=0.2)
    now = 33.0  # the next shard, 30 s later
    for i in range(3):
        assert throttle.take(state, 10, now + i * 0.01) == 0.0
        throttle.healthy(state, now + 0.05 + i * 0.01, 0.01, ceiling=10.0)
    throttle.congested(state, now + 0.2, None, 120)
    assert state.rate >= 10.0 * 0.8 * throttle.CUT  # not 0.7 x (a few answers / 30 s)


def test_policy_ceiling_parsing():
    assert parse_host_policy("rate=2 ceiling=40") == HostPolicy(2, 2, 8, 40.0)
    assert parse_host_policy("rate=2").ceiling is None  # fixed rate
    with pytest.raises(ValueError):
        parse_host_policy("rate=5 ceiling=2")


def test_machine_budget_is_one_state_per_key(tmp_path):
    one, two = MachineBudget(tmp_path), MachineBudget(tmp_path)
    with one.state("a|b|redd.it", lambda: throttle.fresh_state(5.0, time.time())) as state:
        state.rate = 17.0
    with two.state("a|b|redd.it", lambda: throttle.fresh_state(5.0, time.time())) as state:
        assert state.rate == 17.0
    with two.state("c|b|redd.it", lambda: throttle.fresh_state(5.0, time.time())) as state:
        assert state.rate == 5.0


# -- against the sandbox CDN --------------------------------------------------------------------


@pytest.fixture()
def cdn() -> Iterator[Sandbox]:
    with Sandbox(cdn={HOST: CdnProfile(capacity=5, retry_after_share=0.0)}) as box:
        yield box


def config(tmp_path: Path, policy: str, **kw: object) -> HttpConfig:
    return HttpConfig(
        host_policies={HOST: parse_host_policy(policy), "*": HostPolicy()},
        budget_dir=str(tmp_path / "budget"),
        max_attempts=1,
        read_timeout=5,
        **kw,  # type: ignore[arg-type]
    )


def hammer(fetcher: Fetcher, seconds: float, threads: int, tag: str) -> None:
    stop = time.monotonic() + seconds

    def work(i: int) -> None:
        n = 0
        while time.monotonic() < stop:
            n += 1
            fetcher.get(f"https://{HOST}/{tag}t{i}n{n}.jpg")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))


def proxied(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in box.env().items():
        monkeypatch.setenv(key, value)


def between(records: list[RequestRecord], low: float, high: float) -> list[RequestRecord]:
    return [r for r in records if low <= r.started < high]


def test_429_without_retry_after_cuts_the_rate(cdn, tmp_path, monkeypatch):
    proxied(cdn, monkeypatch)
    fetcher = Fetcher(config(tmp_path, "rate=20 burst=5 concurrency=4 ceiling=40"))
    start = time.monotonic()
    hammer(fetcher, 4.0, 4, "cut")
    late = between(cdn.log.for_host(HOST), start + 2.0, start + 4.0)
    # held at 20/s it would send ~40 here, 30 of them refused; cut, it settles near 5/s
    assert len(late) <= 16
    assert sum(r.status == 429 for r in late) <= 3
    assert fetcher.limiter.rate(HOST) < 8


def test_retry_after_pauses_every_thread(tmp_path, monkeypatch):
    with Sandbox(cdn={HOST: CdnProfile(capacity=4, retry_after_share=1.0, retry_after=2)}) as box:
        proxied(box, monkeypatch)
        fetcher = Fetcher(config(tmp_path, "rate=10 burst=2 concurrency=8 ceiling=40"))
        hammer(fetcher, 4.0, 8, "pause")
        assert_paused_after_first_retry_after(box.log.for_host(HOST), pause=2.0)
        # the pause is the host's, counted once however many threads waited through it
        assert 2.0 <= fetcher.limiter.status(HOST)["paused_s"] <= 4.0


def assert_paused_after_first_retry_after(records: list[RequestRecord], pause: float) -> None:
    first = min((r for r in records if r.status == 429), key=lambda r: r.finished)
    # requests already sent when the 429 went out may still arrive; nothing is sent after it
    during = between(records, first.finished + 0.1, first.finished + pause - 0.1)
    assert during == [], f"{len(during)} requests during the Retry-After pause"
    assert between(records, first.finished + pause, first.finished + pause + 1.0)  # then resumed


def test_source_address_is_bound_and_keys_its_own_budget(cdn, tmp_path, monkeypatch):
    proxied(cdn, monkeypatch)
    policy = "rate=6 burst=1 concurrency=2 ceiling=6"
    a = Fetcher(config(tmp_path, policy, source_address="127.0.0.2"))
    b = Fetcher(config(tmp_path, policy, source_address="127.0.0.3"))
    assert a.get(f"https://{HOST}/src1.jpg").ok and b.get(f"https://{HOST}/src2.jpg").ok
    assert {r.client.rsplit(":", 1)[0] for r in cdn.log.for_host(HOST)} == {"127.0.0.2", "127.0.0.3"}
    a.limiter.congested(HOST, None)
    assert a.limiter.rate(HOST) < 6 and b.limiter.rate(HOST) == 6


def test_cuts_stop_at_a_fifth_of_the_start_rate(tmp_path):
    """A storm of broken URLs on a host that keeps answering must not starve it."""
    limiter = HostLimiter.for_config(config(tmp_path, "rate=5 burst=1 concurrency=2 ceiling=30"))
    clock = 0.0
    limiter.clock = lambda: clock
    for _ in range(50):
        clock += 10.0
        limiter.congested(HOST, None)
    assert limiter.rate(HOST) == pytest.approx(5 * throttle.FLOOR_SHARE)


def test_a_fixed_rate_is_never_cut_but_still_pauses_for_retry_after(tmp_path):
    """Without a ceiling the rate is fixed: a run of broken URLs must not starve the host."""
    limiter = HostLimiter.for_config(config(tmp_path, "rate=6 burst=1 concurrency=2"))
    for _ in range(5):
        limiter.congested(HOST, None)
    assert limiter.rate(HOST) == 6
    limiter.congested(HOST, 2.0)
    assert limiter.status(HOST)["paused_s"] >= 1.9 and limiter.rate(HOST) == 6


# -- several processes on one machine -----------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from tests.test_throttle import config, hammer
    from redcaps.net.fetcher import Fetcher
    from pathlib import Path
    tmp, policy, start, seconds, tag, scope = sys.argv[1:7]
    fetcher = Fetcher(config(Path(tmp), policy, host_scope=scope))
    time.sleep(max(0.0, float(start) - time.time()))
    hammer(fetcher, float(seconds), 4, tag)
    """
)


def run_processes(box: Sandbox, tmp_path: Path, policy: str, seconds: float, scope: str = "machine") -> None:
    env = {**os.environ, **box.env(), "PYTHONPATH": str(Path(__file__).parents[1])}
    start = time.time() + 2.0  # both children start together, after their imports
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), policy, str(start), str(seconds), f"p{i}", scope],
            env=env,
        )
        for i in range(2)
    ]
    for child in children:
        assert child.wait(timeout=seconds + 30) == 0


def test_two_processes_together_stay_within_a_fixed_budget(tmp_path):
    with Sandbox() as box:
        run_processes(box, tmp_path, "rate=6 burst=1 concurrency=4", 3.0)
        # 6/s shared: at most 6 x 2 s + the one-token burst; each on its own budget would send ~24
        assert box.log.max_rate(HOST, 2.0) <= 14, json.dumps(box.log.max_rate(HOST, 2.0))


def test_two_adaptive_processes_share_capacity_and_retry_after(tmp_path):
    profile = CdnProfile(capacity=8, retry_after_share=1.0, retry_after=2)
    with Sandbox(cdn={HOST: profile}) as box:
        run_processes(box, tmp_path, "rate=5 burst=5 concurrency=4 ceiling=40", 5.0)
        records = box.log.for_host(HOST)
        refused = sum(r.status == 429 for r in records)
        assert refused <= 0.15 * len(records), f"{refused} of {len(records)} answered 429"
        assert_paused_after_first_retry_after(records, pause=2.0)  # in both processes


def test_limiter_without_a_budget_keeps_its_own_state():
    one, two = HostLimiter({"*": HostPolicy(5, 1, 1, 10)}), HostLimiter({"*": HostPolicy(5, 1, 1, 10)})
    one.congested("example.org", None)
    assert one.rate("example.org") < 5 and two.rate("example.org") == 5


# -- out of the box: `redcaps download-imgs` with the default HttpConfig -------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("capacity", "images", "min_share", "max_429"), [(30, 450, 0.8, 0.02), (2, 100, 0.0, 0.05)]
)
def test_download_imgs_defaults_find_the_hosts_capacity(tmp_path, capacity, images, min_share, max_429):
    profile = CdnProfile(capacity=capacity, retry_after_share=0.5, retry_after=1)
    with Sandbox(cdn={HOST: profile}) as box:
        records = []
        for i in range(images):
            rec = record(f"c{i:05d}")
            box.world.kinds[rec["url"]] = "small"  # cheap to make and decode: the host is the bound
            records.append(rec)
        source = tmp_path / "roses_2020.json"
        source.write_text(json.dumps(annotation_file(records).to_json()))
        env = {**os.environ, **box.env(), "XDG_RUNTIME_DIR": str(tmp_path)}  # a fresh machine budget
        command = [sys.executable, "-c", "from redcaps.cli.main import main; main()", "download-imgs"]
        done = subprocess.run(
            [*command, "-a", str(source), "-o", str(tmp_path / "images")],
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert f"downloaded {images} of {images}" in done.stdout
        got = box.log.for_host(HOST)
    accepted = [r.started for r in got if r.status != 429]
    rate = len(accepted) / (max(accepted) - min(accepted))
    refused = len(got) - len(accepted)
    assert rate >= min_share * capacity, f"{rate:.1f} requests/s accepted of {capacity}"
    assert refused <= max_429 * len(got), f"{refused} of {len(got)} answered 429"
