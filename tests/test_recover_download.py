"""Recovery routes and opt-outs in the download, against the sandbox's decayed web (issue 22)."""

from __future__ import annotations

import html
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from PIL import Image

from redcaps.download.images import ImageOptions, process_image
from redcaps.download.previews import PreviewLookup
from redcaps.download.shard import download_file
from redcaps.layout import image_path
from redcaps.sandbox import Sandbox, posts, reddit_apis
from redcaps.sandbox.world import World
from redcaps.settings import DownloadSettings
from tests.helpers import annotation_file, free_limiter, record
from tests.test_download import fast_fetcher

SETTINGS = DownloadSettings(images_per_shard=1000, workers=4, processes=1)
OPTIONS = ImageOptions(resize=64)


@pytest.fixture(scope="module")
def decayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    world = World(0, decay=0.4, opt_outs=0.3, flickr_farms_gone=True)
    with Sandbox(world, state_dir=tmp_path_factory.mktemp("decayed")) as box:
        yield box


@pytest.fixture()
def decayed_env(decayed: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    for key, value in decayed.env().items():
        monkeypatch.setenv(key, value)
    reddit_apis.state(decayed.world).reset()
    decayed.reset_log()
    return decayed


def as_record(post: dict) -> dict:
    return record(post["id"], post["subreddit"], int(post["created_utc"]), url=post["url"])


def fetched_as_is(url: str) -> bool:
    hosts = ("https://i.redd.it/", "https://i.imgur.com/", "https://farm")
    return "?" not in url and url.startswith(hosts) and url.endswith(".jpg")


def sample(world: World, pick, count: int) -> list[dict]:
    special = world.kinds.keys() | world.copies.keys()
    chosen = [
        p for p in posts.population() if fetched_as_is(p["url"]) and p["url"] not in special and pick(p)
    ]
    return [as_record(p) for p in chosen[:count]]


def download(tmp: Path, records: list[dict], settings: DownloadSettings = SETTINGS, **kwargs) -> dict:
    lookup = PreviewLookup(limiter=free_limiter())
    try:
        outcomes = download_file(
            annotation_file(records),
            tmp / "images",
            tmp / "manifests",
            fast_fetcher(),
            OPTIONS,
            settings,
            previews=lookup,
            **kwargs,
        )
    finally:
        lookup.close()
    return {o.image_id: o for o in outcomes}


def manifest_bytes(tmp: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((tmp / "manifests").glob("*.jsonl")))


def stored(tmp: Path, rec: dict) -> Path:
    return Path(image_path(tmp / "images", rec["subreddit"], rec["image_id"]))


def test_a_retired_flickr_farm_is_fetched_from_live_staticflickr(decayed_env, tmp_path):
    world = decayed_env.world
    farm = "farm7.staticflickr.com"
    records = sample(world, lambda p: farm in p["url"] and p["url"] not in world.faults, 3)
    assert len(records) == 3
    outcomes = download(tmp_path, records, replace(SETTINGS, workers=1))
    for rec in records:
        live = "https://live.staticflickr.com/" + rec["url"].split("/", 3)[3]
        got = outcomes[rec["image_id"]]
        assert (got.status, got.route, got.fetched_url, got.url) == ("ok", "rewrite", live, rec["url"])
        assert stored(tmp_path, rec).exists()
    farm_requests = decayed_env.log.for_host(farm)
    assert [r.status for r in farm_requests] == [410]  # seen retired once, then live first
    line = json.loads(manifest_bytes(tmp_path).splitlines()[0])
    assert line["route"] == "rewrite" and line["url"] == records[0]["url"]

    off = download(tmp_path / "off", records, replace(SETTINGS, recover=False))
    assert {o.status for o in off.values()} == {"http_410"}


def test_dead_originals_are_recovered_from_their_previews_in_one_lookup(decayed_env, tmp_path):
    world = decayed_env.world
    alive = lambda p: p["url"] in world.gone and p["url"] not in world.dead_previews  # noqa: E731
    records = sample(world, lambda p: alive(p) and "flickr" not in p["url"], 12)
    hosts = {r["url"].split("/")[2] for r in records}
    assert {"i.redd.it", "i.imgur.com"} <= hosts
    lost = sample(world, lambda p: p["url"] in world.dead_previews and "flickr" not in p["url"], 2)
    outcomes = download(tmp_path, records + lost)

    calls = reddit_apis.state(world).arctic_id_calls
    assert len(calls) == 1 and sorted(calls[0]) == sorted(r["image_id"] for r in records + lost)
    for rec in records:
        got = outcomes[rec["image_id"]]
        assert (got.status, got.route, got.url) == ("ok", "preview", rec["url"])
        assert got.fetched_url.startswith(("https://preview.redd.it/", "https://external-preview.redd.it/"))
        preview = requests.get(got.fetched_url, timeout=10).content  # through the sandbox's proxy
        assert stored(tmp_path, rec).read_bytes() == process_image(preview, OPTIONS).jpeg
        assert Image.open(io.BytesIO(preview)).size == world.image_size(rec["url"])
    for rec in lost:  # the preview is gone too: the original's failure stands, unrouted
        got = outcomes[rec["image_id"]]
        assert got.status == world.expected_status(rec["url"]) and got.route is None
        assert not stored(tmp_path, rec).exists()


def test_lookups_ask_for_at_most_500_posts_a_call(decayed_env):
    world = decayed_env.world
    ids = [p["id"] for p in posts.population()][:501]
    lookup = PreviewLookup(limiter=free_limiter())
    try:
        found = lookup.previews(ids)
    finally:
        lookup.close()
    calls = reddit_apis.state(world).arctic_id_calls
    assert sorted(len(c) for c in calls) == [1, 500] and sorted(sum(calls, [])) == sorted(ids)
    with_preview = [p for p in posts.population()[:501] if "preview" in world.archived(p)]
    assert set(found) == {p["id"] for p in with_preview}
    first = with_preview[0]
    assert found[first["id"]] == world.archived(first)["preview"]
    assert "&amp;" in found[first["id"]]["images"][0]["source"]["url"]  # unescaped only when used
    assert html.unescape(found[first["id"]]["images"][0]["source"]["url"]).count("&amp;") == 0


def test_recover_off_gives_todays_bytes_and_on_changes_nothing_without_decay(sandbox_env, tmp_path):
    world = sandbox_env.world
    records = sample(world, lambda p: p["url"] not in world.faults, 40)
    records += sample(world, lambda p: p["url"] in world.faults, 8)
    assert any(world.expected_status(r["url"]) in ("http_404", "placeholder") for r in records)
    on = download(tmp_path / "on", records)
    download(tmp_path / "off", records, replace(SETTINGS, recover=False))
    assert manifest_bytes(tmp_path / "on") == manifest_bytes(tmp_path / "off")
    assert b'"route"' not in manifest_bytes(tmp_path / "on")
    for rec in records:
        assert on[rec["image_id"]].status == world.expected_status(rec["url"])
        if on[rec["image_id"]].ok:
            assert stored(tmp_path / "on", rec).read_bytes() == stored(tmp_path / "off", rec).read_bytes()


def test_recover_off_on_a_decayed_web_records_every_failure_as_before(decayed_env, tmp_path):
    world = decayed_env.world
    records = sample(world, lambda p: p["url"] in world.gone and "flickr" not in p["url"], 6)
    outcomes = download(tmp_path, records, replace(SETTINGS, recover=False))
    assert [outcomes[r["image_id"]].status for r in records] == [
        world.expected_status(r["url"]) for r in records
    ]
    assert not reddit_apis.state(world).arctic_id_calls
    assert b'"route"' not in manifest_bytes(tmp_path)


def test_x_robots_tag_opt_outs_are_never_stored_and_other_bots_directives_are_ignored(decayed_env, tmp_path):
    world = decayed_env.world
    tagged = {
        tag: sample(world, lambda p, t=tag: world.robots.get(p["url"]) == t, 2)
        for tag in set(world.robots.values())
    }
    assert {"noai", "redcaps: noimageindex", "otherbot: noai"} <= tagged.keys()
    records = [r for recs in tagged.values() for r in recs]
    outcomes = download(tmp_path, records)
    for tag, recs in tagged.items():
        for rec in recs:
            got = outcomes[rec["image_id"]]
            if tag == "otherbot: noai":
                assert got.ok and stored(tmp_path, rec).exists()
            else:
                assert got.status == "opted_out" and got.route is None and not stored(tmp_path, rec).exists()
    assert not reddit_apis.state(world).arctic_id_calls  # no recovery route for an opt-out
    assert not decayed_env.log.for_host("preview.redd.it")

    ignoring = download(tmp_path / "ignoring", records, replace(SETTINGS, disallowed_directives=()))
    assert all(o.ok for o in ignoring.values())
