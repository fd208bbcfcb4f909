"""Stage tasks on their own: resources per image host, Validate's failure, progress outside workers."""

from __future__ import annotations

import json
from pathlib import Path

import luigi
import pytest

from tasks.collect import MergeYear
from tasks.download import DownloadImages, DownloadImageShard
from tasks.validate import Validate
from tests.helpers import annotation_file, record


def write(path, records):
    path.write_text(json.dumps(annotation_file(records).to_json()))
    return str(path)


def test_shard_holds_one_resource_slot_per_host_group_only_with_a_global_scope(luigi_config, tmp_path):
    records = [
        record("a1", url="https://i.redd.it/a1.jpg"),
        record("b2", url="https://i.imgur.com/AbCdE12.jpg"),
        record("c3", url="https://farm2.staticflickr.com/1/2_ab.jpg"),
    ]
    task = DownloadImageShard(annotations=write(tmp_path / "roses_2020.json", records), shard=0)
    assert task.resources == {}  # hosts count per machine: its processes share the budget instead
    config = luigi.configuration.get_config()
    config.set("downloads", "host_scope", "global")
    luigi.task_register.Register.clear_instance_cache()
    try:
        assert task.resources == {"host_imgur.com": 1, "host_redd.it": 1, "host_staticflickr.com": 1}
    finally:
        config.remove_option("downloads", "host_scope")
        luigi.task_register.Register.clear_instance_cache()


def test_validate_fails_and_writes_every_problem_beside_its_target(luigi_config, tmp_path):
    src = write(tmp_path / "roses_2020.json", [record("a1"), record("a1", subreddit="tulips")])
    task = Validate(annotations=src)
    result = luigi.build([task], local_scheduler=True, detailed_summary=True, log_level="CRITICAL")
    assert result.status == luigi.LuigiStatusCode.FAILED
    assert not task.complete()
    errors = task.layout.validate_errors(task.stem).read_text()
    assert "duplicate image_id" in errors and "does not match the file name" in errors


def test_report_is_a_no_op_outside_a_worker(luigi_config, tmp_path):
    task = Validate(annotations=write(tmp_path / "roses_2020.json", [record("a1")]))
    task.report("half way", 50.0)  # must not raise when luigi's callbacks are unset
    task.run()
    assert json.loads(Path(task.output().path).read_text())["warnings"]


@pytest.mark.parametrize(
    ("upstream", "text"),
    [
        (
            MergeYear(subreddit="roses", year=2020),
            'MergeYear{"first_year":"","subreddit":"roses","year":"2020"}',
        ),
        (
            DownloadImages(annotations=MergeYear(subreddit="roses", year=2017, first_year=2008)),
            'MergeYear{"first_year":"2008","subreddit":"roses","year":"2017"} > DownloadImages',
        ),
        (  # a path that looks like a chain
            DownloadImages(annotations="/data/a > b/roses_2020.json"),
            '"/data/a > b/roses_2020.json" > DownloadImages',
        ),
    ],
)
def test_stage_chains_serialize_readably_and_parse_back(luigi_config, upstream, text):
    task = Validate(annotations=upstream)
    assert task.to_str_params()["annotations"] == text  # what the web UI shows
    rebuilt = Validate.from_str_params(task.to_str_params())
    assert rebuilt.task_id == task.task_id and rebuilt.input_path == task.input_path


def test_a_plain_path_stays_a_path(luigi_config, tmp_path):
    path = str(tmp_path / "roses_2020.json")
    task = Validate(annotations=path)
    assert task.to_str_params()["annotations"] == path and task.input_path == tmp_path / "roses_2020.json"


@pytest.mark.parametrize(
    "text",
    ['MergeYear{"subreddit":"roses"}', 'MergeYear{"subreddit":"roses","year":"2020"} > Nope', '"/x.json" >'],
)
def test_a_malformed_chain_is_a_one_line_error(luigi_config, text):
    with pytest.raises(ValueError, match="bad task chain") as err:
        Validate(annotations=text)
    assert "\n" not in str(err.value)


def test_shards_in_one_process_share_one_limiter(luigi_config):
    """A limiter per shard would give every new shard a fresh burst against the same host."""
    from redcaps.net.config import HttpConfig
    from redcaps.net.limits import HostPolicy
    from tasks.download import process_limiter

    policies = {"*": HostPolicy(rate=5, burst=10, concurrency=8)}
    assert process_limiter(HttpConfig(host_policies=policies)) is process_limiter(
        HttpConfig(host_policies=dict(policies))
    )
    other = {"*": HostPolicy(rate=1, burst=2, concurrency=1)}
    assert process_limiter(HttpConfig(host_policies=other)) is not process_limiter(
        HttpConfig(host_policies=policies)
    )
    assert process_limiter(
        HttpConfig(host_policies=policies, source_address="127.0.0.2")
    ) is not process_limiter(HttpConfig(host_policies=policies))
