"""The PRAW refresh path against the sandbox's Reddit OAuth API (real hostnames, PRAW's own
requests): batches of 100, missing ids deleted, 429 Retry-After, 100 requests a minute."""

from __future__ import annotations

import json
import logging

import pytest

from redcaps.collect.credentials import load_credentials
from redcaps.collect.month import REFRESHED, build_refresher, collect_month
from redcaps.collect.sources import reddit_refresh
from redcaps.collect.sources.arctic_shift import ArcticShiftSource
from redcaps.collect.sources.reddit_refresh import RedditRefresher
from redcaps.errors import RedCapsError
from redcaps.net.limits import HostLimiter
from redcaps.sandbox import reddit_apis
from redcaps.sandbox.posts import case_of, month_posts
from redcaps.sandbox.posts import expected as expected_counts
from tests.helpers import free_limiter


@pytest.fixture()
def reddit_env(apis, monkeypatch):
    monkeypatch.setenv("REDDIT_CLIENT_ID", reddit_apis.REDDIT_CLIENT_ID)
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", reddit_apis.REDDIT_CLIENT_SECRET)
    return apis


def refresher(**kw) -> RedditRefresher:
    kw.setdefault("limiter", free_limiter())
    made = build_refresher(load_credentials(None), **kw)
    assert made is not None
    return made


def test_refresh_updates_scores_and_deletions_end_to_end(reddit_env):
    slept: list[float] = []
    source = ArcticShiftSource(limiter=free_limiter())
    result = collect_month("sandboxcats", 2020, 3, source=source, refresher=refresher(sleep=slept.append))
    info = result.info["collection"]
    kept, dropped = expected_counts("sandboxcats", 2020, 3, refreshed=True)
    assert (info["kept"], info["dropped"]) == (kept, dict(dropped))
    assert info["refreshed"] is True and info["note"] == REFRESHED
    by_id = {p["id"]: p for p in month_posts("sandboxcats", 2020, 3)}
    for record in result.annotations:  # scores are Reddit's settled ones, not the archive's
        archived = by_id[record["image_id"]]["score"]
        assert record["score"] == (25 if case_of(record["image_id"]) == "score_settled" else archived + 3)
    assert len(reddit_env.reddit_tokens) == 1  # one client-credentials token


def test_batches_of_100_and_a_429_retried_after_retry_after(reddit_env):
    posts = [p for m in range(1, 8) for p in month_posts("sandboxroses", 2020, m)]
    assert len(posts) > 200
    slept: list[float] = []
    made = refresher(sleep=slept.append)
    refreshed = made.refresh(posts)
    sizes = [len(call) for call in reddit_env.reddit_info_calls]
    full, rest = divmod(len(posts), 100)
    # the second call got a 429 and was repeated whole
    assert sizes == [100, 100] + [100] * (full - 1) + ([rest] if rest else [])
    assert reddit_env.reddit_info_calls[1] == reddit_env.reddit_info_calls[2]
    assert len(slept) == 1 and slept[0] >= 1.0  # at least the sandbox's Retry-After
    gone = [p for p in refreshed if p["removed_by_category"] == "deleted"]
    assert {case_of(p["id"]) for p in gone} == {"now_deleted"} and len(gone) == 7
    assert [p["id"] for p in refreshed] == [p["id"] for p in posts]


def test_persistent_429_gives_up_with_a_clear_error(reddit_env, monkeypatch):
    made = refresher(sleep=lambda s: None, max_attempts=2)

    def always_429(*args, **kwargs):
        import prawcore

        raise prawcore.exceptions.TooManyRequests(
            type("R", (), {"headers": {"retry-after": "3"}, "status_code": 429, "text": ""})()
        )

    monkeypatch.setattr(made.reddit, "info", always_429)
    with pytest.raises(RedCapsError, match="kept failing"):
        made.refresh(month_posts("sandboxcats", 2020, 1))


def test_rate_limiter_keeps_to_100_requests_a_minute():
    now = [0.0]
    limiter = HostLimiter(
        {"*": reddit_refresh.HOST_POLICY},
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s + 1e-6),
    )
    calls: list[float] = []

    class FakeReddit:
        def info(self, fullnames):
            calls.append(now[0])
            now[0] += 0.05  # a fast server
            return iter([])

    made = RedditRefresher(FakeReddit(), limiter=limiter)
    made.refresh([{"id": f"p{i}"} for i in range(300 * 100)])  # 300 requests
    assert len(calls) == 300
    worst = max(sum(1 for t in calls if start <= t < start + 60) for start in calls)
    assert worst <= 100 and calls[-1] < 60 * 3.5  # at the limit, not far below it


def test_without_credentials_the_source_fields_are_used(apis):
    assert build_refresher(load_credentials(None)) is None
    result = collect_month("sandboxcats", 2020, 3, source=ArcticShiftSource(limiter=free_limiter()))
    assert result.info["collection"]["refreshed"] is False
    assert apis.reddit_info_calls == [] and apis.reddit_tokens == []


def test_wrong_credentials_are_a_clear_error(apis, monkeypatch):
    monkeypatch.setenv("REDDIT_CLIENT_ID", reddit_apis.REDDIT_CLIENT_ID)
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", "not-the-secret")
    with pytest.raises(RedCapsError, match="check the credentials") as err:
        refresher().refresh(month_posts("sandboxcats", 2020, 1))
    assert "not-the-secret" not in str(err.value)


def test_secrets_never_reach_logs_or_outputs(apis, tmp_path, caplog):
    from click.testing import CliRunner

    from redcaps.cli.main import main

    creds = tmp_path / "credentials.json"
    creds.write_text(
        json.dumps(
            {
                "reddit": {
                    "client_id": reddit_apis.REDDIT_CLIENT_ID,
                    "client_secret": reddit_apis.REDDIT_CLIENT_SECRET,
                },
                "imgur": {"client_id": reddit_apis.IMGUR_CLIENT_ID},
            }
        )
    )
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["download-anns", "-s", "sandboxroses", "-m", "2020-04", "-o", str(out), "-c", str(creds)]
    )
    assert result.exit_code == 0, result.output
    assert "refreshed from Reddit" in result.output and apis.imgur_calls and apis.reddit_info_calls
    written = (out / "sandboxroses_2020-04.json").read_text()
    secrets = (reddit_apis.REDDIT_CLIENT_ID, reddit_apis.REDDIT_CLIENT_SECRET, reddit_apis.IMGUR_CLIENT_ID)
    secrets += tuple(apis.reddit_tokens)
    for secret in secrets:
        assert secret not in caplog.text and secret not in result.output and secret not in written
