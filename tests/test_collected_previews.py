"""The ``preview`` route's lookup chain (issue 22): the collected posts' previews first, then
Arctic Shift's ids endpoint, then PRAW ``info()`` with Reddit credentials, against the sandbox."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import luigi
import pytest

from redcaps.collect.credentials import RedditCredentials
from redcaps.collect.month import collect_month
from redcaps.collect.preview_file import load_previews, save_previews
from redcaps.collect.sources.arctic_shift import ArcticShiftSource
from redcaps.download.manifest import read_outcomes
from redcaps.download.previews import PreviewLookup
from redcaps.download.shard import download_file
from redcaps.sandbox import Sandbox, posts, previews, reddit_apis
from redcaps.sandbox.world import World
from tasks.download import DownloadImages
from tests.helpers import annotation_file, free_limiter, record
from tests.test_download import fast_fetcher
from tests.test_recover_download import OPTIONS, SETTINGS

CREDENTIALS = RedditCredentials(
    client_id=reddit_apis.REDDIT_CLIENT_ID, client_secret=reddit_apis.REDDIT_CLIENT_SECRET
)


@pytest.fixture(scope="module")
def decayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(World(0, decay=0.4), state_dir=tmp_path_factory.mktemp("decayed")) as box:
        yield box


@pytest.fixture()
def api(decayed: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[reddit_apis.ApiState]:
    """The decayed sandbox's APIs with fresh counters, and no Reddit keys in the environment."""
    for key, value in decayed.env().items():
        monkeypatch.setenv(key, value)
    for var in ("REDDIT_CLIENT_ID", "REDDIT_CLIENT_SECRET", "REDDIT_USERNAME", "REDDIT_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    state = reddit_apis.state(decayed.world)
    state.reset()
    yield state
    state.reset()


def with_reddit_preview(world: World, count: int) -> list[dict]:
    """Posts that Reddit still has, with a preview (the ones PRAW can recover)."""
    chosen = [
        p for p in posts.population() if posts.reddit_view(p["id"]) and previews.preview(world, p["url"])
    ]
    return chosen[:count]


# -- the side file -------------------------------------------------------------------------------
def test_kept_posts_previews_are_collected_and_the_month_file_is_unchanged(api, decayed):
    world = decayed.world
    found: dict = {}
    month = collect_month(
        "sandboxcats", 2020, 3, source=ArcticShiftSource(limiter=free_limiter()), previews=found
    )
    plain = collect_month("sandboxcats", 2020, 3, source=ArcticShiftSource(limiter=free_limiter()))
    assert month.to_json() == plain.to_json()
    kept = [r["image_id"] for r in month.annotations]
    assert found and set(found) == {i for i in kept if "preview" in world.archived(world.post(i))}
    assert all(found[i] == world.archived(world.post(i))["preview"] for i in found)


def test_the_side_file_round_trips_and_a_missing_or_torn_one_means_none_known(tmp_path):
    path = tmp_path / "previews" / "sandboxcats_2020-03.json.zst"
    preview = {"images": [{"source": {"url": "https://preview.redd.it/a.jpg?s=1&amp;w=2", "width": 9}}]}
    save_previews(path, {"b2": preview, "a1": preview})
    assert load_previews(path) == {"a1": preview, "b2": preview}
    assert load_previews(tmp_path / "nowhere.json.zst") == {}
    path.write_bytes(path.read_bytes()[:10])
    assert load_previews(path) == {}
    save_previews(path, {})  # a month without previews leaves no stale file
    assert not path.exists()


# -- a collected year through Luigi ----------------------------------------------------------------
def build_year() -> None:
    """Collect and download r/sandboxcats 2020 in the configured data dir."""
    luigi.task_register.Register.clear_instance_cache()
    task = DownloadImages(graph="year", subreddit="sandboxcats", year=2020)
    result = luigi.build([task], local_scheduler=True, detailed_summary=True, log_level="WARNING")
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text


def outcomes(data: Path) -> dict:
    manifests = sorted((data / "images" / ".manifests" / "sandboxcats_2020").glob("*.jsonl"))
    return {i: o for path in manifests for i, o in read_outcomes(path).items()}


def recovered(data: Path) -> set[str]:
    return {i for i, o in outcomes(data).items() if o.ok and o.route == "preview"}


def forget_download(data: Path) -> None:
    """Back to a collected year: no images, manifests or downloaded file."""
    shutil.rmtree(data / "images")
    (data / "stages" / "downloaded" / "sandboxcats_2020.json").unlink()


def test_a_collected_year_recovers_through_its_side_files_then_arctic_shift(api, decayed, luigi_config):
    world, data = decayed.world, luigi_config
    build_year()
    side_files = sorted((data / "stages" / "previews").glob("sandboxcats_2020-*.json.zst"))
    assert len(side_files) == 12
    got = recovered(data)
    gone = {
        i
        for i in outcomes(data)
        if (url := world.post(i)["url"]) in world.gone
        and world.preview_alive(url)
        and previews.preview(world, url)
    }
    assert got and got == gone
    assert api.arctic_id_calls == []  # every gone image's preview came with its post

    forget_download(data)
    for path in side_files:
        path.unlink()
    build_year()
    assert recovered(data) == got
    assert api.arctic_id_calls and set(sum(api.arctic_id_calls, [])) >= got


# -- PRAW info() after Arctic Shift -------------------------------------------------------------------
@pytest.mark.parametrize("arctic", ["missing", "failing"])
def test_posts_arctic_shift_lacks_are_found_on_reddit_100_a_call(api, decayed, arctic):
    if arctic == "missing":
        api.arctic_ids_known = False
    else:
        api.arctic_ids_status = 400
    chosen = with_reddit_preview(decayed.world, 150)
    ids = sorted(p["id"] for p in chosen)
    lookup = PreviewLookup(limiter=free_limiter(), reddit=CREDENTIALS)
    try:
        found = lookup.previews(ids)
    finally:
        lookup.close()
    assert api.arctic_id_calls == [ids]  # asked first, once
    calls = api.reddit_info_calls  # the second call answers 429 once: retried after Retry-After
    assert len(calls) == math.ceil(len(ids) / 100) + 1 and calls[1] == calls[2]
    assert all(len(c) <= 100 for c in calls) and sorted(set(sum(calls, []))) == [f"t3_{i}" for i in ids]
    assert found == {p["id"]: previews.preview(decayed.world, p["url"], escaped=False) for p in chosen}


def test_without_credentials_reddit_is_never_asked(api, decayed):
    api.arctic_ids_known = False
    ids = [p["id"] for p in with_reddit_preview(decayed.world, 20)]
    lookup = PreviewLookup(limiter=free_limiter())
    try:
        assert lookup.previews(ids) == {}
    finally:
        lookup.close()
    assert api.reddit_info_calls == [] and api.reddit_tokens == []


def test_a_download_recovers_through_reddit_only_with_credentials(api, decayed, tmp_path):
    world = decayed.world
    api.arctic_ids_known, api.reddit_429_call = False, 0
    gone = [
        p
        for p in with_reddit_preview(world, 10**6)
        if p["url"] in world.gone
        and world.preview_alive(p["url"])
        and p["url"].startswith("https://i.redd.it/")
    ][:6]
    records = [record(p["id"], p["subreddit"], int(p["created_utc"]), url=p["url"]) for p in gone]
    assert len(records) == 6

    def download(folder: Path, reddit: RedditCredentials | None) -> dict:
        lookup = PreviewLookup(limiter=free_limiter(), reddit=reddit)
        try:
            got = download_file(
                annotation_file(records),
                folder / "images",
                folder / "manifests",
                fast_fetcher(),
                OPTIONS,
                SETTINGS,
                previews=lookup,
            )
        finally:
            lookup.close()
        return {o.image_id: o for o in got}

    without = download(tmp_path / "without", None)
    assert api.reddit_info_calls == []
    assert all(
        o.status == world.expected_status(p["url"]) and o.route is None
        for o, p in zip(without.values(), gone, strict=True)
    )
    with_creds = download(tmp_path / "with", CREDENTIALS)
    assert len(api.reddit_info_calls) == 1
    assert all(o.ok and o.route == "preview" for o in with_creds.values())
