"""FetchMonth/MergeYear through Luigi and ``redcaps download-anns``, against the sandbox."""

from __future__ import annotations

import datetime as dt
import json

import luigi
from click.testing import CliRunner

from pipeline import FetchMonth, MergeYear
from redcaps.cli import main
from redcaps.validate import validate_file


def test_merge_year_writes_a_valid_year_file(sandbox_env, luigi_config):
    result = luigi.build(
        [MergeYear(subreddit="sandboxcats", year=2020)],
        local_scheduler=True,
        detailed_summary=True,
        log_level="WARNING",
    )
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text
    year = luigi_config / "annotations" / "sandboxcats_2020.json"
    assert [p for p in validate_file(year) if p.severity == "error"] == []
    data = json.loads(year.read_text())
    assert (data["info"]["start_date"], data["info"]["end_date"]) == ("2020-01-01", "2020-12-31")
    assert len(data["annotations"]) == 12 * 16  # 24 posts a month, 8 dropped by the rules
    assert len(list((luigi_config / "annotations").glob("sandboxcats_2020-*.json"))) == 12


def test_fetch_month_never_leaves_a_partial_file(sandbox_env, luigi_config, monkeypatch):
    import tasks.collect

    def crash(*args, **kwargs):
        raise RuntimeError("network gone")

    monkeypatch.setattr(tasks.collect, "collect_month", crash)
    task = FetchMonth(subreddit="sandboxroses", month=dt.date(2020, 2, 1))
    result = luigi.build([task], local_scheduler=True, detailed_summary=True, log_level="CRITICAL")
    assert result.status == luigi.LuigiStatusCode.FAILED and not task.complete()
    assert (
        not list((luigi_config / "annotations").glob("*"))
        if (luigi_config / "annotations").exists()
        else True
    )


def test_download_anns_cli(sandbox_env, tmp_path):
    result = CliRunner().invoke(
        main, ["download-anns", "--subreddit", "sandboxroses", "--yyyy-mm", "2020-07", "-o", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "16 of 24 posts kept" in result.output and "nsfw 1" in result.output
    assert validate_file(tmp_path / "sandboxroses_2020-07.json")[0].severity == "warning"


def test_download_anns_rejects_unsafe_subreddit(tmp_path):
    result = CliRunner().invoke(main, ["download-anns", "-s", "../etc", "-m", "2020-07", "-o", str(tmp_path)])
    assert result.exit_code == 1 and result.output.startswith("error: unsafe subreddit")
    assert list(tmp_path.iterdir()) == []
