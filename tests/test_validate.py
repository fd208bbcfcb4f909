"""validate: official files pass; each rule catches its problem; every problem is reported."""

from __future__ import annotations

import copy
import json

import pytest

from redcaps import annotations as ann
from redcaps.errors import RedCapsError
from redcaps.validate import Problem, check_unique_ids, duplicate_ids, validate, validate_file

END_OF_2019 = 1577836799  # 2019-12-31T23:59:59Z
START_OF_2019 = 1546300800  # 2019-01-01T00:00:00Z
NAME = "airplants_2019.json"

# The official release's shape (reference doc §2): the HF card's record, plus a crosspost
# record with a null author, no score and crosspost_parents.
OFFICIAL = {
    "info": {
        "start_date": "2019-01-01",
        "end_date": "2019-12-31",
        "url": "https://redcaps.xyz",
        "version": "1.0",
        "word_filter": {
            "num_removed": 12,
            "model": "LDNOOBW/List-of-Dirty-Naughty-Obscene-and-Otherwise-Bad-Words",
        },
        "nsfw_filter": {"num_removed": 3, "model": "gantman/nsfw_model", "confidence_threshold": 0.9},
        "face_filter": {
            "num_removed": 40,
            "model": "redcaps-dataset/pytorch-retinaface",
            "confidence_threshold": 0.9,
        },
    },
    "annotations": [
        {
            "image_id": "bpzj7r",
            "author": "djasz1",
            "url": "https://i.redd.it/ho0wntksivy21.jpg",
            "raw_caption": "Found on a friend\u2019s property in the Keys FL. "
            "She is now happily living in my house.",
            "caption": "found on a friend's property in the keys fl. she is now happily living in my house.",
            "subreddit": "airplants",
            "score": 72,
            "created_utc": 1558143401,
            "permalink": "/r/airplants/comments/bpzj7r/found_on_a_friends_property_in_the_keys_fl_she_is/",
        },
        {
            "image_id": "c0ffee",
            "author": None,
            "url": "https://i.imgur.com/AbCdEfG.jpg",
            "raw_caption": "crosspost",
            "caption": "crosspost",
            "subreddit": "airplants",
            "created_utc": 1558143402,
            "permalink": "/r/airplants/comments/c0ffee/x/",
            "crosspost_parents": ["t3_x"],
        },
    ],
}


def official():
    return copy.deepcopy(OFFICIAL)


def errors(data, name=NAME):
    return [str(p) for p in validate(data, name) if p.severity == "error"]


def warnings(data, name=NAME):
    return [str(p) for p in validate(data, name) if p.severity == "warning"]


# --- what must pass --------------------------------------------------------------------------


def test_official_shape_has_no_problems_at_all(tmp_path):
    assert validate(official(), NAME) == []
    (tmp_path / NAME).write_text(json.dumps(OFFICIAL))
    assert validate_file(tmp_path / NAME) == []


def test_loaded_annotation_file_is_accepted():
    assert validate(ann.parse(official()), NAME) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["info"].update(version=1.0),
        lambda d: d["annotations"][1].update(crosspost_parents=None),
        lambda d: d["annotations"][0].update(author=None, score=None),
        lambda d: d["annotations"][0].update(created_utc=1558143401.0),
        lambda d: d["annotations"].clear(),
    ],
    ids=[
        "numeric-version",
        "null-crossposts",
        "null-author-and-score",
        "integral-float-time",
        "no-records",
    ],
)
def test_official_variants_are_valid(mutate):
    data = official()
    mutate(data)
    assert validate(data, NAME) == []


def test_an_empty_caption_is_valid_and_counted_in_one_warning():
    data = official()
    data["annotations"][0]["caption"] = ""
    assert [str(p) for p in validate(data, NAME)] == [
        "warning: annotations: 1 of 2 captions are empty (records 0);"
        " kept as RedCaps v1 keeps them ([captions] drop_empty drops them at collection)"
    ]


def test_2017_files_cover_what_their_info_says():
    data = official()
    data["info"].update(start_date="2008-01-01", end_date="2017-12-31")
    for record in data["annotations"]:
        record["created_utc"] = 1230000000  # 2008-12-23
    assert validate(data, "airplants_2017.json") == []


def test_file_name_case_is_not_the_records_concern():
    assert errors(official(), "Airplants_2019-05.json") == []  # the original kept -s as typed


# --- each rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.pop("info"), "error: info: missing top-level key"),
        (lambda d: d.update(info=[]), "error: info: must be an object, got list"),
        (lambda d: d.update(annotations={}), "error: annotations: must be a list, got object"),
        (lambda d: d["info"].pop("end_date"), "error: info.end_date: missing"),
        (lambda d: d["info"].pop("url"), "error: info.url: missing"),
        (lambda d: d["info"].pop("version"), "error: info.version: missing"),
        (lambda d: d["info"].update(version=True), "error: info.version: must be a string or number"),
        (lambda d: d["info"].update(url=5), "error: info.url: must be a string, got int"),
        (lambda d: d["info"].update(start_date="2019-13-01"), "info.start_date: not a YYYY-MM-DD date"),
        (lambda d: d["info"].update(start_date="20190101"), "info.start_date: not a YYYY-MM-DD date"),
        (
            lambda d: d["info"].update(start_date="2020-01-01"),
            "info: start_date 2020-01-01 is after end_date",
        ),
        (
            lambda d: d["info"].update(word_filter="yes"),
            "error: info.word_filter: must be an object, got str",
        ),
        (
            lambda d: d["info"]["face_filter"].update(num_removed=-1),
            "info.face_filter.num_removed: must be a non",
        ),
        (
            lambda d: d["info"]["word_filter"].update(num_removed=1.5),
            "info.word_filter.num_removed: must be a non",
        ),
        (lambda d: d["info"]["word_filter"].pop("model"), "error: info.word_filter.model: missing"),
        (lambda d: d["info"]["nsfw_filter"].update(model=1), "info.nsfw_filter.model: must be a string"),
        (
            lambda d: d["info"]["nsfw_filter"].update(confidence_threshold=3),
            "must be a number in [0, 1], got 3",
        ),
        (
            lambda d: d["info"]["face_filter"].update(confidence_threshold="0.9"),
            "face_filter.confidence_threshold",
        ),
        (
            lambda d: d["info"]["face_filter"].pop("confidence_threshold"),
            "face_filter.confidence_threshold: miss",
        ),
        (lambda d: d["annotations"].append([1]), "error: record 2: expected an object, got list"),
        (
            lambda d: d["annotations"][0].pop("caption"),
            "record 0 (image_id 'bpzj7r'): field 'caption': missing",
        ),
        (lambda d: d["annotations"][0].update(score="72"), "field 'score': expected int or null, got str"),
        (lambda d: d["annotations"][0].update(score=1.5), "field 'score': expected int or null, got float"),
        (lambda d: d["annotations"][0].update(image_id="../x"), "field 'image_id': unsafe image_id"),
        (lambda d: d["annotations"][0].update(subreddit="air/plants"), "field 'subreddit': unsafe subreddit"),
        (lambda d: d["annotations"][1].update(image_id="bpzj7r"), "duplicate image_id (first at record 0)"),
        (
            lambda d: d["annotations"][0].update(subreddit="Airplants"),
            "subreddit 'Airplants' is not lowercase",
        ),
        (
            lambda d: d["annotations"][0].update(subreddit="roses"),
            "does not match the file name ('airplants')",
        ),
        (lambda d: d["annotations"][0].update(url="ftp://x/y.jpg"), "field 'url': not an http(s) URL"),
        (lambda d: d["annotations"][0].update(url="https:///y.jpg"), "field 'url': not an http(s) URL"),
        (lambda d: d["annotations"][0].update(url="http://[::1/y.jpg"), "field 'url': not an http(s) URL"),
        (
            lambda d: d["annotations"][0].update(permalink="comments/x"),
            "permalink 'comments/x' does not start",
        ),
        (
            lambda d: d["annotations"][0].update(created_utc=10**30),
            "(out of range) is outside info dates",
        ),
    ],
)
def test_each_rule(mutate, expected):
    data = official()
    mutate(data)
    found = errors(data)
    assert any(expected in e for e in found), found


def test_problem_str_names_severity_place_and_message():
    problem = Problem("error", "record 12 (image_id 'abc')", "field 'score': expected int or null, got str")
    assert str(problem) == "error: record 12 (image_id 'abc'): field 'score': expected int or null, got str"


@pytest.mark.parametrize(
    ("created_utc", "ok"),
    [(START_OF_2019 - 1, False), (START_OF_2019, True), (END_OF_2019, True), (END_OF_2019 + 1, False)],
    ids=["second-before-start", "start", "end-23:59:59", "second-after-end"],
)
def test_created_utc_must_be_inside_the_info_dates_whole_days_utc(created_utc, ok):
    data = official()
    data["annotations"][0]["created_utc"] = created_utc
    found = errors(data)
    assert (
        found == []
        if ok
        else found
        == [
            f"error: record 0 (image_id 'bpzj7r'): created_utc {created_utc}"
            f" ({'2018-12-31T23:59:59' if created_utc < START_OF_2019 else '2020-01-01T00:00:00'}+00:00)"
            " is outside info dates 2019-01-01..2019-12-31"
        ]
    )


def test_every_problem_is_reported_not_just_the_first():
    data = official()
    data["info"]["end_date"] = "soon"
    data["annotations"][0].update(score="x", url="nope", permalink="x")
    data["annotations"][1].update(image_id="bpzj7r", subreddit="Roses")
    found = errors(data)
    assert len(found) == 7, found  # end_date, score, url, permalink, duplicate, lowercase, file name


def test_each_duplicate_is_reported():
    data = official()
    data["annotations"] += [copy.deepcopy(data["annotations"][0]) for _ in range(2)]
    assert [e for e in errors(data) if "duplicate" in e] == [
        "error: record 2 (image_id 'bpzj7r'): duplicate image_id (first at record 0)",
        "error: record 3 (image_id 'bpzj7r'): duplicate image_id (first at record 0)",
    ]


def test_duplicate_ids_names_the_id_and_both_positions():
    records = [{"image_id": i} for i in ("a", "b", "a", "c", "b", "a")] + [[1], {"image_id": 7}, {}]
    assert duplicate_ids(records) == [("a", 0, 2), ("b", 1, 4), ("a", 0, 5)]
    assert duplicate_ids([{"image_id": "a"}, {"image_id": "A"}]) == []


def test_check_unique_ids_is_one_line_naming_the_first_repeat():
    check_unique_ids([{"image_id": "a"}, {"image_id": "b"}], "roses_2020")
    with pytest.raises(RedCapsError) as err:
        check_unique_ids([{"image_id": i} for i in ("x", "y", "x", "y")], "roses_2020")
    assert str(err.value) == (
        "roses_2020: duplicate image_id 'x' at records 0 and 2 (1 more repeats);"
        " ids must be unique (run `redcaps validate` for all problems)"
    )


# --- warnings -------------------------------------------------------------------------------


def test_missing_filter_blocks_and_unknown_keys_are_warnings_only():
    data = official()
    for block in ann.FILTER_BLOCKS:
        del data["info"][block]
    data["annotations"][0]["extra"] = 1
    data["comment"] = "x"
    assert errors(data) == []
    found = warnings(data)
    assert len(found) == 5
    assert "warning: info.face_filter: missing: this filter has not been applied" in found
    assert "warning: record 0 (image_id 'bpzj7r'): unknown fields ['extra']" in found
    assert "warning: comment: unknown top-level key" in found


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("airplants.json", "is not <subreddit>_<YYYY>[-MM].json"),
        ("airplants_2019-13.json", "impossible month"),
        ("airplants_2020.json", "says 2020 but info covers 2019-01-01..2019-12-31"),
    ],
)
def test_odd_file_names_are_warnings(name, expected):
    assert errors(official(), name) == []
    assert any(expected in w for w in warnings(official(), name))


def test_without_a_file_name_any_subreddit_goes():
    data = official()
    for record in data["annotations"]:
        record["subreddit"] = "roses"
    assert validate(data) == []


# --- validate_file ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{oops", "invalid JSON"),
        (b"\xff\xfe{}", "invalid JSON"),
        ("[" * 100_000 + "]" * 100_000, "invalid JSON"),
        ("[]", "top level must be an object, got list"),
    ],
    ids=["syntax", "not-utf8", "too-deep", "not-an-object"],
)
def test_bad_files_give_one_error(tmp_path, content, expected):
    path = tmp_path / NAME
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    [problem] = validate_file(path)
    assert problem.severity == "error" and expected in problem.message


@pytest.mark.parametrize("make_dir", [False, True], ids=["missing", "directory"])
def test_unreadable_path_gives_one_error(tmp_path, make_dir):
    path = tmp_path / NAME
    if make_dir:
        path.mkdir()
    [problem] = validate_file(path)
    assert str(problem).startswith("error: file: cannot read")


def test_validate_file_checks_the_name(tmp_path):
    path = tmp_path / "roses_2019.json"
    path.write_text(json.dumps(OFFICIAL))
    assert [p.where for p in validate_file(path)] == [
        "record 0 (image_id 'bpzj7r')",
        "record 1 (image_id 'c0ffee')",
    ]
