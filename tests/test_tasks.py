"""Stage tasks on their own: their stage lists, resources per image host, Validate's failure, settings."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import luigi
import pytest
from luigi.cmdline_parser import CmdlineParser

from redcaps.errors import RedCapsError
from redcaps.layout import Layout
from tasks.config import DownloadsConfig, RedcapsConfig, ShardsConfig, _warn_renamed
from tasks.dedup import Dedup
from tasks.download import DownloadImageShard
from tasks.tarify import Tarify
from tasks.validate import Validate
from tests.helpers import annotation_file, luigi_settings, record


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


def test_progress_is_a_no_op_outside_a_worker(luigi_config, tmp_path):
    task = Validate(annotations=write(tmp_path / "roses_2020.json", [record("a1")]))
    task.show_progress("half way", 50.0)  # must not raise when luigi's callbacks are unset
    task.run()
    assert json.loads(Path(task.output().path).read_text())["warnings"]


def _families(task: luigi.Task) -> list[str]:
    families = [type(task).__name__]
    while hasattr(task, "upstream"):
        task = task.upstream()
        families.append(type(task).__name__)
    return families


def test_a_file_stage_reads_the_file_and_an_official_one_its_downloads(luigi_config, tmp_path):
    path = tmp_path / "roses_2020.json"
    assert _families(Tarify(annotations=str(path))) == ["Tarify", "ExternalAnnotations"]
    assert _families(Dedup(annotations=str(path))) == ["Dedup", "ExternalAnnotations"]
    official = Validate(graph="official", annotations=str(path))
    assert _families(official) == ["Validate", "DownloadImages", "ExternalAnnotations"]
    assert official.input_path == Path(luigi_config / "stages" / "downloaded" / "roses_2020.json")
    shard = DownloadImageShard(graph="official", annotations=str(path), shard=3)
    assert shard.upstream().output().path == str(path)  # a shard reads what its file's task reads


def test_a_relative_annotations_path_is_made_absolute(luigi_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    task = Validate(annotations="roses_2020.json")
    assert task.to_str_params()["annotations"] == str(tmp_path / "roses_2020.json")
    assert task.input_path == tmp_path / "roses_2020.json"


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (
            {"graph": "year", "annotations": "/x/roses_2020.json"},
            "the year list needs --subreddit and --year",
        ),
        ({"graph": "year", "subreddit": "roses"}, "the year list needs --subreddit and --year"),
        ({}, "the file list needs --annotations FILE"),
        ({"graph": "official", "annotations": "/x/roses_2020.json", "year": 2020}, "official list needs"),
    ],
)
def test_a_stage_without_its_lists_root_is_an_error(luigi_config, params, error):
    with pytest.raises(RedCapsError, match=error):
        Validate(**params)


def test_unknown_parameters_and_lists_are_errors(luigi_config):
    with pytest.raises(luigi.parameter.UnknownParameterException):
        Validate(annotation="/x/roses_2020.json")  # mistyped
    with pytest.raises(ValueError, match="collected"):
        Validate(graph="collected", subreddit="roses", year=2020)
    with pytest.raises(RedCapsError, match=r"Dedup is not a stage of the official list"):
        Dedup(graph="official", annotations="/x/roses_2020.json").upstream()


def test_a_stage_from_the_command_line_takes_the_file_and_the_data_dir_flag(luigi_config, tmp_path):
    args = ["Tarify", "--annotations", str(tmp_path / "roses_2020.json"), "--redcaps-data-dir", str(tmp_path)]
    with CmdlineParser.global_instance(args) as parser:
        task = parser.get_task_obj()
        assert task.data_dir == str(tmp_path)
        assert task.layout.root == tmp_path == Layout.at(RedcapsConfig().data_dir).root
    assert task.input_path == tmp_path / "roses_2020.json"
    assert task.output().path == str(tmp_path / "stages" / "tarify" / "roses_2020.json")


@pytest.mark.parametrize(
    ("section", "old", "config", "value"),
    [
        ("downloads", "shard_size", DownloadsConfig, lambda c: c.settings().images_per_shard),
        ("shards", "shard_size", ShardsConfig, lambda c: c.settings().samples_per_tar),
    ],
)
def test_an_old_shard_setting_still_works_with_one_deprecation_line(
    luigi_config, caplog, section, old, config, value
):
    _warn_renamed.cache_clear()  # as in a new process
    with luigi_settings({section: {old: "7"}}), caplog.at_level(logging.WARNING, "luigi-interface"):
        assert value(config()) == 7 and value(config()) == 7
    deprecations = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(deprecations) == 1 and deprecations[0].startswith(f"[{section}] {old} is deprecated")


def test_config_sections_keep_their_luigi_cfg_names():
    assert [c.get_task_family() for c in (RedcapsConfig, DownloadsConfig, ShardsConfig)] == [
        "redcaps",
        "downloads",
        "shards",
    ]


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
