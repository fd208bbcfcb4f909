"""The download engine against the sandbox: every fault class ends with the right status,
resume from the journal, reruns retry only retryable failures, updated annotations by id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redcaps.download.images import ImageOptions
from redcaps.download.manifest import Outcome, downloaded_annotations, journal_path, read_outcomes
from redcaps.download.shard import download_shard, retries_left
from redcaps.layout import image_path
from redcaps.net.config import HttpConfig
from redcaps.net.fetcher import Fetcher
from redcaps.net.limits import parse_host_policy
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


#: The manifest status each fault the sandbox plants in its official files must end with,
#: stated here rather than taken from the sandbox (no fault: an image that downloads).
STATUS_OF_FAULT = {
    None: "ok",
    "retry_after_429": "ok",  # retried after the wait it asks for
    "burst_503": "ok",  # a few 503s, then the image
    "http_404": "http_404",
    "http_410": "http_410",
    "http_403": "http_403",
    "always_503": "http_5xx",
    "reset": "connection_error",
    "slow": "timeout",
    "truncated": "truncated",
    "html": "not_image",
    "imgur_removed": "placeholder",
    "flickr_unavailable": "placeholder",
    "huge": "too_large",
    "bomb": "too_many_pixels",
}


def test_every_fault_class_ends_with_the_expected_status(sandbox_env, official_records, tmp_path):
    fetcher = fast_fetcher()
    outcomes = download_shard(official_records, tmp_path / "images", tmp_path / "m" / "00000.jsonl", fetcher)
    fetcher.close()
    planted = {r["url"]: sandbox_env.world.faults.get(r["url"]) for r in official_records}
    assert set(planted.values()) == set(STATUS_OF_FAULT)  # every fault class is in the files
    got = {o.url: o.status for o in outcomes}
    assert got == {url: STATUS_OF_FAULT[fault] for url, fault in planted.items()}
    for outcome, rec in zip(outcomes, official_records, strict=True):
        stored = image_path(tmp_path / "images", rec["subreddit"], rec["image_id"])
        assert stored.exists() == outcome.ok
        if outcome.ok:
            assert min(outcome.width, outcome.height) <= 512 and len(outcome.sha256) == 64
    manifest = read_outcomes(tmp_path / "m" / "00000.jsonl")
    assert [o.image_id for o in manifest.values()] == [r["image_id"] for r in official_records]
    assert not journal_path(tmp_path / "m" / "00000.jsonl").exists()


def _healthy(sandbox, records, n):
    """The first ``n`` records with no fault planted on their URL."""
    return [r for r in records if r["url"] not in sandbox.world.faults][:n]


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
    assert [o.round for o in outcomes] == [1, 1, 2]  # the retry is the flaky image's second round
    assert [o.round for o in read_outcomes(manifest).values()] == [1, 1, 2]


def test_retries_stop_after_retry_rounds(sandbox_env, tmp_path):
    flaky = record("flaky2", url="https://i.redd.it/flaky2.jpg")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(Outcome("flaky2", flaky["url"], "http_5xx", round=3).to_line())
    fetcher = fast_fetcher()
    [kept] = download_shard([flaky], tmp_path / "images", manifest, fetcher, retry_rounds=2)
    assert sandbox_env.log.records() == [] and kept.status == "http_5xx"
    assert retries_left([kept], 2) == 0 and retries_left([kept], 3) == 1
    [retried] = download_shard([flaky], tmp_path / "images", manifest, fetcher, retry_rounds=3)
    fetcher.close()
    assert retried.ok and retried.round == 4


def test_a_finished_manifest_is_not_rewritten_when_nothing_is_retried(sandbox_env, tmp_path):
    records = [record("fine01", url="https://i.redd.it/fine01.jpg")]
    manifest = tmp_path / "m.jsonl"
    fetcher = fast_fetcher()
    download_shard(records, tmp_path / "images", manifest, fetcher)
    before, stat = manifest.read_bytes(), manifest.stat()
    download_shard(records, tmp_path / "images", manifest, fetcher)
    fetcher.close()
    after = manifest.stat()
    assert manifest.read_bytes() == before
    assert (after.st_ino, after.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


def test_a_404_then_503_is_final(sandbox_env, tmp_path):
    """A 404 seen on any attempt is the truth about the image, whatever the host says later."""
    url = "https://i.redd.it/gone404x.jpg"
    sandbox_env.world.faults[url] = "gone_then_503"
    try:
        rec = record("gone404x", url=url)
        manifest = tmp_path / "m.jsonl"
        fetcher = fast_fetcher()
        [first] = download_shard([rec], tmp_path / "images", manifest, fetcher)
        [again] = download_shard([rec], tmp_path / "images", manifest, fetcher)
        fetcher.close()
    finally:
        del sandbox_env.world.faults[url]
    assert first.status == again.status == "http_404" and not first.retryable
    assert len(sandbox_env.log.records()) == 1  # the rerun asked nothing: 404 is final
    assert retries_left(read_outcomes(manifest).values(), 3) == 0


def test_a_503_then_404_within_one_fetch_is_final(sandbox_env, tmp_path):
    url = "https://i.redd.it/storm404.jpg"
    world = sandbox_env.world
    world.faults[url] = "http_404"
    world.storm(1.0, failures=1)  # every URL: one storm answer, then the truth
    try:
        fetcher = fast_fetcher()
        [outcome] = download_shard(
            [record("storm404", url=url)], tmp_path / "i", tmp_path / "m.jsonl", fetcher
        )
        fetcher.close()
    finally:
        world.storm(0)
        del world.faults[url]
    assert outcome.status == "http_404" and len(sandbox_env.log.records()) == 2


def test_images_a_later_stage_removed_are_not_fetched_again(sandbox_env, tmp_path):
    rec = record("filt01", url="https://i.redd.it/filt01.jpg")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(Outcome("filt01", rec["url"], "ok").to_line())  # its image deleted by a filter
    fetcher = fast_fetcher()
    [kept] = download_shard([rec], tmp_path / "images", manifest, fetcher, removed={"filt01"})
    assert kept.ok and sandbox_env.log.records() == []
    [fetched] = download_shard([rec], tmp_path / "images", manifest, fetcher)  # a lost image is refetched
    fetcher.close()
    assert fetched.ok and len(sandbox_env.log.records()) == 1


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
    fields = {k: v for k, v in asdict(outcome).items() if k not in ("route", "fetched_url")}  # unrouted
    assert line.endswith("\n") and json.loads(line) == fields
    assert json.loads(line)["round"] == 1
    old_line = {k: v for k, v in json.loads(line).items() if k != "round"}  # manifests before rounds
    assert Outcome.from_dict(old_line) == outcome
    assert list(json.loads(line)) == sorted(fields)  # sorted keys: stable manifests
    assert Outcome.from_dict({**json.loads(line), "unknown_later_field": 1}) == outcome


def test_decodes_at_most_one_image_per_core_while_more_threads_fetch(tmp_path, monkeypatch):
    """16 fetch threads hide latency; decoding more images than cores at once only thrashes."""
    import threading
    import time

    import redcaps.download.engine as engine
    from redcaps.download.images import image_processor

    active, peak, guard = 0, 0, threading.Lock()

    def tracked_processor(options):
        process = image_processor(options)

        def tracked(body):
            nonlocal active, peak
            with guard:
                active += 1
                peak = max(peak, active)
            time.sleep(0.02)
            try:
                return process(body)
            finally:
                with guard:
                    active -= 1

        return tracked

    monkeypatch.setattr(engine.os, "cpu_count", lambda: 2)
    records = [record(f"img{i:03d}") for i in range(24)]
    outcomes = download_shard(
        records,
        tmp_path / "images",
        tmp_path / "m" / "00000.jsonl",
        InstantFetcher(),
        workers=8,
        processor=tracked_processor,
    )
    assert [o.status for o in outcomes] == ["ok"] * 24 and outcomes[0].width == 512
    assert peak == 2  # both cores busy, never more


class InstantFetcher:
    """Every URL answers a 600 x 600 JPEG at once."""

    def get(self, url, **_options):
        from redcaps.net.fetcher import FetchResult
        from tests.helpers import jpeg_bytes

        return FetchResult(url, "ok", final_url=url, http_status=200, body=jpeg_bytes(600, 600))


class MemoryStore:
    """An image store in a dict: what the engine asks of any storage, and nothing more."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.images: dict[str, bytes] = {}
        self.fail_on = fail_on

    def write(self, record, jpeg):
        if record["image_id"] == self.fail_on:
            raise OSError("the store is gone")
        self.images[record["image_id"]] = jpeg

    def exists(self, record):
        return record["image_id"] in self.images

    def sweep(self, records):
        pass


def test_images_go_to_the_store_given_and_resume_asks_it(tmp_path):
    records = [record("mem001"), record("mem002")]
    store, manifest = MemoryStore(), tmp_path / "m.jsonl"
    first = download_shard(records, store, manifest, InstantFetcher())
    assert [o.status for o in first] == ["ok", "ok"] and set(store.images) == {"mem001", "mem002"}
    assert all(body.startswith(b"\xff\xd8") for body in store.images.values())  # JPEGs
    assert not any(tmp_path.rglob("*.jpg"))  # nothing beside the store
    del store.images["mem002"]  # lost from the store: fetched again, the other one kept
    fetched = []
    download_shard(records, store, manifest, InstantFetcher(), progress=fetched.append)
    assert set(store.images) == {"mem001", "mem002"} and len(fetched) == 2


def test_a_journal_torn_by_one_crash_survives_the_next(tmp_path):
    """A rerun appends after a torn last line only once the torn part is cut off, so a second
    crash leaves a journal that still reads (and keeps what the first run finished)."""
    records = [record("torn01"), record("torn02"), record("torn03")]
    manifest = tmp_path / "m.jsonl"
    journal = journal_path(manifest)
    journal.write_text(Outcome("torn01", records[0]["url"], "http_404").to_line() + '{"image_id": "to')
    store = MemoryStore(fail_on="torn03")
    with pytest.raises(OSError):
        download_shard(records, store, manifest, InstantFetcher(), workers=1)
    assert not manifest.exists()
    statuses = {k: o.status for k, o in read_outcomes(journal).items()}
    assert statuses == {"torn01": "http_404", "torn02": "ok"}


def test_a_bad_line_inside_a_manifest_is_an_error_naming_the_file(tmp_path):
    from redcaps.errors import RedCapsError

    manifest = tmp_path / "m.jsonl"
    good = Outcome("bad001", "https://i.redd.it/bad001.jpg", "ok").to_line()
    manifest.write_text(good + "{not json\n" + good)
    with pytest.raises(RedCapsError, match=r"m\.jsonl:2: not a JSON line"):
        read_outcomes(manifest)
    manifest.write_text(good + '{"url": "https://i.redd.it/x.jpg"}\n')  # JSON, but no outcome
    with pytest.raises(RedCapsError, match=r"m\.jsonl: not an outcome"):
        read_outcomes(manifest)
