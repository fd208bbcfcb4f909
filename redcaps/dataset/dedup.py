"""Duplicate images: exact (same sha256 of the stored JPEG) and near (pHash within a small distance).

Crossposts and reposts put the same photo in several subreddits and years. Each image is hashed
once (``stages/dedup/<stem>.hashes.jsonl``); duplicates are grouped, the earliest instance of a
group (``created_utc``, then ``image_id``) is kept and the others are its duplicates: ``exact``
when an earlier member has the same bytes, else ``near``. ``[dedup] mode`` says what the stage
drops from the file (``off``: nothing, ``exact``, or ``perceptual``: exact and near); the
groups are always recorded (``<stem>.duplicates.jsonl``) and counted in ``info.dedup``.

Near duplicates are found with multi-index hashing: 64-bit hashes within distance ``d`` agree
exactly on at least one of ``d + 1`` blocks of bits, so only hashes sharing a block are compared.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import imagehash
from PIL import Image

from redcaps.annotations import AnnotationFile
from redcaps.atomic import atomic_open, read_jsonl, write_json
from redcaps.errors import RedCapsError
from redcaps.layout import DEDUP, Layout
from redcaps.settings import DedupSettings

HASH_BITS = 64  # imagehash.phash with its default hash_size of 8


@dataclass(frozen=True)
class ImageHashes:
    """One image's hashes (a line of ``<stem>.hashes.jsonl``)."""

    image_id: str
    subreddit: str
    created_utc: int
    sha256: str
    phash: str  # 16 hex digits
    stem: str = ""

    @property
    def order(self) -> tuple[int, str, str]:
        return (self.created_utc, self.image_id, self.stem)


def hash_image(path: Path) -> tuple[str, str]:
    """(sha256 of the file's bytes, pHash as hex) of one stored image."""
    data = path.read_bytes()
    with Image.open(path) as image:
        return hashlib.sha256(data).hexdigest(), str(imagehash.phash(image))


def read_hashes(path: Path) -> list[ImageHashes]:
    """The lines of a hashes file (none when it does not exist)."""
    return [ImageHashes(**record) for record in read_jsonl(path)]


def file_hashes(annotations: AnnotationFile, layout: Layout, stem: str) -> list[ImageHashes]:
    """Hashes of every instance whose image is on disk, reusing the stem's hashes file, which is
    rewritten with them (an image is hashed once, however often the stage runs)."""
    path = layout.image_hashes(stem)
    known = {h.image_id: h for h in read_hashes(path)}
    hashes = []
    for record in annotations.annotations:
        found = known.get(record["image_id"])
        if found is None or found.subreddit != record["subreddit"]:
            image = layout.image(record["subreddit"], record["image_id"])
            if not image.is_file():
                continue
            sha256, phash = hash_image(image)
            found = ImageHashes(
                record["image_id"], record["subreddit"], int(record["created_utc"]), sha256, phash
            )
        hashes.append(ImageHashes(**{**asdict(found), "stem": stem}))
    with atomic_open(path, "w") as fh:
        fh.writelines(json.dumps(asdict(h), sort_keys=True) + "\n" for h in hashes)
    return hashes


def _blocks(value: int, count: int) -> list[tuple[int, int]]:
    """``value``'s bits cut into ``count`` blocks, each tagged with its index."""
    size = -(-HASH_BITS // count)
    return [(i, (value >> (i * size)) & ((1 << size) - 1)) for i in range(count)]


class _Groups:
    """Union-find over indices."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def find_groups(hashes: Sequence[ImageHashes], max_distance: int) -> list[dict[str, Any]]:
    """Groups of duplicates, each ``{"kept": ..., "duplicates": [...]}``, earliest first."""
    items = sorted(hashes, key=lambda h: h.order)
    groups = _Groups(len(items))
    first_of_sha: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.sha256 in first_of_sha:
            groups.union(i, first_of_sha[item.sha256])
        else:
            first_of_sha[item.sha256] = i
    distinct = list(first_of_sha.values())  # one image per sha256 for the near search
    values = {i: int(items[i].phash, 16) for i in distinct}
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i in distinct:
        for block in _blocks(values[i], max_distance + 1):
            buckets[block].append(i)
    for members in buckets.values():
        for x, a in enumerate(members):
            for b in members[x + 1 :]:
                if (values[a] ^ values[b]).bit_count() <= max_distance:
                    groups.union(a, b)

    components: dict[int, list[int]] = defaultdict(list)
    for i in range(len(items)):
        components[groups.find(i)].append(i)
    result = []
    for members in sorted((m for m in components.values() if len(m) > 1), key=lambda m: m[0]):
        kept = items[members[0]]
        duplicates = []
        for i in members[1:]:
            item = items[i]
            exact = first_of_sha[item.sha256] != i
            distance = (int(item.phash, 16) ^ int(kept.phash, 16)).bit_count()
            duplicates.append({**_entry(item), "kind": "exact" if exact else "near", "distance": distance})
        result.append({"kept": _entry(kept), "duplicates": duplicates})
    return result


def _entry(item: ImageHashes) -> dict[str, Any]:
    entry = {"image_id": item.image_id, "subreddit": item.subreddit, "sha256": item.sha256}
    return {**entry, "stem": item.stem} if item.stem else entry


def dropped_ids(groups: Iterable[dict[str, Any]], mode: str) -> set[str]:
    """The instances ``mode`` drops: none (``off``), exact copies, or every duplicate."""
    if mode == "off":
        return set()
    kinds = {"exact"} if mode == "exact" else {"exact", "near"}
    return {d["image_id"] for g in groups for d in g["duplicates"] if d["kind"] in kinds}


def counts(groups: Iterable[dict[str, Any]]) -> dict[str, int]:
    duplicates = [d for g in groups for d in g["duplicates"]]
    return {
        "exact": sum(d["kind"] == "exact" for d in duplicates),
        "near": sum(d["kind"] == "near" for d in duplicates),
    }


def dedup_file(
    annotations: AnnotationFile, layout: Layout, stem: str, settings: DedupSettings
) -> AnnotationFile:
    """The Dedup stage: hash, group, record the groups, then write the file (last) with the
    duplicates ``settings.mode`` drops removed and an ``info.dedup`` block."""
    if not 0 <= settings.max_distance < HASH_BITS:
        raise RedCapsError(f"[dedup] max_distance must be 0..{HASH_BITS - 1}, got {settings.max_distance}")
    hashes = file_hashes(annotations, layout, stem)
    groups = find_groups([ImageHashes(**{**asdict(h), "stem": ""}) for h in hashes], settings.max_distance)
    drop = dropped_ids(groups, settings.mode)
    for group in groups:
        for duplicate in group["duplicates"]:
            duplicate["dropped"] = duplicate["image_id"] in drop
    with atomic_open(layout.duplicates(stem), "w") as fh:
        fh.writelines(json.dumps(g, sort_keys=True) + "\n" for g in groups)
    info = dict(annotations.info)
    info["dedup"] = {
        "mode": settings.mode,
        "max_distance": settings.max_distance,
        "hash": "imagehash.phash",
        "hashed": len(hashes),
        **counts(groups),
        "dropped": len(drop),
    }
    result = AnnotationFile(info, [r for r in annotations.annotations if r["image_id"] not in drop])
    write_json(layout.stage_file(DEDUP, stem), result.to_json())
    return result


def read_counts(layout: Layout, stem: str) -> dict[str, Any] | None:
    """``{"exact", "near", "dropped", "mode"}`` of a stem's Dedup stage, or None before it ran."""
    try:
        with open(layout.stage_file(DEDUP, stem), encoding="utf-8") as fh:
            block = json.load(fh).get("info", {}).get("dedup")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(block, dict):
        return None
    return {key: block.get(key) for key in ("exact", "near", "dropped", "mode")}


def batch_duplicates(
    layout: Layout, stems: Iterable[str], batch_name: str, max_distance: int = DedupSettings.max_distance
) -> dict[str, int]:
    """Duplicates across the stems of a batch, from their hashes files: the groups whose
    members come from more than one stem go to ``stages/batch/<name>.duplicates.jsonl``.
    Recorded only; nothing is dropped from published years."""
    hashes = [h for stem in stems for h in read_hashes(layout.image_hashes(stem))]
    across = [g for g in find_groups(hashes, max_distance) if _spans_stems(g)]
    with atomic_open(layout.batch_duplicates(batch_name), "w") as fh:
        fh.writelines(json.dumps(g, sort_keys=True) + "\n" for g in across)
    return batch_counts(across)


def _spans_stems(group: dict[str, Any]) -> bool:
    return len({group["kept"]["stem"]} | {d["stem"] for d in group["duplicates"]}) > 1


def batch_counts(groups: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Groups spanning stems, and their members in another stem than the kept one, by kind."""
    groups = list(groups)
    other = [d for g in groups for d in g["duplicates"] if d["stem"] != g["kept"]["stem"]]
    return {
        "groups": len(groups),
        "exact": sum(d["kind"] == "exact" for d in other),
        "near": sum(d["kind"] == "near" for d in other),
    }


def read_batch_counts(layout: Layout, batch_name: str) -> dict[str, int] | None:
    """:func:`batch_counts` of a batch's duplicates file (``<name>-<digest>``), or None before it ran."""
    path = layout.batch_duplicates(batch_name)
    return batch_counts(read_jsonl(path)) if path.exists() else None
