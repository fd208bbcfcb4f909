"""Collecting a month from each source against the sandbox: the rules' counts, the sources'
agreement, and Arctic Shift's and Pushshift's failure handling."""

from __future__ import annotations

import datetime as dt
import html
import json
import time

import pytest
import zstandard

from redcaps.collect.month import NOT_REFRESHED, build_source, collect_month
from redcaps.collect.sources.arctic_shift import ArcticShiftSource
from redcaps.collect.sources.dump import DumpSource, read_lines, write_dump
from redcaps.collect.sources.pushshift import PushshiftSource
from redcaps.errors import RedCapsError
from redcaps.sandbox import reddit_apis
from redcaps.sandbox.posts import CASES, month_posts, population
from redcaps.sandbox.posts import expected as expected_counts
from redcaps.validate import validate
from tests.helpers import free_limiter

JAN_2020, JAN_2021 = 1577836800, 1609459200


@pytest.fixture()
def apis(sandbox_env):
    """The sandbox APIs' state, fresh for this test (faults re-armed, logs empty)."""
    api = reddit_apis.state(sandbox_env.world)
    api.reset()
    yield api
    api.reset()


def arctic(**kw) -> ArcticShiftSource:
    kw.setdefault("limiter", free_limiter())
    return ArcticShiftSource(backoff_base=0.01, **kw)


def month_of(post) -> str:
    return dt.datetime.fromtimestamp(post["created_utc"], dt.timezone.utc).strftime("%Y-%m")


def comparable(result) -> dict:
    """The parsed file without the one field that names the source."""
    data = json.loads(json.dumps(result.to_json()))
    data["info"]["collection"].pop("source")
    return data


def test_arctic_shift_month_follows_every_rule(apis):
    result = collect_month("sandboxcats", 2020, 3, source=arctic())
    info = result.info["collection"]
    kept, dropped = expected_counts("sandboxcats", 2020, 3)
    assert (info["kept"], info["dropped"]) == (kept, dict(dropped))
    assert info["considered"] == len(month_posts("sandboxcats", 2020, 3)) > len(CASES)
    assert info["source"] == "arctic-shift" and info["refreshed"] is False and info["note"] == NOT_REFRESHED
    assert [p for p in validate(result, "sandboxcats_2020-03.json") if p.severity == "error"] == []
    urls = {r["url"] for r in result.annotations}
    assert any(u.startswith("https://i.redd.it/") and u.endswith(".png") for u in urls)  # gallery, crosspost
    assert any(u.endswith("?zz=1&yy=2") for u in urls)  # dumps' &amp; unescaped
    assert any("static.flickr.com" in u for u in urls)
    assert all(r["subreddit"] == "sandboxcats" for r in result.annotations)
    assert any(r["author"] is None for r in result.annotations)  # "[deleted]" is null, not "None"
    times = [(r["created_utc"], r["image_id"]) for r in result.annotations]
    assert times == sorted(times)


def test_small_pages_and_same_second_posts_lose_nothing(apis):
    source = arctic()
    source.page_size = 25
    every = list(source.iter_posts("SANDBOXROSES", JAN_2020, JAN_2021))  # case-insensitive
    wanted = [p["id"] for p in population() if p["subreddit"] == "sandboxroses" and month_of(p) >= "2020"]
    assert sorted(p["id"] for p in every) == sorted(wanted) and len(every) == len(set(wanted))


def test_422_slow_down_shrinks_the_page_and_retries_the_same_cursor(apis):
    source = arctic()
    result = collect_month("sandboxcats", 2020, 7, source=source)  # the sandbox times out once here
    statuses = [(q["status"], q["limit"], q["after"]) for q in apis.arctic_queries]
    start = str(reddit_apis.CHOSEN_422_AFTER - 1)  # the month's first second, overlapped by one
    assert statuses[0] == (422, "100", start) and statuses[1] == (200, "50", start)
    assert source.page_size == 50
    assert result.info["collection"]["kept"] == expected_counts("sandboxcats", 2020, 7)[0]


def test_429_waits_at_least_retry_after(apis):
    apis.arctic_429_call, apis.arctic_retry_after = 1, 7
    slept: list[float] = []
    source = arctic(sleep=slept.append)
    result = collect_month("sandboxcats", 2020, 4, source=source)
    assert [q["status"] for q in apis.arctic_queries][:2] == [429, 200]
    assert slept and slept[0] >= 7
    assert result.info["collection"]["kept"] == expected_counts("sandboxcats", 2020, 4)[0]


def test_rate_limit_headers_pause_before_the_api_refuses(apis):
    apis.arctic_limit, apis.arctic_window = 2, 1.0  # 2 requests a second
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    source = arctic(sleep=sleep)
    source.page_size = 25
    posts = list(source.iter_posts("sandboxroses", JAN_2020, JAN_2020 + 100 * 86400))
    assert len(posts) == sum(len(month_posts("sandboxroses", 2020, m)) for m in (1, 2, 3)) + len(
        [p for p in month_posts("sandboxroses", 2020, 4) if p["created_utc"] < JAN_2020 + 100 * 86400]
    )
    assert slept and 429 not in [q["status"] for q in apis.arctic_queries]


def test_a_source_failing_halfway_raises_and_returns_nothing(apis):
    apis.arctic_fail_from = 2
    source = arctic()
    source.page_size = 25
    with pytest.raises(RedCapsError, match="HTTP 400"):
        collect_month("sandboxcats", 2020, 5, source=source)


def test_the_three_sources_give_identical_files(apis, tmp_path, monkeypatch):
    may = [p for p in population() if month_of(p) == "2020-05"]
    write_dump(tmp_path / "RS_2020-05.zst", may)
    monkeypatch.setenv("PUSHSHIFT_TOKEN", reddit_apis.PUSHSHIFT_TOKEN)
    results = {
        "arctic-shift": collect_month("SandboxCats", 2020, 5, source=arctic()),
        "pushshift": collect_month("sandboxcats", 2020, 5, source=build_source("pushshift")),
        "dump": collect_month("sandboxcats", 2020, 5, source=DumpSource(tmp_path)),
    }
    assert {name: r.info["collection"]["source"] for name, r in results.items()} == {
        name: name for name in results
    }
    files = [comparable(r) for r in results.values()]
    assert files[0] == files[1] == files[2]
    assert len(files[0]["annotations"]) == expected_counts("sandboxcats", 2020, 5)[0]


def test_per_subreddit_dump_file_filters_the_month(tmp_path):
    cats = [p for p in population() if p["subreddit"] == "SandboxCats"]
    write_dump(tmp_path / "SandboxCats_submissions.zst", cats)
    write_dump(tmp_path / "RS_2020-05.zst", [p for p in population() if month_of(p) == "2020-05"])
    from_file = collect_month(
        "sandboxcats", 2020, 5, source=DumpSource(tmp_path / "SandboxCats_submissions.zst")
    )
    from_dir = collect_month("sandboxcats", 2020, 5, source=DumpSource(tmp_path))  # prefers the per-sub file
    from_month = collect_month("sandboxcats", 2020, 5, source=DumpSource(tmp_path / "RS_2020-05.zst"))
    assert from_file.to_json() == from_dir.to_json() == from_month.to_json()


def test_dump_needs_the_long_window_decoder(tmp_path):
    write_dump(tmp_path / "RS_2020-01.zst", population()[:50])
    raw = (tmp_path / "RS_2020-01.zst").read_bytes()
    with pytest.raises(zstandard.ZstdError, match="too much memory"):
        zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    assert len(list(read_lines(tmp_path / "RS_2020-01.zst"))) == 50


def test_truncated_dump_is_an_error_not_a_short_month(tmp_path):
    write_dump(tmp_path / "RS_2020-02.zst", [p for p in population() if month_of(p) == "2020-02"])
    raw = (tmp_path / "RS_2020-02.zst").read_bytes()
    (tmp_path / "RS_2020-02.zst").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RedCapsError, match="truncated"):
        collect_month("sandboxcats", 2020, 2, source=DumpSource(tmp_path))


def test_html_escaped_urls_in_dumps_are_unescaped(tmp_path):
    may = [dict(p) for p in population() if month_of(p) == "2020-05"]
    for post in may:
        post["url"] = html.escape(html.unescape(post["url"]), quote=False)  # as Pushshift-era dumps
    write_dump(tmp_path / "RS_2020-05.zst", may)
    escaped = collect_month("sandboxcats", 2020, 5, source=DumpSource(tmp_path))
    assert not any("&amp;" in r["url"] for r in escaped.annotations)
    assert any("&yy=2" in r["url"] for r in escaped.annotations)


def test_missing_dump_and_unknown_source(tmp_path):
    with pytest.raises(RedCapsError, match="RS_2020-02.zst"):
        collect_month("sandboxcats", 2020, 2, source=DumpSource(tmp_path))
    with pytest.raises(RedCapsError, match="does not exist"):
        collect_month("sandboxcats", 2020, 2, source=DumpSource(tmp_path / "nope"))
    with pytest.raises(RedCapsError, match="unknown source"):
        build_source("pushshift-public")
    with pytest.raises(RedCapsError, match="needs a dump file or directory"):
        build_source("dump")


def test_pushshift_splits_full_windows(apis, monkeypatch):
    monkeypatch.setenv("PUSHSHIFT_TOKEN", reddit_apis.PUSHSHIFT_TOKEN)
    source = PushshiftSource(token=reddit_apis.PUSHSHIFT_TOKEN, size=10, limiter=free_limiter())
    from_pushshift = collect_month("sandboxcats", 2020, 6, source=source)
    from_arctic = collect_month("sandboxcats", 2020, 6, source=arctic())
    assert comparable(from_pushshift) == comparable(from_arctic)
    assert len(apis.pushshift_queries) > 2 * len(month_posts("sandboxcats", 2020, 6)) / 10  # split, not paged


def test_pushshift_pages_a_window_it_may_not_split(apis):
    # min_window larger than the month: the full window is paged oldest-first by created_utc
    source = PushshiftSource(
        token=reddit_apis.PUSHSHIFT_TOKEN, size=5, min_window=60 * 86400, limiter=free_limiter()
    )
    may = month_posts("sandboxroses", 2020, 9)
    start = int(dt.datetime(2020, 9, 1, tzinfo=dt.timezone.utc).timestamp())
    got = list(source.iter_posts("sandboxroses", start, start + 30 * 86400))
    assert sorted(p["id"] for p in got) == sorted(p["id"] for p in may)
    assert len(apis.pushshift_queries) >= len(may) / 5


def test_pushshift_without_token_explains(apis, monkeypatch):
    monkeypatch.delenv("PUSHSHIFT_TOKEN", raising=False)
    with pytest.raises(RedCapsError, match="needs a valid token"):
        collect_month("sandboxcats", 2020, 6, source=build_source("pushshift"))


def test_pullpush_style_mirror(apis):
    source = build_source("pushshift", pushshift_url="https://api.pullpush.io")
    result = collect_month("sandboxroses", 2020, 8, source=source)
    assert result.info["collection"]["kept"] == expected_counts("sandboxroses", 2020, 8)[0]


def test_pushshift_429_waits_at_least_retry_after(apis):
    apis.pushshift_429_call = 1
    slept: list[float] = []
    source = PushshiftSource(token=reddit_apis.PUSHSHIFT_TOKEN, limiter=free_limiter(), sleep=slept.append)
    result = collect_month("sandboxroses", 2020, 10, source=source)
    assert slept and slept[0] >= 3 and len(apis.pushshift_queries) == 2
    assert result.info["collection"]["kept"] == expected_counts("sandboxroses", 2020, 10)[0]


def test_records_keep_authors_and_null_deleted_ones():
    from redcaps.collect.month import to_record

    post = dict(month_posts("sandboxcats", 2020, 1)[0], title="[OC] My cat 4000x3000", author="None")
    assert to_record(post, "https://i.redd.it/x.jpg")["author"] == "None"  # a user may be called None
    for deleted in ("[deleted]", None, ""):
        record = to_record(dict(post, author=deleted), "https://i.redd.it/x.jpg")
        assert record["author"] is None
    assert record["caption"] == "my cat" and record["raw_caption"] == "[OC] My cat 4000x3000"
    assert record["subreddit"] == "sandboxcats" and record["image_id"] == post["id"]


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_multi_frame_dumps_whatever_the_chunk_boundaries(tmp_path, monkeypatch, offset):
    from redcaps.collect.sources import dump

    write_dump(tmp_path / "one.zst", population()[:60])
    frame = (tmp_path / "one.zst").read_bytes()
    (tmp_path / "two.zst").write_bytes(frame + frame)  # frames concatenated, as `cat` or zstd -T do
    monkeypatch.setattr(dump, "CHUNK", len(frame) + offset)  # a frame may end exactly at a chunk's end
    assert len(list(read_lines(tmp_path / "two.zst"))) == 120
    (tmp_path / "cut.zst").write_bytes(frame + frame[:40])
    with pytest.raises(RedCapsError, match="truncated"):
        list(read_lines(tmp_path / "cut.zst"))
