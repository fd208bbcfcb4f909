"""Deterministic generated images of every kind the real hosts serve.

A small seeded noise pattern is scaled up (fast: no per-pixel Python), so every URL gets
its own image, the same on every run.
"""

from __future__ import annotations

import functools
import hashlib
import io
import struct
import zlib
from importlib import resources

import numpy as np
from PIL import Image

KINDS = ("web", "phone", "small", "png_alpha", "gif", "webp", "exif_rotated")
#: A real photo with a face (NASA, public domain; see data/NOTICE.txt), for the face filter.
FACE = "face"
PHONE_SIZES = ((2048, 1536), (4032, 3024), (3024, 4032), (3000, 2000))


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _pattern(key: str, size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(_seed(key))
    channels = 4 if mode == "RGBA" else 3
    small = (rng.random((12, 16, channels)) * 255).astype(np.uint8)
    if mode == "RGBA":
        small[..., 3] = np.where(small[..., 3] > 100, 255, 0)
    return Image.fromarray(small, mode).resize(size, Image.Resampling.BILINEAR)


def _save(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def web_size(key: str) -> tuple[int, int]:
    rng = np.random.default_rng(_seed("size" + key))
    long_edge = int(rng.integers(320, 2049))
    ratio = float(rng.choice([4 / 3, 3 / 2, 16 / 9, 1.0, 3 / 4]))
    return (
        (long_edge, max(1, round(long_edge / ratio))) if ratio >= 1 else (round(long_edge * ratio), long_edge)
    )


@functools.lru_cache(maxsize=256)
def render(kind: str, key: str) -> tuple[bytes, str]:
    """(body, content type) of the image of ``kind`` for ``key`` (usually the URL)."""
    if kind == FACE:
        return (resources.files("redcaps.sandbox") / "data" / "face.jpg").read_bytes(), "image/jpeg"
    if kind == "phone":
        size = PHONE_SIZES[_seed(key) % len(PHONE_SIZES)]
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "SandboxPhone", "Model 12"
        return _save(_pattern(key, size), "JPEG", quality=92, exif=exif.tobytes()), "image/jpeg"
    if kind == "small":
        return _save(_pattern(key, (200, 150)), "JPEG", quality=90), "image/jpeg"
    if kind == "png_alpha":
        return _save(_pattern(key, (800, 600), "RGBA"), "PNG"), "image/png"
    if kind == "gif":
        frames = [_pattern(key + str(i), (480, 360)).convert("P") for i in range(3)]
        return _save(
            frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0
        ), "image/gif"
    if kind == "webp":
        return _save(_pattern(key, (1024, 768)), "WEBP", quality=85), "image/webp"
    if kind == "exif_rotated":
        exif = Image.Exif()
        exif[0x0112] = 6  # stored landscape, shown portrait
        return _save(_pattern(key, (1600, 1200)), "JPEG", quality=90, exif=exif.tobytes()), "image/jpeg"
    return _save(_pattern(key, web_size(key)), "JPEG", quality=88), "image/jpeg"


@functools.lru_cache(maxsize=4096)
def image_size(kind: str, key: str) -> tuple[int, int]:
    """(width, height) of ``render(kind, key)`` as stored, without rendering it (Reddit's
    previews state the original's size)."""
    fixed = {"small": (200, 150), "png_alpha": (800, 600), "gif": (480, 360), "webp": (1024, 768)}
    if kind == FACE:
        with Image.open(io.BytesIO(render(FACE, key)[0])) as image:
            return image.size
    if kind == "phone":
        return PHONE_SIZES[_seed(key) % len(PHONE_SIZES)]
    if kind == "exif_rotated":
        return (1600, 1200)
    return fixed.get(kind) or web_size(key)


def resized_jpeg(body: bytes, width: int) -> bytes:
    """The image in ``body`` scaled to ``width`` (aspect kept), as a JPEG: a preview resolution."""
    with Image.open(io.BytesIO(body)) as image:
        height = max(1, round(image.height * width / image.width))
        small = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    return _save(small, "JPEG", quality=85)


def half_size(body: bytes) -> bytes:
    """The image in ``body`` at half its width and height, as a JPEG (a resized repost)."""
    with Image.open(io.BytesIO(body)) as image:
        small = image.convert("RGB").resize((max(1, image.width // 2), max(1, image.height // 2)))
    return _save(small, "JPEG", quality=88)


@functools.lru_cache(maxsize=1)
def imgur_removed_png() -> bytes:
    """A 161x81 placeholder like imgur's ``removed.png``."""
    return _save(Image.new("RGB", (161, 81), (227, 227, 227)), "PNG")


@functools.lru_cache(maxsize=1)
def flickr_unavailable_png() -> bytes:
    return _save(Image.new("RGB", (500, 374), (240, 240, 240)), "PNG")


@functools.lru_cache(maxsize=1)
def bomb_png() -> bytes:
    """30000x30000 pixels of one colour: ~100 KB on the wire, 900 MP decoded.

    Written with zlib directly (Pillow's encoder takes seconds) and made when the sandbox
    starts, so no client ever waits on it: a slow first response would look like a timeout."""
    width = height = 30000
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + one bit per pixel
    deflate = zlib.compressobj(9)
    data = b"".join(deflate.compress(row * 1000) for _ in range(height // 1000)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
