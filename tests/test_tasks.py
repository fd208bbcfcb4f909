"""Stage tasks on their own: resources per image host, Validate's failure, progress outside workers."""

from __future__ import annotations

import json
from pathlib import Path

import luigi

from tasks.download import DownloadImageShard
from tasks.validate import Validate
from tests.helpers import annotation_file, record


def write(path, records):
    path.write_text(json.dumps(annotation_file(records).to_json()))
    return str(path)


def test_shard_holds_one_resource_slot_per_host_group(luigi_config, tmp_path):
    records = [
        record("a1", url="https://i.redd.it/a1.jpg"),
        record("b2", url="https://i.imgur.com/AbCdE12.jpg"),
        record("c3", url="https://farm2.staticflickr.com/1/2_ab.jpg"),
    ]
    task = DownloadImageShard(annotations=write(tmp_path / "roses_2020.json", records), shard=0)
    assert task.resources == {"host_imgur.com": 1, "host_redd.it": 1, "host_staticflickr.com": 1}


def test_validate_fails_and_writes_every_problem_beside_its_target(luigi_config, tmp_path):
    src = write(tmp_path / "roses_2020.json", [record("a1"), record("a1", subreddit="tulips")])
    task = Validate(annotations=src)
    result = luigi.build([task], local_scheduler=True, detailed_summary=True, log_level="CRITICAL")
    assert result.status == luigi.LuigiStatusCode.FAILED
    assert not task.complete()
    errors = task.stage_path(".errors.txt").read_text()
    assert "duplicate image_id" in errors and "does not match the file name" in errors


def test_report_is_a_no_op_outside_a_worker(luigi_config, tmp_path):
    task = Validate(annotations=write(tmp_path / "roses_2020.json", [record("a1")]))
    task.report("half way", 50.0)  # must not raise when luigi's callbacks are unset
    task.run()
    assert json.loads(Path(task.output().path).read_text())["warnings"]
