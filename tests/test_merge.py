"""merge: the original's semantics, filter blocks kept consistent, --delete-old safe."""

from __future__ import annotations

import json

import pytest

from redcaps import annotations as ann
from redcaps.errors import AnnotationFormatError, RedCapsError
from redcaps.merge import expand_inputs, merge, merge_files
from tests.helpers import annotation_file, record

NSFW = {"num_removed": 2, "model": "gantman/nsfw_model", "confidence_threshold": 0.9}


def month(records, m, **info):
    af = annotation_file(records, start=f"2020-{m:02d}-01", end=f"2020-{m:02d}-28")
    af.info.update(info)
    return af


def save(path, af):
    ann.save(path, af)
    return path


def test_last_wins_sorted_and_dates():
    jan = month([record("a", created_utc=20), record("b", created_utc=10, score=1)], 1)
    feb = month([record("b", created_utc=10, score=99), record("c", created_utc=5)], 2)
    merged, warnings = merge([jan, feb])
    assert [r["image_id"] for r in merged.annotations] == ["c", "b", "a"]
    assert next(r for r in merged.annotations if r["image_id"] == "b")["score"] == 99
    assert (merged.info["start_date"], merged.info["end_date"]) == ("2020-01-01", "2020-02-28")
    assert warnings == []


def test_consistent_filter_block_is_kept_with_summed_counts():
    merged, warnings = merge(
        [month([record("a")], 1, nsfw_filter=NSFW), month([record("b")], 2, nsfw_filter=NSFW)]
    )
    assert merged.info["nsfw_filter"] == {**NSFW, "num_removed": 4} and not warnings


@pytest.mark.parametrize(
    "second", [{}, {"nsfw_filter": {**NSFW, "confidence_threshold": 0.5}}], ids=["partial", "inconsistent"]
)
def test_partial_or_inconsistent_filter_block_is_dropped_with_warning(second):
    merged, warnings = merge([month([record("a")], 1, nsfw_filter=NSFW), month([record("b")], 2, **second)])
    assert "nsfw_filter" not in merged.info
    assert len(warnings) == 1 and "nsfw_filter" in warnings[0]


def test_delete_old_never_deletes_the_output(tmp_path):
    year = save(tmp_path / "roses_2020.json", month([record("a", created_utc=1)], 1))
    dec = save(tmp_path / "roses_2020-12.json", month([record("z", created_utc=2)], 12))
    result = merge_files([year, dec], year, delete_old=True)
    assert year.exists() and not dec.exists() and result.deleted == [dec]
    assert [r["image_id"] for r in ann.load(year).annotations] == ["a", "z"]


def test_malformed_input_writes_and_deletes_nothing(tmp_path):
    good = save(tmp_path / "roses_2020-01.json", month([record("a")], 1))
    bad = tmp_path / "roses_2020-02.json"
    bad.write_text(json.dumps({"info": {}, "annotations": [{"image_id": 5}]}))
    out = tmp_path / "roses_2020.json"
    with pytest.raises(AnnotationFormatError, match="roses_2020-02.json: record 0"):
        merge_files([good, bad], out, delete_old=True)
    assert good.exists() and bad.exists() and not out.exists()


def test_glob_expansion_and_errors(tmp_path):
    for m in (1, 2):
        save(tmp_path / f"roses_2020-{m:02d}.json", month([record(f"x{m}")], m))
    assert [p.name for p in expand_inputs([str(tmp_path / "roses_2020-*")])] == [
        "roses_2020-01.json",
        "roses_2020-02.json",
    ]
    with pytest.raises(RedCapsError, match="no such file"):
        expand_inputs([str(tmp_path / "tulips_*")])
    with pytest.raises(RedCapsError, match="is a directory"):
        merge_files(expand_inputs([str(tmp_path / "roses_2020-*")]), tmp_path)
