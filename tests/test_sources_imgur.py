"""Imgur albums, galleries and slugs through the sandbox's Imgur API (``Client-ID`` auth,
X-RateLimit-* headers, 429); without a client id albums are dropped with the reason."""

from __future__ import annotations

import pytest

from redcaps.collect.credentials import load_credentials
from redcaps.collect.month import build_imgur, collect_month
from redcaps.collect.rules import Dropped, Kept
from redcaps.collect.sources.arctic_shift import ArcticShiftSource
from redcaps.collect.sources.imgur import ImgurResolver
from redcaps.errors import RedCapsError
from redcaps.sandbox import reddit_apis
from redcaps.sandbox.posts import case_of, imgur_albums, month_posts
from redcaps.sandbox.posts import expected as expected_counts
from tests.helpers import free_limiter


@pytest.fixture()
def apis(sandbox_env, monkeypatch):
    monkeypatch.delenv("IMGUR_CLIENT_ID", raising=False)
    api = reddit_apis.state(sandbox_env.world)
    api.reset()
    yield api
    api.reset()


def resolver(slept: list[float] | None = None, **kw) -> ImgurResolver:
    return ImgurResolver(
        reddit_apis.IMGUR_CLIENT_ID,
        limiter=free_limiter(),
        backoff_base=0.01,
        sleep=(slept.append if slept is not None else lambda s: None),
        **kw,
    )


def album_of(case: str) -> str:
    post = next(p for p in month_posts("sandboxcats", 2020, 2) if case_of(p["id"]) == case)
    return post["url"].rstrip("/").rsplit("/", 1)[1].rsplit("-", 1)[-1]


def test_albums_galleries_and_slugs_resolve_with_a_client_id(apis, monkeypatch):
    monkeypatch.setenv("IMGUR_CLIENT_ID", reddit_apis.IMGUR_CLIENT_ID)
    imgur = build_imgur(
        load_credentials(None), limiter=free_limiter(), backoff_base=0.01, sleep=lambda s: None
    )
    result = collect_month(
        "sandboxcats", 2020, 2, source=ArcticShiftSource(limiter=free_limiter()), imgur=imgur
    )
    kept, dropped = expected_counts("sandboxcats", 2020, 2, resolved=True)
    assert (result.info["collection"]["kept"], result.info["collection"]["dropped"]) == (kept, dict(dropped))
    urls = {r["url"] for r in result.annotations}
    for case in ("imgur_album", "imgur_gallery", "imgur_slug"):
        images = imgur_albums()[album_of(case)]
        first_still = next(i["link"] for i in images if not i["link"].endswith(".mp4"))
        assert first_still in urls  # the slug's album starts with an mp4: skipped
    assert apis.imgur_calls.count(album_of("imgur_album")) == 1


def test_429_is_retried_after_retry_after(apis):
    slept: list[float] = []
    verdict = resolver(slept).first_image(album_of("imgur_album"))  # call 1 answers 429
    assert isinstance(verdict, Kept) and slept and slept[0] >= 1.0
    assert len(apis.imgur_calls) == 2


def test_gone_album_is_dropped_with_its_reason(apis):
    assert resolver().first_image(album_of("imgur_album_gone")) == Dropped("imgur_album_gone")


def test_low_user_quota_sleeps_until_reset(apis):
    apis.imgur_429_call, apis.imgur_user_remaining = 0, 3
    slept: list[float] = []
    verdict = resolver(slept).first_image(album_of("imgur_gallery"))
    assert isinstance(verdict, Kept) and slept and 3590 < slept[0] <= 3602  # X-RateLimit-UserReset


def test_low_client_quota_stops_spending_requests(apis):
    apis.imgur_429_call, apis.imgur_client_remaining = 0, 501
    imgur = resolver()
    first = imgur.first_image(album_of("imgur_album"))  # the answer says 500 left: the floor
    second = imgur.first_image(album_of("imgur_gallery"))
    assert isinstance(first, Kept) and second == Dropped("imgur_quota") and len(apis.imgur_calls) == 1


def test_wrong_client_id_is_a_clear_error(apis):
    with pytest.raises(RedCapsError, match="rejected the client id") as err:
        ImgurResolver("wrong-id", limiter=free_limiter(), sleep=lambda s: None).first_image(
            album_of("imgur_album")
        )
    assert "wrong-id" not in str(err.value)


def test_without_a_client_id_albums_are_dropped_with_the_reason(apis):
    assert build_imgur(load_credentials(None)) is None
    result = collect_month("sandboxcats", 2020, 2, source=ArcticShiftSource(limiter=free_limiter()))
    assert result.info["collection"]["dropped"]["imgur_album_no_api"] == 4 and apis.imgur_calls == []
