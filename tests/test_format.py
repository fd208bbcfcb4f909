"""Annotation schema, safe names and atomic writes (the core every stage stands on)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from redcaps import annotations as ann
from redcaps.atomic import atomic_open, atomic_path, write_json
from redcaps.errors import AnnotationFormatError, UnsafeNameError
from redcaps.layout import image_path, split_stem
from redcaps.names import check_image_id, check_subreddit
from tests.helpers import annotation_file, record

OFFICIAL_EXAMPLE = {
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


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "a b", "x.json", None, 5])
def test_unsafe_subreddits_and_ids_are_rejected(bad):
    with pytest.raises(UnsafeNameError):
        check_subreddit(bad)
    with pytest.raises(UnsafeNameError):
        check_image_id(bad)


def test_safe_names_and_paths(tmp_path):
    assert check_subreddit("Itookapicture_2") == "Itookapicture_2"
    assert image_path(tmp_path, "roses", "bpzj7r") == tmp_path / "roses" / "bpzj7r.jpg"
    assert split_stem("x/abandoned_porn_2017.json") == ("abandoned_porn", "2017")
    assert split_stem("roses_2020-01.json") == ("roses", "2020-01")
    for bad in ("roses.json", "ro ses_2020.json", "roses_20.json", "_2020.json"):
        with pytest.raises(UnsafeNameError):
            split_stem(bad)


def test_official_shape_round_trips_byte_for_byte(tmp_path):
    src = tmp_path / "airplants_2019.json"
    src.write_text(json.dumps(OFFICIAL_EXAMPLE))
    loaded = ann.load(src)
    assert loaded.annotations[1]["author"] is None and "score" not in loaded.annotations[1]
    out = tmp_path / "copy.json"
    ann.save(out, loaded)
    assert out.read_bytes() == src.read_bytes()


def test_integral_floats_are_stored_as_int(tmp_path):
    af = annotation_file([record(created_utc=1577923200.0, score=72.0)])
    (tmp_path / "f.json").write_text(json.dumps(af.to_json()))
    loaded = ann.load(tmp_path / "f.json").annotations[0]
    assert (loaded["created_utc"], loaded["score"]) == (1577923200, 72)
    assert isinstance(loaded["score"], int)


def test_deeply_nested_json_is_a_format_error(tmp_path):
    (tmp_path / "f.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(AnnotationFormatError, match="nested too deeply"):
        ann.load(tmp_path / "f.json")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r.update(score="10"), "record 1: field 'score': expected int or null, got str"),
        (lambda r: r.pop("url"), "record 1: field 'url': missing"),
        (lambda r: r.update(image_id="../x"), "record 1: field 'image_id': unsafe image_id"),
        (lambda r: r.update(subreddit="a/b"), "record 1: field 'subreddit': unsafe subreddit"),
        (lambda r: r.update(created_utc=True), "field 'created_utc': expected int, got bool"),
        (lambda r: r.update(url="file:///etc/passwd"), "field 'url': not an http(s) URL"),
        (lambda r: r.update(url="https://"), "field 'url': not an http(s) URL"),
        (lambda r: r.update(url="http://[x"), "field 'url': not an http(s) URL"),
    ],
)
def test_malformed_record_gets_one_line_error_naming_file_index_field(tmp_path, mutate, expected):
    records = [record("a1"), record("b2")]
    mutate(records[1])
    path = tmp_path / "roses_2020.json"
    path.write_text(json.dumps(annotation_file(records).to_json()))
    with pytest.raises(AnnotationFormatError) as err:
        ann.load(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and expected in message


def test_bad_json_and_missing_keys(tmp_path):
    path = tmp_path / "x_2020.json"
    path.write_text("{not json")
    with pytest.raises(AnnotationFormatError, match="invalid JSON"):
        ann.load(path)
    path.write_text(json.dumps({"annotations": []}))
    with pytest.raises(AnnotationFormatError, match="missing top-level key 'info'"):
        ann.load(path)


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path):
    path = tmp_path / "out.json"
    write_json(path, {"v": 1})
    with pytest.raises(RuntimeError), atomic_open(path) as fh:
        fh.write('{"v": 2')
        raise RuntimeError("crash mid-write")
    assert json.loads(path.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["out.json"]  # no temp file left behind


def test_atomic_writes_get_the_mode_a_plain_open_would(tmp_path):
    """Temp files are created 0600; the outputs must be readable as the umask allows."""
    mask = os.umask(0o022)
    os.umask(mask)
    write_json(tmp_path / "a.json", {"x": 1})
    with atomic_path(tmp_path / "b.jpg") as tmp:
        tmp.write_bytes(b"jpeg")
    reference = tmp_path / "plain"
    reference.write_text("x")
    expected = stat.S_IMODE(reference.stat().st_mode)
    assert expected == 0o666 & ~mask
    for name in ("a.json", "b.jpg"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected
