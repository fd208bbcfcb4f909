"""validate: official files pass; each rule catches its problem; every problem is reported."""

from __future__ import annotations

import copy

import pytest

from redcaps.validate import validate, validate_file
from tests.test_format import OFFICIAL_EXAMPLE

END_OF_2019 = 1577836799  # 2019-12-31T23:59:59Z


def errors(data, name="airplants_2019.json"):
    return [str(p) for p in validate(data, name) if p.severity == "error"]


def test_official_shape_has_no_problems_at_all():
    assert validate(copy.deepcopy(OFFICIAL_EXAMPLE), "airplants_2019.json") == []


def test_numeric_version_and_null_crossposts_are_accepted():
    data = copy.deepcopy(OFFICIAL_EXAMPLE)
    data["info"]["version"] = 1.0
    data["annotations"][1]["crosspost_parents"] = None
    assert errors(data) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["annotations"][1].update(image_id="bpzj7r"), "duplicate image_id"),
        (lambda d: d["annotations"][0].update(created_utc=END_OF_2019 + 1), "outside info dates"),
        (lambda d: d["annotations"][0].update(subreddit="Airplants"), "not lowercase"),
        (lambda d: d["annotations"][0].update(subreddit="roses"), "does not match the file name"),
        (lambda d: d["annotations"][0].update(url="ftp://x/y.jpg"), "not an http(s) URL"),
        (lambda d: d["annotations"][0].update(permalink="comments/x"), "does not start with /r/"),
        (lambda d: d["annotations"][0].update(score=1.5), "field 'score'"),
        (lambda d: d["annotations"][0].pop("caption"), "field 'caption': missing"),
        (lambda d: d["info"].pop("end_date"), "info.end_date: missing"),
        (lambda d: d["info"].update(start_date="2019-13-01"), "not an ISO date"),
        (lambda d: d["info"]["nsfw_filter"].update(confidence_threshold=3), "must be a number in [0, 1]"),
        (lambda d: d["info"]["face_filter"].update(num_removed=-1), "non-negative int"),
        (lambda d: d["info"].update(word_filter="yes"), "info.word_filter: must be an object"),
    ],
)
def test_each_rule(mutate, expected):
    data = copy.deepcopy(OFFICIAL_EXAMPLE)
    mutate(data)
    found = errors(data)
    assert any(expected in e for e in found), found


def test_end_of_last_day_is_inside():
    data = copy.deepcopy(OFFICIAL_EXAMPLE)
    data["annotations"][0]["created_utc"] = END_OF_2019
    assert errors(data) == []


def test_every_problem_is_reported_not_just_the_first():
    data = copy.deepcopy(OFFICIAL_EXAMPLE)
    data["annotations"][0].update(score="x", url="nope")
    data["annotations"][1].update(image_id="bpzj7r")
    assert len(errors(data)) == 3


def test_warnings_for_missing_filters_and_unknown_fields():
    data = copy.deepcopy(OFFICIAL_EXAMPLE)
    del data["info"]["face_filter"]
    data["annotations"][0]["extra"] = 1
    warnings = [str(p) for p in validate(data, "airplants_2019.json") if p.severity == "warning"]
    assert any("face_filter" in w for w in warnings) and any(
        "unknown fields ['extra']" in w for w in warnings
    )


def test_unreadable_and_bad_json_files(tmp_path):
    (tmp_path / "x_2020.json").write_text("{oops")
    [problem] = validate_file(tmp_path / "x_2020.json")
    assert problem.severity == "error" and "invalid JSON" in problem.message
    [problem] = validate_file(tmp_path / "missing_2020.json")
    assert "cannot read" in problem.message
