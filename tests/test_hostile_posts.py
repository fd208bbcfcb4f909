"""Each hostile post through the core functions in order (collect, then the shard writer): it is
cleaned, clamped or dropped with a counted reason, and every other post comes out as without it.
The schema and ``redcaps validate`` reject what the writers cannot store."""

from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq
import pytest

from redcaps import annotations as ann
from redcaps.collect.month import collect_month
from redcaps.dataset.shardmeta import Row, write_shard_metadata
from redcaps.sandbox import posts
from redcaps.validate import validate

MONTH = ("sandboxcats", 2020, 3)


class ListSource:
    name = "list"

    def __init__(self, items: list) -> None:
        self.items = items

    def iter_posts(self, subreddit: str, start: int, end: int):
        yield from self.items


def month(extra: list) -> ann.AnnotationFile:
    return collect_month(*MONTH, source=ListSource([*posts.month_posts(*MONTH), *extra]))


def plain() -> dict:
    first = next(p for p in posts.month_posts(*MONTH) if posts.case_of(p["id"]) == "image")
    return {**first, "id": "hostile1", "permalink": "/r/sandboxcats/comments/hostile1/"}


def written(result: ann.AnnotationFile, tmp_path) -> list[dict]:
    """The records as the shards' parquet stores them (the writer that refused them before)."""
    shard = tmp_path / "s_00000000.tar"
    rows = [Row(r["image_id"], r, r["url"], {}) for r in result.annotations]
    write_shard_metadata(shard, rows, 0.0)
    return pq.read_table(tmp_path / "s_00000000.parquet").to_pylist()


HOSTILE = {
    "surrogate title": ({"title": "cat \ud800 photo"}, {"raw_caption": "cat \ufffd photo"}),
    "NUL title": ({"title": "cat\x00 photo"}, {"raw_caption": "cat photo"}),
    "surrogate author": ({"author": "a\udfffb"}, {"author": "a\ufffdb"}),
    "surrogate permalink": ({"permalink": "/r/x/\ud800"}, {"permalink": "/r/x/\ufffd"}),
    "score 10**30": ({"score": 10**30}, {"score": 2**63 - 1}),
    "score inf": ({"score": float("inf")}, {"score": 2**63 - 1}),
    "userinfo": ({"url": "https://user:pw@i.redd.it/abcdefg.jpg"}, {"url": "https://i.redd.it/abcdefg.jpg"}),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_post_is_cleaned_and_the_rest_is_intact(name, tmp_path):
    fields, expected = HOSTILE[name]
    clean = month([])
    result = month([{**plain(), **fields}])
    by_id = {r["image_id"]: r for r in result.annotations}
    assert {k: by_id["hostile1"][k] for k in expected} == expected
    assert [r for r in result.annotations if r["image_id"] != "hostile1"] == clean.annotations
    stored = {row["image_id"]: row for row in written(result, tmp_path)}
    assert {k: stored["hostile1"][k] for k in expected} == expected


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"url": "ftp://i.redd.it/abcdefg.jpg"}, "unsupported_host"),
        ({"url": "file://i.redd.it/abcdefg.jpg"}, "unsupported_host"),
        ({"score": float("nan")}, "low_score"),
        ({"id": "../../etc/passwd"}, "bad_id"),
        ({"id": ["a", "list"]}, "bad_id"),
        ({"id": None}, "bad_id"),
        ({"created_utc": "yesterday"}, "bad_time"),
        ({"created_utc": float("nan")}, "bad_time"),
        ({"created_utc": None}, "bad_time"),
    ],
)
def test_an_unusable_post_is_dropped_with_a_counted_reason(fields, reason):
    clean = month([])
    result = month([{**plain(), **fields}])
    assert result.annotations == clean.annotations
    collected, before = result.info["collection"], clean.info["collection"]
    assert collected["dropped"][reason] == before["dropped"].get(reason, 0) + 1
    assert collected["considered"] == before["considered"] + 1
    assert collected["considered"] == collected["kept"] + sum(collected["dropped"].values())


def test_a_post_that_is_not_an_object_is_counted():
    result = month(["not a post", 7])
    assert result.info["collection"]["dropped"]["bad_id"] == 2


def _record(**fields) -> dict:
    record = {
        "image_id": "abc123",
        "author": "someone",
        "url": "https://i.redd.it/abc123.jpg",
        "raw_caption": "a cat",
        "caption": "a cat",
        "subreddit": "cats",
        "score": 5,
        "created_utc": 1590000000,
        "permalink": "/r/cats/comments/abc123/",
    }
    return {**record, **fields}


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("raw_caption", "x\ud800", "surrogate"),
        ("author", "\udc00", "surrogate"),
        ("permalink", "/r/\ud800/", "surrogate"),
        ("score", 10**30, "int64"),
        ("score", -(2**63) - 1, "int64"),
        ("score", 1e30, "int64"),
        ("created_utc", 2**64, "int64"),
    ],
)
def test_the_schema_and_validate_reject_what_no_writer_stores(field, value, problem):
    record = _record(**{field: value})
    assert [name for name, why in ann.record_problems(record) if problem in why] == [field]
    with pytest.raises(ann.AnnotationFormatError, match=problem):
        ann.parse({"info": {}, "annotations": [record]})
    doc = {"info": ann.new_info(dt.date(2020, 1, 1), dt.date(2020, 12, 31)), "annotations": [record]}
    errors = [p for p in validate(doc) if p.severity == "error"]
    assert any(field in str(p) and problem in str(p) for p in errors)


def test_the_schema_keeps_what_writers_store():
    record = _record(raw_caption="emoji \U0001f600 and NUL\x00", score=2**63 - 1, created_utc=-(2**63))
    assert ann.record_problems(record) == []
