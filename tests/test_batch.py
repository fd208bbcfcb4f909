"""YAML batch configs are validated, with the place of every mistake, before anything runs."""

from __future__ import annotations

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
