"""`redcaps forget`: given post ids leave every published artefact, reproducibly, for good."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

from redcaps import annotations as ann
from redcaps.cli.main import main
from redcaps.dataset.tarify import write_shards
from redcaps.layout import TARIFY, Layout, image_path
from tests.helpers import annotation_file, record, write_images

STEM = "roses_2020"


def published(root: Path) -> tuple[Layout, list[dict]]:
    """A small published year: stage files, the final file, 2 tars with metadata, images."""
    layout = Layout(root)
    records = [record(f"post{i:02d}") for i in range(6)]
    write_images(layout.images, records)
    af = annotation_file(records)
    for path in (layout.final_file(STEM), layout.stage_file("merged", STEM), layout.filtered("faces", STEM)):
        path.parent.mkdir(parents=True, exist_ok=True)
        ann.save(path, af)
    write_shards(af, layout.images, layout.tarfiles, STEM, shard_size=4)
    index = {"shards": [str(p) for p in layout.shard_files(STEM)], "samples": 6}
    layout.stage_file(TARIFY, STEM).parent.mkdir(parents=True)
    layout.stage_file(TARIFY, STEM).write_text(json.dumps(index))
    return layout, records


def keys_in(layout: Layout) -> set[str]:
    keys = set()
    for shard in layout.shard_files(STEM):
        with tarfile.open(shard) as tar:
            keys |= {m.name.split(".")[0] for m in tar.getmembers()}
    return keys


def everything(layout: Layout) -> dict[str, bytes]:
    return {
        str(p.relative_to(layout.root)): p.read_bytes() for p in sorted(layout.root.rglob("*")) if p.is_file()
    }


def test_forget_removes_an_id_everywhere_and_a_rerun_changes_nothing(tmp_path):
    layout, records = published(tmp_path / "data")
    gone = {"post01", "post05"}
    (tmp_path / "ids.txt").write_text("t3_post01\npost05\n# a comment\n\nnot_there\n")
    runner = CliRunner()
    args = ["forget", "--ids", str(tmp_path / "ids.txt"), "--data-dir", str(layout.root)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"{STEM}: removed 2 post(s): post01, post05" in result.output

    for path in (layout.final_file(STEM), layout.stage_file("merged", STEM), layout.filtered("faces", STEM)):
        assert {r["image_id"] for r in ann.load(path).annotations} == {r["image_id"] for r in records} - gone
    assert keys_in(layout) == {r["image_id"] for r in records} - gone
    for shard in layout.shard_files(STEM):
        table = pq.read_table(shard.with_suffix(".parquet"))
        assert not gone & set(table.column("key").to_pylist())
        stats = json.loads(shard.with_name(shard.stem + "_stats.json").read_text())
        assert stats["count"] == table.num_rows == stats["successes"]
    sizes = json.loads((layout.tarfiles / "sizes.json").read_text())
    assert sum(sizes.values()) == 4 == json.loads(layout.stage_file(TARIFY, STEM).read_text())["samples"]
    assert not any(image_path(layout.images, "roses", i).exists() for i in gone)
    removals = [json.loads(line) for line in layout.stage_file("forget", STEM, ".removals.jsonl").open()]
    assert [r["image_id"] for r in removals] == ["post01", "post05"]

    before = everything(layout)
    again = runner.invoke(main, args)
    assert again.exit_code == 0 and "none of these ids" in again.output
    assert everything(layout) == before  # reproducible: a rerun changes no byte

    # Tarify rerun from the (final) annotation file, as the stage would: the ids stay out
    write_shards(ann.load(layout.final_file(STEM)), layout.images, layout.tarfiles, STEM, shard_size=4)
    assert keys_in(layout) == {r["image_id"] for r in records} - gone


def test_forgotten_members_leave_the_others_byte_for_byte(tmp_path):
    layout, records = published(tmp_path / "data")
    shard = layout.shard_files(STEM)[0]
    with tarfile.open(shard) as tar:
        before = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    (tmp_path / "ids.txt").write_text("post00\n")
    assert (
        CliRunner()
        .invoke(main, ["forget", "--ids", str(tmp_path / "ids.txt"), "--data-dir", str(layout.root)])
        .exit_code
        == 0
    )
    with tarfile.open(shard) as tar:
        after = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert after == {name: data for name, data in before.items() if not name.startswith("post00.")}
