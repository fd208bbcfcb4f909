"""Report thumbnails: a deterministic sample per subreddit, read from loose images or the shards.

Images the NSFW filter removed are never thumbnailed (even while their files still exist, in a
half-finished run); face-filter removals are blurred.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageFilter

from redcaps.layout import Layout

if TYPE_CHECKING:
    from redcaps.report.html import StemData

#: Thumbnails per subreddit on the contact sheet, their longest edge, and the face blur radius.
SAMPLES_PER_SUBREDDIT = 12
THUMBNAIL_EDGE = 128
FACE_BLUR_RADIUS = 8
#: Filters whose removed images are never shown, and those shown only blurred.
NEVER_SHOWN = ("nsfw",)
BLURRED = ("faces",)


class ImageReader:
    """An instance's stored image: the loose file, or the member ``<id>.jpg`` of the stem's shards."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._members: dict[str, dict[str, Path]] = {}

    def _shard_members(self, stem: str) -> dict[str, Path]:
        if stem not in self._members:
            members: dict[str, Path] = {}
            for shard in self.layout.shard_files(stem):
                try:
                    with tarfile.open(shard) as tar:
                        members.update((name, shard) for name in tar.getnames())
                except (OSError, tarfile.TarError):
                    continue
            self._members[stem] = members
        return self._members[stem]

    def read(self, stem: str, subreddit: str, image_id: str) -> bytes | None:
        try:
            return self.layout.image(subreddit, image_id).read_bytes()
        except (OSError, ValueError):
            pass
        name = f"{image_id}.jpg"
        shard = self._shard_members(stem).get(name)
        if shard is None:
            return None
        try:
            with tarfile.open(shard) as tar:
                member = tar.extractfile(name)
                return member.read() if member else None
        except (OSError, tarfile.TarError, KeyError):
            return None


def thumbnail(data: bytes, blur: bool = False) -> bytes | None:
    """A small JPEG of an image (blurred beyond recognition when ``blur``), or None if unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("RGB")
            image.thumbnail((THUMBNAIL_EDGE, THUMBNAIL_EDGE))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(FACE_BLUR_RADIUS))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=75)
    return out.getvalue()


def _sample_order(image_id: str) -> str:
    return hashlib.sha256(image_id.encode()).hexdigest()


def contact_sheet(
    layout: Layout,
    files: list[StemData],
    per_subreddit: int = SAMPLES_PER_SUBREDDIT,
    routes: dict[str, str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """A deterministic sample of thumbnails per subreddit: ``{"image_id", "caption", "jpeg",
    "blurred", "route"}``; with ``routes`` (image id -> route), only of those images."""
    never = {i for f in files for kind in NEVER_SHOWN for i in f.removed_ids.get(kind, ())}
    blurred = {i for f in files for kind in BLURRED for i in f.removed_ids.get(kind, ())}
    candidates: dict[str, list[tuple[str, str, dict[str, Any]]]] = defaultdict(list)
    for data in files:
        for instance in data.instances:
            image_id = instance["image_id"]
            if image_id not in never and (routes is None or image_id in routes):
                candidates[data.subreddit].append((_sample_order(image_id), data.stem, instance))
    reader = ImageReader(layout)
    sheet: dict[str, list[dict[str, Any]]] = {}
    for subreddit in sorted(candidates):
        chosen: list[dict[str, Any]] = []
        for _, stem, instance in sorted(candidates[subreddit], key=lambda c: c[0]):
            if len(chosen) >= per_subreddit:
                break
            image_id = instance["image_id"]
            data = reader.read(stem, subreddit, image_id)
            jpeg = thumbnail(data, blur=image_id in blurred) if data else None
            if jpeg is not None:
                caption = str(instance.get("caption", ""))
                route = (routes or {}).get(image_id)
                chosen.append(
                    {
                        "image_id": image_id,
                        "caption": caption,
                        "jpeg": jpeg,
                        "blurred": image_id in blurred,
                        "route": route,
                    }
                )
        sheet[subreddit] = chosen
    return sheet


def recovered_routes(files: list[StemData]) -> dict[str, str]:
    """Image id -> the route (``rewrite``, ``preview``) of each ok image not from its original URL."""
    return {
        str(row["image_id"]): str(row["route"])
        for data in files
        for row in data.manifest
        if row.get("status") == "ok" and row.get("route") not in (None, "original")
    }
