"""A shard in several processes (every core decodes): the same manifest and images as one process,
the processes together within the machine's host budget, errors raised in the shard, and no
process left behind when the shard's process is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from redcaps.download import engine
from redcaps.download import shard as download
from redcaps.download.manifest import journal_path, read_outcomes
from redcaps.download.shard import download_shard
from redcaps.layout import image_path
from redcaps.net.config import HttpConfig
from redcaps.net.fetcher import Fetcher
from redcaps.net.limits import HostLimiter, HostPolicy, parse_host_policy
from redcaps.sandbox import Sandbox
from tests.helpers import record

HOST = "i.redd.it"


def small_records(box: Sandbox, count: int, tag: str) -> list[dict]:
    records = [record(f"{tag}{i:04d}") for i in range(count)]
    for rec in records:
        box.world.kinds[rec["url"]] = "small"  # cheap to make and decode
    return records


def fetcher(tmp_path: Path, policy: str = "rate=500 burst=100 concurrency=16") -> Fetcher:
    config = HttpConfig(
        host_policies={HOST: parse_host_policy(policy), "*": HostPolicy()},
        budget_dir=str(tmp_path / "budget"),
        max_attempts=1,
    )
    return Fetcher(config)


def only_in_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if the shard's own process fetches (the children import their own, unpatched copy)."""

    def not_here(*args: object, **kwargs: object) -> None:
        raise AssertionError("the shard fetched in its own process")

    monkeypatch.setattr(download, "in_threads", not_here)


def test_two_processes_give_the_same_manifest_and_images_as_one(sandbox_env, tmp_path, monkeypatch):
    records = small_records(sandbox_env, 120, "same")
    one = download_shard(records, tmp_path / "one", tmp_path / "one.jsonl", fetcher(tmp_path), processes=1)
    only_in_processes(monkeypatch)
    seen = []
    two = download_shard(
        records,
        tmp_path / "two",
        tmp_path / "two.jsonl",
        fetcher(tmp_path),
        processes=2,
        progress=seen.append,
    )
    assert [o.status for o in two] == ["ok"] * 120 and len(seen) == 120
    assert (tmp_path / "one.jsonl").read_text() == (tmp_path / "two.jsonl").read_text()
    assert [o.sha256 for o in one] == [o.sha256 for o in two]
    for rec in records:
        stored = [
            image_path(tmp_path / d, rec["subreddit"], rec["image_id"]).read_bytes() for d in ("one", "two")
        ]
        assert stored[0] == stored[1]
    assert not journal_path(tmp_path / "two.jsonl").exists()


def test_a_small_shard_or_a_process_budget_stays_in_one_process(sandbox_env, tmp_path, monkeypatch):
    records = small_records(sandbox_env, 60, "few")
    assert len(records) // engine.MIN_IMAGES_PER_PROCESS < 2  # not worth a second process

    def not_here(*args: object, **kwargs: object) -> None:
        raise AssertionError("a small shard started processes")

    monkeypatch.setattr(download, "in_processes", not_here)
    outcomes = download_shard(records, tmp_path / "i", tmp_path / "m.jsonl", fetcher(tmp_path), processes=4)
    assert all(o.ok for o in outcomes)
    own = HostLimiter({"*": HostPolicy()})  # host_scope = process: budgets only in this process
    assert own.for_processes(2) is None


def test_each_process_holds_its_share_of_a_concurrency_cap(tmp_path):
    policies = {HOST: HostPolicy(rate=5, burst=5, concurrency=8), "*": HostPolicy(concurrency=1)}
    limiter = HostLimiter.for_config(HttpConfig(host_policies=policies, budget_dir=str(tmp_path)))
    shared = limiter.for_processes(3)
    assert shared is not None
    assert shared.policies[HOST].concurrency == 3 and shared.policies["*"].concurrency == 1
    assert shared.limiter().budget.directory == limiter.budget.directory


def test_processes_of_a_shard_stay_within_the_hosts_budget(tmp_path, monkeypatch):
    with Sandbox() as box:
        for key, value in box.env().items():
            monkeypatch.setenv(key, value)
        records = small_records(box, 110, "budget")
        only_in_processes(monkeypatch)
        started = time.monotonic()
        outcomes = download_shard(
            records,
            tmp_path / "i",
            tmp_path / "m.jsonl",
            fetcher(tmp_path, "rate=25 burst=1 concurrency=8"),
            processes=2,
        )
        took = time.monotonic() - started
        peak = box.log.max_rate(HOST, 2.0)
    assert all(o.ok for o in outcomes)
    # 25/s shared: at most ~25 x 2 s + the burst in any 2 s; a budget per process would allow twice that
    assert peak <= 55, f"{peak} requests in 2 s"
    assert took >= 110 / 25 - 1.5


def test_an_error_in_a_download_process_is_raised_by_the_shard(sandbox_env, tmp_path):
    records = small_records(sandbox_env, 110, "err")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "roses").write_text("a file where the images' folder should be")
    manifest = tmp_path / "m.jsonl"
    with pytest.raises(OSError):
        download_shard(records, tmp_path / "images", manifest, fetcher(tmp_path), processes=2)
    assert not manifest.exists()  # the journal keeps what finished; a rerun resumes
    assert len(read_outcomes(journal_path(manifest))) < len(records)


SHARD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from redcaps.download.shard import download_shard
    from tests.test_download_processes import fetcher, small_records
    from redcaps.sandbox import Sandbox
    tmp = Path(sys.argv[1])
    with Sandbox() as box:
        import os
        os.environ.update(box.env())
        records = small_records(box, 200, "orphan")
        download_shard(records, tmp / "i", tmp / "m.jsonl", fetcher(tmp, "rate=4 burst=1"), processes=2)
    """
)


def tagged_processes(tag: str) -> list[int]:
    """Processes whose environment holds ``tag``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if tag.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_download_processes_end_when_the_shards_process_is_killed(tmp_path):
    tag = f"REDCAPS_TEST_TAG={uuid.uuid4().hex}"
    key, value = tag.split("=")
    env = {**os.environ, key: value, "PYTHONPATH": str(Path(__file__).parents[1])}
    parent = subprocess.Popen([sys.executable, "-c", SHARD, str(tmp_path)], env=env)
    journal = journal_path(tmp_path / "m.jsonl")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (journal.exists() and journal.read_text().count("\n") >= 3):
        time.sleep(0.2)
    assert journal.exists(), "the shard never started"
    children = [pid for pid in tagged_processes(value) if pid != parent.pid]
    assert len(children) >= 2, children  # the two download processes (and multiprocessing's helper)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and tagged_processes(value):
        time.sleep(0.2)
    assert not tagged_processes(value), "download processes outlived the shard's process"
    lines = [json.loads(line) for line in journal.read_text().splitlines() if line.endswith("}")]
    assert all(line["status"] == "ok" for line in lines)
