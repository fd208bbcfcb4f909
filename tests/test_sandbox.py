"""The sandbox behaves like the real hosts, through nothing but the standard proxy variables."""

from __future__ import annotations

import io
import zipfile

import pytest
import requests
from PIL import Image

from redcaps.sandbox import posts
from redcaps.sandbox.downloads import ANNOTATIONS_ZIP_URL
from redcaps.sandbox.world import World

UA = {"User-Agent": "redcaps-test/1.0"}


def get(url: str, **kw) -> requests.Response:
    return requests.get(url, headers={**UA, **kw.pop("headers", {})}, timeout=kw.pop("timeout", 5), **kw)


def url_with(world: World, fault: str) -> str:
    world.official_files()
    return next(u for u, f in world.faults.items() if f == fault)


def test_tls_for_real_hostnames_through_the_proxy(sandbox_env):
    for url in (
        "https://i.redd.it/abc123def.jpg",
        "https://i.imgur.com/AbCdE12.jpg",
        "https://farm3.staticflickr.com/1234/5678_0abc12.jpg",
    ):
        response = get(url)
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("image/")
        Image.open(io.BytesIO(response.content)).verify()
    assert {r.host for r in sandbox_env.log.records()} == {
        "i.redd.it",
        "i.imgur.com",
        "farm3.staticflickr.com",
    }


def test_unknown_host_is_refused(sandbox_env):
    with pytest.raises(requests.exceptions.ProxyError):
        get("https://example.com/")


@pytest.mark.parametrize(
    ("fault", "status"), [("http_404", 404), ("http_410", 410), ("http_403", 403), ("always_503", 503)]
)
def test_error_statuses(sandbox_env, fault, status):
    assert get(url_with(sandbox_env.world, fault)).status_code == status


def test_429_with_retry_after_then_success(sandbox_env):
    world = World(seed=7)
    url = url_with(world, "retry_after_429")
    sandbox_env.world.faults[url] = "retry_after_429"
    first = get(url)
    assert first.status_code == 429 and first.headers["Retry-After"] == "1"
    assert get(url).status_code == 429 and get(url).status_code == 200


def test_reset_truncated_slow_html(sandbox_env):
    world = sandbox_env.world
    with pytest.raises(requests.exceptions.ConnectionError):
        get(url_with(world, "reset"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(url_with(world, "truncated")).content  # noqa: B018 - reading the body is the test
    with pytest.raises(requests.exceptions.ConnectionError):
        get(url_with(world, "slow"), timeout=(2, 0.5)).content  # noqa: B018
    html = get(url_with(world, "html"))
    assert html.status_code == 200 and html.headers["Content-Type"].startswith("text/html")


def test_placeholders_redirect_like_the_real_hosts(sandbox_env):
    removed = get(url_with(sandbox_env.world, "imgur_removed"))
    assert removed.status_code == 200 and removed.url == "https://i.imgur.com/removed.png"
    assert Image.open(io.BytesIO(removed.content)).size == (161, 81)
    gone = get(url_with(sandbox_env.world, "flickr_unavailable"))
    assert "photo_unavailable" in gone.url


def test_real_host_quirks(sandbox_env):
    assert requests.get("https://i.imgur.com/AbCdE12.jpg", timeout=5).status_code == 429  # python UA
    page = get("https://i.redd.it/abc123def.jpg", headers={"Accept": "text/html,*/*"})
    assert page.headers["Content-Type"].startswith("text/html")


def test_image_kinds(sandbox_env):
    world = sandbox_env.world
    world.official_files()
    by_kind = {k: u for u, k in world.kinds.items()}
    rotated = Image.open(io.BytesIO(get(by_kind["exif_rotated"]).content))
    assert rotated.getexif().get(0x0112) == 6
    gif = Image.open(io.BytesIO(get(by_kind["gif"]).content))
    assert gif.n_frames > 1
    assert Image.open(io.BytesIO(get(by_kind["png_alpha"]).content)).mode == "RGBA"


def test_population_images_that_fail_or_show_a_face(sandbox_env):
    """Posts the rules keep but the pipeline loses later: dead images and a face photo."""
    world = sandbox_env.world
    by_case: dict[str, list[str]] = {}
    for post in posts.population():
        by_case.setdefault(posts.case_of(post["id"]), []).append(post["url"])
    assert all(world.faults[u] == "http_404" for u in by_case["image_gone"])
    assert get(by_case["image_gone"][0]).status_code == 404
    removed = get(by_case["imgur_deleted"][0])
    assert removed.url.endswith("/removed.png") and removed.history
    face = get(by_case["face"][0])
    assert face.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(face.content)).size == (96, 120)
    assert all(posts.CASES[case] is None for case in ("image_gone", "imgur_deleted", "title_blocked", "face"))


def test_zip_is_deterministic_and_served(sandbox_env):
    response = get(ANNOTATIONS_ZIP_URL)
    assert response.content == World(seed=0).annotations_zip()
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert "LICENSE.txt" in names and "annotations/sandboxcats_2020.json" in names


def test_every_fault_and_kind_is_in_the_official_files():
    world = World()
    files = world.official_files()
    urls = {r["url"] for f in files.values() for r in f["annotations"]}
    official = set(world.faults) - set(posts.image_faults())
    assert official <= urls and len({world.faults[u] for u in official}) == 14
    assert {"phone", "small", "png_alpha", "gif", "webp", "exif_rotated"} <= set(world.kinds.values())


def test_log_concurrency_and_rate(sandbox_env):
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: get(f"https://i.redd.it/conc{i}.jpg"), range(8)))
    assert 1 <= sandbox_env.log.max_concurrency("i.redd.it") <= 4
    assert sandbox_env.log.max_rate("i.redd.it", 60) == 8


# -- the Reddit-data APIs ----------------------------------------------------------------------


def test_population_has_every_case_in_every_month():
    from redcaps.sandbox.posts import CASES, MONTHS, SUBREDDITS, case_of, month_posts

    for subreddit in SUBREDDITS:
        for year, month in MONTHS:
            cases = {case_of(p["id"]) for p in month_posts(subreddit, year, month)}
            assert cases == set(CASES), (subreddit, year, month)


def test_reddit_oauth_token_and_info(sandbox_env):
    from redcaps.sandbox import reddit_apis
    from redcaps.sandbox.posts import population

    api = reddit_apis.state(sandbox_env.world)
    api.reset()
    api.reddit_429_call = 0
    token_url = "https://www.reddit.com/api/v1/access_token"
    denied = requests.post(token_url, data={"grant_type": "client_credentials"}, auth=("x", "y"), headers=UA)
    assert denied.status_code == 401
    auth = (reddit_apis.REDDIT_CLIENT_ID, reddit_apis.REDDIT_CLIENT_SECRET)
    token = requests.post(token_url, data={"grant_type": "client_credentials"}, auth=auth, headers=UA).json()
    assert token["token_type"] == "bearer" and token["expires_in"] > 0
    ids = ",".join(f"t3_{p['id']}" for p in population()[:5]) + ",t3_zzzzzzz"
    info = get(
        "https://oauth.reddit.com/api/info/",
        params={"id": ids, "raw_json": 1},
        headers={"Authorization": f"bearer {token['access_token']}"},
    )
    assert info.status_code == 200 and int(info.headers["x-ratelimit-remaining"]) > 0
    assert info.json()["kind"] == "Listing" and len(info.json()["data"]["children"]) <= 5
    assert get("https://oauth.reddit.com/api/info/", params={"id": ids}).status_code == 401
    api.reset()


def test_arctic_shift_and_imgur_apis(sandbox_env):
    from redcaps.sandbox import reddit_apis

    api = reddit_apis.state(sandbox_env.world)
    api.reset()
    search = "https://arctic-shift.photon-reddit.com/api/posts/search"
    page = get(search, params={"subreddit": "sandboxcats", "after": 1577836800, "limit": 5, "sort": "asc"})
    assert (
        page.status_code == 200 and len(page.json()["data"]) == 5 and "X-RateLimit-Remaining" in page.headers
    )
    assert get(search, params={"subreddit": "x", "limit": 500}).status_code == 400
    album = "https://api.imgur.com/3/album/AbCdE"
    assert get(album).status_code == 403  # no Client-ID
    throttled = get(album, headers={"Authorization": f"Client-ID {reddit_apis.IMGUR_CLIENT_ID}"})
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
    gone = get(album, headers={"Authorization": f"Client-ID {reddit_apis.IMGUR_CLIENT_ID}"})
    assert gone.status_code == 404 and "X-RateLimit-ClientRemaining" in gone.headers
    api.reset()
