"""The pipeline's shards read as they are by the loaders people train with: open_clip's pattern
(written out with webdataset), Hugging Face ``datasets``, and pandas/pyarrow on the metadata."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import luigi
import pandas as pd
import pytest
import webdataset as wds
from PIL import Image

from pipeline import RedCapsYear
from redcaps import annotations as ann
from redcaps.dataset.tarify import write_shards
from redcaps.download.manifest import read_manifests
from tests.helpers import annotation_file, record, write_images
from tests.test_pipeline_year import build, cases, restore_luigi_config, set_config  # noqa: F401 - autouse

STEM = "sandboxroses_2020"


@pytest.fixture()
def year(sandbox_env, luigi_config) -> tuple[Path, list[str], dict[str, dict]]:
    """One sandbox year through the real pipeline (word filter only); its shards and records."""
    set_config("filters", enabled="words")
    set_config("downloads", read_timeout="10")  # the population has no slow images; a loaded machine
    result = build(RedCapsYear(subreddit="sandboxroses", year=2020))
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text
    shards = sorted(str(p) for p in (luigi_config / "tarfiles").glob(f"{STEM}_*.tar"))
    records = {r["image_id"]: r for r in ann.load(luigi_config / "annotations" / f"{STEM}.json").annotations}
    assert len(shards) > 1 and records
    return luigi_config, shards, records


@pytest.mark.slow
def test_loaders_read_every_sample(year, tmp_path, monkeypatch):
    data, shards, records = year

    # open_clip's get_wds_dataset, the part that reads samples
    pipeline = (
        wds.WebDataset(shards, shardshuffle=False)
        .decode("pil")
        .rename(image="jpg;png;jpeg;webp", text="txt")
        .to_tuple("image", "text")
    )
    pairs = list(pipeline)
    assert sorted(text for _, text in pairs) == sorted(r["caption"] for r in records.values())
    assert all(isinstance(image, Image.Image) and image.size[0] > 0 for image, _ in pairs)

    # open_clip reads the sample count from sizes.json, by shard file name
    sizes = json.loads((data / "tarfiles" / "sizes.json").read_text())
    assert sum(sizes[Path(s).name] for s in shards) == len(records)

    # Hugging Face datasets' webdataset builder, offline, from local files
    from datasets import load_dataset

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    loaded = load_dataset("webdataset", data_files={"train": shards}, split="train", cache_dir=str(tmp_path))
    assert len(loaded) == len(records)
    manifests = read_manifests(sorted((data / "images" / ".manifests" / STEM).glob("*.jsonl")))
    for row in loaded:
        meta, image = row["json"], row["jpg"]
        record = records[meta["key"]]
        assert row["txt"] == record["caption"] == meta["caption"]
        assert {k: meta[k] for k in record} == record  # the annotation record, unchanged
        outcome = manifests[meta["key"]]
        assert (meta["width"], meta["height"]) == image.size == (outcome.width, outcome.height)
        assert (meta["original_width"], meta["original_height"]) == (
            outcome.original_width,
            outcome.original_height,
        )
        assert meta["status"] == "success" and meta["url"] == record["url"]

    # pandas / pyarrow on the metadata: every instance attempted, failures with their reason
    table = pd.read_parquet(sorted((data / "tarfiles").glob(f"{STEM}_*.parquet")))
    ok = table[table["status"] == "success"]
    assert sorted(ok["key"]) == sorted(records) and ok["caption"].notna().all()
    by_case = cases("sandboxroses", 2020)
    failed = table[table["status"] != "success"]
    assert sorted(failed["key"]) == sorted(by_case["image_gone"] + by_case["imgur_deleted"])
    assert set(failed["reason"]) == {"http_404", "placeholder"} and failed["error_message"].notna().all()
    attempted = {r["image_id"]: r for r in ann.load(data / "stages" / "merged" / f"{STEM}.json").annotations}
    for row in (
        failed.astype(object).where(failed.notna(), None).to_dict("records")
    ):  # a failure keeps its record's fields, as img2dataset does
        fields = ("caption", "subreddit", "author", "permalink")
        assert {k: row[k] for k in fields} == {k: attempted[row["key"]][k] for k in fields}
    first = ok.iloc[0]
    stored = (data / "images" / "sandboxroses" / f"{first['key']}.jpg").read_bytes()
    assert first["sha256"] == hashlib.sha256(stored).hexdigest()
    assert Image.open(io.BytesIO(stored)).size == (first["width"], first["height"])

    stats = [json.loads(Path(s).with_name(Path(s).stem + "_stats.json").read_text()) for s in shards]
    assert sum(s["successes"] for s in stats) == len(records)
    assert sum(s["count"] for s in stats) == len(table)
    assert sum(s["failures"].get("http_404", 0) for s in stats) == len(by_case["image_gone"])


def readme_loader_snippet() -> str:
    """The README's Python block that reads the demo's shards."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    return next(block for block in blocks if "demo-data/tarfiles" in block)


def test_the_readmes_loaders_work_as_written(tmp_path, monkeypatch):
    """webdataset and Hugging Face datasets, exactly as the README says, on shards beside their
    sizes.json and _stats.json (which make the folder-only form pick the JSON builder)."""
    records = [record(f"id{i:03d}", created_utc=1577923200 + i) for i in range(5)]
    write_images(tmp_path / "images", records)
    folder = tmp_path / "demo-data" / "tarfiles"
    write_shards(annotation_file(records), tmp_path / "images", folder, "roses_2020", shard_size=2)
    assert (folder / "sizes.json").is_file() and list(folder.glob("*_stats.json"))
    snippet = readme_loader_snippet()
    assert 'load_dataset("webdataset", data_files=' in snippet
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    assert scope["caption"] == "a rose id000" and isinstance(scope["image"], Image.Image)
    assert sorted(scope["hf"]["txt"]) == sorted(r["caption"] for r in records)
