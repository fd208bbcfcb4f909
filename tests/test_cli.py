"""The ``redcaps`` command: the original's subcommands, one-line errors, honest exit codes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from redcaps.cli.main import main
from tests.helpers import annotation_file, record, write_images


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def write(path, records, **kw):
    path.write_text(json.dumps(annotation_file(records, **kw).to_json()))
    return path


def test_validate_ok_and_invalid_exit_codes(tmp_path):
    good = write(tmp_path / "roses_2020.json", [record("a1"), record("b2")])
    assert run("validate", "-a", str(good)).exit_code == 0
    bad = write(tmp_path / "tulips_2020.json", [record("a1"), record("a1", subreddit="tulips")])
    result = run("validate", "-a", str(bad))
    assert result.exit_code == 3
    assert "INVALID" in result.output and "a1" in result.output


def test_merge_and_delete_old(tmp_path):
    jan = write(
        tmp_path / "roses_2020-01.json",
        [record("a1", created_utc=1578000000)],
        start="2020-01-01",
        end="2020-01-31",
    )
    feb = write(
        tmp_path / "roses_2020-02.json",
        [record("b2", created_utc=1581000000)],
        start="2020-02-01",
        end="2020-02-29",
    )
    out = tmp_path / "roses_2020.json"
    result = run("merge", str(tmp_path / "roses_2020-*"), "-o", str(out), "--delete-old")
    assert result.exit_code == 0, result.output
    merged = json.loads(out.read_text())
    assert [r["image_id"] for r in merged["annotations"]] == ["a1", "b2"]
    assert not jan.exists() and not feb.exists()


def test_make_tarfiles(tmp_path):
    records = [record("a1"), record("b2")]
    write_images(tmp_path / "images", records)
    src = write(tmp_path / "roses_2020.json", records)
    result = run(
        "make-tarfiles",
        "--input",
        str(src),
        "--image-dir",
        str(tmp_path / "images"),
        "--output-dir",
        str(tmp_path / "tars"),
        "--format",
        "txt",
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tars" / "roses_2020_00000000.tar").exists()


def test_malformed_file_is_one_line_error_and_nothing_written(tmp_path):
    src = tmp_path / "roses_2020.json"
    src.write_text('{"info": {}, "annotations": [{"image_id": "../../x"}]}')
    result = CliRunner().invoke(main, ["download-imgs", "-a", str(src), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")
    assert "record 0" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://host/x.jpg", "javascript:alert(1)"])
def test_non_http_url_is_rejected_before_any_request(tmp_path, url):
    src = write(tmp_path / "roses_2020.json", [record("a1", url=url)])
    result = CliRunner().invoke(main, ["download-imgs", "-a", str(src), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "not an http(s) URL" in result.output
    assert not (tmp_path / "out").exists()


def test_unwritable_output_is_one_line_error_and_input_kept(tmp_path):
    src = write(tmp_path / "roses_2020.json", [record("a1")])
    before = src.read_bytes()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(main, ["download-imgs", "-a", str(src), "-o", str(blocker / "images"), "-u"])
    assert result.exit_code == 1 and result.output.startswith("error: ")
    assert src.read_bytes() == before and blocker.read_text() == "not a directory"


def test_download_imgs_against_sandbox_with_update(sandbox_env, tmp_path):
    world = sandbox_env.world
    records = next(iter(world.official_files().values()))["annotations"][:12]
    src = write(tmp_path / f"{records[0]['subreddit']}_2020.json", records)
    result = run(
        "download-imgs", "-a", str(src), "-o", str(tmp_path / "images"), "-j", "4", "--update-annotations"
    )
    assert result.exit_code == 0, result.output
    expected_ok = [r["image_id"] for r in records if world.expected_status(r["url"]) == "ok"]
    kept = [r["image_id"] for r in json.loads(src.read_text())["annotations"]]
    assert kept == expected_ok
    assert f"downloaded {len(expected_ok)} of {len(records)}" in result.output
    # a rerun on the updated file requests nothing: every image is already there
    sandbox_env.reset_log()
    assert run("download-imgs", "-a", str(src), "-o", str(tmp_path / "images")).exit_code == 0
    assert sandbox_env.log.for_host("i.redd.it") == [] and sandbox_env.log.for_host("i.imgur.com") == []
