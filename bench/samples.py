"""Inputs the filter benchmarks share: records, annotation files, and <=512 px JPEGs cut from
the photos the scikit-image wheel ships (offline, public domain or CC0)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from redcaps import annotations as ann

PHOTOS = ("astronaut.png", "camera.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png")


def record(image_id: str, n: int, caption: str = "photo") -> ann.Record:
    return {
        "image_id": image_id,
        "author": "bench",
        "url": f"https://i.redd.it/{image_id}.jpg",
        "raw_caption": caption,
        "caption": caption,
        "subreddit": "bench",
        "score": 10,
        "created_utc": 1_600_000_000 + n,
        "permalink": f"/r/bench/comments/{image_id}/x/",
    }


def annotation_file(records: list[ann.Record]) -> ann.AnnotationFile:
    return ann.AnnotationFile(ann.new_info(dt.date(2020, 1, 1), dt.date(2020, 12, 31)), records)


def sample_photos() -> list[Image.Image]:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("error: scikit-image is needed for the sample photos (pip install scikit-image)")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return [Image.open(data / name).convert("RGB") for name in PHOTOS]


def make_images(image_dir: Path, count: int, seed: int = 0, edge: str = "longer") -> ann.AnnotationFile:
    """``count`` JPEGs (quality 90) in ``image_dir/bench``: random crops of the sample photos.

    ``edge="longer"``: longer edge 512, the other 256-512 (how the original stored images);
    ``"shorter"``: shorter edge 512, the other 512-910 (this project's ``[images] edge``)."""
    photos = sample_photos()
    rng = np.random.default_rng(seed)
    folder = image_dir / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for n in range(count):
        photo = photos[n % len(photos)]
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.6, 1)), int(h * rng.uniform(0.6, 1))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        other = int(rng.integers(256, 513)) if edge == "longer" else int(rng.integers(512, 911))
        image = photo.crop((x, y, x + cw, y + ch)).resize((512, other) if n % 2 else (other, 512))
        image_id = f"img{n:05d}"
        image.save(folder / f"{image_id}.jpg", quality=90)
        records.append(record(image_id, n))
    return annotation_file(records)
