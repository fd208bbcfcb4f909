"""The outside APIs as their documentation describes them (the sandbox imitates each, see
``redcaps.sandbox.reddit_apis``), and the clients coping: PullPush's published limits,
Pushshift's ``sort``/``order``, Arctic Shift's ``after`` either way and its error texts,
prawcore's 5xx and bad JSON, Imgur's regional 403."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import requests

from redcaps.collect.credentials import RedditCredentials
from redcaps.collect.month import build_source, collect_month
from redcaps.collect.rules import Dropped
from redcaps.collect.sources.arctic_shift import ArcticShiftSource
from redcaps.collect.sources.imgur import ImgurResolver
from redcaps.collect.sources.pushshift import PushshiftSource
from redcaps.collect.sources.reddit_refresh import RedditRefresher, make_reddit
from redcaps.errors import RedCapsError
from redcaps.net.limits import HostLimiter
from redcaps.sandbox import reddit_apis
from redcaps.sandbox.posts import expected as expected_counts
from redcaps.sandbox.posts import month_posts, population
from redcaps.settings import PULLPUSH_URL
from tests.helpers import free_limiter

JAN_2020, JAN_2021 = 1577836800, 1609459200
PULLPUSH_SEARCH = "https://api.pullpush.io/reddit/search/submission/"
PUSHSHIFT_SEARCH = "https://api.pushshift.io/reddit/submission/search"


def month_start(year: int, month: int) -> int:
    return int(dt.datetime(year, month, 1, tzinfo=dt.timezone.utc).timestamp())


def ids_of(subreddit: str, start: int, end: int) -> list[str]:
    posts = [p for p in population() if p["subreddit"].lower() == subreddit]
    return sorted(p["id"] for p in posts if start <= p["created_utc"] < end)


# -- PullPush: soft 15/min, hard 30/min, 1,000/hour (https://pullpush.io) -------------------------
def test_pullpush_limiter_stays_under_the_soft_and_hourly_limits():
    now = [0.0]
    source = build_source("pushshift", pushshift_url=PULLPUSH_URL)

    def sleep(seconds: float) -> None:
        now[0] += seconds + 1e-6

    limiter = HostLimiter(dict(source.limiter.policies), clock=lambda: now[0], sleep=sleep)
    calls = []
    for _ in range(1200):
        with limiter.slot("api.pullpush.io"):
            calls.append(now[0])
            now[0] += 0.2  # a fast server
    worst_minute = max(sum(1 for t in calls if s <= t < s + 60) for s in calls)
    worst_hour = max(sum(1 for t in calls if s <= t < s + 3600) for s in calls[:300])
    assert worst_minute <= 15 and worst_hour <= 1000
    assert worst_minute >= 14  # at the limit, not far below it
    # each flavour its own budget: Pushshift's is not PullPush's
    assert build_source("pushshift").limiter.policies["*"].rate == 1.0


def test_sandbox_pullpush_soft_hard_and_hourly_limits(apis):
    apis.pullpush_soft_limit, apis.pullpush_hard_limit, apis.pullpush_hourly_limit = 2, 4, 6
    apis.pullpush_minute, apis.pullpush_hour, apis.pullpush_soft_delay = 1.0, 3.0, 0.2
    params = {"subreddit": "sandboxcats", "size": 1}

    def ask() -> tuple[int, float]:
        began = time.monotonic()
        status = requests.get(PULLPUSH_SEARCH, params=params, timeout=10).status_code
        return status, time.monotonic() - began

    first = [ask() for _ in range(5)]
    assert [s for s, _ in first] == [200, 200, 200, 200, 429]  # hard limit: the 5th in a minute
    assert max(t for _, t in first[:2]) < 0.2 <= min(t for _, t in first[2:4])  # soft limit: slowed
    time.sleep(1.05)  # a new "minute"
    assert [ask()[0] for _ in range(3)] == [200, 200, 429]  # the hourly limit (6) is reached
    time.sleep(1.05)
    assert ask()[0] == 429  # still blocked: a new minute does not end an hourly block
    assert all(q["host"] == "pullpush" for q in apis.pushshift_queries)


def test_an_hour_long_pullpush_block_is_waited_out_and_announced(apis):
    apis.pullpush_hourly_limit, apis.pullpush_hour = 2, 1.0  # the sandbox's hour is 1 s
    slept: list[float] = []
    messages: list[str] = []

    def sleep(seconds: float) -> None:  # client seconds to sandbox seconds
        slept.append(seconds)
        time.sleep(seconds * apis.pullpush_hour / 3600)

    source = build_source("pushshift", pushshift_url=PULLPUSH_URL, on_wait=messages.append)
    source.limiter, source.sleep, source.size = free_limiter(), sleep, 25
    result = collect_month("sandboxroses", 2020, 8, source=source)
    assert result.info["collection"]["kept"] == expected_counts("sandboxroses", 2020, 8)[0]
    assert 429 in [q["status"] for q in apis.pushshift_queries]
    assert sum(slept) > 600  # far longer than the ~30 s that used to end the subreddit
    assert messages and all(m.startswith("PullPush: HTTP 429; waiting") for m in messages)


# -- Pushshift: sort=<field>&order=asc (pushshift/api#146); PullPush keeps sort=asc ---------------
def test_sandbox_pushshift_rejects_the_old_sort(apis):
    headers = {"Authorization": f"Bearer {reddit_apis.PUSHSHIFT_TOKEN}"}
    old = requests.get(PUSHSHIFT_SEARCH, params={"subreddit": "sandboxcats", "sort": "asc"}, headers=headers)
    assert old.status_code == 422
    assert old.json()["detail"][0]["msg"] == "unexpected value; permitted: 'id', 'created_utc', 'score'"
    new = requests.get(
        PUSHSHIFT_SEARCH,
        params={"subreddit": "sandboxcats", "sort": "created_utc", "order": "asc", "size": 3},
        headers=headers,
    )
    times = [p["created_utc"] for p in new.json()["data"]]
    assert new.status_code == 200 and times == sorted(times) and times[0] < JAN_2020  # oldest first


@pytest.mark.parametrize(
    ("url", "flavour_params"),
    [
        ("https://api.pushshift.io", {"sort": "created_utc", "order": "asc"}),
        (PULLPUSH_URL, {"sort": "asc", "sort_type": "created_utc"}),
    ],
)
def test_each_flavour_pages_oldest_first_with_its_own_parameters(apis, url, flavour_params):
    source = PushshiftSource(
        url, token=reddit_apis.PUSHSHIFT_TOKEN, size=5, min_window=60 * 86400, limiter=free_limiter()
    )
    start = month_start(2020, 9)
    got = [p["id"] for p in source.iter_posts("sandboxroses", start, start + 30 * 86400)]
    assert sorted(got) == sorted(p["id"] for p in month_posts("sandboxroses", 2020, 9))
    paged = [q for q in apis.pushshift_queries if "order" in q or "sort_type" in q]
    assert paged and all({k: q.get(k) for k in flavour_params} == flavour_params for q in paged)
    assert {q["status"] for q in apis.pushshift_queries} == {200}


# -- Arctic Shift: `after` inclusive or exclusive, documented error texts ----------------------
@pytest.mark.parametrize("inclusive", [True, False], ids=["after-inclusive", "after-exclusive"])
@pytest.mark.parametrize("page_size", [3, 4, 25])
def test_arctic_shift_loses_no_post_whatever_after_means(apis, inclusive, page_size):
    apis.arctic_after_inclusive = inclusive
    source = ArcticShiftSource(limiter=free_limiter(), backoff_base=0.01)
    source.page_size = page_size
    got = [p["id"] for p in source.iter_posts("sandboxroses", JAN_2020, JAN_2021)]
    assert sorted(got) == ids_of("sandboxroses", JAN_2020, JAN_2021) and len(got) == len(set(got))


@pytest.mark.parametrize("inclusive", [True, False], ids=["after-inclusive", "after-exclusive"])
def test_arctic_shift_keeps_a_post_at_the_very_first_second(apis, inclusive):
    apis.arctic_after_inclusive = inclusive
    first = month_posts("sandboxcats", 2020, 6)[0]["created_utc"]  # two posts share this second
    got = list(
        ArcticShiftSource(limiter=free_limiter()).iter_posts("sandboxcats", first, month_start(2020, 7))
    )
    assert sorted(p["id"] for p in got) == ids_of("sandboxcats", first, month_start(2020, 7))
    assert sum(1 for p in got if p["created_utc"] == first) == 2


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (400, "Query timed out"),  # api/README.md, "Query timeout"
        (422, "Timeout. Maybe slow down a bit"),  # arctic_shift issue #66
        (400, "Slow down a little"),  # arctic_shift issue #12
    ],
)
def test_arctic_shift_documented_errors_slow_down_and_retry(apis, status, text):
    apis.arctic_error_call, apis.arctic_error_status, apis.arctic_error_text = 1, status, text
    messages: list[str] = []
    source = ArcticShiftSource(limiter=free_limiter(), backoff_base=0.01, on_wait=messages.append)
    result = collect_month("sandboxcats", 2020, 4, source=source)
    first, second = apis.arctic_queries[:2]
    assert (first["status"], second["status"]) == (status, 200) and second["after"] == first["after"]
    assert source.page_size == 50 and messages and messages[0].startswith("Arctic Shift: HTTP")
    assert result.info["collection"]["kept"] == expected_counts("sandboxcats", 2020, 4)[0]


# -- Reddit OAuth behind Cloudflare: 520/522/524 and HTML bodies are Reddit's failures ---------------
@pytest.fixture()
def reddit(apis):
    creds = RedditCredentials(
        client_id=reddit_apis.REDDIT_CLIENT_ID, client_secret=reddit_apis.REDDIT_CLIENT_SECRET
    )
    apis.reddit_429_call = 0
    return make_reddit(creds)


@pytest.mark.parametrize("fault", ["520", "522", "524", "badjson"])
def test_reddit_server_failures_are_retried_not_blamed_on_credentials(apis, reddit, fault):
    apis.reddit_fault, apis.reddit_fault_times = fault, 3  # more than prawcore's own retries
    posts = month_posts("sandboxcats", 2020, 1)
    refreshed = RedditRefresher(reddit, limiter=free_limiter(), sleep=lambda s: None).refresh(posts)
    assert [p["id"] for p in refreshed] == [p["id"] for p in posts]
    assert sum(1 for p in refreshed if p["removed_by_category"] == "deleted") == 1  # now_deleted only


def test_reddit_failing_for_good_says_so(apis, reddit):
    apis.reddit_fault, apis.reddit_fault_times = "524", 100
    made = RedditRefresher(reddit, limiter=free_limiter(), sleep=lambda s: None, max_attempts=2)
    with pytest.raises(RedCapsError, match="kept failing"):
        made.refresh(month_posts("sandboxcats", 2020, 1))


# -- Imgur: a 403 from a blocked country is the album's failure, not the client id's --------------
def test_imgur_regional_403_is_counted_per_album_and_the_month_written(apis):
    apis.imgur_blocked_country = "GB"
    imgur = ImgurResolver(reddit_apis.IMGUR_CLIENT_ID, limiter=free_limiter(), sleep=lambda s: None)
    result = collect_month(
        "sandboxcats", 2020, 2, source=ArcticShiftSource(limiter=free_limiter()), imgur=imgur
    )
    dropped = result.info["collection"]["dropped"]
    assert dropped["imgur_error"] == 4 and "imgur_album_no_api" not in dropped  # the four album posts
    assert imgur.refused == 4
    assert result.info["collection"]["kept"] == expected_counts("sandboxcats", 2020, 2)[0]


def test_imgur_bad_client_id_is_still_fatal(apis):
    apis.imgur_429_call = 0
    with pytest.raises(RedCapsError, match="rejected the client id"):
        ImgurResolver("not-a-client", limiter=free_limiter(), sleep=lambda s: None).first_image("abcde")
    assert ImgurResolver(reddit_apis.IMGUR_CLIENT_ID, limiter=free_limiter()).first_image("zzzzz") == Dropped(
        "imgur_album_gone"
    )
