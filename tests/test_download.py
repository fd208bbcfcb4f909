"""The download engine against the sandbox: every fault class ends with the right status,
resume from the journal, reruns retry only retryable failures, updated annotations by id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redcaps.download import (
    Outcome,
    download_shard,
    downloaded_annotations,
    journal_path,
    read_outcomes,
)
from redcaps.http import Fetcher, HttpConfig, parse_host_policy
from redcaps.images import ImageOptions
from redcaps.layout import image_path
from tests.helpers import annotation_file, record


def fast_fetcher() -> Fetcher:
    policy = parse_host_policy("rate=100 burst=50 concurrency=8")
    config = HttpConfig(
        read_timeout=1.5,
        connect_timeout=2,
        max_attempts=3,
        backoff_base=0.05,
        host_policies={"*": policy, "imgur.com": policy, "redd.it": policy},
    )
    return Fetcher(config)


@pytest.fixture()
def official_records(sandbox_env):
    files = sandbox_env.world.official_files()
    return [r for f in files.values() for r in f["annotations"]]


def test_every_fault_class_ends_with_the_expected_status(sandbox_env, official_records, tmp_path):
    fetcher = fast_fetcher()
    outcomes = download_shard(official_records, tmp_path / "images", tmp_path / "m" / "00000.jsonl", fetcher)
    fetcher.close()
    world = sandbox_env.world
    got = {o.url: o.status for o in outcomes}
    expected = {r["url"]: world.expected_status(r["url"]) for r in official_records}
    assert got == expected
    assert {"ok", "http_404", "placeholder", "not_image", "timeout"} <= set(got.values())
    for outcome, rec in zip(outcomes, official_records, strict=True):
        stored = image_path(tmp_path / "images", rec["subreddit"], rec["image_id"])
        assert stored.exists() == outcome.ok
        if outcome.ok:
            assert min(outcome.width, outcome.height) <= 512 and len(outcome.sha256) == 64
    manifest = read_outcomes(tmp_path / "m" / "00000.jsonl")
    assert [o.image_id for o in manifest.values()] == [r["image_id"] for r in official_records]
    assert not journal_path(tmp_path / "m" / "00000.jsonl").exists()


def _healthy(sandbox, records, n):
    return [r for r in records if sandbox.world.expected_status(r["url"]) == "ok"][:n]


def test_resume_from_journal_fetches_only_the_rest(sandbox_env, official_records, tmp_path):
    records = _healthy(sandbox_env, official_records, 6)
    manifest = tmp_path / "m" / "00000.jsonl"
    fetcher = fast_fetcher()
    first = download_shard(records[:3], tmp_path / "images", tmp_path / "first.jsonl", fetcher)
    # a crash after three images: their journal lines exist, the last one torn mid-write
    journal = journal_path(manifest)
    journal.parent.mkdir(parents=True)
    journal.write_text("".join(o.to_line() for o in first) + '{"image_id": "tor')
    sandbox_env.reset_log()
    outcomes = download_shard(records, tmp_path / "images", manifest, fetcher)
    fetcher.close()
    requested = {r.path for r in sandbox_env.log.for_host("i.redd.it")} | {
        r.path for h in ("i.imgur.com",) for r in sandbox_env.log.for_host(h)
    }
    assert all(o.ok for o in outcomes)
    for rec in records[:3]:
        assert not any(rec["url"].endswith(p) for p in requested)
    assert len(sandbox_env.log.records()) == 3


def test_rerun_retries_only_retryable_failures(sandbox_env, tmp_path):
    good = record("good01", url="https://i.redd.it/good01.jpg")
    gone = record("gone01", url="https://i.redd.it/gone01.jpg")
    flaky = record("flaky1", url="https://i.redd.it/flaky1.jpg")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        Outcome("gone01", gone["url"], "http_404").to_line()
        + Outcome("flaky1", flaky["url"], "timeout", error="read timed out").to_line()
    )
    fetcher = fast_fetcher()
    outcomes = download_shard([good, gone, flaky], tmp_path / "images", manifest, fetcher)
    fetcher.close()
    paths = [r.path for r in sandbox_env.log.records()]
    assert sorted(paths) == ["/flaky1.jpg", "/good01.jpg"]
    assert [o.status for o in outcomes] == ["ok", "http_404", "ok"]


def test_updated_annotations_match_by_id_not_position(tmp_path):
    records = [record(f"r{i}") for i in range(5)]
    outcomes = {
        "r4": Outcome("r4", records[4]["url"], "ok"),
        "r0": Outcome("r0", records[0]["url"], "http_404"),
        "r2": Outcome("r2", records[2]["url"], "ok"),
    }
    updated = downloaded_annotations(annotation_file(records), outcomes)
    assert [r["image_id"] for r in updated.annotations] == ["r2", "r4"]
    assert updated.info["download"] == {
        "attempted": 5,
        "ok": 2,
        "failed": {"http_404": 1, "not_attempted": 2},
    }


def test_resize_options_are_applied(sandbox_env, official_records, tmp_path):
    rec = _healthy(sandbox_env, official_records, 1)[0]
    fetcher = fast_fetcher()
    [outcome] = download_shard(
        [rec], tmp_path / "i", tmp_path / "m.jsonl", fetcher, ImageOptions(resize=100, edge="longer")
    )
    fetcher.close()
    assert (
        max(outcome.width, outcome.height) == 100
        or max(outcome.original_width, outcome.original_height) < 100
    )
    assert Path(image_path(tmp_path / "i", rec["subreddit"], rec["image_id"])).exists()


def test_outcome_line_has_every_field_and_round_trips():
    from dataclasses import asdict

    url = "https://i.redd.it/abc123.jpg"
    outcome = Outcome("abc123", url, "ok", final_url=url, bytes=10, original_width=4032, sha256="ab")
    line = outcome.to_line()
    assert line.endswith("\n") and json.loads(line) == asdict(outcome)
    assert list(json.loads(line)) == sorted(asdict(outcome))  # sorted keys: stable manifests
    assert Outcome.from_dict({**json.loads(line), "unknown_later_field": 1}) == outcome


def test_decodes_at_most_one_image_per_core_while_more_threads_fetch(tmp_path, monkeypatch):
    """16 fetch threads hide latency; decoding more images than cores at once only thrashes."""
    import threading
    import time

    import redcaps.download as download
    from redcaps.http import FetchResult
    from tests.helpers import jpeg_bytes

    class InstantFetcher:
        def get(self, url):
            return FetchResult(url, "ok", final_url=url, http_status=200, body=jpeg_bytes(600, 600))

    active, peak, guard = 0, 0, threading.Lock()
    real_process = download.process_image

    def tracked(body, options):
        nonlocal active, peak
        with guard:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        try:
            return real_process(body, options)
        finally:
            with guard:
                active -= 1

    monkeypatch.setattr(download, "process_image", tracked)
    monkeypatch.setattr(download.os, "cpu_count", lambda: 2)
    records = [record(f"img{i:03d}") for i in range(24)]
    outcomes = download_shard(
        records, tmp_path / "images", tmp_path / "m" / "00000.jsonl", InstantFetcher(), workers=8
    )
    assert [o.status for o in outcomes] == ["ok"] * 24 and outcomes[0].width == 512
    assert peak == 2  # both cores busy, never more
