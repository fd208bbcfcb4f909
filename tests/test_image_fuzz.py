"""Hostile images: thousands of mutated JPEG, PNG, GIF, WebP and TIFF bodies (fixed seed) go
through the real processing path; nothing may escape and every outcome has a reason.

Mutations: bit flips, truncations, header field edits (width, height, depth and band fields
set to extreme values, PNG CRCs fixed half the time so the edit reaches the decoder) and
chunk splices (segments duplicated, dropped or spliced in from another image).
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from redcaps.download.images import (
    REJECTION_REASONS,
    ImageOptions,
    ImageRejected,
    image_processor,
    process_image,
)
from redcaps.download.manifest import read_outcomes
from redcaps.download.shard import download_shard, fetch_one
from redcaps.download.store import LooseFiles
from redcaps.layout import image_path
from redcaps.net.fetcher import FetchResult
from tests.helpers import record

#: Pillow warns about malformed TIFF tags and EXIF; expected here by the thousand.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SEED = 20240613
WIDTH, HEIGHT = 96, 64
FORMATS = ("jpeg", "png", "gif", "webp", "tiff")
DIMENSIONS = (0, 1, 2, 255, 9400, 30000, 65000, 65535, 2**24 - 1, 2**31 - 1, 2**32 - 1)


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def _png16(pixels: np.ndarray, color_type: int) -> bytes:
    """A 16-bit PNG written by hand (Pillow cannot save 16-bit colour)."""
    height, width = pixels.shape[:2]
    rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def seed_bodies() -> dict[str, list[bytes]]:
    """Small valid images of every format, in the modes and variants hosts serve."""
    rng = np.random.default_rng(SEED)
    rgb = Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)))
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [rgb.rotate(15 * i).convert("P") for i in range(3)]
    deep = rng.integers(0, 65536, (HEIGHT, WIDTH), dtype=np.uint16)
    return {
        "jpeg": [
            _encode(rgb, "JPEG", quality=85, exif=exif.tobytes()),
            _encode(rgb, "JPEG", quality=70, progressive=True),
            _encode(rgb.convert("L"), "JPEG"),
            _encode(rgb.convert("CMYK"), "JPEG"),
        ],
        "png": [
            _encode(rgba, "PNG"),
            _encode(rgb.convert("P"), "PNG", transparency=0),
            _encode(Image.fromarray(deep.astype("<u2")), "PNG"),
            _png16(rng.integers(0, 65536, (HEIGHT, WIDTH, 4), dtype=np.uint16), color_type=6),
        ],
        "gif": [
            _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0),
            _encode(rgb.convert("L"), "GIF", interlace=True),
        ],
        "webp": [
            _encode(rgb, "WEBP", quality=80),
            _encode(rgba, "WEBP", lossless=True),
            _encode(rgba, "WEBP", save_all=True, append_images=[rgb.convert("RGBA")], duration=50),
        ],
        "tiff": [
            _encode(Image.fromarray(deep.astype(">u2")), "TIFF"),
            _encode(rgb, "TIFF", compression="tiff_lzw"),
            _encode(rgb.convert("CMYK"), "TIFF"),
            _encode(rgba, "TIFF", compression="tiff_deflate"),
        ],
    }


def _encodings(value: int) -> list[tuple[int, str, bytes]]:
    """How a width or height can be spelled in these headers: (size, byte order, bytes)."""
    spelled = [(size, order) for order in ("little", "big") for size in (2, 4)]
    spelled.append((3, "little"))  # WebP's VP8X canvas size, stored minus one
    return [
        (size, order, (value - (size == 3)).to_bytes(size, order)) for size, order in spelled if value >= 1
    ]


def _fix_png_crcs(body: bytes) -> bytes:
    out, pos = bytearray(body[:8]), 8
    while pos + 12 <= len(body):
        (length,) = struct.unpack(">I", body[pos : pos + 4])
        end = pos + 8 + length
        if end + 4 > len(body):
            break
        out += body[pos:end] + struct.pack(">I", zlib.crc32(body[pos + 4 : end]))
        pos = end + 4
    return bytes(out + body[pos:])


def _bit_flips(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 16)):
        pos = rng.randrange(min(len(data), 256)) if rng.random() < 0.5 else rng.randrange(len(data))
        data[pos] ^= 1 << rng.randrange(8)
    return bytes(data)


def _truncation(rng: random.Random, body: bytes) -> bytes:
    return body[: rng.randrange(min(len(body), 1024)) if rng.random() < 0.5 else rng.randrange(len(body))]


def _header_edit(rng: random.Random, body: bytes) -> bytes:
    """Set a width/height field (found by its known value) or a header byte to an extreme value."""
    data = bytearray(body)
    head = bytes(data[:512])
    spots = [
        (pos, size, order)
        for value in (WIDTH, HEIGHT)
        for size, order, spelled in _encodings(value)
        for pos in range(len(head))
        if head.startswith(spelled, pos)
    ]
    if spots and rng.random() < 0.7:
        pos, size, order = rng.choice(spots)
        new = rng.choice(DIMENSIONS) if rng.random() < 0.8 else rng.randrange(2 ** (8 * size))
        data[pos : pos + size] = (new % 2 ** (8 * size)).to_bytes(size, order)
    else:
        pos = rng.randrange(min(len(data), 64))
        data[pos] = rng.choice((0, 1, 2, 3, 4, 8, 16, 32, 0x7F, 0x80, 0xFF))
    return bytes(data)


def _splice(rng: random.Random, body: bytes, donor: bytes) -> bytes:
    start = rng.randrange(len(body))
    piece = body[start : start + rng.randint(1, 512)]
    choice = rng.random()
    if choice < 0.33:  # a segment repeated
        return body[:start] + piece * rng.randint(2, 8) + body[start:]
    if choice < 0.66:  # a segment dropped
        return body[:start] + body[start + len(piece) :]
    cut = rng.randrange(len(donor))  # a segment of another image spliced in
    return body[:start] + donor[cut : cut + rng.randint(1, 2048)] + body[start:]


def mutants(fmt: str, count: int, seed: int = SEED) -> list[bytes]:
    """``count`` mutated bodies of ``fmt``, the same on every run."""
    rng = random.Random(f"{seed}-{fmt}")
    seeds = seed_bodies()
    donors = [b for bodies in seeds.values() for b in bodies]
    out = []
    for _ in range(count):
        body = rng.choice(seeds[fmt])
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            kind = rng.randrange(4)
            if kind == 0:
                body = _bit_flips(rng, body)
            elif kind == 1:
                body = _truncation(rng, body)
            elif kind == 2:
                body = _header_edit(rng, body)
            else:
                body = _splice(rng, body, rng.choice(donors))
            if not body:
                body = b"\0"
        if fmt == "png" and rng.random() < 0.5:
            body = _fix_png_crcs(body)
        out.append(body)
    return out


def check_outcome(body: bytes, options: ImageOptions) -> str:
    """Process one body; return its status, failing the test if anything but a rejection escapes."""
    try:
        result = process_image(body, options)
    except ImageRejected as exc:
        assert exc.reason in REJECTION_REASONS, exc.reason
        assert str(exc) and "\n" not in str(exc)
        return exc.reason
    stored = Image.open(io.BytesIO(result.jpeg))
    assert stored.format == "JPEG" and stored.mode == "RGB"
    assert stored.size == (result.width, result.height)
    long_edge = max(result.original_width, result.original_height)
    assert long_edge <= options.max_aspect_ratio * min(result.original_width, result.original_height)
    return "ok"


def _run(count: int, seed: int = SEED) -> dict[str, Counter]:
    options = ImageOptions()
    seen: dict[str, Counter] = {}
    for fmt in FORMATS:
        seen[fmt] = Counter(check_outcome(body, options) for body in mutants(fmt, count, seed))
    return seen


def test_seed_images_are_valid_and_stored():
    for fmt, bodies in seed_bodies().items():
        for body in bodies:
            assert check_outcome(body, ImageOptions()) == "ok", fmt


def test_thousands_of_mutated_images_never_escape():
    seen = _run(1000)
    for fmt, statuses in seen.items():
        assert sum(statuses.values()) == 1000
        # the mutations reach both sides: some still decode, many are refused for a reason
        assert statuses["ok"] > 0 and len(statuses) >= 3, (fmt, statuses)


@pytest.mark.slow
def test_tens_of_thousands_of_mutated_images_never_escape():
    for seed in range(SEED + 1, SEED + 5):
        assert all(sum(s.values()) == 3000 for s in _run(3000, seed).values())


class BodiesFetcher:
    """Serves a fixed body per URL, as a successful fetch would."""

    def __init__(self, bodies: dict[str, bytes]) -> None:
        self.bodies = bodies

    def get(self, url: str, **_options: object) -> FetchResult:
        return FetchResult(url=url, status="ok", final_url=url, http_status=200, body=self.bodies[url])


def test_mutated_images_through_download_shard(tmp_path: Path):
    records, bodies = [], {}
    for fmt in FORMATS:
        for n, body in enumerate(mutants(fmt, 60, seed=SEED + 99)):
            rec = record(f"{fmt}{n:03d}", subreddit="fuzz")
            records.append(rec)
            bodies[rec["url"]] = body
    manifest = tmp_path / "m" / "00000.jsonl"
    outcomes = download_shard(records, tmp_path / "images", manifest, BodiesFetcher(bodies), workers=8)
    assert [o.image_id for o in outcomes] == [r["image_id"] for r in records]
    assert {o.status for o in outcomes} <= REJECTION_REASONS | {"ok"}
    assert len({o.status for o in outcomes}) >= 3
    for outcome, rec in zip(outcomes, records, strict=True):
        assert image_path(tmp_path / "images", "fuzz", rec["image_id"]).exists() == outcome.ok
        assert outcome.ok or outcome.error
    assert set(read_outcomes(manifest)) == {r["image_id"] for r in records}


def test_fetch_one_turns_a_failing_decoder_into_an_outcome(tmp_path: Path, monkeypatch):
    """Whatever Pillow raises (here a RuntimeError from Image.open) is the image's failure."""

    def broken_open(*args, **kwargs):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(Image, "open", broken_open)
    rec = record("boom")
    body = seed_bodies()["jpeg"][0]
    fetcher = BodiesFetcher({rec["url"]: body})
    outcome = fetch_one(rec, fetcher, store=LooseFiles(tmp_path), process=image_processor(ImageOptions()))
    assert outcome.status == "decode_error" and "RuntimeError: decoder exploded" in outcome.error
    assert not image_path(tmp_path, rec["subreddit"], "boom").exists()
