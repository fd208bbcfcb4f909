"""The sandbox's decayed web: previews, gone originals, retired Flickr hosts, opt-outs, deletions."""

from __future__ import annotations

import html
import io
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
from PIL import Image

from redcaps.sandbox import Sandbox, posts, reddit_apis
from redcaps.sandbox.world import World

UA = {"User-Agent": "redcaps-test/1.0"}
SEARCH = "https://arctic-shift.photon-reddit.com/api/posts/search"
IDS = "https://arctic-shift.photon-reddit.com/api/posts/ids"


def get(url: str, **kw) -> requests.Response:
    return requests.get(url, headers=UA, timeout=10, **kw)


@pytest.fixture(scope="module")
def decayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    world = World(0, decay=0.4, opt_outs=0.3, deletions=0.3, flickr_farms_gone=True)
    with Sandbox(world, state_dir=tmp_path_factory.mktemp("decayed")) as box:
        yield box


@pytest.fixture()
def decayed_env(decayed: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    for key, value in decayed.env().items():
        monkeypatch.setenv(key, value)
    reddit_apis.state(decayed.world).reset()
    return decayed


def fetched_as_is(url: str) -> bool:
    """Image URLs a downloader fetches unchanged (imgur ids are fetched as ``.jpg``)."""
    direct = (
        url.startswith("https://i.redd.it/") or ".staticflickr.com/" in url or ".static.flickr.com/" in url
    )
    return "?" not in url and (direct or (url.startswith("https://i.imgur.com/") and url.endswith(".jpg")))


def first_post(host: str) -> dict:
    return next(
        p for p in posts.population() if p["url"].startswith(f"https://{host}/") and "?" not in p["url"]
    )


def test_the_default_world_has_no_decay():
    world = World()
    assert world.faults == posts.image_faults()
    assert not world.robots and not world.dead_previews and not world.deleted_later
    assert not world.flickr_farms_gone


def test_search_answers_carry_reddit_previews_escaped(sandbox_env):
    page = get(SEARCH, params={"subreddit": "sandboxcats", "after": 1577836800, "limit": 100, "sort": "asc"})
    linked = [p for p in page.json()["data"] if p["url"].startswith("https://i.redd.it/")]
    assert linked and all("preview" in p for p in linked)
    image = linked[0]["preview"]["images"][0]
    source = image["source"]
    assert source["url"].startswith("https://preview.redd.it/") and "&amp;s=" in source["url"]
    width, height = Image.open(io.BytesIO(get(linked[0]["url"]).content)).size
    assert (source["width"], source["height"]) == (width, height)
    widths = [r["width"] for r in image["resolutions"]]
    assert widths == sorted(widths) and all(w < width for w in widths) and 108 in widths
    assert all(abs(r["height"] - height * r["width"] / width) <= 1 for r in image["resolutions"])
    self_posts = [p for p in page.json()["data"] if p.get("is_self")]
    assert self_posts and not any("preview" in p for p in self_posts)


def test_preview_urls_serve_the_originals_image_and_check_their_signature(sandbox_env):
    post = first_post("i.redd.it")
    preview = sandbox_env.world.archived(post)["preview"]["images"][0]
    source = html.unescape(preview["source"]["url"])
    original = get(post["url"]).content
    assert get(source).content == original
    smallest = preview["resolutions"][0]
    small = get(html.unescape(smallest["url"]))
    assert small.status_code == 200 and Image.open(io.BytesIO(small.content)).width == smallest["width"]
    assert get(preview["source"]["url"]).status_code == 403  # still HTML-escaped: no valid s=
    assert get(html.unescape(smallest["url"]).replace("width=108", "width=216")).status_code == 403
    assert get("https://preview.redd.it/unknown.jpg?auto=webp&s=x").status_code == 404


@pytest.mark.parametrize("host", ["i.imgur.com", "farm1.staticflickr.com"])
def test_linked_images_have_external_previews(sandbox_env, host):
    post = next(
        p for p in posts.population() if host.split(".", 1)[1] in p["url"] and fetched_as_is(p["url"])
    )
    source = html.unescape(sandbox_env.world.archived(post)["preview"]["images"][0]["source"]["url"])
    assert source.startswith("https://external-preview.redd.it/")
    assert get(source).content == get(post["url"]).content


def test_a_share_of_originals_is_gone_with_most_previews_alive(decayed_env):
    world = decayed_env.world
    fresh = World(0)
    gone = [u for u in world.faults if u not in fresh.faults]
    special = fresh.faults.keys() | fresh.kinds.keys() | fresh.copies.keys()
    candidates = [p["url"] for p in posts.population() if fetched_as_is(p["url"]) and p["url"] not in special]
    assert 0.25 < len(gone) / len(candidates) < 0.45
    assert 0 < len(world.dead_previews) < 0.25 * len(gone)
    by_host = Counter(world.faults[u] for u in gone)
    assert {"http_404", "http_403", "imgur_removed", "flickr_unavailable"} <= set(by_host)
    reddit = next(u for u in gone if u.startswith("https://i.redd.it/") and u not in world.dead_previews)
    assert get(reddit).status_code in (403, 404)
    post = next(p for p in posts.population() if p["url"] == reddit)
    preview = html.unescape(world.archived(post)["preview"]["images"][0]["source"]["url"])
    assert get(preview).content == fresh.image(reddit)[0]
    imgur = next(u for u in gone if u.startswith("https://i.imgur.com/"))
    response = get(imgur)
    assert response.url == "https://i.imgur.com/removed.png" and response.history
    dead_post = next(p for p in posts.population() if p["url"] in world.dead_previews)  # set order varies
    assert (
        get(html.unescape(world.archived(dead_post)["preview"]["images"][0]["source"]["url"])).status_code
        == 404
    )


def test_flickr_farms_answer_410_and_live_serves_the_same_path(decayed_env):
    world = decayed_env.world
    url = next(
        p["url"]
        for p in posts.population()
        if ".flickr.com/" in p["url"] or "staticflickr" in p["url"]
        if p["url"] not in world.faults and p["url"] not in world.robots and "?" not in p["url"]
    )
    assert get(url).status_code == 410 and world.expected_status(url) == "http_410"
    live = "https://live.staticflickr.com/" + url.split("/", 3)[3]
    served = get(live)
    assert served.status_code == 200 and served.content == World(0).image(url)[0]


def test_some_images_send_an_x_robots_tag(decayed_env):
    world = decayed_env.world
    tags = Counter(world.robots.values())
    assert set(tags) == {"noai", "noimageai", "otherbot: noai", "redcaps: noimageindex"}
    for tag in tags:
        url = next(u for u, t in world.robots.items() if t == tag and "flickr" not in u)
        response = get(url)
        assert response.status_code == 200 and response.headers["X-Robots-Tag"] == tag
        assert world.expected_status(url) == ("ok" if tag.startswith("otherbot") else "opted_out")
    plain = next(
        p["url"]
        for p in posts.population()
        if p["url"].startswith("https://i.redd.it/")
        and p["url"] not in world.robots
        and p["url"] not in world.faults
    )
    assert "X-Robots-Tag" not in get(plain).headers


def test_arctic_shift_ids_endpoint_returns_posts_with_previews(decayed_env):
    world = decayed_env.world
    population = posts.population()
    official = next(iter(world.official_posts()))
    wanted = [p["id"] for p in population[:498]]
    answer = get(IDS, params={"ids": ",".join([*wanted[:-1], f"t3_{wanted[-1]}", official, "zzzzzzz"])})
    assert answer.status_code == 200 and "X-RateLimit-Remaining" in answer.headers
    found = {p["id"]: p for p in answer.json()["data"]}
    assert set(found) == {*wanted, official}
    assert all(
        "preview" in found[p["id"]] for p in population[:498] if p["url"].startswith("https://i.redd.it/")
    )
    assert "preview" in found[official] or "?" in found[official]["url"]
    assert get(IDS, params={"ids": ",".join(p["id"] for p in population[:501])}).status_code == 400
    assert [len(call) for call in reddit_apis.state(world).arctic_id_calls] == [500, 501]


def test_posts_deleted_later_are_marked_in_archive_answers(decayed_env):
    world = decayed_env.world
    assert set(world.deleted_later.values()) == {
        "deleted_later",
        "removed_later",
        "author_deleted",
        "author_removed",
    }
    assert {posts.case_of(pid) for pid in world.deleted_later} == {"image"}
    answer = get(IDS, params={"ids": ",".join(world.deleted_later)}).json()["data"]
    marks = {p["id"]: p for p in answer}
    for pid, mark in world.deleted_later.items():
        post = marks[pid]
        if mark in ("deleted_later", "removed_later"):
            assert post["_meta"]["was_deleted_later"] is True
            assert post["_meta"]["removal_type"] == ("deleted" if mark == "deleted_later" else "removed")
            assert post["_meta"]["retrieved_2nd_on"] == post["created_utc"] + 36 * 3600
        else:
            assert post["author"] == "[deleted]"
            assert post["selftext"] == ("[deleted]" if mark == "author_deleted" else "[removed]")


def test_reddit_info_shows_previews_unescaped_with_raw_json_and_deletions(decayed_env):
    world = decayed_env.world
    api = reddit_apis.state(world)
    api.reddit_429_call = 0
    auth = (reddit_apis.REDDIT_CLIENT_ID, reddit_apis.REDDIT_CLIENT_SECRET)
    token = requests.post(
        "https://www.reddit.com/api/v1/access_token",
        data={"grant_type": "client_credentials"},
        auth=auth,
        headers=UA,
    ).json()["access_token"]
    deleted = next(iter(world.deleted_later))
    linked = first_post("i.redd.it")["id"]
    headers = {**UA, "Authorization": f"bearer {token}"}
    for raw, escaped in (("1", False), ("0", True)):
        info = requests.get(
            "https://oauth.reddit.com/api/info/",
            params={"id": f"t3_{deleted},t3_{linked}", "raw_json": raw},
            headers=headers,
            timeout=10,
        ).json()["data"]["children"]
        by_id = {c["data"]["id"]: c["data"] for c in info}
        assert by_id[deleted]["author"] == "[deleted]" and by_id[deleted]["removed_by_category"] == "deleted"
        assert ("&amp;" in by_id[linked]["preview"]["images"][0]["source"]["url"]) is escaped
