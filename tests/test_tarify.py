"""WebDataset shards: naming, members, reproducibility, no empty shard, readable by webdataset."""

from __future__ import annotations

import hashlib
import json
import tarfile

import pytest
import webdataset as wds

from redcaps.dataset.tarify import write_shards
from redcaps.errors import RedCapsError
from tests.helpers import annotation_file, record, write_images


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def dataset(tmp_path):
    records = [record(f"id{i:03d}", created_utc=1577923200 + i) for i in range(7)]
    write_images(tmp_path / "images", records[:6])  # the last instance has no image
    return annotation_file(records), tmp_path


def test_shards_named_like_original_and_count_missing(dataset):
    af, tmp = dataset
    result = write_shards(af, tmp / "images", tmp / "tars", "roses_2020", shard_size=3)
    assert [p.name for p in result.shards] == ["roses_2020_00000000.tar", "roses_2020_00000001.tar"]
    assert result.samples == 6 and result.missing == ["id006"]
    # 6 samples in shards of 3: exactly two shards, no empty third one (the original wrote one)
    assert not (tmp / "tars" / "roses_2020_00000002.tar").exists()


def test_members_and_json_content(dataset):
    af, tmp = dataset
    result = write_shards(af, tmp / "images", tmp / "tars", "roses_2020", shard_size=10)
    with tarfile.open(result.shards[0]) as tar:
        names = tar.getnames()
        meta = json.loads(tar.extractfile("id000.json").read())
        assert {m.mtime for m in tar.getmembers()} == {1633046400}
    assert names[:3] == ["id000.jpg", "id000.json", "id000.txt"]
    assert meta["caption"] == "a rose id000" and meta["subreddit"] == "roses" and meta["score"] == 10
    image = (tmp / "images" / "roses" / "id000.jpg").read_bytes()
    assert meta["sha256"] == hashlib.sha256(image).hexdigest() and meta["key"] == "id000"
    assert (meta["width"], meta["height"], meta["status"]) == (64, 48, "success")
    # no manifests: what only the download knew is null
    assert meta["original_width"] is None and meta["original_height"] is None


def test_txt_format_has_bare_caption(dataset):
    af, tmp = dataset
    result = write_shards(af, tmp / "images", tmp / "tars", "roses_2020", fmt="txt")
    with tarfile.open(result.shards[0]) as tar:
        assert tar.extractfile("id001.txt").read() == b"a rose id001"


def test_a_stale_shard_past_a_gap_in_the_numbers_is_removed_too(dataset):
    """Shards 0 and 2 on disk (1 lost): a rerun that writes one shard leaves only shard 0; a
    listing that stopped at the gap would have kept shard 2 and its samples."""
    af, tmp = dataset
    tars = tmp / "tars"
    write_shards(af, tmp / "images", tars, "roses_2020", shard_size=2)
    for name in ("roses_2020_00000001.tar", "roses_2020_00000001.parquet", "roses_2020_00000001_stats.json"):
        (tars / name).unlink()
    af.annotations = af.annotations[:2]
    write_shards(af, tmp / "images", tars, "roses_2020", shard_size=2)
    assert sorted(p.name for p in tars.iterdir() if not p.name.startswith(".")) == [
        "roses_2020_00000000.parquet",
        "roses_2020_00000000.tar",
        "roses_2020_00000000_stats.json",
        "sizes.json",
    ]


def test_flat_image_folder_packs_the_same_shards(dataset):
    """Images directly in the folder (``<dir>/<id>.jpg``) pack exactly as the seed's nested ones."""
    af, tmp = dataset
    for path in (tmp / "images" / "roses").iterdir():
        (tmp / "flat").mkdir(exist_ok=True)
        (tmp / "flat" / path.name).hardlink_to(path)
    nested = write_shards(af, tmp / "images", tmp / "a", "roses_2020", shard_size=4)
    flat = write_shards(af, tmp / "flat", tmp / "b", "roses_2020", shard_size=4)
    assert flat.samples == 6 and flat.missing == ["id006"]
    assert [_sha(p) for p in flat.shards] == [_sha(p) for p in nested.shards]


def test_byte_reproducible_and_order_independent(dataset):
    af, tmp = dataset
    first = write_shards(af, tmp / "images", tmp / "a", "roses_2020", shard_size=4)
    af.annotations.reverse()
    second = write_shards(af, tmp / "images", tmp / "b", "roses_2020", shard_size=4)
    assert [_sha(p) for p in first.shards] == [_sha(p) for p in second.shards]


def test_rerun_with_fewer_samples_removes_stale_shard(dataset):
    af, tmp = dataset
    write_shards(af, tmp / "images", tmp / "tars", "roses_2020", shard_size=2)
    assert (tmp / "tars" / "roses_2020_00000002.tar").exists()
    af.annotations = af.annotations[:2]
    write_shards(af, tmp / "images", tmp / "tars", "roses_2020", shard_size=2)
    assert sorted(p.name for p in (tmp / "tars").iterdir() if not p.name.startswith(".")) == [
        "roses_2020_00000000.parquet",
        "roses_2020_00000000.tar",
        "roses_2020_00000000_stats.json",
        "sizes.json",
    ]
    assert json.loads((tmp / "tars" / "sizes.json").read_text()) == {"roses_2020_00000000.tar": 2}


def test_readable_with_webdataset(dataset):
    af, tmp = dataset
    result = write_shards(af, tmp / "images", tmp / "tars", "roses_2020", shard_size=4)
    urls = [str(p) for p in result.shards]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("pil").to_tuple("__key__", "jpg", "json"))
    assert [k for k, _, _ in samples] == [f"id{i:03d}" for i in range(6)]
    assert samples[0][1].size == (64, 48) and samples[0][2]["image_id"] == "id000"


def test_json_format_is_the_old_json_only_layout(dataset):
    af, tmp = dataset
    result = write_shards(af, tmp / "images", tmp / "tars", "roses_2020", fmt="json")
    with tarfile.open(result.shards[0]) as tar:
        assert {name.rsplit(".", 1)[1] for name in tar.getnames()} == {"jpg", "json"}


@pytest.mark.parametrize("fmt", ["both", "json", "txt"])
def test_bytes_identical_to_webdataset_tarwriter(dataset, fmt):
    """The stdlib writer must keep webdataset's exact layout (it replaced TarWriter for speed)."""
    af, tmp = dataset
    result = write_shards(af, tmp / "images", tmp / "tars", "roses_2020", shard_size=4, fmt=fmt)
    present = sorted(af.annotations, key=lambda r: r["image_id"])[:4]
    reference = tmp / "reference.tar"
    with open(reference, "wb") as fh:
        writer = wds.TarWriter(fh, encoder=False, mtime=1633046400, user="redcaps", group="redcaps")
        for rec in present:
            image = (tmp / "images" / rec["subreddit"] / f"{rec['image_id']}.jpg").read_bytes()
            sample = {"__key__": rec["image_id"], "jpg": image}
            if fmt in ("both", "txt"):
                sample["txt"] = rec["caption"].encode()
            if fmt in ("both", "json"):
                facts = {"key": rec["image_id"], "status": "success", "width": 64, "height": 48}
                facts |= {"original_width": None, "original_height": None}
                facts["sha256"] = hashlib.sha256(image).hexdigest()
                sample["json"] = json.dumps({**rec, **facts}, sort_keys=True).encode()
            writer.write(sample)
        writer.close()
    assert result.shards[0].read_bytes() == reference.read_bytes()


def test_failed_shard_leaves_no_partial_tar(dataset, monkeypatch):
    af, tmp = dataset
    import redcaps.dataset.tarify as tarify

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tarify, "_add_sample", broken)
    with pytest.raises(OSError, match="disk full"):
        write_shards(af, tmp / "images", tmp / "tars", "roses_2020", shard_size=4)
    assert list((tmp / "tars").iterdir()) == []


def test_duplicate_image_ids_fail_before_anything_is_written(dataset):
    af, tmp = dataset
    old = write_shards(af, tmp / "images", tmp / "tars", "roses_2020", shard_size=3)
    before = {p.name: _sha(p) for p in (tmp / "tars").iterdir()}
    assert len(old.shards) == 2 and len(before) == 2 * 3 + 2  # + sizes.json and its lock file
    af.annotations.append(dict(af.annotations[1], caption="another caption"))
    with pytest.raises(RedCapsError) as err:
        write_shards(af, tmp / "images", tmp / "tars", "roses_2020", shard_size=1)
    assert str(err.value).startswith("roses_2020: duplicate image_id 'id001' at records 1 and 7;")
    assert {p.name: _sha(p) for p in (tmp / "tars").iterdir()} == before


def test_make_tarfiles_refuses_duplicates_in_one_line(tmp_path):
    from click.testing import CliRunner

    from redcaps.cli.main import main
    from tests.helpers import annotation_file

    records = [record("a1"), record("b2"), record("a1")]
    write_images(tmp_path / "images", records[:2])
    src = tmp_path / "roses_2020.json"
    src.write_text(json.dumps(annotation_file(records).to_json()))
    images, tars = str(tmp_path / "images"), str(tmp_path / "tars")
    args = ["make-tarfiles", "--input", str(src), "--image-dir", images, "--output-dir", tars]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: roses_2020: duplicate image_id 'a1' at records 0 and 2;"
        " ids must be unique (run `redcaps validate` for all problems)"
    ]
    assert not (tmp_path / "tars").exists()


def _manifest(tmp, outcomes):
    from redcaps.download.manifest import Outcome

    folder = tmp / "images" / ".manifests" / "roses_2020"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [Outcome(**o).to_line() for o in outcomes]
    (folder / "00000.jsonl").write_text("".join(lines))
    return folder


def test_metadata_rows_facts_failures_stats_and_sizes(dataset):
    import pyarrow.parquet as pq

    af, tmp = dataset
    ok = [
        dict(image_id=f"id{i:03d}", url=f"https://i.redd.it/id{i:03d}.jpg", status="ok", width=64, height=48)
        | dict(original_width=640, original_height=480)
        for i in range(6)
    ]
    failed = [
        dict(image_id="id006", url="https://i.redd.it/id006.jpg", status="http_404", error="HTTP 404"),
        dict(image_id="id0035", url="https://i.imgur.com/x.jpg", status="placeholder"),  # not in the file
        dict(image_id="aaa", url="https://i.imgur.com/y.jpg", status="not_image"),  # before every key
    ]
    manifests = _manifest(tmp, ok + failed)
    result = write_shards(af, tmp / "images", tmp / "tars", "roses_2020", shard_size=3, manifests=manifests)
    first, second = (pq.read_table(p.with_suffix(".parquet")).to_pylist() for p in result.shards)
    # failures go to the shard whose key range holds their key
    assert [r["key"] for r in first] == ["aaa", "id000", "id001", "id002"]
    assert [r["key"] for r in second] == ["id003", "id0035", "id004", "id005", "id006"]
    by_key = {r["key"]: r for r in first + second}
    assert by_key["id006"]["status"] == "failed_to_download"
    assert by_key["id006"]["error_message"] == "HTTP 404"
    assert by_key["id006"]["caption"] == "a rose id006" and by_key["id006"]["reason"] == "http_404"
    assert by_key["aaa"]["status"] == "failed_to_resize" and by_key["aaa"]["caption"] is None
    good = by_key["id001"]
    image = (tmp / "images" / "roses" / "id001.jpg").read_bytes()
    assert good["status"] == "success" and good["error_message"] is None
    assert (good["width"], good["original_width"]) == (64, 640)
    assert good["sha256"] == hashlib.sha256(image).hexdigest()
    with tarfile.open(result.shards[0]) as tar:
        meta = json.loads(tar.extractfile("id001.json").read())
    assert (meta["original_width"], meta["original_height"]) == (640, 480)

    stats = json.loads((tmp / "tars" / "roses_2020_00000001_stats.json").read_text())
    assert stats["count"] == 5 and stats["successes"] == 3 and stats["failed_to_download"] == 2
    assert stats["failures"] == {"http_404": 1, "placeholder": 1} and stats["duration"] >= 0


def test_sizes_json_keeps_other_stems_under_concurrent_writers(dataset):
    from concurrent.futures import ThreadPoolExecutor

    af, tmp = dataset
    stems = [f"roses_20{n:02d}" for n in range(10, 18)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda s: write_shards(af, tmp / "images", tmp / "tars", s, shard_size=4), stems))
    sizes = json.loads((tmp / "tars" / "sizes.json").read_text())
    assert sizes == {f"{s}_{i:08d}.tar": n for s in stems for i, n in ((0, 4), (1, 2))}
    write_shards(af, tmp / "images", tmp / "tars", "roses_2010", shard_size=10)  # a rerun replaces its own
    sizes = json.loads((tmp / "tars" / "sizes.json").read_text())
    assert sizes["roses_2010_00000000.tar"] == 6 and "roses_2010_00000001.tar" not in sizes
    assert sizes["roses_2011_00000001.tar"] == 2


@pytest.fixture()
def pipeline_year(tmp_path):
    from redcaps.layout import Layout

    layout = Layout.at(tmp_path / "data")
    records = [record(f"id{i:03d}", created_utc=1577923200 + i) for i in range(7)]
    write_images(layout.images, records)
    return annotation_file(records), layout


def test_loose_images_deleted_once_verified_and_restored_on_a_rerun(pipeline_year):
    from redcaps.dataset.tarify import pack, read_index
    from redcaps.settings import ShardSettings, StorageSettings

    af, layout = pipeline_year
    settings, storage = ShardSettings(samples_per_tar=3), StorageSettings(keep_loose=False)
    images = {r["image_id"]: layout.image("roses", r["image_id"]).read_bytes() for r in af.annotations}
    first = pack(af, layout, "roses_2020", settings, storage)
    shards = {p.name: _sha(p) for p in first.shards}
    marker = layout.stage_file("tarify", "roses_2020").read_bytes()
    assert not any(layout.image("roses", key).exists() for key in images)
    assert read_index(layout, "roses_2020")["loose_removed"] == 7
    with tarfile.open(first.shards[0]) as tar:
        assert tar.extractfile("id000.jpg").read() == images["id000"]

    # the index gone (a rerun): the images come back out of the shards, the shards stay the same
    layout.stage_file("tarify", "roses_2020").unlink()
    again = pack(af, layout, "roses_2020", settings, storage)
    assert {p.name: _sha(p) for p in again.shards} == shards and again.missing == []
    assert layout.stage_file("tarify", "roses_2020").read_bytes() == marker
    assert not any(layout.image("roses", key).exists() for key in images)


def test_a_kill_during_the_loose_deletion_leaves_the_marker_byte_identical(pipeline_year):
    """Killed after deleting some loose images: the rerun takes them back, the index is the same."""
    from redcaps.dataset.tarify import pack
    from redcaps.settings import ShardSettings, StorageSettings

    af, layout = pipeline_year
    settings, storage = ShardSettings(samples_per_tar=3), StorageSettings(keep_loose=False)
    uninterrupted = pack(af, layout, "roses_2020", settings, storage)
    marker = layout.stage_file("tarify", "roses_2020").read_bytes()
    layout.stage_file("tarify", "roses_2020").unlink()
    for r in af.annotations[3:]:  # the killed run: 3 of 7 deleted, no index yet
        layout.image("roses", r["image_id"]).write_bytes(b"")
        layout.image("roses", r["image_id"]).unlink()
    pack(af, layout, "roses_2020", settings, storage)
    assert layout.stage_file("tarify", "roses_2020").read_bytes() == marker
    assert uninterrupted.samples == 7


def test_a_damaged_shard_with_loose_images_gone_is_one_line_naming_the_lost(pipeline_year, caplog):
    """keep_loose off and a truncated shard: what still reads is packed again, the rest is one
    warning naming the lost samples, and every later run ends the same way (no traceback loop)."""
    from redcaps.dataset.tarify import pack, read_index
    from redcaps.download.manifest import Outcome
    from redcaps.settings import ShardSettings, StorageSettings

    af, layout = pipeline_year
    manifest = layout.manifests("roses_2020") / "00000000.jsonl"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("".join(Outcome(r["image_id"], r["url"], "ok").to_line() for r in af.annotations))
    settings, storage = ShardSettings(samples_per_tar=3), StorageSettings(keep_loose=False)
    first = pack(af, layout, "roses_2020", settings, storage)
    shard = first.shards[1]  # id003 id004 id005
    shard.write_bytes(shard.read_bytes()[:2000])  # id003's members survive, the rest is cut
    layout.stage_file("tarify", "roses_2020").unlink()
    for _ in range(2):
        caplog.clear()
        again = pack(af, layout, "roses_2020", settings, storage)
        lost = [m for m in caplog.messages if "samples lost" in m]
        assert len(lost) == 1 and "id004, id005" in lost[0]
        assert again.samples == 5 and sorted(again.missing) == ["id004", "id005"]
        assert read_index(layout, "roses_2020")["missing"] == 2


def test_a_damaged_loose_image_is_not_packed(pipeline_year, caplog):
    """The manifest has the stored file's sha256, so a truncated loose JPEG is caught."""
    from redcaps.dataset.tarify import pack
    from redcaps.download.manifest import Outcome
    from redcaps.settings import ShardSettings

    af, layout = pipeline_year
    lines = []
    for r in af.annotations:
        stored = hashlib.sha256(layout.image("roses", r["image_id"]).read_bytes()).hexdigest()
        lines.append(Outcome(r["image_id"], r["url"], "ok", stored_sha256=stored).to_line())
    manifest = layout.manifests("roses_2020") / "00000000.jsonl"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("".join(lines))
    damaged = layout.image("roses", "id002")
    damaged.write_bytes(damaged.read_bytes()[:300])
    result = pack(af, layout, "roses_2020", ShardSettings(samples_per_tar=3))
    assert result.missing == ["id002"] and result.samples == 6
    assert any("id002.jpg: damaged" in m for m in caplog.messages)


def test_a_killed_runs_temp_shards_are_swept_when_tarify_completes(pipeline_year):
    from redcaps.dataset.tarify import pack
    from redcaps.settings import ShardSettings

    af, layout = pipeline_year
    layout.tarfiles.mkdir(parents=True)
    left = layout.tarfiles / ".tmp-roses_2020_00000000.tar.abc123"
    other = layout.tarfiles / ".tmp-cats_2020_00000000.tar.abc123"  # another stem's live writer
    left.write_bytes(b"half a tar")
    other.write_bytes(b"half a tar")
    pack(af, layout, "roses_2020", ShardSettings(samples_per_tar=3))
    assert not left.exists() and other.exists()


def test_loose_images_kept_when_a_shard_does_not_match(pipeline_year, monkeypatch):
    import redcaps.dataset.tarify as tarify
    from redcaps.settings import ShardSettings, StorageSettings

    af, layout = pipeline_year
    real = tarify.shard_digests

    def corrupted(shard):
        digests = real(shard)
        return {key: ("0" * 64 if key == "id004" else digest) for key, digest in digests.items()}

    monkeypatch.setattr(tarify, "shard_digests", corrupted)
    with pytest.raises(RedCapsError, match=r"id004\.jpg: differs from its copy in the shards"):
        tarify.pack(
            af, layout, "roses_2020", ShardSettings(samples_per_tar=3), StorageSettings(keep_loose=False)
        )
    assert all(layout.image("roses", r["image_id"]).exists() for r in af.annotations)
    assert not layout.stage_file("tarify", "roses_2020").exists()  # not done: the rerun tries again
