"""Metadata beside WebDataset shards, in img2dataset's conventions (its ``writer.py`` / ``logger.py``).

* ``<stem>_%08d.parquet``: a row per sample and per failed download (filter and Dedup removals
  are not rows), columns named as img2dataset names them where the meaning is the same (``key``, ``caption``,
  ``url``, ``width``, ``height``, ``original_width``, ``original_height``, ``sha256``, ``status``,
  ``error_message``) plus the annotation record's own fields, kept on failed rows too (as
  img2dataset keeps a failure's caption). A failed instance has no sample, so
  its row goes to the shard whose key range holds its key (keys sort like the tar's samples).
* ``<stem>_%08d_stats.json``: img2dataset's ``count``, ``successes``, ``failed_to_download``,
  ``failed_to_resize``, ``duration``, ``status_dict``, plus ``failures`` by our reason codes.
* ``sizes.json``: samples per shard file name for every stem of the folder (open_clip's
  ``get_dataset_size`` reads it); several stems' tasks update it, so it is merged under a lock.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import fnmatch
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from redcaps.annotations import Record
from redcaps.atomic import atomic_open, write_json
from redcaps.layout import shard_glob, shard_metadata_path, shard_stats_path, sizes_path

#: Reasons that mean the body arrived but was not a usable image (img2dataset's "failed_to_resize").
IMAGE_REASONS = frozenset({"not_image", "decode_error", "too_many_pixels", "extreme_aspect_ratio"})
#: A record in the annotation file whose image is not on disk and no manifest says why.
NO_IMAGE = "image_missing"

SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("caption", pa.string()),
        ("url", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("original_width", pa.int64()),
        ("original_height", pa.int64()),
        ("sha256", pa.string()),
        ("status", pa.string()),
        ("error_message", pa.string()),
        ("reason", pa.string()),
        ("image_id", pa.string()),
        ("subreddit", pa.string()),
        ("author", pa.string()),
        ("raw_caption", pa.string()),
        ("score", pa.int64()),
        ("created_utc", pa.int64()),
        ("permalink", pa.string()),
        ("crosspost_parents", pa.list_(pa.string())),
    ]
)


@dataclass
class Row:
    """A sample's facts, or why an instance has none; ``record`` is the annotation record when known."""

    key: str
    record: Record | None
    url: str | None
    facts: dict[str, Any]  # width, height, original_width, original_height, sha256
    reason: str = "ok"  # a download manifest's status ("ok" for a stored image)
    error: str | None = None

    @property
    def status(self) -> str:
        if self.reason == "ok":
            return "success"
        return "failed_to_resize" if self.reason in IMAGE_REASONS else "failed_to_download"

    def as_dict(self) -> dict[str, Any]:
        record = self.record or {}
        row = {name: record.get(name) for name in SCHEMA.names}
        row.update(self.facts)
        row.update(
            key=self.key,
            image_id=self.key,
            url=self.url,
            status=self.status,
            reason=self.reason,
            error_message=None if self.reason == "ok" else (self.error or self.reason),
        )
        return row


#: Columns a shard has only when one of its images came by another route than its ``url``.
ROUTE_FIELDS = [("route", pa.string()), ("fetched_url", pa.string())]


def _schema(rows: Sequence[Row]) -> pa.Schema:
    routed = any(r.facts.get("route") for r in rows)
    return pa.schema([*SCHEMA, *(pa.field(n, t) for n, t in ROUTE_FIELDS)]) if routed else SCHEMA


def assign_failures(first_keys: Sequence[str], failures: Sequence[Row]) -> list[list[Row]]:
    """Each failure goes to the shard whose key range holds its key (the first shard before it);
    with no shard (every image failed) there is nowhere to put them: the result is empty."""
    groups: list[list[Row]] = [[] for _ in first_keys]
    for row in failures if first_keys else ():
        groups[max(0, bisect.bisect_right(first_keys, row.key) - 1)].append(row)
    return groups


def write_shard_metadata(shard: Path, rows: Sequence[Row], duration: float) -> None:
    """The shard's parquet (rows sorted by key) and its ``_stats.json``, each written atomically."""
    rows = sorted(rows, key=lambda r: r.key)
    table = pa.Table.from_pylist([r.as_dict() for r in rows], schema=_schema(rows))
    with atomic_open(shard_metadata_path(shard), "wb") as fh:
        pq.write_table(table, fh)
    write_json(shard_stats_path(shard), shard_stats(rows, duration), indent=4)


def shard_stats(rows: Sequence[Row], duration: float) -> dict[str, Any]:
    statuses = Counter(r.status for r in rows)
    return {
        "count": len(rows),
        "successes": statuses["success"],
        "failed_to_download": statuses["failed_to_download"],
        "failed_to_resize": statuses["failed_to_resize"],
        "duration": round(duration, 3),
        "status_dict": dict(sorted(Counter(r.as_dict()["error_message"] or "success" for r in rows).items())),
        "failures": dict(sorted(Counter(r.reason for r in rows if r.reason != "ok").items())),
        **_routes(rows),
    }


def _routes(rows: Sequence[Row]) -> dict[str, Any]:
    """``{"routes": {"preview": n, ...}}`` counting the samples got by another route; {} if none."""
    routes = Counter(r.facts["route"] for r in rows if r.facts.get("route"))
    return {"routes": dict(sorted(routes.items()))} if routes else {}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update_sizes(output_dir: Path, stem: str, sizes: dict[str, int]) -> None:
    """Replace ``stem``'s entries in ``sizes.json`` with ``sizes`` (shard name -> samples); other
    stems' entries stay. Concurrent writers take turns under an exclusive lock."""
    path = sizes_path(output_dir)
    with _locked(path):
        current = read_sizes(output_dir)
        kept = {name: n for name, n in current.items() if not fnmatch.fnmatchcase(name, shard_glob(stem))}
        write_json(path, dict(sorted({**kept, **sizes}.items())), indent=1)


def read_sizes(output_dir: Path) -> dict[str, int]:
    try:
        sizes = json.loads(sizes_path(output_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return sizes if isinstance(sizes, dict) else {}
