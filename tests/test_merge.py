"""merge: the original's semantics, filter blocks kept consistent, --delete-old safe."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from redcaps import FORMAT_VERSION
from redcaps import annotations as ann
from redcaps.errors import AnnotationFormatError, RedCapsError
from redcaps.merge import expand_inputs, merge, merge_files
from tests.helpers import annotation_file, record

WORDS = {"num_removed": 1, "model": "LDNOOBW/List-of-Dirty-Naughty-Obscene-and-Otherwise-Bad-Words"}
NSFW = {"num_removed": 2, "model": "gantman/nsfw_model", "confidence_threshold": 0.9}


def month(records, m, **info):
    """A roses file for 2020-<m> with extra ``info`` blocks."""
    af = annotation_file(records, start=f"2020-{m:02d}-01", end=f"2020-{m:02d}-28")
    af.info.update(info)
    return af


def save(path, af):
    ann.save(path, af)
    return path


def ids(af):
    return [r["image_id"] for r in af.annotations]


# --- merge(): pure ---------------------------------------------------------------------------


def test_last_wins_sorted_by_time_and_date_range():
    jan = month([record("a", created_utc=20), record("b", created_utc=10, score=1)], 1)
    feb = month([record("b", created_utc=10, score=99), record("c", created_utc=5)], 2)
    merged, warnings = merge([jan, feb])
    assert ids(merged) == ["c", "b", "a"]
    assert next(r for r in merged.annotations if r["image_id"] == "b")["score"] == 99
    assert merged.info == {
        "start_date": "2020-01-01",
        "end_date": "2020-02-28",
        "url": "https://redcaps.xyz",
        "version": FORMAT_VERSION,
    }
    assert warnings == []


def test_equal_times_are_ordered_by_image_id():
    merged, _ = merge([month([record("zz", created_utc=7), record("aa", created_utc=7)], 1)])
    assert ids(merged) == ["aa", "zz"]


def test_merge_does_not_touch_its_inputs():
    jan = month([record("a")], 1, nsfw_filter=NSFW, note={"k": [1]})
    before = copy.deepcopy(jan)
    merged, _ = merge([jan, month([record("a", score=3)], 2, nsfw_filter=NSFW, note={"k": [1]})])
    merged.annotations[0]["score"] = -1
    merged.info["note"]["k"].append(2)
    assert jan == before


@pytest.mark.parametrize("block", ["word_filter", "nsfw_filter"])
def test_consistent_filter_block_is_kept_with_summed_counts(block):
    value = WORDS if block == "word_filter" else NSFW
    files = [month([record(f"x{m}")], m, **{block: value}) for m in (1, 2, 3)]
    merged, warnings = merge(files)
    assert merged.info[block] == {**value, "num_removed": 3 * value["num_removed"]}
    assert warnings == []


@pytest.mark.parametrize(
    ("second", "reason"),
    [
        ({}, "only 1 of 2 inputs"),
        ({"nsfw_filter": {**NSFW, "confidence_threshold": 0.5}}, "different settings"),
        ({"nsfw_filter": {**NSFW, "model": "other/model"}}, "different settings"),
    ],
    ids=["partial", "threshold", "model"],
)
def test_partial_or_inconsistent_filter_block_is_dropped_with_warning(second, reason):
    merged, warnings = merge(
        [month([record("a")], 1, nsfw_filter=NSFW), month([record("b")], 2, **second)], ["jan", "feb"]
    )
    assert "nsfw_filter" not in merged.info
    assert len(warnings) == 1 and "info.nsfw_filter dropped" in warnings[0] and reason in warnings[0]


def test_malformed_filter_block_is_an_error_naming_the_input():
    bad = {**NSFW, "num_removed": "many"}
    with pytest.raises(AnnotationFormatError, match=r"^feb: info.nsfw_filter.num_removed"):
        merge([month([], 1, nsfw_filter=NSFW), month([], 2, nsfw_filter=bad)], ["jan", "feb"])


def test_extra_info_kept_when_all_agree_else_dropped_with_warning():
    merged, warnings = merge(
        [
            month([], 1, same="x", differs=1, partial=True),
            month([], 2, same="x", differs=2),
        ]
    )
    assert merged.info["same"] == "x" and "differs" not in merged.info and "partial" not in merged.info
    assert sorted(w.split()[0] for w in warnings) == ["info.differs", "info.partial"]


def test_version_mismatch_warns_and_output_has_the_format_version():
    merged, warnings = merge([month([], 1, version=1.0), month([], 2, version="0.9")], ["jan", "feb"])
    assert merged.info["version"] == FORMAT_VERSION
    assert warnings == [
        f"inputs have different versions (jan: 1.0, feb: 0.9); the output says {FORMAT_VERSION}"
    ]


def test_string_and_numeric_1_0_are_the_same_version():
    assert merge([month([], 1, version=1.0), month([], 2, version="1.0")])[1] == []


def test_input_without_dates_is_an_error():
    broken = ann.AnnotationFile({"url": "https://redcaps.xyz", "version": "1.0"}, [])
    with pytest.raises(AnnotationFormatError, match="input 2: info.start_date"):
        merge([month([], 1), broken])


def test_nothing_to_merge():
    with pytest.raises(RedCapsError, match="nothing to merge"):
        merge([])


# --- merge_files(): loading, writing, deleting -----------------------------------------------


def test_merge_files_writes_the_merged_file_and_reports(tmp_path):
    feb = save(tmp_path / "roses_2020-02.json", month([record("b", created_utc=3, score=99)], 2))
    jan = save(
        tmp_path / "roses_2020-01.json", month([record("a", created_utc=5), record("b", created_utc=3)], 1)
    )
    out = tmp_path / "out" / "sub" / "roses_2020.json"  # parents are created
    result = merge_files([feb, jan], out)  # processed in sorted order whatever the order given: feb wins
    loaded = ann.load(out)
    assert ids(loaded) == ["b", "a"] and loaded.annotations[0]["score"] == 99
    assert (result.output, result.inputs, result.records, result.duplicates) == (out, [jan, feb], 2, 1)
    assert result.deleted == [] and jan.exists() and feb.exists()
    assert [p.name for p in out.parent.iterdir()] == ["roses_2020.json"]  # no temp file left behind


def test_single_input_is_copied_normalised(tmp_path):
    src = tmp_path / "roses_2020-01.json"
    src.write_text(
        json.dumps(month([record("b", created_utc=9), record("a", created_utc=1)], 1, version=1.0).to_json())
    )
    result = merge_files([src], tmp_path / "roses_2020.json")
    merged = ann.load(result.output)
    assert ids(merged) == ["a", "b"] and merged.info["version"] == FORMAT_VERSION


def test_delete_old_deletes_the_inputs(tmp_path):
    inputs = [save(tmp_path / f"roses_2020-{m:02d}.json", month([record(f"x{m}")], m)) for m in (1, 2)]
    out = tmp_path / "roses_2020.json"
    result = merge_files(inputs, out, delete_old=True)
    assert result.deleted == inputs and not any(p.exists() for p in inputs) and out.exists()


def test_delete_old_never_deletes_the_output_even_when_it_is_an_input(tmp_path, monkeypatch):
    year = save(tmp_path / "roses_2020.json", month([record("a", created_utc=1)], 1))
    dec = save(tmp_path / "roses_2020-12.json", month([record("z", created_utc=2)], 12))
    monkeypatch.chdir(tmp_path)
    spelled_differently = Path("sub", "..", "roses_2020.json")  # relative, through a link-free detour
    (tmp_path / "sub").mkdir()
    result = merge_files([year, dec], spelled_differently, delete_old=True)
    assert year.exists() and not dec.exists() and result.deleted == [dec]
    assert ids(ann.load(year)) == ["a", "z"]


@pytest.mark.parametrize(
    "content",
    [
        json.dumps({"info": {}, "annotations": [{"image_id": 5}]}),
        "{not json",
        json.dumps(month([record("b")], 2, nsfw_filter={"model": "m"}).to_json()),
        json.dumps({"info": {"url": "https://redcaps.xyz"}, "annotations": []}),
        json.dumps(month([record("b", url="http://[broken/x.jpg")], 2).to_json()),
    ],
    ids=["bad-record", "bad-json", "bad-filter-block", "no-dates", "unparseable-url"],
)
def test_malformed_input_writes_and_deletes_nothing(tmp_path, content):
    good = save(tmp_path / "roses_2020-01.json", month([record("a")], 1, nsfw_filter=NSFW))
    bad = tmp_path / "roses_2020-02.json"
    bad.write_text(content)
    out = tmp_path / "roses_2020.json"
    with pytest.raises(AnnotationFormatError, match="roses_2020-02.json"):
        merge_files([good, bad], out, delete_old=True)
    assert good.exists() and bad.exists() and not out.exists()


def test_missing_input_is_an_error(tmp_path):
    with pytest.raises(AnnotationFormatError, match="cannot read"):
        merge_files([tmp_path / "roses_2020-01.json"], tmp_path / "roses_2020.json")


def test_output_that_is_a_directory_is_a_one_line_error(tmp_path):
    src = save(tmp_path / "roses_2020-01.json", month([record("a")], 1))
    with pytest.raises(RedCapsError, match=r"is a directory; give the path of the merged \.json file$"):
        merge_files([src], tmp_path, delete_old=True)
    assert src.exists()


def test_failed_write_deletes_nothing(tmp_path):
    src = save(tmp_path / "roses_2020-01.json", month([record("a")], 1))
    (tmp_path / "blocker").write_text("a file where a directory should be")
    with pytest.raises(RedCapsError, match="cannot write"):
        merge_files([src], tmp_path / "blocker" / "roses_2020.json", delete_old=True)
    assert src.exists()


# --- expand_inputs(): the original's glob ----------------------------------------------------


def test_glob_expansion_sorted_and_deduplicated(tmp_path, monkeypatch):
    for m in (2, 1, 3):
        save(tmp_path / f"roses_2020-{m:02d}.json", month([record(f"x{m}")], m))
    (tmp_path / "roses_2020-dir").mkdir()  # directories are not inputs
    monkeypatch.chdir(tmp_path)
    found = expand_inputs(["roses_2020-0[23].json", "roses_2020-*", "./roses_2020-01.json"])
    assert [p.name for p in found] == ["roses_2020-01.json", "roses_2020-02.json", "roses_2020-03.json"]


def test_literal_name_with_glob_characters(tmp_path):
    odd = save(tmp_path / "roses[1].json", month([], 1))
    assert expand_inputs([str(odd)]) == [odd]


@pytest.mark.parametrize(("arg", "reason"), [("tulips_*", "no such file"), ("sub", "is a directory")])
def test_argument_matching_no_file_is_an_error(tmp_path, arg, reason):
    save(tmp_path / "roses_2020-01.json", month([], 1))
    (tmp_path / "sub").mkdir()
    with pytest.raises(RedCapsError, match=reason):
        expand_inputs([str(tmp_path / "roses_*"), str(tmp_path / arg)])


def _collected(considered: int, kept: int, dropped: dict, source: str = "arctic-shift", refreshed=False):
    return {
        "source": source,
        "refreshed": refreshed,
        "considered": considered,
        "kept": kept,
        "dropped": dropped,
    }


def test_collection_blocks_of_months_are_summed():
    jan = annotation_file([record("a1")], "2020-01-01", "2020-01-31")
    feb = annotation_file([record("b1", created_utc=1580600000)], "2020-02-01", "2020-02-29")
    jan.info["collection"] = _collected(10, 6, {"nsfw": 1, "video": 3}, refreshed=True)
    feb.info["collection"] = _collected(8, 5, {"video": 2, "removed": 1}, refreshed=False)
    merged, warnings = merge([jan, feb])
    assert warnings == []
    assert merged.info["collection"] == {
        "source": "arctic-shift",
        "refreshed": False,  # not every month was refreshed
        "considered": 18,
        "kept": 11,
        "dropped": {"nsfw": 1, "removed": 1, "video": 5},
        "months": 2,
    }
    feb.info["collection"]["source"] = "dump"
    feb.info["collection"]["refreshed"] = True
    merged, _ = merge([jan, feb])
    assert merged.info["collection"]["source"] == "arctic-shift,dump"
    assert merged.info["collection"]["refreshed"] is True


@pytest.mark.parametrize(
    "bad", [None, {"considered": "10", "kept": 1}, {"considered": 1, "kept": 1, "dropped": []}]
)
def test_partial_or_malformed_collection_block_is_dropped_with_warning(bad):
    jan = annotation_file([record("a1")], "2020-01-01", "2020-01-31")
    feb = annotation_file([record("b1", created_utc=1580600000)], "2020-02-01", "2020-02-29")
    jan.info["collection"] = _collected(10, 6, {"nsfw": 1})
    if bad is not None:
        feb.info["collection"] = bad
    merged, warnings = merge([jan, feb])
    assert "collection" not in merged.info
    assert any("info.collection dropped" in w for w in warnings)
