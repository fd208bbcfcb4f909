"""Reruns finish the job (retry rounds in download manifests) and the data dir in every task id."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import luigi
import pytest
import webdataset as wds

from pipeline.official import OfficialFile, RedCapsOfficial
from pipeline.year import RedCapsYear
from redcaps import annotations as ann
from redcaps.download.manifest import Outcome, read_outcomes
from redcaps.filters.base import ImageScorer, read_removals
from redcaps.filters.stage import FilterPaths, run_filter
from redcaps.sandbox import Sandbox
from redcaps.settings import NsfwSettings
from tasks.collect import FetchMonth, MergeYear
from tasks.config import DownloadsConfig
from tasks.download import DownloadImages, DownloadImageShard
from tests.helpers import annotation_file, as_a_new_process, luigi_settings, record, write_images


def _year_task_ids(data_dir: Path) -> list[str]:
    with luigi_settings({"redcaps": {"data_dir": str(data_dir)}, "filters": {"enabled": "words"}}):
        year = RedCapsYear(subreddit="roses", year=2020)
        validate, tarify, report = year.stages()
        tasks = [
            year,
            FetchMonth(subreddit="roses", month=datetime.date(2020, 1, 1)),
            MergeYear(subreddit="roses", year=2020),
            validate,
            tarify,
            report,
            validate.upstream(),  # Publish
            validate.upstream().upstream(),  # Dedup
            validate.upstream().upstream().upstream(),  # FilterWords
            OfficialFile(annotations="/x/roses_2020.json"),
            RedCapsOfficial(annotations_dir="/x"),
        ]
        return [t.task_id for t in tasks]


def test_two_data_dirs_never_share_a_task_id(luigi_config, tmp_path):
    first, again = _year_task_ids(tmp_path / "a"), _year_task_ids(tmp_path / "a")
    other = _year_task_ids(tmp_path / "b")
    assert first == again
    assert all(a != b for a, b in zip(first, other, strict=True))
    assert len(set(first)) == len(first)
    assert first[0].startswith("RedCapsYear_") and "_roses_" in first[0]  # still luigi's readable id


_IDS_IN_A_NEW_PROCESS = """
import sys
from tests.test_reruns import _year_task_ids
print("\\n".join(_year_task_ids(sys.argv[1])))
"""


def test_task_ids_are_the_same_in_another_process(luigi_config, tmp_path):
    """A resumed run (another process, another hash seed) finds the same tasks."""
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    args = [sys.executable, "-c", _IDS_IN_A_NEW_PROCESS, str(tmp_path / "a")]
    again = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert again == _year_task_ids(tmp_path / "a")


def test_the_web_ui_and_a_rebuilt_task_see_the_same_parameters(luigi_config, tmp_path):
    with luigi_settings({"redcaps": {"data_dir": str(tmp_path / "a")}}):
        task = RedCapsYear(subreddit="roses", year=2020)
        expected = {"data_dir": str(tmp_path / "a"), "subreddit": "roses", "year": "2020", "first_year": ""}
        assert task.to_str_params() == expected
        rebuilt = RedCapsYear.from_str_params(task.to_str_params())
        assert rebuilt.task_id == task.task_id
    luigi.task_register.Register.clear_instance_cache()


def test_a_data_dir_given_to_a_task_wins_over_the_config(luigi_config, tmp_path):
    task = RedCapsYear(subreddit="roses", year=2020, data_dir=str(tmp_path / "mine"))
    assert task.data_dir == str(tmp_path / "mine") and task.layout.root == tmp_path / "mine"
    assert task.stages()[0].data_dir == str(tmp_path / "mine")  # and its stages inherit it


def _write(path: Path, records: list[dict]) -> str:
    path.write_text(json.dumps(annotation_file(records).to_json()))
    return str(path)


def _shard_with(luigi_config: Path, tmp_path: Path, outcome: Outcome) -> DownloadImageShard:
    source = _write(tmp_path / "roses_2020.json", [record(outcome.image_id)])
    shard = DownloadImageShard(annotations=source, shard=0)
    manifest = Path(shard.output().path)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(outcome.to_line())
    return shard


def test_a_manifest_with_rounds_exhausted_is_complete(luigi_config, tmp_path):
    as_a_new_process()
    rounds = DownloadsConfig().retry_rounds
    exhausted = Outcome("a1", record("a1")["url"], "http_5xx", round=rounds + 1)
    assert _shard_with(luigi_config, tmp_path, exhausted).complete()


def test_a_shard_first_seen_missing_is_complete_once_written(luigi_config, tmp_path):
    """Scheduling looks first (no manifest yet); a forked worker process writes it with
    failures to retry: for the rest of this run the shard is complete."""
    as_a_new_process()
    source = _write(tmp_path / "roses_2020.json", [record("a1")])
    shard = DownloadImageShard(annotations=source, shard=0)
    assert not shard.complete()
    manifest = Path(shard.output().path)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(Outcome("a1", record("a1")["url"], "timeout").to_line())
    assert shard.complete()


def test_a_shard_with_retries_left_waits_for_the_next_run(luigi_config, tmp_path):
    as_a_new_process()
    shard = _shard_with(luigi_config, tmp_path, Outcome("a1", record("a1")["url"], "timeout"))
    assert not shard.complete()  # a new run: retry
    downloaded = DownloadImages(annotations=shard.annotations)
    Path(downloaded.output().path).parent.mkdir(parents=True, exist_ok=True)
    Path(downloaded.output().path).write_text("{}")
    assert not downloaded.complete()  # so the stage (and every later one) reruns too
    manifest = Path(shard.output().path)
    manifest.write_text(Outcome("a1", record("a1")["url"], "timeout", round=2).to_line())
    assert shard.complete() and downloaded.complete()  # written in this run: retried next run
    as_a_new_process()
    assert not shard.complete()


def _build(task: luigi.Task, workers: int = 1) -> luigi.execution_summary.LuigiRunResult:
    """One run: a new process would see every manifest afresh."""
    as_a_new_process()
    luigi.task_register.Register.clear_instance_cache()
    return luigi.build(
        [task], local_scheduler=True, detailed_summary=True, log_level="WARNING", workers=workers
    )


def _outcomes(data: Path, stem: str) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for manifest in sorted((data / "images" / ".manifests" / stem).glob("*.jsonl")):
        outcomes.update(read_outcomes(manifest))
    return outcomes


#: Where the recovery of an image gone for good goes (its preview, looked up by post id): not a
#: refetch of the image's own URL.
RECOVERY_HOSTS = {"preview.redd.it", "external-preview.redd.it", "arctic-shift.photon-reddit.com"}


def _image_requests(sandbox: Sandbox) -> set[str]:
    """Paths of requests to images' own URLs, without redirect hops to placeholders (imgur's
    removed.png) and without the recovery of images gone for good."""
    return {r.path for r in sandbox.log.records() if r.host not in RECOVERY_HOSTS} - {
        "/removed.png",
        "/pw/images/en-us/photo_unavailable.png",
    }


@pytest.mark.slow
def test_a_fault_storm_year_rerun_twice_ends_with_every_retryable_image_stored(sandbox_env, luigi_config):
    data, stem, world = luigi_config, "sandboxcats_2020", sandbox_env.world
    year = RedCapsYear(subreddit="sandboxcats", year=2020)
    settings = {
        "filters": {"enabled": "words"},
        "worker": {"check_complete_on_run": "true"},
        "downloads": {"read_timeout": "10"},  # only the storm fails images, not a loaded machine
    }
    world.storm(0.3, failures=7)  # 3 attempts per run (TEST_CONFIG): stormy images need a third run
    try:
        with luigi_settings(settings):
            first = _build(year)
            assert first.status == luigi.LuigiStatusCode.SUCCESS, first.summary_text
            after_first = _outcomes(data, stem)
            stormed = {i for i, o in after_first.items() if o.retryable}
            final = {i: o for i, o in after_first.items() if not o.ok and not o.retryable}
            assert len(stormed) >= 5 and final
            published = {r["image_id"] for r in ann.load(data / "annotations" / f"{stem}.json").annotations}
            assert not published & stormed

            sandbox_env.reset_log()
            second = _build(year, workers=2)  # tasks in forked processes: one round per run still
            assert second.status == luigi.LuigiStatusCode.SUCCESS, second.summary_text
            third = _build(year)
            assert third.status == luigi.LuigiStatusCode.SUCCESS, third.summary_text
            requested = _image_requests(sandbox_env)
            outcomes = _outcomes(data, stem)
            left = {urlsplit(o.url).path for o in outcomes.values() if o.retryable}

            sandbox_env.reset_log()
            assert _build(year).status == luigi.LuigiStatusCode.SUCCESS
            assert _image_requests(sandbox_env) == left  # only what is left, if anything
    finally:
        world.storm(0)

    assert all(outcomes[i].ok for i in stormed if world.expected_status(after_first[i].url) == "ok")
    assert {i: o for i, o in outcomes.items() if i in final} == final  # final failures stay final
    assert {o.round for i, o in outcomes.items() if i in stormed} == {3}
    removals = data / "stages" / "filter_words" / f"{stem}.removals.jsonl"
    removed = {json.loads(line)["image_id"] for line in removals.read_text().splitlines()}
    assert removed and not any(f"/{i}" in p for i in removed for p in requested)  # never refetched
    assert requested - {urlsplit(after_first[i].url).path for i in stormed} == set()  # only retries

    merged = ann.load(data / "stages" / "merged" / f"{stem}.json")
    latest = _outcomes(data, stem)  # after the fourth run too
    expected = {r["image_id"] for r in merged.annotations if latest[r["image_id"]].ok} - removed
    final_file = ann.load(data / "annotations" / f"{stem}.json")
    assert {r["image_id"] for r in final_file.annotations} == expected
    assert expected & stormed  # the new images are published ...
    shards = sorted(str(p) for p in (data / "tarfiles").glob(f"{stem}_*.tar"))
    keys = {key for (key,) in wds.WebDataset(shards, shardshuffle=False).to_tuple("__key__")}
    assert keys == expected  # ... and packed
    summary = json.loads((data / "stages" / "year" / f"{stem}.json").read_text())
    assert summary["tars"]["samples"] == len(expected)


class _ScoresById(ImageScorer):
    """Removes ``nsfw1`` (score 0.99); everything else scores 0.1."""

    model_name = "fixed"

    def prepare(self, path: Path) -> str:
        return path.stem

    def score(self, batch: list[Any]) -> list[float]:
        return [0.99 if image_id == "nsfw1" else 0.1 for image_id in batch]


def test_a_filter_rerun_over_more_images_keeps_its_earlier_removals(tmp_path):
    """The rerun's input has new images; nsfw1's image is gone (the first run deleted it), so the
    model cannot judge it again: it must stay removed, not be kept as unreadable."""
    first_records = [record("nsfw1"), record("keep1")]
    images = tmp_path / "images"
    write_images(images, first_records)
    paths = FilterPaths(
        source=tmp_path / "in" / "roses_2020.json",
        output=tmp_path / "out" / "roses_2020.json",
        removals=tmp_path / "out" / "roses_2020.removals.jsonl",
        images=images,
    )
    paths.source.parent.mkdir()
    paths.output.parent.mkdir()
    settings = NsfwSettings()
    ann.save(paths.source, annotation_file(first_records))
    first = run_filter("nsfw", paths, settings, scorer=_ScoresById)
    assert first.removed == 1 and not (images / "roses" / "nsfw1.jpg").exists()

    new = record("new01", created_utc=1577923300)  # downloaded by a later round
    write_images(images, [new])
    ann.save(paths.source, annotation_file([*first_records, new]))
    again = run_filter("nsfw", paths, settings, scorer=_ScoresById)
    kept = ann.load(paths.output)
    assert [r["image_id"] for r in kept.annotations] == ["keep1", "new01"]
    assert again.removed == 1 and kept.info["nsfw_filter"]["num_removed"] == 1
    assert [r.image_id for r in read_removals(paths.removals)] == ["nsfw1"]
