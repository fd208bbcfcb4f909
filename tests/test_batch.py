"""YAML batch configs are validated, with the place of every mistake, before anything runs."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from redcaps.batch import YearRun, load_batch, parse_batch
from redcaps.errors import RedCapsError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_official_config_describes_the_release():
    batch = load_batch(CONFIGS / "redcaps-v1.yaml")
    assert len(batch.runs) == 1391 and len({r.subreddit for r in batch.runs}) == 350
    assert YearRun("roses", 2017, 2008) in batch.runs and YearRun("roses", 2018, None) in batch.runs
    assert not any(r.subreddit == "birds" and r.year in (2017, 2018) for r in batch.runs)


def test_years_ranges_runs_and_settings():
    batch = parse_batch(
        {
            "subreddits": ["Cats", "dogs"],
            "years": "2019-2020",
            "runs": [{"subreddit": "roses", "date_range": {"start": 2016, "end": 2017}, "first_year": 2008}],
            "settings": {"images": {"resize": 384}, "filters": {"enabled": "words"}},
        }
    )
    assert [r.stem for r in batch.runs] == [
        "cats_2019",
        "cats_2020",
        "dogs_2019",
        "dogs_2020",
        "roses_2016",
        "roses_2017",
    ]
    assert YearRun("roses", 2016, 2008) in batch.runs and YearRun("roses", 2017, None) in batch.runs
    assert batch.settings == {"images": {"resize": "384"}, "filters": {"enabled": "words"}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"subreddits": ["cats"], "years": [2020], "colour": 1}, "unknown keys ['colour']"),
        ({"subreddits": ["cats"], "years": [1999]}, "year 1999 is outside"),
        ({"subreddits": ["cats"], "years": "2020-abc"}, "expected a range"),
        ({"subreddits": ["../etc"], "years": [2020]}, "subreddits[0]: unsafe subreddit"),
        ({"runs": [{"subreddit": "a/b", "years": [2020]}]}, "runs[0].subreddits[0]: unsafe"),
        ({"runs": [{"subreddit": "cats"}]}, "runs[0]: give exactly one of 'years' and 'date_range'"),
        ({"runs": [{"subreddit": "cats", "years": [2020], "month": 1}]}, "runs[0]: unknown keys ['month']"),
        ({"subreddits": ["cats"], "years": [2020], "settings": {"luigi": {}}}, "unknown section 'luigi'"),
        ({"years": [2020]}, "needs 'subreddits'"),
        ({"runs": []}, "no subreddit-years"),
        ({"runs": [{"subreddit": "x", "years": [2015], "first_year": 2016}]}, "is after the first year"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_configs_get_a_clear_error(data, message):
    with pytest.raises(RedCapsError, match=None) as err:
        parse_batch(data, "cfg.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_invalid_yaml_and_missing_file(tmp_path):
    (tmp_path / "x.yaml").write_text("runs: [unclosed")
    with pytest.raises(RedCapsError, match="invalid YAML"):
        load_batch(tmp_path / "x.yaml")
    with pytest.raises(RedCapsError, match="cannot read"):
        load_batch(tmp_path / "missing.yaml")


def test_example_configs_load():
    for name in ("demo.yaml", "example.yaml"):
        assert load_batch(CONFIGS / name).runs


def _load_error(path: Path) -> str:
    with pytest.raises(RedCapsError) as err:
        load_batch(path)
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message, message
    return message


def billion_laughs() -> str:
    """The classic attack: nine levels of nine aliases each, 9**9 strings once expanded."""
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        text += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    return text + "subreddits: *i\nyears: 2020\n"


def test_billion_laughs_is_refused_at_the_first_anchor(tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(billion_laughs())
    assert path.stat().st_size < 500
    expected = "invalid YAML: anchors and aliases (&name, *name) are not allowed"
    assert _load_error(path) == f"{path}:1:4: {expected}"


@pytest.mark.parametrize(
    "text",
    [
        "subreddits: &s [cats]\nyears: 2020\n",
        "base: &b {subreddit: cats, years: 2020}\nruns: [*b]\n",
    ],
)
def test_any_anchor_or_alias_is_refused(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert "anchors and aliases (&name, *name) are not allowed" in _load_error(path)


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("runs: " + "[" * 100_000 + "]" * 100_000 + "\n", ":1:22:"),
        ("".join("  " * i + f"k{i}:\n" for i in range(40)) + "  " * 40 + "x\n", ":16:"),
    ],
)
def test_deep_nesting_is_one_line(tmp_path, text, place):
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    message = _load_error(path)
    assert place in message and "nested deeper than 16 levels" in message


def test_invalid_utf8_names_the_place(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: ok\nsubreddits: [café]\nyears: 2020\n".encode("latin-1"))
    assert _load_error(path) == f"{path}:2:17: not UTF-8 (byte 0xe9)"


def test_file_size_is_limited(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * 200_000)
    assert "larger than 1048576 bytes" in _load_error(path)


def test_year_range_is_checked_before_it_is_expanded(tmp_path):
    path = tmp_path / "years.yaml"
    path.write_text("subreddits: [cats]\nyears: 2005-200000000\n")
    tracemalloc.start()
    try:
        message = _load_error(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "year 200000000 is outside" in message
    assert peak < 2_000_000  # a list of the range would be gigabytes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("subreddits: [cats]\nyears: " + "9" * 5000 + "\n", ":2:8: invalid YAML: cannot read value: Exceeds"),
        ("subreddits: [cats]\nyears: 2020-02-30\n", ":2:8: invalid YAML: cannot read value: day is out"),
        ("subreddits: [cats]\x00\nyears: 2020\n", ":1:19: invalid YAML: character #x0000"),
        ("subreddits: [cats]\n---\nyears: 2020\n", ":2:1: invalid YAML: but found another document"),
        ("subreddits: [cats]\nyears: 2005-" + "9" * 5000 + "\n", "expected a range like 2017-2020"),
        ("subreddits: [cats]\nyears: 2020-2019\n", "empty year range"),
        ("runs: [{subreddit: cats, date_range: {start: 2019, end: 99999}}]\n", "year 99999 is outside"),
    ],
)
def test_unreadable_values_are_one_line(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert message in _load_error(path)


def test_number_of_runs_is_limited():
    names = [f"sub{i}" for i in range(6000)]
    with pytest.raises(RedCapsError, match="6000 subreddits x 20 years is over 100000 runs"):
        parse_batch({"subreddits": names, "years": "2005-2024"}, "cfg.yaml")


def test_a_subreddit_may_be_written_with_r_slash():
    from pipeline import RedCapsYear

    batch = parse_batch({"subreddits": ["r/Cats", "/r/dogs"], "years": [2020]}, "cfg.yaml")
    assert [r.subreddit for r in batch.runs] == ["cats", "dogs"]
    assert RedCapsYear(subreddit="r/cats", year=2020).subreddit == "cats"
