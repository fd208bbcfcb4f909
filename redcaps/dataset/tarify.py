"""Pack an annotation file and its images into WebDataset shards (``make-tarfiles``).

Shards keep the original naming ``<stem>_%08d.tar``; each sample has ``<image_id>.jpg``,
``<image_id>.txt`` (the bare caption, what open_clip reads) and ``<image_id>.json`` (the
annotation record plus the image's size, sha256 and download status from the manifests);
``format = json`` or ``txt`` keeps only one of the two. Samples are sorted by key and every
member has a fixed mtime, owner and mode, so the same inputs always give byte-identical
shards. Each shard is written atomically; unlike the original, no empty trailing shard is
ever written. Beside each shard, its img2dataset-style metadata (:mod:`redcaps.dataset.shardmeta`).

Members are written with the standard library's ``tarfile`` in exactly the layout of
``webdataset.TarWriter`` (a test compares the bytes): importing webdataset pulls in torch,
a second or more of start-up per command, and its streaming writer re-slices its buffer
for every 10 KB block, which made packing a quarter of the download path's CPU time.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import tarfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from redcaps.annotations import AnnotationFile, Record
from redcaps.atomic import atomic_open, read_json, sha256_file, sweep_temp_files, write_bytes, write_json
from redcaps.dataset.shardmeta import NO_IMAGE, Row, assign_failures, update_sizes, write_shard_metadata
from redcaps.download.manifest import Outcome, read_manifests
from redcaps.errors import RedCapsError
from redcaps.layout import (
    TARIFY,
    Layout,
    image_path,
    shard_files,
    shard_metadata_path,
    shard_path,
    shard_stats_path,
)
from redcaps.names import check_image_id
from redcaps.settings import Format, ShardSettings, StorageSettings
from redcaps.validate import check_unique_ids

log = logging.getLogger(__name__)

#: 2021-10-01, the RedCaps v1.0 release month: any fixed value makes tars reproducible.
FIXED_MTIME = 1633046400
OWNER = "redcaps"
MEMBER_MODE = 0o444  # read-only members, webdataset's default


@dataclass
class TarifyResult:
    shards: list[Path] = field(default_factory=list)
    samples: int = 0
    missing: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)  # shard file name -> samples


def sample_json(record: Record, facts: dict[str, Any] | None = None) -> bytes:
    """The ``.json`` member: the annotation record (subreddit, caption and the rest), plus the
    image's facts (``key``, ``url``, ``status``, sizes, ``sha256`` of the stored bytes)."""
    return json.dumps({**record, **(facts or {})}, sort_keys=True).encode("utf-8")


def image_facts(record: Record, data: bytes, outcome: Outcome | None) -> dict[str, Any]:
    """What a sample says about its image: sizes from the download manifest (the stored size
    read from the JPEG header without one; the original size is then unknown, null), and
    ``route`` / ``fetched_url`` when it was not got from ``url`` itself."""
    width = height = None
    if outcome is not None and outcome.width and outcome.height:
        width, height = outcome.width, outcome.height
    else:
        with contextlib.suppress(OSError, ValueError), Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    facts = {
        "key": record["image_id"],
        "url": record["url"],
        "status": "success",
        "width": width,
        "height": height,
        "original_width": outcome.original_width if outcome else None,
        "original_height": outcome.original_height if outcome else None,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    if outcome is not None and outcome.route:
        facts.update(route=outcome.route, fetched_url=outcome.fetched_url)
    return facts


def manifest_outcomes(manifests: str | Path | None) -> dict[str, Outcome]:
    """Every outcome in a folder of download manifests (none when there is no such folder)."""
    if manifests is None or not Path(manifests).is_dir():
        return {}
    return read_manifests(sorted(Path(manifests).glob("*.jsonl")))


def images_are_flat(image_dir: Path) -> bool:
    """Whether images sit directly in ``image_dir`` (``<dir>/<id>.jpg``) rather than in the seed's
    ``<dir>/<subreddit>/<id>.jpg``. The original looked only at the first directory entry; here
    any ``*.jpg`` directly inside the directory means flat."""
    return any(Path(image_dir).glob("*.jpg"))


def _image_for(record: Record, image_dir: Path, flat: bool) -> Path:
    if flat:
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
    shard_size: int = ShardSettings.samples_per_tar,
    fmt: Format = ShardSettings.format,
    manifests: str | Path | None = None,
    attempted: Iterable[Record] = (),
) -> TarifyResult:
    """Write ``<output_dir>/<stem>_%08d.tar`` shards with their metadata; instances without an
    image are counted. ``manifests`` is the file's download manifest folder, if any: the image
    facts and the failures in the metadata come from it; ``attempted``, the records the download
    stage read, give a failure its record's fields (caption, author, ...), as img2dataset keeps.

    A repeated ``image_id`` is an error before anything is written: its samples would share
    one image file and one tar key."""
    if shard_size < 1:
        raise ValueError("shard size must be at least 1")
    check_unique_ids(annotations.annotations, stem)
    image_dir, output_dir = Path(image_dir), Path(output_dir)
    sweep_temp_files(output_dir)  # shards a killed run left half-written
    flat = images_are_flat(image_dir)
    outcomes = manifest_outcomes(manifests)
    result = TarifyResult()
    present: list[tuple[Record, Path]] = []
    failures: list[Row] = []
    for record in sorted(annotations.annotations, key=lambda r: r["image_id"]):
        path = _image_for(record, image_dir, flat)
        if path.is_file() and whole(path, outcomes.get(record["image_id"])):
            present.append((record, path))
        else:
            result.missing.append(record["image_id"])
            outcome = outcomes.get(record["image_id"])
            reason = outcome.status if outcome and not outcome.ok else NO_IMAGE
            error = outcome.error if outcome else None
            failures.append(Row(record["image_id"], record, record["url"], {}, reason, error))
    in_file = {r["image_id"] for r in annotations.annotations}
    records = {r["image_id"]: r for r in attempted}
    failures += [
        Row(o.image_id, records.get(o.image_id), o.url, {}, o.status, o.error)
        for o in outcomes.values()
        if not o.ok and o.image_id not in in_file
    ]

    chunks = list(_chunks(present, shard_size))
    failed = assign_failures([chunk[0][0]["image_id"] for chunk in chunks], failures)
    for index, chunk in enumerate(chunks):
        started = time.monotonic()
        shard = shard_path(output_dir, stem, index)
        rows = list(failed[index])
        with atomic_open(shard, "wb") as fh, tarfile.open(fileobj=fh, mode="w") as tar:
            for record, path in chunk:
                data = path.read_bytes()
                facts = image_facts(record, data, outcomes.get(record["image_id"]))
                _add_sample(tar, record["image_id"], sample_members(record, data, facts, fmt))
                rows.append(Row(record["image_id"], record, record["url"], _image_only(facts)))
        write_shard_metadata(shard, rows, time.monotonic() - started)
        result.shards.append(shard)
        result.samples += len(chunk)
        result.sizes[shard.name] = len(chunk)
    _remove_stale_shards(output_dir, stem, len(result.shards))
    update_sizes(output_dir, stem, result.sizes)
    return result


def whole(path: Path, outcome: Outcome | None) -> bool:
    """Whether a loose image is the file the download stored (its manifest's ``stored_sha256``,
    when recorded): a damaged one is never packed, and one warning line names it."""
    if outcome is None or outcome.stored_sha256 is None or sha256_file(path) == outcome.stored_sha256:
        return True
    log.warning("%s: damaged (differs from the image the download stored); not packed", path)
    return False


def sample_members(record: Record, image: bytes, facts: dict[str, Any], fmt: Format) -> dict[str, bytes]:
    """A sample's members: the image, and the caption as ``.txt`` and/or ``.json`` per ``fmt``."""
    members = {"jpg": image}
    if fmt in ("both", "txt"):
        members["txt"] = record["caption"].encode("utf-8")
    if fmt in ("both", "json"):
        members["json"] = sample_json(record, facts)
    return members


def _image_only(facts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in facts.items() if k not in ("key", "url", "status")}


def pack(
    annotations: AnnotationFile,
    layout: Layout,
    file_stem: str,
    settings: ShardSettings,
    storage: StorageSettings | None = None,
    attempted: Iterable[Record] = (),
    refetch: Callable[[list[Record]], None] | None = None,
) -> TarifyResult:
    """The pipeline's Tarify stage: shards of the layout's images, then the index, written last.

    With ``storage.keep_loose`` false the loose images are deleted once every shard has been
    read back and matches them; a rerun (its index gone) first takes the images back out of
    the shards, so the year packs the same either way. ``refetch`` is the download path: the
    ``ok`` images held nowhere whole (a damaged shard took them) go through it once."""
    storage = storage or StorageSettings()
    restored = restore_from_shards(annotations, layout, file_stem)
    refetched = fetch_held_nowhere(annotations, layout, file_stem, refetch) if refetch else set()
    result = write_shards(
        annotations,
        layout.images,
        layout.tarfiles,
        file_stem,
        shard_size=settings.samples_per_tar,
        fmt=settings.format,
        manifests=layout.manifests(file_stem),
        attempted=attempted,
    )
    if restored:
        log.info("%s: %d images taken back out of its shards", file_stem, restored)
    report_lost(file_stem, result, manifest_outcomes(layout.manifests(file_stem)), refetched)
    removed = 0
    if not storage.keep_loose:
        removed = remove_loose_images(annotations, layout, result)
    index = {
        "shards": [str(p) for p in result.shards],
        "samples": result.samples,
        "missing": len(result.missing),
        "shard_size": settings.samples_per_tar,  # the index key stays as it was
        "format": settings.format,
        "keep_loose": storage.keep_loose,
        "loose_removed": removed,
        "restored_from_shards": 0,  # always 0: what a rerun takes back is no result (kept for readers)
    }
    write_json(layout.stage_file(TARIFY, file_stem), index, indent=1)
    sweep_temp_files(layout.tarfiles, older_than=0, named=f"{file_stem}_")  # a killed run's, now replaced
    return result


def fetch_held_nowhere(
    annotations: AnnotationFile, layout: Layout, file_stem: str, refetch: Callable[[list[Record]], None]
) -> set[str]:
    """Hand ``refetch`` the records whose download was ok but whose image is held nowhere whole
    (no loose file or a damaged one, no readable shard copy); their ids. The download path
    records what it gets in the manifest, so a failure there is final and never tried again."""
    outcomes = manifest_outcomes(layout.manifests(file_stem))
    held_nowhere = []
    for record in annotations.annotations:
        outcome = outcomes.get(record["image_id"])
        path = layout.image(record["subreddit"], record["image_id"])
        if outcome is not None and outcome.ok and not (path.is_file() and whole(path, outcome)):
            path.unlink(missing_ok=True)  # a damaged copy would count as stored
            held_nowhere.append(record)
    if held_nowhere:
        log.warning("%s: %d images held nowhere whole; fetching them again", file_stem, len(held_nowhere))
        refetch(held_nowhere)
    return {r["image_id"] for r in held_nowhere}


def report_lost(
    file_stem: str, result: TarifyResult, outcomes: dict[str, Outcome], refetched: Collection[str] = ()
) -> None:
    """One line naming the samples whose download was ok but whose image is held nowhere now
    (no loose file, no readable copy in a shard, not fetched again): lost, counted in the
    index's ``missing``."""
    lost = [i for i in result.missing if i in refetched or ((o := outcomes.get(i)) is not None and o.ok)]
    if lost:
        shown = ", ".join(lost[:20]) + (f" and {len(lost) - 20} more" if len(lost) > 20 else "")
        log.warning(
            "%s: %d samples lost (no loose image, no readable shard copy, not fetched again): %s",
            file_stem,
            len(lost),
            shown,
        )


def restore_from_shards(annotations: AnnotationFile, layout: Layout, file_stem: str) -> int:
    """Write back the loose images a ``keep_loose = false`` run deleted, from the stem's shards;
    a damaged shard gives what it still holds (the rest is packed again or counted missing)."""
    wanted = {
        r["image_id"]: path
        for r in annotations.annotations
        if not (path := layout.image(r["subreddit"], r["image_id"])).exists()
    }
    restored = 0
    for shard in layout.shard_files(file_stem) if wanted else []:
        for key, ext, data in readable_members(shard):
            if ext == "jpg" and key in wanted:
                write_bytes(wanted.pop(key), data)
                restored += 1
    return restored


def readable_members(shard: Path) -> Iterator[tuple[str, str, bytes]]:
    """(key, extension, bytes) of each member of a shard that reads whole, in order; at the first
    damage (a truncated or corrupted tar), one warning line and no more."""
    try:
        with tarfile.open(shard) as tar:
            for member in tar:
                data = tar.extractfile(member)
                if data is not None:
                    key, _, ext = member.name.rpartition(".")
                    yield key, ext, data.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        log.warning("%s: damaged (%s); only the samples before the damage are read", shard, exc)


def shard_digests(shard: Path) -> dict[str, str]:
    """sha256 of every image in a shard, by key, read back from the file."""
    with tarfile.open(shard) as tar:
        return {
            member.name.rpartition(".")[0]: hashlib.sha256(data.read()).hexdigest()
            for member in tar
            if member.name.endswith(".jpg") and (data := tar.extractfile(member)) is not None
        }


def remove_loose_images(annotations: AnnotationFile, layout: Layout, result: TarifyResult) -> int:
    """Delete the loose images the shards hold, after checking every shard against them; a shard
    that does not match is an error and nothing is deleted."""
    packed: dict[str, str] = {}
    for shard in result.shards:
        packed.update(shard_digests(shard))
    paths = {
        r["image_id"]: layout.image(r["subreddit"], r["image_id"])
        for r in annotations.annotations
        if r["image_id"] in packed
    }
    if len(packed) != result.samples or len(paths) != result.samples:
        raise RedCapsError(f"shards hold {len(packed)} images, expected {result.samples}; loose images kept")
    for key, path in paths.items():
        if hashlib.sha256(path.read_bytes()).hexdigest() != packed[key]:
            raise RedCapsError(f"{path}: differs from its copy in the shards; loose images kept")
    for path in paths.values():
        path.unlink()
    return len(paths)


def read_index(layout: Layout, file_stem: str) -> dict[str, Any] | None:
    """The index :func:`pack` wrote (shards, samples, ...), or None before it has run."""
    return read_json(layout.stage_file(TARIFY, file_stem))


def _add_sample(tar: tarfile.TarFile, key: str, members: dict[str, bytes]) -> None:
    """One sample's members, sorted by extension, with fixed metadata (webdataset's layout)."""
    for ext in sorted(members):
        data = members[ext]
        info = tarfile.TarInfo(f"{key}.{ext}")
        info.size, info.mtime, info.mode = len(data), FIXED_MTIME, MEMBER_MODE
        info.uname = info.gname = OWNER
        tar.addfile(info, io.BytesIO(data))


def _remove_stale_shards(output_dir: Path, stem: str, count: int) -> None:
    """A rerun with fewer samples must not leave an old higher-numbered shard (or its metadata),
    even past a gap in the numbers: shards ``0..count-1`` were just written, the rest are stale."""
    for stale in shard_files(output_dir, stem)[count:]:
        for path in (stale, shard_metadata_path(stale), shard_stats_path(stale)):
            path.unlink(missing_ok=True)
