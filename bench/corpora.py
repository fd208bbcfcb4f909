"""Synthetic image corpora for the download benchmark, cached under ``bench/out/corpora``.

Real photos cannot be fetched at run time, so images are generated (seeded, so every run
serves the same bytes): several octaves of smooth random colour fields plus sensor-like
noise. That gives JPEG sizes close to real ones (a 12 MP phone photo at quality 92 is
2-5 MB), which matters because decode cost grows with the entropy-coded size.

* ``phone``: 3-12 MP JPEGs as i.redd.it serves phone originals, landscape and portrait.
* ``mixed``: web images 320-2048 px on either edge, mostly JPEG, about 1 in 6 PNG.

Each unique image is served under many URLs (``/<corpus>/<n>.<ext>`` maps to image
``n % count``), so a few thousand URLs need only a few dozen files.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent / "out" / "corpora"

PHONE_SIZES = [
    (4032, 3024),
    (3024, 4032),
    (4000, 3000),
    (3264, 2448),
    (2448, 3264),
    (2592, 1944),
    (2048, 1536),
]


def photo_like(width: int, height: int, rng: np.random.Generator, noise: float = 7.0) -> Image.Image:
    """Smooth colour fields at a few scales plus per-pixel noise, like a real photo's spectrum."""
    canvas = np.zeros((height, width, 3), dtype=np.float32)
    for cells, weight in ((3, 90.0), (12, 45.0), (48, 22.0), (160, 10.0)):
        gw, gh = max(2, cells * width // max(width, height)), max(2, cells * height // max(width, height))
        field = rng.uniform(-1, 1, size=(gh, gw, 3)).astype(np.float32)
        small = Image.fromarray(((field + 1) * 127.5).astype(np.uint8), "RGB")
        big = np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
        canvas += (big / 127.5 - 1) * weight
    canvas += 128 + rng.normal(0, noise, size=(height, width, 1)).astype(np.float32)
    canvas += rng.normal(0, noise / 3, size=(height, width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")


def graphic_like(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """Flat regions with a little noise: what web PNGs (screenshots, drawings) look like."""
    image = photo_like(width, height, rng, noise=2.0).quantize(64).convert("RGB")
    return image


def _encode(image: Image.Image, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        image.save(buf, "JPEG", quality=quality)
    else:
        image.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def build(corpus: str, count: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """``count`` unique (extension, bytes) images of ``corpus``; cached on disk by name."""
    folder = OUT / f"{corpus}-{count}-{seed}"
    index = folder / "index.json"
    if index.exists():
        names = json.loads(index.read_text())
        return [(Path(n).suffix[1:], (folder / n).read_bytes()) for n in names]
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    names = []
    for n in range(count):
        if corpus == "phone":
            width, height = PHONE_SIZES[n % len(PHONE_SIZES)]
            data, ext = _encode(photo_like(width, height, rng), "JPEG", pick.choice((88, 92, 95))), "jpg"
        elif corpus == "mixed":
            width, height = pick.randint(320, 2048), pick.randint(320, 2048)
            if n % 6 == 5:
                data, ext = _encode(graphic_like(width, height, rng), "PNG", 0), "png"
            else:
                data, ext = (
                    _encode(photo_like(width, height, rng), "JPEG", pick.choice((75, 85, 90, 95))),
                    "jpg",
                )
        else:
            raise ValueError(f"unknown corpus {corpus!r}")
        name = f"{n:04d}.{ext}"
        (folder / name).write_bytes(data)
        names.append(name)
    index.write_text(json.dumps(names))
    return [(Path(n).suffix[1:], (folder / n).read_bytes()) for n in names]


def describe(images: list[tuple[str, bytes]]) -> dict:
    sizes = [len(b) for _, b in images]
    pixels = []
    for _, data in images:
        with Image.open(io.BytesIO(data)) as im:
            pixels.append(im.width * im.height)
    return {
        "unique_images": len(images),
        "png": sum(ext == "png" for ext, _ in images),
        "mean_kb": round(sum(sizes) / len(sizes) / 1024),
        "max_kb": round(max(sizes) / 1024),
        "mean_mp": round(sum(pixels) / len(pixels) / 1e6, 2),
    }


if __name__ == "__main__":
    import sys

    for name, n in (("phone", 50), ("mixed", 200)):
        if len(sys.argv) < 2 or name in sys.argv[1:]:
            print(name, describe(build(name, n)))
