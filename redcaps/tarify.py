"""Pack an annotation file and its images into WebDataset shards (``make-tarfiles``).

Shards keep the original naming ``<stem>_%08d.tar`` and members ``<image_id>.jpg`` +
``<image_id>.json`` (or ``.txt`` with the bare caption, the form open_clip reads). Samples
are sorted by key and every member has a fixed mtime, owner and mode, so the same inputs
always give byte-identical shards. Each shard is written atomically; unlike the original,
no empty trailing shard is ever written.

Members are written with the standard library's ``tarfile`` in exactly the layout of
``webdataset.TarWriter`` (a test compares the bytes): importing webdataset pulls in torch,
a second or more of start-up per command, and its streaming writer re-slices its buffer
for every 10 KB block, which made packing a quarter of the download path's CPU time.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from redcaps.annotations import AnnotationFile, Record
from redcaps.atomic import atomic_open, sweep_temp_files, write_json
from redcaps.layout import TARIFY, Layout, image_path, shard_path
from redcaps.names import check_image_id
from redcaps.settings import Format, ShardSettings
from redcaps.validate import check_unique_ids

#: 2021-10-01, the RedCaps v1.0 release month: any fixed value makes tars reproducible.
FIXED_MTIME = 1633046400
OWNER = "redcaps"
MEMBER_MODE = 0o444  # read-only members, webdataset's default


@dataclass
class TarifyResult:
    shards: list[Path] = field(default_factory=list)
    samples: int = 0
    missing: list[str] = field(default_factory=list)


def sample_json(record: Record) -> bytes:
    """The ``.json`` member: the annotation record (subreddit, caption and the rest)."""
    return json.dumps(record, sort_keys=True).encode("utf-8")


def layout_of(image_dir: Path) -> Literal["nested", "flat"]:
    """Seed layout is ``<dir>/<subreddit>/<id>.jpg``; a flat ``<dir>/<id>.jpg`` also works.

    The original looked only at the first directory entry; here any ``*.jpg`` directly
    inside the directory means flat.
    """
    return "flat" if any(Path(image_dir).glob("*.jpg")) else "nested"


def _image_for(record: Record, image_dir: Path, layout: str) -> Path:
    if layout == "flat":
        return Path(image_dir) / f"{check_image_id(record['image_id'])}.jpg"
    return image_path(image_dir, record["subreddit"], record["image_id"])


def _chunks(items: Sequence[Record], size: int) -> Iterator[Sequence[Record]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def write_shards(
    annotations: AnnotationFile,
    image_dir: str | Path,
    output_dir: str | Path,
    stem: str,
    *,
    shard_size: int = ShardSettings.shard_size,
    fmt: Format = ShardSettings.format,
) -> TarifyResult:
    """Write ``<output_dir>/<stem>_%08d.tar`` shards; instances without an image are counted.

    A repeated ``image_id`` is an error before anything is written: its samples would share
    one image file and one tar key."""
    if shard_size < 1:
        raise ValueError("shard size must be at least 1")
    check_unique_ids(annotations.annotations, stem)
    image_dir, output_dir = Path(image_dir), Path(output_dir)
    sweep_temp_files(output_dir)  # shards a killed run left half-written
    layout = layout_of(image_dir)
    result = TarifyResult()
    present: list[tuple[Record, Path]] = []
    for record in sorted(annotations.annotations, key=lambda r: r["image_id"]):
        path = _image_for(record, image_dir, layout)
        if path.is_file():
            present.append((record, path))
        else:
            result.missing.append(record["image_id"])

    for index, chunk in enumerate(_chunks(present, shard_size)):
        shard = shard_path(output_dir, stem, index)
        with atomic_open(shard, "wb") as fh, tarfile.open(fileobj=fh, mode="w") as tar:
            for record, path in chunk:
                members = {"jpg": path.read_bytes()}
                if fmt == "txt":
                    members["txt"] = record["caption"].encode("utf-8")
                else:
                    members["json"] = sample_json(record)
                _add_sample(tar, record["image_id"], members)
        result.shards.append(shard)
        result.samples += len(chunk)
    _remove_stale_shards(output_dir, stem, len(result.shards))
    return result


def pack(
    annotations: AnnotationFile, layout: Layout, file_stem: str, settings: ShardSettings
) -> TarifyResult:
    """The pipeline's Tarify stage: shards of the layout's images, then the index, written last."""
    result = write_shards(
        annotations,
        layout.images,
        layout.tarfiles,
        file_stem,
        shard_size=settings.shard_size,
        fmt=settings.format,
    )
    index = {
        "shards": [str(p) for p in result.shards],
        "samples": result.samples,
        "missing": len(result.missing),
        "shard_size": settings.shard_size,
        "format": settings.format,
    }
    write_json(layout.stage_file(TARIFY, file_stem), index, indent=1)
    return result


def read_index(layout: Layout, file_stem: str) -> dict[str, Any] | None:
    """The index :func:`pack` wrote (shards, samples, ...), or None before it has run."""
    try:
        index = json.loads(layout.stage_file(TARIFY, file_stem).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) else None


def _add_sample(tar: tarfile.TarFile, key: str, members: dict[str, bytes]) -> None:
    """One sample's members, sorted by extension, with fixed metadata (webdataset's layout)."""
    for ext in sorted(members):
        data = members[ext]
        info = tarfile.TarInfo(f"{key}.{ext}")
        info.size, info.mtime, info.mode = len(data), FIXED_MTIME, MEMBER_MODE
        info.uname = info.gname = OWNER
        tar.addfile(info, io.BytesIO(data))


def _remove_stale_shards(output_dir: Path, stem: str, count: int) -> None:
    """A rerun with fewer samples must not leave an old higher-numbered shard behind."""
    index = count
    while (stale := shard_path(output_dir, stem, index)).exists():
        stale.unlink()
        index += 1
