"""Decode, normalise, resize and re-encode downloaded images.

* Non-images (HTML error pages, truncated bodies) are rejected with a reason, never stored.
* Any failure while opening, decoding, converting or encoding becomes an
  :class:`ImageRejected` with a reason: one hostile body never stops a run.
* Memory is bounded before decoding, from the header: the pixel count, the decoded raster's
  bytes (bit depth and bands) and the aspect ratio are checked, and concurrent decodes share
  one process-wide byte budget (:class:`MemoryBudget`). Limits are explained in
  docs/benchmarks/memory.md.
* JPEGs that will shrink are decoded in draft mode: libjpeg scales by 1/2, 1/4 or 1/8
  while decoding, which is most of the cost saved on 12 MP phone photos. The draft size
  is never below the target, and the final resize uses a proper filter.
* EXIF orientation is applied (sizes are as displayed), alpha is composited on white,
  animated images keep their first frame, and the result is RGB JPEG without metadata.
* Output is deterministic: the same bytes and options always give the same JPEG.

Cost (profiled in docs/benchmarks/download.md): the header is parsed once (size and
orientation are read before draft mode shrinks the image, not by re-opening the bytes),
upright images are not copied by ``exif_transpose``, the decoder gets the whole body in one
call, and the resize uses Pillow's antialiased bicubic filter by default (``resample``;
``box`` is img2dataset's cheaper area averaging).
"""

from __future__ import annotations

import functools
import io
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageOps, UnidentifiedImageError

from redcaps.settings import AT_LEAST_ONE, POSITIVE, ranged

Edge = Literal["shorter", "longer"]
Resample = Literal["bicubic", "bilinear", "box", "lanczos"]
#: Pillow's antialiased filters by name: ``bicubic`` is the original tool's (Pillow's default);
#: ``box`` averages pixel areas like img2dataset's ``area`` (OpenCV INTER_AREA), at about 40% of
#: bicubic's cost; docs/benchmarks/download.md compares them.
RESAMPLE_FILTERS: dict[str, Image.Resampling] = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "box": Image.Resampling.BOX,
    "lanczos": Image.Resampling.LANCZOS,
}

#: Pillow allocates rasters in blocks of this size. Blocks above glibc's largest dynamic mmap
#: threshold (32 MiB) are always mmapped, so a freed raster goes back to the system at once
#: instead of staying in the malloc arena of whichever download thread decoded it.
RASTER_BLOCK_BYTES = 64 * 2**20


@functools.cache
def _use_large_raster_blocks() -> None:
    """Set once, at the first image processed (not on import); a user's PILLOW_BLOCK_SIZE wins."""
    if "PILLOW_BLOCK_SIZE" not in os.environ:
        Image.core.set_block_size(RASTER_BLOCK_BYTES)


@dataclass(frozen=True)
class ImageOptions:
    """How stored images are made.

    ``quality`` 90 keeps re-encoding artefacts invisible at 512 px while files stay about a
    third of quality 95's size (the original saved at Pillow's 75; img2dataset uses 95).
    """

    resize: int = ranged(512, low=1, also=(-1,))
    edge: Edge = "shorter"
    upscale: bool = False
    quality: int = ranged(90, low=1, high=100)
    #: The final resize's filter, a key of :data:`RESAMPLE_FILTERS`.
    resample: Resample = "bicubic"
    max_pixels: int = ranged(100_000_000, **POSITIVE)
    #: Largest decoded raster of one image in bytes (width x height x bands x bytes per sample).
    max_raster_bytes: int = ranged(256 * 2**20, **POSITIVE)
    #: Bytes all decodes in this process may hold at once; each charges its working set.
    memory_budget: int = ranged(1024 * 2**20, **POSITIVE)
    #: Processes splitting ``memory_budget`` (a shard's download processes): each holds its share.
    memory_share: int = ranged(1, **AT_LEAST_ONE)
    #: Longest edge over shortest edge; beyond it an image is a strip or a lying header.
    max_aspect_ratio: float = ranged(20.0, low=1)

    def __post_init__(self) -> None:
        if self.resample not in RESAMPLE_FILTERS:
            raise ValueError(f"resample must be one of {sorted(RESAMPLE_FILTERS)}, not {self.resample!r}")


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


#: Every reason :class:`ImageRejected` can carry (each a final manifest status).
REJECTION_REASONS = frozenset(
    {"not_image", "truncated", "decode_error", "too_many_pixels", "raster_too_large", "extreme_aspect_ratio"}
)


class MemoryBudget:
    """A byte-counting semaphore: a decode waits until its working set fits in what is left.

    ``total`` may be this process's share of a ``whole`` budget that several processes split: an
    image over the share but within the whole waits until it is this process's only one."""

    def __init__(self, total: int, whole: int | None = None) -> None:
        self.total = total
        self.whole = max(total, whole or total)
        self.used = 0
        self._changed = threading.Condition()

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        """Hold ``nbytes`` of the budget; more than the whole budget is refused, never waited for."""
        if nbytes > self.whole:
            raise ImageRejected(
                "raster_too_large", f"decoding needs {nbytes} bytes, over the {self.whole}-byte memory budget"
            )
        with self._changed:
            self._changed.wait_for(lambda: self.used == 0 or self.used + nbytes <= self.total)
            self.used += nbytes
        try:
            yield
        finally:
            with self._changed:
                self.used -= nbytes
                self._changed.notify_all()


_budgets: dict[tuple[int, int], MemoryBudget] = {}
_budgets_lock = threading.Lock()


def shared_budget(total: int, share: int = 1) -> MemoryBudget:
    """The process-wide budget (a ``share``-th of ``total`` bytes), shared by every shard and
    thread that uses it."""
    with _budgets_lock:
        key = (total, max(1, share))
        if key not in _budgets:
            _budgets[key] = MemoryBudget(total // key[1], whole=total)
        return _budgets[key]


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


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return (lines[0] if lines else "")[:300] or type(exc).__name__


def _rejection(exc: Exception) -> ImageRejected:
    """The failure of one image, whatever Pillow raised while reading it."""
    message = _first_line(exc)
    lowered = message.lower()
    if isinstance(exc, OSError) and ("truncated" in lowered or "broken data stream" in lowered):
        return ImageRejected("truncated", message)
    if isinstance(exc, (OSError, ValueError, SyntaxError, Image.DecompressionBombError)):
        return ImageRejected("decode_error", message)
    return ImageRejected("decode_error", f"{type(exc).__name__}: {message}")


def _open(data: bytes, options: ImageOptions) -> Image.Image:
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"{")) or b"<html" in head:
        raise ImageRejected("not_image", "body is HTML/text, not an image")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", _first_line(exc)) from None
    except UnidentifiedImageError:
        raise ImageRejected("not_image", "not a recognised image format") from None
    # Pillow only warns between its limit and twice it; refuse from its limit on, here rather
    # than through the warnings filters, which threads decoding at once would race on.
    limit = min(options.max_pixels, Image.MAX_IMAGE_PIXELS or options.max_pixels)
    if image.width * image.height > limit:
        raise ImageRejected("too_many_pixels", f"{image.width}x{image.height} is over {limit} pixels")
    # Feed the decoder the whole body in one call (the body is in memory anyway) instead of
    # 64 KB slices: one GIL release per image rather than ~50, ~8% more phone photos/s.
    image.decodermaxblock = max(image.decodermaxblock, len(data))
    return image


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF of any kind: show the pixels as stored
        return 1
    return value if isinstance(value, int) else 1


def _displayed_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    return (height, width) if orientation in _ROTATED else (width, height)


def _check_aspect_ratio(width: int, height: int, options: ImageOptions) -> None:
    if max(width, height) > options.max_aspect_ratio * min(width, height):
        limit = f"{options.max_aspect_ratio:g}:1"
        raise ImageRejected("extreme_aspect_ratio", f"{width}x{height} is beyond the {limit} aspect ratio")


_SAMPLE_BITS = re.compile(r";(\d+)")
#: Bytes per pixel Pillow stores for a mode (multi-band modes are stored 4 bytes per pixel).
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}


def _sample_bytes(image: Image.Image) -> int:
    """Bytes per sample the file's pixel data declares (``RGBA;16B`` is 2), from its tiles."""
    bits = 8
    for tile in image.tile:
        args = tile.args
        rawmode = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else ""
        if isinstance(rawmode, str):
            bits = max([bits, *(int(b) for b in _SAMPLE_BITS.findall(rawmode))])
    if image.mode in ("I", "F"):
        bits = max(bits, 32)
    return -(-bits // 8)


def raster_bytes(image: Image.Image) -> int:
    """Bytes of the decoded raster, from the header: pixels x bands x bytes per sample, or what
    Pillow stores per pixel when that is more."""
    per_pixel = max(_STORED_BYTES.get(image.mode, 4), len(image.getbands()) * _sample_bytes(image))
    return image.width * image.height * per_pixel


#: Bytes per pixel of the full-size copies that ``_to_rgb`` makes for each kind of mode.
_RGB_COPY_BYTES = {"RGB": 0, "P": 9, "RGBA": 9, "LA": 9, "PA": 9, "RGBa": 9, "La": 9, "I": 13, "F": 13}


def working_bytes(image: Image.Image, raster: int, orientation: int | None, target: tuple[int, int]) -> int:
    """Peak bytes one image holds while processed: its raster, a transposed copy when EXIF asks
    for one (or may: ``None`` is not read yet), the colour conversion's copies and the result."""
    pixels = image.width * image.height
    copies = _RGB_COPY_BYTES.get(image.mode, 13 if image.mode.startswith("I;16") else 4)
    may_transpose = orientation is None or orientation in _TRANSPOSED
    transposed = _STORED_BYTES.get(image.mode, 4) * pixels if may_transpose else 0
    return raster + transposed + copies * pixels + 4 * target[0] * target[1]


def _draft(image: Image.Image, options: ImageOptions, orientation: int) -> None:
    """Let libjpeg decode at a reduced scale that still covers the target size."""
    if image.format != "JPEG" or options.resize <= 0:
        return
    width, height = _displayed_size(*image.size, orientation)
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
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16B", "I;16L", "I;16N"):
        image = image.convert("I")  # point() scales only native I;16, I and F
    if image.mode in ("I;16", "I"):
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGB") if image.mode != "RGB" else image


def process_image(data: bytes, options: ImageOptions | None = None) -> ProcessedImage:
    """Turn downloaded bytes into the stored JPEG, or raise :class:`ImageRejected` (and nothing else)."""
    options = options or ImageOptions()
    _use_large_raster_blocks()
    try:
        return _process(data, options)
    except ImageRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure inside Pillow is this image's failure
        raise _rejection(exc) from None


#: Options -> the function from a body to the stored image: injected, like img2dataset's resizer.
ImageProcessor = Callable[[ImageOptions], Callable[[bytes], ProcessedImage]]


def image_processor(options: ImageOptions) -> Callable[[bytes], ProcessedImage]:
    """The default :data:`ImageProcessor`: :func:`process_image` with these options (picklable)."""
    return functools.partial(process_image, options=options)


def _process(data: bytes, options: ImageOptions) -> ProcessedImage:
    image = _open(data, options)
    original_format = image.format or "unknown"
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    stored_width, stored_height = image.size  # before draft shrinks it
    _check_aspect_ratio(stored_width, stored_height, options)
    # A PNG's eXIf chunk may follow its pixels, and Pillow decodes them all to find it: read
    # the orientation of such a PNG only once its raster has passed the checks below.
    early = image.format != "PNG" or "exif" in image.info
    orientation = _orientation(image) if early else None
    if orientation is not None:
        _draft(image, options, orientation)
    raster = raster_bytes(image)
    if raster > options.max_raster_bytes:
        raise ImageRejected(
            "raster_too_large",
            f"{image.width}x{image.height} {image.mode} decodes to {raster} bytes,"
            f" over {options.max_raster_bytes}",
        )
    target = target_size(stored_width, stored_height, options)  # its area does not depend on rotation
    budget = shared_budget(options.memory_budget, options.memory_share)
    with budget.reserve(working_bytes(image, raster, orientation, target)):
        if orientation is None:
            orientation = _orientation(image)
        original_width, original_height = _displayed_size(stored_width, stored_height, orientation)
        width, height = target_size(original_width, original_height, options)
        image.load()
        if orientation in _TRANSPOSED:  # exif_transpose copies even an upright image
            image = ImageOps.exif_transpose(image) or image
        image = _to_rgb(image)
        if image.size != (width, height):
            image = image.resize((width, height), RESAMPLE_FILTERS[options.resample], reducing_gap=None)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=options.quality, optimize=False)
    return ProcessedImage(out.getvalue(), original_width, original_height, width, height, original_format)
