"""FetchMonth/MergeYear through Luigi and ``redcaps download-anns``, against the sandbox."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import luigi
import pytest
from click.testing import CliRunner

from pipeline import FetchMonth, MergeYear
from redcaps.cli.main import main
from redcaps.sandbox import reddit_apis
from redcaps.sandbox.posts import expected as expected_counts
from redcaps.validate import validate_file
from tests.helpers import luigi_settings, write_monthly_dumps

FAST_FAILURE = {"worker": {"keep_alive": "false", "max_reschedules": "0"}, "scheduler": {"retry_count": "0"}}


@pytest.fixture(scope="module")
def dumps(tmp_path_factory) -> Path:
    """RS_2020-MM.zst for every month of 2020 (window_log=31, as the real dumps)."""
    return write_monthly_dumps(tmp_path_factory.mktemp("dumps"))


def build(tasks, data_dir: Path, **collection: str) -> luigi.execution_summary.LuigiRunResult:
    """Build ``tasks`` in ``data_dir`` (a copy of each with that data dir) with these settings."""
    settings = {**FAST_FAILURE, "collection": collection}
    with luigi_settings(settings):
        in_data_dir = [task.clone(data_dir=str(data_dir)) for task in tasks]
        return luigi.build(in_data_dir, local_scheduler=True, detailed_summary=True, log_level="CRITICAL")


def parsed_without_source(path: Path) -> dict:
    data = json.loads(path.read_text())
    data["info"]["collection"].pop("source")
    return data


def test_merge_year_writes_a_valid_year_file(apis, luigi_config):
    result = build([MergeYear(subreddit="SandboxCats", year=2020)], luigi_config, source="arctic-shift")
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text
    year = luigi_config / "stages" / "merged" / "sandboxcats_2020.json"
    assert [p for p in validate_file(year) if p.severity == "error"] == []
    assert CliRunner().invoke(main, ["validate", "-a", str(year)]).exit_code == 0
    assert not (luigi_config / "annotations" / "sandboxcats_2020.json").exists()  # the Publish stage's
    data = json.loads(year.read_text())
    assert (data["info"]["start_date"], data["info"]["end_date"]) == ("2020-01-01", "2020-12-31")
    months = [expected_counts("sandboxcats", 2020, m) for m in range(1, 13)]
    collection = data["info"]["collection"]
    assert collection["kept"] == len(data["annotations"]) == sum(kept for kept, _ in months)
    assert collection["dropped"] == dict(
        sorted(sum((d for _, d in months), start=type(months[0][1])()).items())
    )
    assert collection["months"] == 12 and collection["refreshed"] is False
    assert len(list((luigi_config / "annotations").glob("sandboxcats_2020-*.json"))) == 12


@pytest.mark.slow
def test_year_file_is_identical_whichever_source(apis, tmp_path, dumps, monkeypatch):
    monkeypatch.setenv("PUSHSHIFT_TOKEN", reddit_apis.PUSHSHIFT_TOKEN)
    task = MergeYear(subreddit="sandboxroses", year=2020)
    files = {}
    for source, extra in (("arctic-shift", {}), ("pushshift", {}), ("dump", {"dump_dir": str(dumps)})):
        result = build([task], tmp_path / source, source=source, **extra)
        assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text
        files[source] = parsed_without_source(tmp_path / source / "stages/merged/sandboxroses_2020.json")
    assert files["arctic-shift"] == files["pushshift"] == files["dump"]


def test_interrupted_month_leaves_no_file_and_reruns_identically(apis, tmp_path, dumps):
    reference = build(
        [FetchMonth(subreddit="sandboxcats", month=dt.date(2020, 2, 1))],
        tmp_path / "ref",
        source="dump",
        dump_dir=str(dumps),
    )
    assert reference.status == luigi.LuigiStatusCode.SUCCESS
    broken = tmp_path / "broken"
    broken.mkdir()
    raw = (dumps / "RS_2020-02.zst").read_bytes()
    (broken / "RS_2020-02.zst").write_bytes(raw[: len(raw) // 2])  # a download cut halfway
    task = FetchMonth(subreddit="sandboxcats", month=dt.date(2020, 2, 1))
    data = tmp_path / "data"
    failed = build([task], data, source="dump", dump_dir=str(broken))
    assert failed.status == luigi.LuigiStatusCode.FAILED
    assert not (data / "annotations").exists() or list((data / "annotations").iterdir()) == []
    (broken / "RS_2020-02.zst").write_bytes(raw)  # the download finished
    rerun = build([task], data, source="dump", dump_dir=str(broken))
    assert rerun.status == luigi.LuigiStatusCode.SUCCESS
    name = "annotations/sandboxcats_2020-02.json"
    assert (data / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()


def test_api_failing_halfway_fails_the_month(apis, tmp_path):
    apis.arctic_fail_from = 1
    data = tmp_path / "data"
    task = FetchMonth(subreddit="sandboxcats", month=dt.date(2020, 3, 1))
    assert build([task], data, source="arctic-shift").status == luigi.LuigiStatusCode.FAILED
    assert not (data / "annotations").exists() or list((data / "annotations").iterdir()) == []
    apis.arctic_fail_from = 0
    assert build([task], data, source="arctic-shift").status == luigi.LuigiStatusCode.SUCCESS


def test_interrupted_merge_leaves_no_file_and_reruns_identically(apis, tmp_path, dumps, monkeypatch):
    task = MergeYear(subreddit="sandboxcats", year=2020)
    assert build([task], tmp_path / "ref", source="dump", dump_dir=str(dumps)).status.name == "SUCCESS"
    real_replace = os.replace

    def crash_on_merged(src, dst):
        if "merged" in str(dst):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_merged)
    data = tmp_path / "data"
    assert build([task], data, source="dump", dump_dir=str(dumps)).status == luigi.LuigiStatusCode.FAILED
    assert list((data / "stages" / "merged").iterdir()) == []  # no output, no temp file
    monkeypatch.setattr(os, "replace", real_replace)
    assert build([task], data, source="dump", dump_dir=str(dumps)).status == luigi.LuigiStatusCode.SUCCESS
    name = "stages/merged/sandboxcats_2020.json"
    assert (data / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()


def test_fetch_month_resources_follow_source_and_credentials(tmp_path, monkeypatch):
    for var in ("REDDIT_CLIENT_ID", "REDDIT_CLIENT_SECRET", "IMGUR_CLIENT_ID"):
        monkeypatch.delenv(var, raising=False)
    creds = tmp_path / "credentials.json"
    task = FetchMonth(subreddit="roses", month=dt.date(2020, 1, 1))
    with luigi_settings({"collection": {"source": "arctic-shift", "credentials": str(creds)}}):
        assert task.resources == {"arctic_shift": 1}
    creds.write_text(
        json.dumps({"reddit": {"client_id": "a", "client_secret": "b"}, "imgur": {"client_id": "c"}})
    )
    with luigi_settings({"collection": {"source": "pushshift", "credentials": str(creds)}}):
        assert task.resources == {"imgur_api": 1, "pushshift": 1, "reddit_api": 1}
    with luigi_settings({"collection": {"source": "dump", "credentials": str(creds)}}):
        assert task.resources == {"imgur_api": 1, "reddit_api": 1}
    assert "credentials" not in task.to_str_params()


def test_malformed_credentials_fail_the_month_with_a_clear_error(apis, tmp_path):
    creds = tmp_path / "credentials.json"
    creds.write_text('{"reddit": {"client_id": "x", ')
    result = CliRunner().invoke(
        main, ["download-anns", "-s", "sandboxroses", "-m", "2020-07", "-o", str(tmp_path), "-c", str(creds)]
    )
    assert result.exit_code == 1 and "malformed credentials file" in result.output
    assert not (tmp_path / "sandboxroses_2020-07.json").exists()


def test_download_anns_cli_each_source(apis, tmp_path, dumps, monkeypatch):
    monkeypatch.setenv("PUSHSHIFT_TOKEN", reddit_apis.PUSHSHIFT_TOKEN)
    runs = {
        "arctic": ["--yyyy-mm", "2020-07"],
        "pushshift": ["--month", "2020-07", "--source", "pushshift"],
        "dump": ["-m", "2020-07", "--source", "dump", "--dump-dir", str(dumps)],
        "dump-file": ["-m", "2020-07", "--source", "dump", "--dump-file", str(dumps / "RS_2020-07.zst")],
    }
    kept, _ = expected_counts("sandboxroses", 2020, 7)
    outputs = []
    for name, args in runs.items():
        out = tmp_path / name
        result = CliRunner().invoke(
            main, ["download-anns", "--subreddit", "sandboxroses", "-o", str(out), *args]
        )
        assert result.exit_code == 0, result.output
        assert f": {kept} of " in result.output and "not refreshed (no Reddit credentials)" in result.output
        path = out / "sandboxroses_2020-07.json"
        assert [p for p in validate_file(path) if p.severity == "error"] == []
        outputs.append(parsed_without_source(path))
    assert all(o == outputs[0] for o in outputs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-s", "../etc", "-m", "2020-07"], "error: unsafe subreddit"),
        (["-s", "roses", "-m", "2020-07", "--source", "dump"], "error: the dump source needs"),
        (
            ["-s", "roses", "-m", "2020-07", "--dump-dir", "."],
            "error: --dump-file/--dump-dir need --source dump",
        ),
        (["-s", "roses", "-m", "1999-07", "--source", "dump", "--dump-dir", "."], "RS_1999-07.zst"),
        (["-s", "roses", "-m", "2020-13"], "Invalid value for '-m'"),
        (["-s", "roses", "-m", "2020-07", "--source", "reddit"], "Invalid value for '--source'"),
        (["-s", "roses", "-m", "2020-07", "-c", "nope.json"], "'nope.json' does not exist"),
    ],
)
def test_download_anns_rejects_bad_input(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["download-anns", *args, "-o", str(out)])
    assert result.exit_code != 0 and message in result.output
    if message.startswith("error:"):
        assert len(result.output.strip().splitlines()) == 1
    assert not out.exists() or list(out.iterdir()) == []


def test_refreshing_month_keeps_secrets_out_of_params_logs_and_output(apis, tmp_path, caplog, monkeypatch):
    import logging

    creds = tmp_path / "credentials.json"
    creds.write_text(
        json.dumps(
            {
                "reddit": {
                    "client_id": reddit_apis.REDDIT_CLIENT_ID,
                    "client_secret": reddit_apis.REDDIT_CLIENT_SECRET,
                },
                "imgur": {"client_id": reddit_apis.IMGUR_CLIENT_ID},
            }
        )
    )
    caplog.set_level(logging.DEBUG)
    task = FetchMonth(subreddit="sandboxroses", month=dt.date(2020, 5, 1))
    data = tmp_path / "data"
    result = build([task], data, source="arctic-shift", credentials=str(creds))
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text
    written = (data / "annotations" / "sandboxroses_2020-05.json").read_text()
    assert json.loads(written)["info"]["collection"]["refreshed"] is True and apis.reddit_info_calls
    shown = " ".join([caplog.text, result.summary_text, json.dumps(task.to_str_params()), written])
    for secret in (reddit_apis.REDDIT_CLIENT_SECRET, reddit_apis.IMGUR_CLIENT_ID, *apis.reddit_tokens):
        assert secret not in shown


def test_merge_year_folds_earlier_years_from_first_year(apis, tmp_path, dumps):
    folder = tmp_path / "dumps"
    folder.mkdir()
    for path in dumps.glob("RS_*.zst"):
        (folder / path.name).symlink_to(path)
    write_monthly_dumps(folder, 2019)  # 2019: posts only from October on, as the sandbox has them
    task = MergeYear(subreddit="sandboxcats", year=2020, first_year=2019)
    result = build([task], tmp_path / "data", source="dump", dump_dir=str(folder))
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text
    data = json.loads((tmp_path / "data/stages/merged/sandboxcats_2020.json").read_text())
    assert (data["info"]["start_date"], data["info"]["end_date"]) == ("2019-01-01", "2020-12-31")
    months = [(y, m) for y in (2019, 2020) for m in range(1, 13) if (y, m) >= (2019, 10)]
    assert data["info"]["collection"]["months"] == 24
    assert len(data["annotations"]) == sum(expected_counts("sandboxcats", y, m)[0] for y, m in months)
