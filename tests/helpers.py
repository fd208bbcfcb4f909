"""Small builders shared by tests (annotation records and files)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from redcaps import annotations as ann


def record(
    image_id: str = "abc123", subreddit: str = "roses", created_utc: int = 1577923200, **overrides: Any
) -> dict[str, Any]:
    rec = {
        "image_id": image_id,
        "author": "someone",
        "url": f"https://i.redd.it/{image_id}.jpg",
        "raw_caption": f"A rose {image_id} [OC]",
        "caption": f"a rose {image_id}",
        "subreddit": subreddit,
        "score": 10,
        "created_utc": created_utc,
        "permalink": f"/r/{subreddit}/comments/{image_id}/a_rose/",
    }
    rec.update(overrides)
    return rec


def annotation_file(
    records: list[dict[str, Any]], start: str = "2020-01-01", end: str = "2020-12-31"
) -> ann.AnnotationFile:
    return ann.AnnotationFile(
        {"start_date": start, "end_date": end, "url": "https://redcaps.xyz", "version": "1.0"}, records
    )


def jpeg_bytes(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_images(image_dir: Path, records: list[dict[str, Any]]) -> None:
    for i, rec in enumerate(records):
        path = image_dir / rec["subreddit"] / f"{rec['image_id']}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes(color=(i * 7 % 256, 100, 50)))
