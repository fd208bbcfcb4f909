"""WebDataset shards: naming, members, reproducibility, no empty shard, readable by webdataset."""

from __future__ import annotations

import hashlib
import json
import tarfile

import pytest
import webdataset as wds

from redcaps.errors import RedCapsError
from redcaps.tarify import write_shards
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
    assert names[:2] == ["id000.jpg", "id000.json"]
    assert meta["caption"] == "a rose id000" and meta["subreddit"] == "roses" and meta["score"] == 10


def test_txt_format_has_bare_caption(dataset):
    af, tmp = dataset
    result = write_shards(af, tmp / "images", tmp / "tars", "roses_2020", fmt="txt")
    with tarfile.open(result.shards[0]) as tar:
        assert tar.extractfile("id001.txt").read() == b"a rose id001"


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
    assert sorted(p.name for p in (tmp / "tars").iterdir()) == ["roses_2020_00000000.tar"]


def test_readable_with_webdataset(dataset):
    af, tmp = dataset
    result = write_shards(af, tmp / "images", tmp / "tars", "roses_2020", shard_size=4)
    urls = [str(p) for p in result.shards]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("pil").to_tuple("__key__", "jpg", "json"))
    assert [k for k, _, _ in samples] == [f"id{i:03d}" for i in range(6)]
    assert samples[0][1].size == (64, 48) and samples[0][2]["image_id"] == "id000"


@pytest.mark.parametrize("fmt", ["json", "txt"])
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
            text = rec["caption"].encode() if fmt == "txt" else json.dumps(rec, sort_keys=True).encode()
            writer.write({"__key__": rec["image_id"], "jpg": image, fmt: text})
        writer.close()
    assert result.shards[0].read_bytes() == reference.read_bytes()


def test_failed_shard_leaves_no_partial_tar(dataset, monkeypatch):
    af, tmp = dataset
    import redcaps.tarify as tarify

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tarify, "_add_sample", broken)
    with pytest.raises(OSError, match="disk full"):
        write_shards(af, tmp / "images", tmp / "tars", "roses_2020", shard_size=4)
    assert list((tmp / "tars").iterdir()) == []


def test_duplicate_image_ids_fail_before_anything_is_written(dataset):
    af, tmp = dataset
    old = write_shards(af, tmp / "images", tmp / "tars", "roses_2020", shard_size=3)
    before = {p.name: _sha(p) for p in old.shards}
    af.annotations.append(dict(af.annotations[1], caption="another caption"))
    with pytest.raises(RedCapsError) as err:
        write_shards(af, tmp / "images", tmp / "tars", "roses_2020", shard_size=1)
    assert str(err.value).startswith("roses_2020: duplicate image_id 'id001' at records 1 and 7;")
    assert {p.name: _sha(p) for p in (tmp / "tars").iterdir()} == before


def test_make_tarfiles_refuses_duplicates_in_one_line(tmp_path):
    from click.testing import CliRunner

    from redcaps.cli import main
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
