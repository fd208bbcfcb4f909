"""Reruns finish the job (retry rounds in download manifests) and the data dir in every task id."""

from __future__ import annotations

import datetime
from pathlib import Path

import luigi

from pipeline.official import OfficialFile, RedCapsOfficial
from pipeline.year import RedCapsYear, year_stages
from tasks.collect import FetchMonth, MergeYear
from tests.helpers import luigi_settings


def _year_task_ids(data_dir: Path) -> list[str]:
    with luigi_settings({"redcaps": {"data_dir": str(data_dir)}, "filters": {"enabled": "words"}}):
        validate, tarify = year_stages("roses", 2020)
        tasks = [
            RedCapsYear(subreddit="roses", year=2020),
            FetchMonth(subreddit="roses", month=datetime.date(2020, 1, 1)),
            MergeYear(subreddit="roses", year=2020),
            validate,
            tarify,
            validate.annotations,  # Publish
            validate.annotations.annotations,  # FilterWords
            OfficialFile(annotations="/x/roses_2020.json"),
            RedCapsOfficial(annotations_dir="/x"),
        ]
        return [t.task_id for t in tasks]


def test_two_data_dirs_never_share_a_task_id(luigi_config, tmp_path):
    first, again = _year_task_ids(tmp_path / "a"), _year_task_ids(tmp_path / "a")
    other = _year_task_ids(tmp_path / "b")
    assert first == again
    assert all(a != b for a, b in zip(first, other, strict=True))
    assert len(set(first)) == len(first)
    assert first[0].startswith("RedCapsYear__roses_2020_")  # still luigi's readable id


def test_the_web_ui_and_chains_see_the_same_parameters(luigi_config, tmp_path):
    with luigi_settings({"redcaps": {"data_dir": str(tmp_path / "a")}}):
        task = RedCapsYear(subreddit="roses", year=2020)
        assert task.to_str_params() == {"subreddit": "roses", "year": "2020", "first_year": ""}
        rebuilt = RedCapsYear.from_str_params(task.to_str_params())
        assert rebuilt.task_id == task.task_id
    luigi.task_register.Register.clear_instance_cache()
