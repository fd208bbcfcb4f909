"""RedCapsYear and RedCapsBatch end to end against the sandbox (Luigi, local scheduler)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import luigi
import pytest
import webdataset as wds

from pipeline import RedCapsBatch, RedCapsYear
from redcaps import annotations as ann
from redcaps.errors import RedCapsError
from redcaps.sandbox import posts
from redcaps.validate import validate_file
from tasks.filters import FilterNsfw


def build(*tasks: luigi.Task) -> luigi.execution_summary.LuigiRunResult:
    return luigi.build(list(tasks), local_scheduler=True, detailed_summary=True, log_level="WARNING")


def set_config(section: str, **values: str) -> None:
    config = luigi.configuration.get_config()
    if not config.has_section(section):
        config.add_section(section)
    for key, value in values.items():
        config.set(section, key, value)
    luigi.task_register.Register.clear_instance_cache()


@pytest.fixture(autouse=True)
def restore_luigi_config() -> Iterator[None]:
    """Batches apply their settings to the process's config: put every section back after."""
    config = luigi.configuration.get_config()
    saved = {s: dict(config.items(s, raw=True)) for s in config.sections()}
    yield
    for section in config.sections():
        config.remove_section(section)
    for section, values in saved.items():
        config.add_section(section)
        for key, value in values.items():
            config.set(section, key, value)
    luigi.task_register.Register.clear_instance_cache()


@pytest.fixture()
def words_only(luigi_config: Path) -> Path:
    """Only the word filter: the image models have their own tests (and a slow e2e below)."""
    set_config("filters", enabled="words")
    return luigi_config


def cases(subreddit: str, year: int) -> dict[str, list[str]]:
    """The sandbox population's post ids of one subreddit-year, by case."""
    by_case: dict[str, list[str]] = {}
    for month in range(1, 13):
        for post in posts.month_posts(subreddit, year, month):
            by_case.setdefault(posts.case_of(post["id"]), []).append(post["id"])
    return by_case


def tar_samples(data: Path, stem: str) -> dict[str, dict]:
    shards = sorted(str(p) for p in (data / "tarfiles").glob(f"{stem}_*.tar"))
    return {
        key: meta
        for key, _, meta in wds.WebDataset(shards, shardshuffle=False).to_tuple("__key__", "jpg", "json")
    }


def test_year_end_to_end_then_a_no_op_rerun(sandbox_env, words_only):
    data = words_only
    result = build(RedCapsYear(subreddit="sandboxcats", year=2020))
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text

    final = data / "annotations" / "sandboxcats_2020.json"
    assert [p for p in validate_file(final) if p.severity == "error"] == []
    published = ann.load(final)
    assert "word_filter" in published.info and "collection" in published.info
    merged = ann.load(data / "stages" / "merged" / "sandboxcats_2020.json")
    ids = [r["image_id"] for r in published.annotations]
    assert ids and set(ids) <= {r["image_id"] for r in merged.annotations}

    # the tars hold exactly the published instances, each with its image on disk
    samples = tar_samples(data, "sandboxcats_2020")
    assert sorted(samples) == sorted(ids)
    assert all((data / "images" / "sandboxcats" / f"{i}.jpg").exists() for i in ids)

    # dead images are failures, blocklisted titles are removed, the rest is published
    by_case = cases("sandboxcats", 2020)
    assert not set(ids) & set(by_case["image_gone"] + by_case["imgur_deleted"] + by_case["title_blocked"])
    removals = (data / "stages" / "filter_words" / "sandboxcats_2020.removals.jsonl").read_text()
    assert sorted(json.loads(line)["image_id"] for line in removals.splitlines()) == sorted(
        by_case["title_blocked"]
    )
    assert not any((data / "images" / "sandboxcats" / f"{i}.jpg").exists() for i in by_case["title_blocked"])

    # the year's summary agrees with the stage files
    summary = json.loads((data / "stages" / "year" / "sandboxcats_2020.json").read_text())
    collection = merged.info["collection"]
    assert summary["collected"]["kept"] == collection["kept"] == len(merged.annotations)
    assert sum(summary["collected"]["dropped"].values()) == collection["considered"] - collection["kept"]
    assert summary["download"]["attempted"] == len(merged.annotations)
    assert summary["download"]["failed"] == {
        "http_404": len(by_case["image_gone"]),
        "placeholder": len(by_case["imgur_deleted"]),
    }
    assert summary["removed"] == {"words": len(by_case["title_blocked"])}
    assert summary["tars"]["samples"] == len(ids)
    assert summary["annotations"] == str(final)

    # a second run is a no-op: no request reaches any host
    sandbox_env.reset_log()
    luigi.task_register.Register.clear_instance_cache()
    assert build(RedCapsYear(subreddit="sandboxcats", year=2020)).status == luigi.LuigiStatusCode.SUCCESS
    assert sandbox_env.log.records() == []


def _chain(task: luigi.Task) -> list[str]:
    """The families from ``task`` up its stage list to the merged year."""
    families = [type(task).__name__]
    while hasattr(task, "upstream"):
        task = task.upstream()
        families.append(type(task).__name__)
    return families


def test_the_year_list_follows_the_config(words_only):
    validate, tarify, report = RedCapsYear(subreddit="sandboxcats", year=2020).stages()
    assert _chain(validate) == ["Validate", "Publish", "Dedup", "FilterWords", "DownloadImages", "MergeYear"]
    assert tarify.upstream() == validate.upstream() == report.upstream()

    set_config("filters", enabled="faces, words")  # any order: always the original's order
    expected = ["Tarify", "Publish", "Dedup", "FilterFaces", "FilterWords", "DownloadImages", "MergeYear"]
    assert _chain(tarify) == expected

    set_config("filters", enabled="words,colour")
    with pytest.raises(RedCapsError, match=r"unknown filter\(s\) \['colour'\]"):
        validate.upstream()


def test_a_filter_the_config_left_out_is_not_in_the_year_list(words_only):
    with pytest.raises(RedCapsError, match="FilterNsfw is not a stage of the year list"):
        FilterNsfw(graph="year", subreddit="sandboxcats", year=2020).upstream()


def test_stage_tasks_survive_serialization(words_only):
    """Luigi rebuilds tasks from their string parameters (dynamic dependencies, other processes)."""
    validate, _, _ = RedCapsYear(subreddit="sandboxcats", year=2020, first_year=2019).stages()
    params = validate.to_str_params()
    assert {k: params[k] for k in ("graph", "subreddit", "year", "first_year")} == {
        "graph": "year",
        "subreddit": "sandboxcats",
        "year": "2020",
        "first_year": "2019",
    }  # what the web UI's Details column shows
    rebuilt = type(validate).from_str_params(params)
    assert rebuilt.task_id == validate.task_id
    assert rebuilt.input_path == validate.input_path == words_only / "annotations" / "sandboxcats_2020.json"


def write_batch(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_batch_of_two_subreddits_in_chunks(sandbox_env, words_only, tmp_path):
    config = write_batch(
        tmp_path / "pets.yaml",
        "name: pets\nsubreddits: [sandboxcats, sandboxroses]\nyears: [2020]\n"
        "settings: {shards: {shard_size: 50}}\n",  # the old name of samples_per_tar still works
    )
    task = RedCapsBatch(config=config, chunk_size=1)
    result = build(task)
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text

    summary = json.loads(Path(task.output().path).read_text())
    assert sorted(summary["files"]) == ["sandboxcats_2020", "sandboxroses_2020"]
    for stem, entry in summary["files"].items():
        assert entry["tars"]["samples"] == len(
            ann.load(words_only / "annotations" / f"{stem}.json").annotations
        )
        assert entry["tars"]["shards"] == -(-entry["tars"]["samples"] // 50)  # the batch's samples per tar
    assert summary["totals"]["samples"] == sum(e["tars"]["samples"] for e in summary["files"].values())

    # editing the config gives a new batch (new summary), whose finished years are not redone
    sandbox_env.reset_log()
    text = Path(config).read_text()
    edited = write_batch(tmp_path / "pets.yaml", text.replace("[2020]", "[2020]  # again"))
    luigi.task_register.Register.clear_instance_cache()
    same = RedCapsBatch(config=edited, chunk_size=1)
    assert same.output().path == task.output().path  # comments do not change the batch
    write_batch(tmp_path / "pets.yaml", text.replace("shard_size: 50", "samples_per_tar: 60"))
    luigi.task_register.Register.clear_instance_cache()
    changed = RedCapsBatch(config=str(tmp_path / "pets.yaml"), chunk_size=1)
    assert changed.output().path != task.output().path
    assert build(changed).status == luigi.LuigiStatusCode.SUCCESS
    assert sandbox_env.log.records() == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "subreddits: [cats]\nyears: [2020]\nsettings: {images: {colour: 3}}\n",
            "unknown option(s) ['colour']",
        ),
        ("subreddits: [cats]\nyears: [2020]\nsettings: {host_limits: {imgur.com: fast}}\n", "host_limits"),
        ("subreddits: [cats]\nyears: [1999]\n", "year 1999 is outside"),
        ("subreddits: ['../x']\nyears: [2020]\n", "unsafe subreddit"),
        ("name: 'a b'\nsubreddits: [cats]\nyears: [2020]\n", ".name: 'a b'"),
    ],
)
def test_bad_batch_configs_fail_before_anything_runs(words_only, tmp_path, text, message):
    config = write_batch(tmp_path / "bad.yaml", text)
    with pytest.raises(RedCapsError) as err:
        RedCapsBatch(config=config)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not words_only.exists()  # nothing written anywhere


@pytest.mark.slow
def test_year_with_every_filter(sandbox_env, luigi_config):
    """The default chain, image models included, gives a valid file with all three filter blocks."""
    result = build(RedCapsYear(subreddit="sandboxroses", year=2020))
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text
    final = luigi_config / "annotations" / "sandboxroses_2020.json"
    published = ann.load(final)
    assert {"word_filter", "nsfw_filter", "face_filter"} <= set(published.info)
    problems = validate_file(
        final
    )  # no error, and no warning but the empty captions' (every filter block present)
    assert [p.severity for p in problems] == ["warning"] and "captions are empty" in problems[0].message

    # the face photos, and only they, are removed by the face filter, images and all
    faces = cases("sandboxroses", 2020)["face"]
    assert faces and published.info["face_filter"]["num_removed"] == len(faces)
    assert not set(faces) & {r["image_id"] for r in published.annotations}
    assert not any((luigi_config / "images" / "sandboxroses" / f"{i}.jpg").exists() for i in faces)
    assert published.info["nsfw_filter"]["num_removed"] == 0  # the sandbox has no NSFW images


def test_a_bad_batch_on_the_command_line_is_one_line(tmp_path):
    config = write_batch(tmp_path / "bad.yaml", "subreddits: [cats]\nyears: [1999]\n")
    env = {k: v for k, v in os.environ.items() if k != "LUIGI_CONFIG_PATH"}
    cmd = [sys.executable, "-m", "luigi", "--module", "pipeline", "RedCapsBatch", "--config", config]
    cmd += ["--local-scheduler", "--redcaps-data-dir", str(tmp_path / "data")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert lines[0].endswith(f"error: {config}.years: year 1999 is outside 2005..{dt.date.today().year}")
    assert not (tmp_path / "data").exists()


def test_a_batch_finishes_one_year_before_it_starts_the_next(sandbox_env, words_only, tmp_path):
    """Depth first: while one worker downloads, the one-at-a-time collection APIs are free for others."""
    config = write_batch(
        tmp_path / "order.yaml", "name: order\nsubreddits: [sandboxcats, sandboxroses]\nyears: [2020]\n"
    )
    started: list[str] = []

    def remember(task: luigi.Task) -> None:
        started.append(json.dumps(task.to_str_params()))

    luigi.Task.event_handler(luigi.Event.START)(remember)
    try:
        assert build(RedCapsBatch(config=config)).status == luigi.LuigiStatusCode.SUCCESS
    finally:
        luigi.Task._event_callbacks[luigi.Task][luigi.Event.START].discard(remember)
    cats = [i for i, params in enumerate(started) if "sandboxcats" in params and "sandboxroses" not in params]
    roses = [
        i for i, params in enumerate(started) if "sandboxroses" in params and "sandboxcats" not in params
    ]
    assert len(cats) > 12 and len(roses) > 12  # months, merge, downloads, filter, tarify ...
    assert max(cats) < min(roses), "the second year started before the first was done"
