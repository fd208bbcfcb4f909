"""Collecting a month from Arctic Shift (through the sandbox) and from dump files."""

from __future__ import annotations

import pytest
import zstandard

from redcaps.collect import build_source, collect_month
from redcaps.errors import RedCapsError
from redcaps.sandbox.posts import population
from redcaps.sources.arctic_shift import ArcticShiftSource
from redcaps.sources.dump import DumpSource, read_lines, write_dump
from redcaps.validate import validate


def arctic(**kw) -> ArcticShiftSource:
    return ArcticShiftSource(backoff_base=0.01, **kw)


def test_arctic_shift_month_is_complete_and_valid(sandbox_env):
    result = collect_month("sandboxcats", 2020, 3, source=arctic())
    info = result.info["collection"]
    assert info["considered"] == 24 and info["source"] == "arctic-shift" and info["refreshed"] is False
    assert info["dropped"] == {
        "gallery_empty": 1,
        "imgur_album_no_api": 1,
        "low_score": 1,
        "nsfw": 1,
        "removed": 1,
        "self_post": 1,
        "video": 2,
    }
    assert [p for p in validate(result, "sandboxcats_2020-03.json") if p.severity == "error"] == []
    urls = {r["url"] for r in result.annotations}
    assert any(u.endswith(".png") and "i.redd.it" in u for u in urls)  # gallery PNG and the crosspost's
    assert any("?zz=1&yy=2" in u for u in urls)  # unescaped
    deleted = [r for r in result.annotations if r["author"] is None]
    assert deleted and all(r["subreddit"] == "sandboxcats" for r in result.annotations)


def test_small_pages_and_same_second_posts_lose_nothing(sandbox_env):
    source = arctic()
    source.page_size = 25
    every = list(source.iter_posts("SANDBOXROSES", 1577836800, 1609459200))  # case-insensitive, all 2020
    expected = [p["id"] for p in population() if p["subreddit"] == "sandboxroses"]
    assert sorted(p["id"] for p in every) == sorted(expected) and len(every) == len(
        set(p["id"] for p in every)
    )


def test_422_shrinks_the_page_and_retries(sandbox_env):
    source = arctic()
    for month in range(1, 13):  # the sandbox times out on some full pages
        collect_month("sandboxcats", 2020, month, source=source)
    assert source.page_size < 100
    statuses = [r.status for r in sandbox_env.log.for_host("arctic-shift.photon-reddit.com")]
    assert 422 in statuses


def test_dump_source_matches_arctic_shift(sandbox_env, tmp_path):
    write_dump(tmp_path / "RS_2020-05.zst", [p for p in population() if "2020-05" in _month(p)])
    from_dump = collect_month("sandboxcats", 2020, 5, source=DumpSource(tmp_path))
    from_api = collect_month("sandboxcats", 2020, 5, source=arctic())
    from_dump.info["collection"].pop("source"), from_api.info["collection"].pop("source")
    assert from_dump.to_json() == from_api.to_json()


def test_dump_needs_the_long_window_decoder(tmp_path):
    write_dump(tmp_path / "RS_2020-01.zst", population()[:50])
    raw = (tmp_path / "RS_2020-01.zst").read_bytes()
    with pytest.raises(zstandard.ZstdError):
        zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    assert len(list(read_lines(tmp_path / "RS_2020-01.zst"))) == 50


def test_missing_dump_and_unknown_source(tmp_path):
    with pytest.raises(RedCapsError, match="missing"):
        collect_month("sandboxcats", 2020, 2, source=DumpSource(tmp_path))
    with pytest.raises(RedCapsError, match="unknown source"):
        build_source("pushshift-public")


def _month(post) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(post["created_utc"], dt.timezone.utc).strftime("%Y-%m")


def test_pushshift_with_token_and_window_splitting(sandbox_env, monkeypatch):
    from redcaps.sandbox.reddit_apis import PUSHSHIFT_TOKEN
    from redcaps.sources import pushshift

    monkeypatch.setattr(pushshift, "SIZE", 10)  # force full windows so they split
    monkeypatch.setenv("PUSHSHIFT_TOKEN", PUSHSHIFT_TOKEN)
    from_pushshift = collect_month("sandboxcats", 2020, 6, source=build_source("pushshift"))
    from_arctic = collect_month("sandboxcats", 2020, 6, source=arctic())
    for result in (from_pushshift, from_arctic):
        result.info["collection"].pop("source")
    assert from_pushshift.to_json() == from_arctic.to_json()
    queries = sandbox_env.log.for_host("api.pushshift.io")
    assert len(queries) > 3  # the month was split into smaller windows


def test_pushshift_without_token_explains(sandbox_env, monkeypatch):
    monkeypatch.delenv("PUSHSHIFT_TOKEN", raising=False)
    with pytest.raises(RedCapsError, match="needs a valid token"):
        collect_month("sandboxcats", 2020, 6, source=build_source("pushshift"))


def test_pullpush_style_mirror(sandbox_env):
    from redcaps.sources.pushshift import PushshiftSource

    source = PushshiftSource("https://api.pullpush.io", flavour="pullpush")
    assert collect_month("sandboxroses", 2020, 8, source=source).info["collection"]["kept"] == 16
