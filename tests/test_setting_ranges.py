"""Every numeric and structured setting has a declared range, checked before any work: a bad
value in luigi.cfg, on the command line or in a batch's ``settings`` is one preflight line with
nothing written, and the ``redcaps`` CLI refuses the same values."""

from __future__ import annotations

import dataclasses
import typing

import pytest
from click.testing import CliRunner

from redcaps import preflight
from redcaps.batch import load_batch
from redcaps.cli.main import main
from redcaps.errors import RedCapsError
from tests.test_preflight import WORDS_ONLY, YEAR, assert_one_line, luigi_run

#: (section, option, value, the problem's line): each of the issue's bad settings.
BAD_SETTINGS = [
    ("downloads", "shard_size", "0", "must be at least 1"),
    ("downloads", "shard_size", "-1", "must be at least 1"),
    ("downloads", "images_per_shard", "0", "must be at least 1"),
    ("shards", "shard_size", "0", "must be at least 1"),
    ("shards", "samples_per_tar", "-3", "must be at least 1"),
    ("downloads", "read_timeout", "-5", "must be above 0"),
    ("downloads", "connect_timeout", "0", "must be above 0"),
    ("downloads", "max_attempts", "0", "must be at least 1"),
    ("downloads", "max_bytes", "-1", "must be above 0"),
    ("downloads", "workers", "0", "must be at least 1"),
    ("downloads", "processes", "-2", "must be at least 0"),
    ("downloads", "url_deadline", "nan", "must be above 0"),
    ("downloads", "host_scope", "planet", "must be one of machine, global, process"),
    (
        "downloads",
        "allow_networks",
        "10.0.0.0/8,nowhere",
        "has 'nowhere', not a network (a CIDR such as 10.1.0.0/16)",
    ),
    ("images", "max_pixels", "-1", "must be above 0"),
    ("images", "quality", "1000", "must be between 1 and 100"),
    ("images", "quality", "0", "must be between 1 and 100"),
    ("images", "resize", "0", "must be -1 or at least 1"),
    ("images", "resize", "-2", "must be -1 or at least 1"),
    ("images", "max_aspect_ratio", "0.5", "must be at least 1"),
    ("filter_nsfw", "batch_size", "0", "must be at least 1"),
    ("filter_nsfw", "confidence_threshold", "7", "must be between 0 and 1"),
    ("filter_faces", "confidence_threshold", "-0.1", "must be between 0 and 1"),
    ("filter_faces", "long_edge", "-1", "must be at least 0"),
    ("dedup", "max_distance", "65", "must be between 0 and 64"),
    ("host_limits", "imgur.com", "rate=abc", "rate must be a number"),
    ("host_limits", "imgur.com", "rate=0", "rate must be > 0, burst and concurrency >= 1"),
]


@pytest.mark.parametrize(("section", "name", "value", "problem"), BAD_SETTINGS)
def test_each_bad_setting_is_one_preflight_line(section, name, value, problem):
    assert preflight.check_settings({section: {name: value}}) == [f"[{section}] {name}: {value!r} {problem}"]
    where = "b.yaml: "
    expected = f"b.yaml: settings.{section}.{name}: {value!r} {problem}"
    assert preflight.check_settings({section: {name: value}}, where=where) == [expected]


@pytest.mark.parametrize(
    ("section", "name", "value"),
    [
        ("images", "resize", "-1"),
        ("images", "quality", "100"),
        ("downloads", "processes", "0"),
        ("downloads", "allow_networks", "10.1.0.0/16, 192.168.0.1"),
        ("filter_nsfw", "confidence_threshold", "0"),
        ("host_limits", "imgur.com", "rate=1 burst=2 concurrency=2 ceiling=10"),
    ],
)
def test_the_edges_of_each_range_are_accepted(section, name, value):
    assert preflight.check_settings({section: {name: value}}) == []


def test_every_numeric_setting_declares_its_range():
    """A new numeric field without a range would go unchecked: only ``min_score`` takes any int."""
    unranged = []
    for section, classes in preflight.SECTION_TYPES.items():
        for cls in classes:
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                if hints[f.name] in (int, float) and "range" not in f.metadata:
                    unranged.append(f"{section}.{f.name}")
    assert unranged == ["collection.min_score"]


@pytest.mark.parametrize(
    ("args", "cfg", "expected"),
    [
        ((), "[downloads]\nshard_size = 0\n", "error: [downloads] shard_size: '0' must be at least 1"),
        ((), "[host_limits]\nimgur.com = rate=abc\n", "error: [host_limits] imgur.com: 'rate=abc' rate must"),
        (("--downloads-read-timeout", "-5"), "", "error: [downloads] read_timeout: '-5' must be above 0"),
        (("--images-quality", "1000"), "", "error: [images] quality: '1000' must be between 1 and 100"),
    ],
)
def test_a_run_with_a_bad_setting_is_one_line_and_writes_nothing(tmp_path, sandbox_env, args, cfg, expected):
    proc, lines = luigi_run(tmp_path, *YEAR, *args, cfg=WORDS_ONLY + cfg)
    assert_one_line(tmp_path, proc, lines, expected)


def test_a_batch_with_an_out_of_range_setting_is_one_line(tmp_path):
    batch = tmp_path / "b.yaml"
    batch.write_text(
        "name: b\nsubreddits: [sandboxcats]\nyears: [2020]\nsettings: {shards: {samples_per_tar: 0}}\n"
    )
    proc, lines = luigi_run(tmp_path, "RedCapsBatch", "--config", str(batch))
    assert_one_line(
        tmp_path, proc, lines, f"error: {batch}: settings.shards.samples_per_tar: '0' must be at least 1"
    )


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["-j", "0"], "'0' must be at least 1"),
        (["-j", "-5"], "'-5' must be at least 1"),
        (["--processes", "-2"], "'-2' must be at least 0"),
        (["-z", "-9"], "'-9' must be -1 or at least 1"),
        (["-z", "0"], "'0' must be -1 or at least 1"),
        (["--quality", "500"], "'500' must be between 1 and 100"),
        (["--shard-size", "0"], "'0' must be at least 1"),
        (["-j", "many"], "'many' is not an integer"),
    ],
)
def test_the_cli_refuses_what_the_settings_declare(tmp_path, args, problem):
    (tmp_path / "roses_2020.json").write_text('{"info": {}, "annotations": []}')
    out = tmp_path / "images"
    result = CliRunner().invoke(
        main, ["download-imgs", "-a", str(tmp_path / "roses_2020.json"), "-o", str(out), *args]
    )
    assert result.exit_code == 2 and problem in result.output, result.output
    assert "Traceback" not in result.output and not out.exists()


def test_make_tarfiles_refuses_a_zero_shard_size(tmp_path):
    (tmp_path / "roses_2020.json").write_text('{"info": {}, "annotations": []}')
    args = ["make-tarfiles", "--input", str(tmp_path / "roses_2020.json"), "--image-dir", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--output-dir", str(tmp_path / "tars"), "-z", "0"])
    assert result.exit_code == 2 and "'0' must be at least 1" in result.output
    assert not (tmp_path / "tars").exists()


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("name: b\nname: c\nsubreddits: [a]\nyears: [2020]\n", "2:1: invalid YAML: duplicate key 'name'"),
        (
            "name: b\nsubreddits: [a]\nyears: [2020]\n"
            "settings:\n  images: {resize: 256}\n  images: {quality: 8}\n",
            "6:3: invalid YAML: duplicate key 'images'",
        ),
        (
            "name: b\nsubreddits: [a]\nyears: [2020]\nsettings: {images: {resize: 1, resize: 2}}\n",
            "duplicate key 'resize'",
        ),
    ],
)
def test_yaml_duplicate_keys_are_an_error(tmp_path, text, place):
    (tmp_path / "b.yaml").write_text(text)
    with pytest.raises(RedCapsError, match=place) as caught:
        load_batch(tmp_path / "b.yaml")
    assert "\n" not in str(caught.value)
