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


def _truncate_first_tar(data: Path) -> tuple[Path, bytes]:
    tar = data / "tarfiles" / f"{STEM}_00000000.tar"
    whole = tar.read_bytes()
    tar.write_bytes(whole[: len(whole) // 2])  # the first half of its samples survive
    return tar, whole


def _packed_ids(tar_bytes: bytes) -> list[str]:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return sorted({m.name.rpartition(".")[0] for m in tar if m.name.endswith(".jpg")})


def _fetched(sandbox, urls: dict[str, str]) -> set[str]:
    """The ids among ``urls`` (id -> image URL) the sandbox was asked for since its log's clear."""
    from urllib.parse import urlsplit

    asked = {(r.host, r.path) for r in sandbox.log.records()}
    return {i for i, url in urls.items() if (urlsplit(url).hostname, urlsplit(url).path) in asked}


def test_a_damaged_tar_whose_images_exist_nowhere_is_refetched_and_rebuilt(sandbox_env, luigi_config):
    """keep_loose off, a truncated tar: the images it took with it are fetched again once,
    through the download path, and the tar comes back byte for byte."""
    data = luigi_config
    settings = {**SETTINGS, "images": {"keep_loose": "false"}}
    with luigi_settings(settings):
        assert _build().status == luigi.LuigiStatusCode.SUCCESS
        assert _build().status == luigi.LuigiStatusCode.SUCCESS  # retryable failures settled
        tar, whole = _truncate_first_tar(data)
        ok = {o.image_id: o.url for o in _outcomes(data) if o.ok}
        cut = {i: ok[i] for i in _packed_ids(whole)}
        sandbox_env.log.clear()
        assert _build().status == luigi.LuigiStatusCode.SUCCESS
        refetched = _fetched(sandbox_env, ok)
    assert tar.read_bytes() == whole
    assert refetched and refetched < set(cut)  # only what no readable copy held, from the tar
    assert not list((data / "images" / "sandboxcats").glob("*.jpg"))


def test_a_damaged_tar_whose_images_are_gone_everywhere_is_one_line_and_no_loop(
    sandbox_env, luigi_config, monkeypatch, caplog
):
    """The same, once the hosts deleted the images: one line names the lost samples, the
    failure is recorded, and later runs neither fetch them again nor fail."""
    data, world = luigi_config, sandbox_env.world
    downloads = {**SETTINGS["downloads"], "recover": "false"}
    settings = {**SETTINGS, "images": {"keep_loose": "false"}, "downloads": downloads}
    with luigi_settings(settings):
        assert _build().status == luigi.LuigiStatusCode.SUCCESS
        assert _build().status == luigi.LuigiStatusCode.SUCCESS
        _, whole = _truncate_first_tar(data)
        ok = {o.image_id: o.url for o in _outcomes(data) if o.ok}
        cut = {i: ok[i] for i in _packed_ids(whole)}
        for url in cut.values():
            monkeypatch.setitem(world.faults, url, "http_404")
            monkeypatch.setitem(world.faults, world.canonical(url), "http_404")
        caplog.clear()
        sandbox_env.log.clear()
        assert _build().status == luigi.LuigiStatusCode.SUCCESS
        lost = [m for m in caplog.messages if "samples lost" in m]
        refetched = _fetched(sandbox_env, ok)
        status = {o.image_id: o.status for o in _outcomes(data)}
        gone = {i for i in refetched if status[i] != "ok"}  # a URL the faults miss came back
        assert len(lost) == 1 and gone and refetched < set(cut)
        assert {i for i in cut if i in lost[0]} == gone and {status[i] for i in gone} == {"http_404"}
        sandbox_env.log.clear()
        assert _build().status == luigi.LuigiStatusCode.SUCCESS
        assert _fetched(sandbox_env, ok) == set()  # the failure is recorded: never fetched again
