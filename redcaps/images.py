"""Decode, normalise, resize and re-encode downloaded images.

* Non-images (HTML error pages, truncated bodies) are rejected with a reason, never stored.
* The pixel count is checked on the header before decoding (decompression bombs).
* JPEGs that will shrink are decoded in draft mode: libjpeg scales by 1/2, 1/4 or 1/8
  while decoding, which is most of the cost saved on 12 MP phone photos. The draft size
  is never below the target, and the final resize uses a proper filter.
* EXIF orientation is applied (sizes are as displayed), alpha is composited on white,
  animated images keep their first frame, and the result is RGB JPEG without metadata.
* Output is deterministic: the same bytes and options always give the same JPEG.

Cost (profiled in docs/benchmarks/download.md): the header is parsed once (size and
orientation are read before draft mode shrinks the image, not by re-opening the bytes),
upright images are not copied by ``exif_transpose``, the decoder gets the whole body in one
call, and the resize uses Pillow's
antialiased bicubic filter, a third cheaper than Lanczos with a mean difference of about
half a grey level at these scales (after draft mode the remaining factor is below 2 for
most JPEGs).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image, ImageOps, UnidentifiedImageError

Edge = Literal["shorter", "longer"]


@dataclass(frozen=True)
class ImageOptions:
    """How stored images are made.

    ``quality`` 90 keeps re-encoding artefacts invisible at 512 px while files stay about a
    third of quality 95's size (the original saved at Pillow's 75; img2dataset uses 95).
    """

    resize: int = 512
    edge: Edge = "shorter"
    upscale: bool = False
    quality: int = 90
    max_pixels: int = 100_000_000


@dataclass
class ProcessedImage:
    jpeg: bytes
    original_width: int
    original_height: int
    width: int
    height: int
    original_format: str


class ImageRejected(Exception):
    """A body that is not a usable image; ``reason`` becomes the manifest status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def target_size(width: int, height: int, options: ImageOptions) -> tuple[int, int]:
    """Scale so the chosen edge is ``options.resize``; never upscale unless asked."""
    if options.resize <= 0:
        return width, height
    edge = min(width, height) if options.edge == "shorter" else max(width, height)
    if edge == options.resize or (edge < options.resize and not options.upscale):
        return width, height
    scale = options.resize / edge
    return max(1, round(width * scale)), max(1, round(height * scale))


_ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_TRANSPOSED = {2, 3, 4, 5, 6, 7, 8}  # every EXIF orientation that needs a transpose
RESAMPLE = Image.Resampling.BICUBIC


def _open(data: bytes, options: ImageOptions) -> Image.Image:
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"{")) or b"<html" in head:
        raise ImageRejected("not_image", "body is HTML/text, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            raise ImageRejected("too_many_pixels", str(exc).splitlines()[0]) from None
        raise ImageRejected("not_image", "not a recognised image format") from None
    if image.width * image.height > options.max_pixels:
        raise ImageRejected(
            "too_many_pixels", f"{image.width}x{image.height} is over {options.max_pixels} pixels"
        )
    # Feed the decoder the whole body in one call (the body is in memory anyway) instead of
    # 64 KB slices: one GIL release per image rather than ~50, ~8% more phone photos/s.
    image.decodermaxblock = max(image.decodermaxblock, len(data))
    return image


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError):
        return 1  # unreadable EXIF: show the pixels as stored
    return value if isinstance(value, int) else 1


def _displayed_size(image: Image.Image, orientation: int) -> tuple[int, int]:
    width, height = image.size
    return (height, width) if orientation in _ROTATED else (width, height)


def _draft(image: Image.Image, options: ImageOptions, orientation: int) -> None:
    """Let libjpeg decode at a reduced scale that still covers the target size."""
    if image.format != "JPEG" or options.resize <= 0:
        return
    width, height = _displayed_size(image, orientation)
    tw, th = target_size(width, height, options)
    if (tw, th) == (width, height):
        return
    if orientation in _ROTATED:
        tw, th = th, tw
    image.draft("RGB", (tw, th))  # picks the smallest scale >= the requested size


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGB") if image.mode != "RGB" else image


def process_image(data: bytes, options: ImageOptions | None = None) -> ProcessedImage:
    """Turn downloaded bytes into the stored JPEG, or raise :class:`ImageRejected`."""
    options = options or ImageOptions()
    image = _open(data, options)
    original_format = image.format or "unknown"
    try:
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        orientation = _orientation(image)
        original_width, original_height = _displayed_size(image, orientation)  # before draft shrinks it
        _draft(image, options, orientation)
        image.load()
        if orientation in _TRANSPOSED:  # exif_transpose copies even an upright image
            image = ImageOps.exif_transpose(image) or image
    except OSError as exc:
        message = str(exc).splitlines()[0]
        reason = "truncated" if "truncated" in message or "broken data stream" in message else "decode_error"
        raise ImageRejected(reason, message) from None
    except (ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageRejected("decode_error", str(exc).splitlines()[0]) from None
    width, height = target_size(original_width, original_height, options)
    image = _to_rgb(image)
    if image.size != (width, height):
        image = image.resize((width, height), RESAMPLE, reducing_gap=None)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=options.quality, optimize=False)
    return ProcessedImage(out.getvalue(), original_width, original_height, width, height, original_format)


def read_size(path: str | Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size
