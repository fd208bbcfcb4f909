"""The dump scan as tasks: a dump batch reads each dump once, and FetchMonth never reads one."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.batch import RedCapsBatch
from redcaps import annotations as ann
from redcaps.collect.month import collect_month
from redcaps.collect.sources.dump import DumpSource, write_dump
from redcaps.sandbox.posts import population
from tasks.collect import FetchMonth
from tasks.scan import ScanDump
from tests.helpers import luigi_settings, write_monthly_dumps

SUBREDDITS = ["sandboxcats", "sandboxroses"] + [f"absent{i}" for i in range(40)]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dumps(tmp_path_factory) -> Path:
    return write_monthly_dumps(tmp_path_factory.mktemp("dumps"))


def _batch_file(path: Path, subreddits: list[str], years: str = "[2020]") -> Path:
    path.write_text(f"name: scan\nsubreddits: [{', '.join(subreddits)}]\nyears: {years}\n")
    return path


def _cfg(path: Path, data_dir: Path, dump_dir: Path) -> Path:
    path.write_text(
        f"[core]\nautoload_range = false\n[redcaps]\ndata_dir = {data_dir}\n"
        f"[collection]\nsource = dump\ndump_dir = {dump_dir}\n"
        "[worker]\nkeep_alive = false\n[scheduler]\nretry_count = 0\n"
    )
    return path


#: Builds the batch's first yield (its scans), then every year's months as its chunks would,
#: counting the dumps opened.
BATCH_SCRIPT = """
import json, sys
import luigi
from pipeline.batch import RedCapsBatch
from tasks.collect import MergeYear
from tasks.scan import ScanDump
opened = []
sys.addaudithook(lambda event, args: event == "open" and str(args[0]).endswith(".zst")
                 and "RS_" in str(args[0]) and opened.append(str(args[0])))
batch = RedCapsBatch(config=sys.argv[1])
scans = next(batch.run())
assert scans and all(isinstance(t, ScanDump) for t in scans), scans
merges = [MergeYear(subreddit=y.subreddit, year=y.year) for y in batch.years()]
ok = all(luigi.build(tasks, local_scheduler=True, log_level="WARNING") for tasks in (scans, merges))
print(json.dumps({"ok": ok, "opened": opened}))
"""


def test_a_dump_batch_opens_each_dump_once_and_months_match_the_dump_source(dumps, tmp_path):
    data = tmp_path / "data"
    env = {"LUIGI_CONFIG_PATH": str(_cfg(tmp_path / "luigi.cfg", data, dumps)), "PYTHONPATH": str(REPO)}
    config = _batch_file(tmp_path / "batch.yaml", SUBREDDITS)
    proc = subprocess.run(
        [sys.executable, "-c", BATCH_SCRIPT, str(config)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**_environ(), **env},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"], proc.stderr[-3000:]
    opened = sorted(Path(p).name for p in result["opened"])
    assert opened == [f"RS_2020-{m:02d}.zst" for m in range(1, 13)]  # each dump once, nothing else

    direct = DumpSource(dumps)
    for subreddit in ("sandboxcats", "sandboxroses", "absent7"):
        for month in range(1, 13):
            expected = tmp_path / "expected.json"
            ann.save(expected, collect_month(subreddit, 2020, month, source=direct))
            got = data / "annotations" / f"{subreddit}_2020-{month:02d}.json"
            assert got.read_bytes() == expected.read_bytes(), got.name


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def test_adding_a_subreddit_later_scans_only_for_it(dumps, tmp_path):
    data = tmp_path / "data"
    staged = [(s, f"2020-{m:02d}") for s in ("sandboxcats", "sandboxroses") for m in range(1, 13)]
    for subreddit, month in staged:  # as a first batch of the two left them
        path = data / "stages" / "dump_scan" / f"{subreddit}_{month}.jsonl.zst"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    config = _batch_file(tmp_path / "more.yaml", ["sandboxcats", "sandboxroses", "newcomer"])
    with luigi_settings({"collection": {"source": "dump", "dump_dir": str(dumps)}}):
        scans = RedCapsBatch(config=str(config), data_dir=str(data)).dump_scans()
    assert [(Path(t.dump).name, list(t.subreddits), list(t.months)) for t in scans] == [
        (f"RS_2020-{m:02d}.zst", ["newcomer"], [f"2020-{m:02d}"]) for m in range(1, 13)
    ]


def test_a_per_subreddit_file_is_one_scan_for_all_the_years(tmp_path):
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    write_dump(
        dumps / "SandboxCats_submissions.zst", [p for p in population() if p["subreddit"] == "SandboxCats"]
    )
    config = _batch_file(tmp_path / "b.yaml", ["sandboxcats"], years="[2019, 2020]")
    data = tmp_path / "data"
    with luigi_settings({"collection": {"source": "dump", "dump_dir": str(dumps)}}):
        scans = RedCapsBatch(config=str(config), data_dir=str(data)).dump_scans()
        months = [dt.date(2020, m, 1) for m in range(1, 13)]
        own = {
            t
            for m in months
            for t in FetchMonth(subreddit="sandboxcats", month=m, data_dir=str(data)).requires()
        }
    assert len(scans) == 1 and Path(scans[0].dump).name == "SandboxCats_submissions.zst"
    assert list(scans[0].months) == [f"{y}-{m:02d}" for y in (2019, 2020) for m in range(1, 13)]
    assert len(own) == 1  # alone, a year's twelve months share one scan of the file
    (scan,) = own
    assert list(scan.months) == [f"2020-{m:02d}" for m in range(1, 13)]
    assert not scan.complete()
    for target in scans[0].output():  # the batch's bigger scan satisfies the year's own
        Path(target.path).parent.mkdir(parents=True, exist_ok=True)
        Path(target.path).write_bytes(b"")
    assert isinstance(scan, ScanDump) and scan.complete()


def test_other_sources_need_no_scan(tmp_path):
    with luigi_settings({"collection": {"source": "arctic-shift"}}):
        assert FetchMonth(subreddit="x", month=dt.date(2020, 1, 1), data_dir=str(tmp_path)).requires() == []
        config = _batch_file(tmp_path / "b.yaml", ["sandboxcats"])
        assert RedCapsBatch(config=str(config), data_dir=str(tmp_path)).dump_scans() == []
