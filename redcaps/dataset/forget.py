"""Honour a takedown without a rebuild: remove given post ids from a published dataset.

Every annotation file of a stem (the final one and each stage's, so no rerun of a later stage
brings an id back), its tars, their parquet and ``_stats.json``, ``sizes.json``, the Tarify
index and the loose images lose the forgotten ids. What was removed is recorded in
``stages/forget/<stem>.removals.jsonl`` (one line per id, sorted), so the same request gives
the same bytes however often it runs.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Collection, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from redcaps import annotations as ann
from redcaps.atomic import atomic_open, read_json, read_jsonl, write_json
from redcaps.dataset.shardmeta import Row, shard_stats, update_sizes
from redcaps.dataset.tarify import read_index
from redcaps.layout import TARIFY, Layout, image_path, shard_metadata_path, shard_stats_path

FORGET = "forget"


def read_ids(path: str | Path) -> set[str]:
    """Post ids, one per line (``t3_`` prefixes and blank lines or ``#`` comments allowed)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return {line.strip().removeprefix("t3_") for line in lines if line.strip() and not line.startswith("#")}


def stems(layout: Layout) -> list[str]:
    """Every stem with a published annotation file or an annotation file of any stage."""
    found = {p.stem for p in layout.annotations.glob("*.json")}
    found |= {p.stem for p in layout.stages.glob("*/*.json") if "." not in p.stem}
    return sorted(s for s in found if not s.startswith("."))


def forget(layout: Layout, ids: Collection[str]) -> dict[str, list[str]]:
    """Remove ``ids`` from every stem; stem -> the ids it held, sorted (only stems that held some)."""
    removed = {}
    for stem in stems(layout):
        held = sorted(_forget_stem(layout, stem, set(ids)))
        record = layout.stage_file(FORGET, stem, ".removals.jsonl")
        if held:
            removed[stem] = held
            _record(record, stem, held)
        _delete_images(
            layout, stem, {r["image_id"] for r in read_jsonl(record)} if record.exists() else set()
        )
    return removed


def _delete_images(layout: Layout, stem: str, ids: Iterable[str]) -> None:
    """The loose images of the stem's forgotten ids (all it ever forgot: an interrupted run's too)."""
    subreddit = stem.rsplit("_", 1)[0]
    for image_id in ids:
        image_path(layout.images, subreddit, image_id).unlink(missing_ok=True)


def _forget_stem(layout: Layout, stem: str, ids: set[str]) -> set[str]:
    held: set[str] = set()
    for path in [layout.final_file(stem), *sorted(layout.stages.glob(f"*/{stem}.json"))]:
        held |= _forget_in_annotations(path, ids)
    sizes = {}
    for shard in layout.shard_files(stem):
        held |= _forget_in_shard(shard, ids)
        sizes[shard.name] = sum(1 for m in _members(shard) if m.name.endswith(".jpg"))
    if sizes:
        update_sizes(layout.tarfiles, stem, sizes)
        index = read_index(layout, stem)
        if index is not None:
            write_json(layout.stage_file(TARIFY, stem), {**index, "samples": sum(sizes.values())}, indent=1)
    return held


def _forget_in_annotations(path: Path, ids: set[str]) -> set[str]:
    """Drop ``ids`` from one annotation file (a stage's or the final one) if it has any."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        return set()
    held = {r.get("image_id") for r in data["annotations"] if isinstance(r, dict)} & ids
    if held:
        loaded = ann.load(path)
        kept = [r for r in loaded.annotations if r["image_id"] not in held]
        ann.save(path, ann.AnnotationFile(loaded.info, kept))
    return held  # type: ignore[return-value]


def _members(shard: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(shard) as tar:
        return tar.getmembers()


def _forget_in_shard(shard: Path, ids: set[str]) -> set[str]:
    """Rewrite one tar without the samples of ``ids`` (other members byte for byte as they
    were), then its parquet rows and its ``_stats.json``."""
    key = lambda name: name.split(".", 1)[0]  # noqa: E731 - webdataset's key of a member
    held = {key(m.name) for m in _members(shard)} & ids
    metadata = shard_metadata_path(shard)
    table = pq.read_table(metadata) if metadata.exists() else None
    if table is not None:
        held |= set(table.column("key").to_pylist()) & ids
    if not held:
        return held
    with tarfile.open(shard) as source:
        kept = [(m, source.extractfile(m).read()) for m in source.getmembers() if key(m.name) not in held]  # type: ignore[union-attr]
    with atomic_open(shard, "wb") as fh, tarfile.open(fileobj=fh, mode="w") as tar:
        for member, data in kept:
            tar.addfile(member, io.BytesIO(data))
    if table is not None:
        rows = [r for r in table.to_pylist() if r["key"] not in held]
        with atomic_open(metadata, "wb") as fh:
            pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), fh)
        stats = read_json(shard_stats_path(shard)) or {}
        write_json(shard_stats_path(shard), shard_stats(_rows(rows), stats.get("duration", 0.0)), indent=4)
    return held


def _rows(rows: Iterable[dict]) -> list[Row]:
    facts = lambda r: {"route": r["route"]} if r.get("route") else {}  # noqa: E731
    return [Row(r["key"], None, r["url"], facts(r), r["reason"], r["error_message"]) for r in rows]


def _record(path: Path, stem: str, held: list[str]) -> None:
    """Add ``held`` to the stem's removals record (sorted, each id once)."""
    before = {r["image_id"]: r for r in read_jsonl(path)} if path.exists() else {}
    before.update({i: {"image_id": i, "subreddit": stem.rsplit("_", 1)[0], "reason": FORGET} for i in held})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w") as fh:
        fh.writelines(json.dumps(before[i], sort_keys=True) + "\n" for i in sorted(before))
