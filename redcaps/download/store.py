"""Where downloaded images are kept: the few operations a shard needs, and today's loose files.

Like img2dataset's writers, the store is handed to the download rather than built into it, so
another storage (a tar being written, an object store) needs no change to the engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from redcaps.annotations import Record
from redcaps.atomic import sweep_temp_files, write_bytes
from redcaps.layout import image_path


class ImageStore(Protocol):
    """What the download engine asks of a storage (it must pickle: download processes get a copy)."""

    def write(self, record: Record, jpeg: bytes) -> None:
        """Store a record's image atomically: after a crash it is whole or absent."""

    def exists(self, record: Record) -> bool:
        """Whether a record's image is stored."""

    def sweep(self, records: Iterable[Record]) -> None:
        """Remove what a killed run left half-written where these records' images go."""


@dataclass(frozen=True)
class LooseFiles:
    """One JPEG file per image under ``image_dir``, in the seed layout (:func:`image_path`)."""

    image_dir: Path

    def path(self, record: Record) -> Path:
        return image_path(self.image_dir, record["subreddit"], record["image_id"])

    def write(self, record: Record, jpeg: bytes) -> None:
        write_bytes(self.path(record), jpeg)

    def exists(self, record: Record) -> bool:
        return self.path(record).exists()

    def sweep(self, records: Iterable[Record]) -> None:
        for subreddit in {r["subreddit"] for r in records}:
            sweep_temp_files(self.image_dir / subreddit)


def as_store(images: ImageStore | str | Path) -> ImageStore:
    """A store as given, or a directory's loose files (what callers passed before stores)."""
    return LooseFiles(Path(images)) if isinstance(images, (str, Path)) else images
