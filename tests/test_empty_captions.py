"""Empty captions (a non-Latin title loses every letter in the original's ASCII step): kept by
default as RedCaps v1 keeps them, counted and warned about in validate, the summary and the
report, and dropped at collection with their own reason under ``[captions] drop_empty``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import luigi
import pytest
from click.testing import CliRunner

from pipeline import FetchMonth
from redcaps.cli.main import main
from redcaps.collect.captions import is_empty
from redcaps.collect.month import collect_month
from redcaps.collect.sources.dump import DumpSource, write_dump
from redcaps.layout import MERGED, Layout
from redcaps.report.summary import format_summary, summarize_dataset
from redcaps.validate import validate
from tests.helpers import luigi_settings

#: March 2020 UTC, and three titles: one English, one Japanese (cleaned to ""), one emoji only (" ").
MARCH = 1583020800
TITLES = {
    "aaaaa01": "My cat at sunrise",
    "aaaaa02": "\u6771\u4eac\u306e\u591c",
    "aaaaa03": "\U0001f63a \U0001f63a",
}


def posts() -> list[dict]:
    return [
        {
            "id": post_id,
            "subreddit": "SandboxCats",
            "author": "someone",
            "title": title,
            "created_utc": MARCH + 3600 * n,
            "url": f"https://i.redd.it/{post_id}.jpg",
            "is_self": False,
            "is_video": False,
            "over_18": False,
            "score": 10,
            "permalink": f"/r/SandboxCats/comments/{post_id}/x/",
        }
        for n, (post_id, title) in enumerate(TITLES.items())
    ]


@pytest.fixture()
def dump(tmp_path: Path) -> Path:
    (tmp_path / "dumps").mkdir()
    write_dump(tmp_path / "dumps" / "RS_2020-03.zst", posts())
    return tmp_path / "dumps"


@pytest.mark.parametrize(("caption", "empty"), [("", True), ("  ", True), ("a cat", False), (None, False)])
def test_is_empty(caption, empty):
    assert is_empty(caption) is empty


def test_empty_captions_are_kept_by_default_as_the_original_does(dump):
    result = collect_month("sandboxcats", 2020, 3, source=DumpSource(dump))
    assert [r["caption"] for r in result.annotations] == ["my cat at sunrise", "", " "]
    assert result.info["collection"]["dropped"] == {} and result.info["collection"]["kept"] == 3


def test_drop_empty_drops_them_with_their_own_reason(dump):
    result = collect_month("sandboxcats", 2020, 3, source=DumpSource(dump), drop_empty_captions=True)
    assert [r["image_id"] for r in result.annotations] == ["aaaaa01"]
    collection = result.info["collection"]
    assert collection["dropped"] == {"empty_caption": 2}
    assert (collection["considered"], collection["kept"]) == (3, 1)


@pytest.mark.parametrize(
    ("setting", "kept"), [("false", ["aaaaa01", "aaaaa02", "aaaaa03"]), ("true", ["aaaaa01"])]
)
def test_fetch_month_reads_captions_drop_empty(dump, tmp_path, setting, kept):
    settings = {"collection": {"source": "dump", "dump_dir": str(dump)}, "captions": {"drop_empty": setting}}
    with luigi_settings(settings):
        task = FetchMonth(subreddit="sandboxcats", month=dt.date(2020, 3, 1), data_dir=str(tmp_path / "data"))
        assert luigi.build([task], local_scheduler=True, log_level="CRITICAL")
    written = json.loads(Path(task.output().path).read_text())
    assert [r["image_id"] for r in written["annotations"]] == kept


def official_file(captions: list[str]) -> dict:
    records = [
        {
            "image_id": f"bb{n:05d}",
            "author": "someone",
            "url": f"https://i.redd.it/bb{n:05d}.jpg",
            "raw_caption": caption or "\u6771\u4eac",
            "caption": caption,
            "subreddit": "sandboxcats",
            "score": 5,
            "created_utc": MARCH + n,
            "permalink": f"/r/sandboxcats/comments/bb{n:05d}/x/",
        }
        for n, caption in enumerate(captions)
    ]
    info = {
        "start_date": "2020-03-01",
        "end_date": "2020-03-31",
        "url": "https://redcaps.xyz",
        "version": "1.0",
    }
    return {"info": info, "annotations": records}


def test_validate_counts_empty_captions_in_one_warning_not_an_error():
    captions = ["a cat"] * 3 + [""] * 7 + [" "]
    problems = [p for p in validate(official_file(captions)) if p.where == "annotations"]
    assert [p.severity for p in problems] == ["warning"]
    assert problems[0].message.startswith("8 of 11 captions are empty (records 3, 4, 5, 6, 7, ...)")
    assert not [p for p in validate(official_file(["a cat"])) if p.where == "annotations"]


def test_validate_command_prints_the_warning_and_exits_zero(tmp_path):
    path = tmp_path / "sandboxcats_2020-03.json"
    path.write_text(json.dumps(official_file(["a cat", ""])))
    result = CliRunner().invoke(main, ["validate", "-a", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning: annotations: 1 of 2 captions are empty" in result.output
    assert "ok (0 errors, 4 warnings)" in result.output  # 3 missing filter blocks + the captions


def test_summary_counts_the_empty_captions_of_the_most_processed_file(tmp_path):
    layout = Layout.at(tmp_path / "data")
    merged = layout.stage_file(MERGED, "sandboxcats_2020")
    merged.parent.mkdir(parents=True)
    merged.write_text(json.dumps(official_file(["a cat", "", "", "a dog"])))
    summary = summarize_dataset(layout)
    assert summary["files"]["sandboxcats_2020"]["captions"] == {"instances": 4, "empty": 2}
    assert "warning: 2 of 4 instances have an empty caption" in format_summary(summary)
    layout.final_file("sandboxcats_2020").parent.mkdir(parents=True)
    layout.final_file("sandboxcats_2020").write_text(json.dumps(official_file(["a cat", "a dog", "x"])))
    summary = summarize_dataset(layout)
    assert summary["files"]["sandboxcats_2020"]["captions"] == {"instances": 3, "empty": 0}
    assert "empty caption" not in format_summary(summary)
