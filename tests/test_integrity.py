"""A published year is never made worse by a rerun: the tars keep keep_loose=false images, and a
damaged artefact (tar, parquet, annotation file, marker) is noticed and rebuilt by the next run."""

from __future__ import annotations

from pathlib import Path

import luigi
import pytest
from click.testing import CliRunner

from pipeline.year import RedCapsYear
from redcaps import annotations as ann
from redcaps.cli.main import main
from redcaps.download.manifest import Outcome, read_outcomes
from tasks.collect import MergeYear
from tests.helpers import as_a_new_process, luigi_settings

STEM = "sandboxcats_2020"
SETTINGS = {
    "filters": {"enabled": "words"},
    "worker": {"check_complete_on_run": "true"},
    "downloads": {"read_timeout": "10"},  # only the test's faults fail images, not a loaded machine
}


def _build() -> luigi.execution_summary.LuigiRunResult:
    as_a_new_process()
    luigi.task_register.Register.clear_instance_cache()
    year = RedCapsYear(subreddit="sandboxcats", year=2020)
    return luigi.build([year], local_scheduler=True, detailed_summary=True, log_level="WARNING")


def _published(data: Path) -> dict[str, bytes]:
    """The published annotation file and every tar, by path under the data dir."""
    files = [data / "annotations" / f"{STEM}.json", *sorted((data / "tarfiles").glob(f"{STEM}_*.tar"))]
    return {str(p.relative_to(data)): p.read_bytes() for p in files}


def _outcomes(data: Path) -> list[Outcome]:
    manifests = sorted((data / "images" / ".manifests" / STEM).glob("*.jsonl"))
    return [o for m in manifests for o in read_outcomes(m).values()]


def _retryable(data: Path) -> int:
    return sum(o.retryable for o in _outcomes(data))


def test_a_keep_loose_rerun_after_the_hosts_delete_every_image_keeps_the_year(
    sandbox_env, luigi_config, monkeypatch
):
    """keep_loose off and failures left to retry (so the download stage reruns), then every image
    gone from its host: the rerun keeps what the tars hold; the published file and tars stay."""
    data, world = luigi_config, sandbox_env.world
    with luigi_settings(SETTINGS):
        luigi.build(
            [MergeYear(subreddit="sandboxcats", year=2020)], local_scheduler=True, log_level="WARNING"
        )
    merged = ann.load(data / "stages" / "merged" / f"{STEM}.json").annotations
    for url in [r["url"] for r in merged if world.canonical(r["url"]) not in world.faults][:10]:
        monkeypatch.setitem(world.faults, world.canonical(url), "always_503")  # retried on every run
    settings = {**SETTINGS, "images": {"keep_loose": "false"}}
    with luigi_settings(settings):
        assert _build().status == luigi.LuigiStatusCode.SUCCESS
        assert _retryable(data) > 0
        before = _published(data)
        assert not list((data / "images" / "sandboxcats").glob("*.jpg"))  # the tars hold them
        for outcome in _outcomes(data):
            if outcome.ok:  # the host deleted it
                monkeypatch.setitem(world.faults, outcome.url, "http_404")
                monkeypatch.setitem(world.faults, world.canonical(outcome.url), "http_404")
        assert _build().status == luigi.LuigiStatusCode.SUCCESS
    assert _published(data) == before


@pytest.fixture()
def built_year(sandbox_env, luigi_config) -> Path:
    with luigi_settings(SETTINGS):
        assert _build().status == luigi.LuigiStatusCode.SUCCESS
    return luigi_config


@pytest.mark.parametrize(
    "artefact",
    [
        f"tarfiles/{STEM}_00000000.tar",
        f"tarfiles/{STEM}_00000000.parquet",
        f"annotations/{STEM}.json",
        f"stages/tarify/{STEM}.json",
    ],
)
def test_a_truncated_artefact_is_rebuilt_by_the_next_run(built_year, artefact):
    data = built_year
    with luigi_settings(SETTINGS):  # a second run: whatever failed retryably is settled first
        assert _build().status == luigi.LuigiStatusCode.SUCCESS
    path = data / artefact
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with luigi_settings(SETTINGS):
        assert _build().status == luigi.LuigiStatusCode.SUCCESS
    assert path.read_bytes() == whole


def test_verify_names_a_damaged_artefact_and_the_next_run_rebuilds_it(built_year):
    data = built_year
    runner = CliRunner()
    clean = runner.invoke(main, ["verify", str(data)])
    assert clean.exit_code == 0, clean.output
    assert ", 0 damaged" in clean.output
    tar = data / "tarfiles" / f"{STEM}_00000000.tar"
    whole = bytearray(tar.read_bytes())
    whole[700] ^= 0xFF  # same size: only the hash shows it
    tar.write_bytes(bytes(whole))
    damaged = runner.invoke(main, ["verify", str(data)])
    assert damaged.exit_code == 1
    line = f"damaged: tarfiles/{STEM}_00000000.tar: sha256 differs from the recorded one"
    assert line in damaged.output and f"(Tarify of {STEM})" in damaged.output
    with luigi_settings(SETTINGS):
        assert _build().status == luigi.LuigiStatusCode.SUCCESS
    again = runner.invoke(main, ["verify", str(data)])
    assert again.exit_code == 0, again.output
