"""Image processing: sizes, orientation, colour, rejection reasons, determinism."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from redcaps.download.images import ImageOptions, ImageRejected, process_image, target_size
from redcaps.sandbox.images import bomb_png, render


def encode(image: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def decoded(result) -> Image.Image:
    return Image.open(io.BytesIO(result.jpeg))


@pytest.mark.parametrize(
    ("size", "options", "expected"),
    [
        ((4032, 3024), ImageOptions(), (683, 512)),
        ((3024, 4032), ImageOptions(), (512, 683)),
        ((4032, 3024), ImageOptions(edge="longer"), (512, 384)),
        ((200, 150), ImageOptions(), (200, 150)),  # never upscale by default
        ((200, 150), ImageOptions(upscale=True), (683, 512)),
        ((200, 150), ImageOptions(edge="longer", upscale=True), (512, 384)),
        ((4032, 3024), ImageOptions(resize=-1), (4032, 3024)),
    ],
)
def test_target_size(size, options, expected):
    assert target_size(*size, options) == expected


def test_phone_photo_shrinks_via_draft_and_keeps_original_size():
    body, _ = render("phone", "https://i.redd.it/phone1.jpg")
    original = Image.open(io.BytesIO(body)).size
    result = process_image(body)
    assert (result.original_width, result.original_height) == original
    assert min(result.width, result.height) == 512 and decoded(result).size == (result.width, result.height)


def test_exif_orientation_applied():
    body, _ = render("exif_rotated", "k")
    result = process_image(body)
    assert (result.original_width, result.original_height) == (1200, 1600)
    assert decoded(result).size == (512, 683) and "exif" not in decoded(result).info


def test_alpha_composited_on_white_and_first_gif_frame():
    rgba = Image.new("RGBA", (600, 600), (0, 0, 0, 0))
    result = process_image(encode(rgba, "PNG"))
    assert decoded(result).getpixel((10, 10)) == (255, 255, 255)
    frames = [Image.new("RGB", (300, 300), c) for c in ((250, 0, 0), (0, 0, 250))]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    red, _, blue = decoded(process_image(gif)).getpixel((150, 150))
    assert red > 200 and blue < 60


@pytest.mark.parametrize("mode", ["CMYK", "L", "P", "I;16"])
def test_other_modes_become_rgb(mode):
    image = Image.new("RGB", (640, 480), (10, 120, 200)).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = image.convert("I;16")
    fmt = "PNG" if mode in ("P", "I;16") else "JPEG"
    result = process_image(encode(image, fmt))
    assert decoded(result).mode == "RGB" and decoded(result).size == (640, 480)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<!DOCTYPE html><html><body>removed</body></html>", "not_image"),
        (b"\x00\x01garbage", "not_image"),
        (render("web", "t")[0][:3000], "truncated"),
        (bomb_png(), "too_many_pixels"),
    ],
)
def test_rejections_have_reasons(body, reason):
    with pytest.raises(ImageRejected) as err:
        process_image(body)
    assert err.value.reason == reason and "\n" not in str(err.value)


def test_deterministic_and_quality_matters():
    body, _ = render("web", "det")
    assert process_image(body).jpeg == process_image(body).jpeg
    assert len(process_image(body, ImageOptions(quality=50)).jpeg) < len(process_image(body).jpeg)


def test_whole_body_decode_matches_chunked_decode_and_still_detects_truncation(monkeypatch):
    """The decoder gets the whole body at once; output and truncation handling must not change."""
    import io

    import numpy as np
    from PIL import Image

    import redcaps.download.images as images

    noise = np.random.default_rng(1).integers(0, 256, size=(900, 1200, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "JPEG", quality=90)
    body = buf.getvalue()
    assert len(body) > 4 * 65536  # several of Pillow's default 64 KB decode blocks
    whole = process_image(body).jpeg
    real_open = images._open
    monkeypatch.setattr(images, "_open", lambda data, options: _chunked(real_open(data, options)))
    assert process_image(body).jpeg == whole
    monkeypatch.undo()
    with pytest.raises(ImageRejected) as err:
        process_image(body[: len(body) // 2])
    assert err.value.reason == "truncated"


def _chunked(image):
    image.decodermaxblock = 65536
    return image


def _png_header_only(width: int, height: int, bit_depth: int, color_type: int) -> bytes:
    """A PNG signature and IHDR (valid CRC) claiming a size, with a tiny IDAT and IEND."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A tiny real JPEG whose SOF header is edited to claim ``width`` x ``height``."""
    import struct

    body = bytearray(encode(Image.new("RGB", (16, 16), (90, 90, 90)), "JPEG", quality=50))
    sof = body.index(b"\xff\xc0")
    body[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(body)


def test_16_bit_big_endian_tiff_is_converted_like_native_16_bit():
    import numpy as np

    values = (np.arange(120 * 160).reshape(120, 160) * 3).astype(np.uint16)
    big_endian = encode(Image.fromarray(values.astype(">u2")), "TIFF")
    assert Image.open(io.BytesIO(big_endian)).mode == "I;16B"
    native = encode(Image.fromarray(values.astype("<u2")), "PNG")
    assert process_image(big_endian).jpeg == process_image(native).jpeg
    grey = decoded(process_image(big_endian)).getpixel((159, 119))
    assert abs(grey[0] - int(values[119, 159]) // 256) <= 2  # scaled to 8 bits, not clipped


@pytest.mark.parametrize("cut", [60, 100, 300, 500, 700])
def test_phone_jpeg_cut_in_its_header_is_rejected(cut):
    body, _ = render("phone", "https://i.redd.it/phone1.jpg")
    with pytest.raises(ImageRejected) as err:
        process_image(body[:cut])
    assert err.value.reason in ("truncated", "not_image") and "\n" not in str(err.value)


def test_any_exception_inside_pillow_is_a_rejection(monkeypatch):
    body, _ = render("web", "boom")
    for exc in (RuntimeError("bad"), TypeError("Missing dimensions"), IndexError(), MemoryError()):

        def failing(*args, exc=exc, **kwargs):
            raise exc

        monkeypatch.setattr(Image.Image, "load", failing)
        with pytest.raises(ImageRejected) as err:
            process_image(body)
        assert err.value.reason == "decode_error" and type(exc).__name__ in str(err.value)


def test_small_jpeg_claiming_an_extreme_aspect_ratio_is_refused():
    body = _jpeg_claiming(65000, 1000)
    assert len(body) < 1000
    with pytest.raises(ImageRejected) as err:
        process_image(body)
    assert err.value.reason == "extreme_aspect_ratio" and "65000x1000" in str(err.value)


@pytest.mark.parametrize(("size", "ok"), [((2000, 100), True), ((2100, 100), False), ((100, 2100), False)])
def test_aspect_ratio_limit_is_inclusive(size, ok):
    body = encode(Image.new("RGB", size, (10, 200, 10)), "PNG")
    if ok:
        assert process_image(body).original_width == size[0]
        return
    with pytest.raises(ImageRejected) as err:
        process_image(body)
    assert err.value.reason == "extreme_aspect_ratio"
    assert process_image(body, ImageOptions(max_aspect_ratio=25)).original_width == size[0]


def test_raster_bytes_count_bit_depth_and_bands():
    from redcaps.download.images import raster_bytes

    rgba16 = Image.open(io.BytesIO(_png_header_only(9400, 9400, 16, 6)))
    assert raster_bytes(rgba16) == 9400 * 9400 * 8
    grey16 = Image.open(io.BytesIO(_png_header_only(1000, 1000, 16, 0)))
    assert raster_bytes(grey16) == 1000 * 1000 * 2
    palette = Image.open(io.BytesIO(encode(Image.new("P", (300, 200)), "PNG")))
    assert raster_bytes(palette) == 300 * 200
    rgb = Image.open(io.BytesIO(encode(Image.new("RGB", (300, 200)), "PNG")))
    assert raster_bytes(rgb) == 300 * 200 * 4  # Pillow stores RGB in four bytes a pixel


def test_huge_16_bit_png_is_refused_from_its_header_before_decoding(monkeypatch):
    body = _png_header_only(9400, 9400, 16, 6)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded a refused raster"))
    with pytest.raises(ImageRejected) as err:
        process_image(body)
    assert err.value.reason == "raster_too_large" and str(9400 * 9400 * 8) in str(err.value)
    monkeypatch.undo()
    with pytest.raises(ImageRejected) as err:  # a bigger budget lets it through to the decoder
        process_image(body, ImageOptions(max_raster_bytes=2**30, memory_budget=2**32))
    assert err.value.reason == "truncated"


def test_jpeg_raster_is_checked_at_its_draft_size():
    body, _ = render("phone", "https://i.redd.it/phone2.jpg")  # decoded at 1/4 scale or less
    limit = Image.open(io.BytesIO(body)).size
    small = ImageOptions(max_raster_bytes=limit[0] * limit[1])  # under the full-size raster
    assert process_image(body, small).jpeg == process_image(body).jpeg
    with pytest.raises(ImageRejected) as err:
        process_image(body, ImageOptions(resize=-1, max_raster_bytes=limit[0] * limit[1]))
    assert err.value.reason == "raster_too_large"


def test_memory_budget_waits_until_a_reservation_fits_and_refuses_one_over_the_whole():
    import threading

    from redcaps.download.images import MemoryBudget

    budget = MemoryBudget(100)
    entered = threading.Event()

    def second() -> None:
        with budget.reserve(60):
            entered.set()

    with budget.reserve(60):
        thread = threading.Thread(target=second)
        thread.start()
        assert not entered.wait(0.3)  # 60 + 60 does not fit: it waits
        with budget.reserve(40):  # 60 + 40 fits: it does not
            assert budget.used == 100
    assert entered.wait(5)
    thread.join()
    assert budget.used == 0
    with pytest.raises(ImageRejected) as err, budget.reserve(101):
        pass
    assert err.value.reason == "raster_too_large" and budget.used == 0


def test_decodes_share_the_process_wide_budget():
    import threading

    from redcaps.download.images import shared_budget

    options = ImageOptions(memory_budget=123_456_789)  # a budget of its own for this test
    assert shared_budget(options.memory_budget) is shared_budget(options.memory_budget)
    body, _ = render("web", "budget")
    results = []
    thread = threading.Thread(target=lambda: results.append(process_image(body, options)))
    with shared_budget(options.memory_budget).reserve(options.memory_budget):  # another decode holds it all
        thread.start()
        thread.join(0.5)
        assert thread.is_alive() and not results
    thread.join(10)
    assert results[0].jpeg == process_image(body).jpeg
    with pytest.raises(ImageRejected) as err:  # a working set bigger than the whole budget: refused at once
        process_image(body, ImageOptions(memory_budget=1000))
    assert err.value.reason == "raster_too_large"


def test_a_share_of_the_budget_holds_its_share_and_runs_a_bigger_image_alone():
    import threading

    from redcaps.download.images import MemoryBudget, shared_budget

    share = MemoryBudget(50, whole=200)  # one of four processes splitting 200 bytes
    entered = threading.Event()

    def small() -> None:
        with share.reserve(10):
            entered.set()

    with share.reserve(150):  # over the share, within the whole: allowed while alone
        thread = threading.Thread(target=small)
        thread.start()
        assert not entered.wait(0.3)  # nothing else meanwhile: the process stays near its share
    assert entered.wait(5)
    thread.join()
    with pytest.raises(ImageRejected), share.reserve(201):  # over the whole: refused as in one process
        pass
    halves = shared_budget(1_000_000, 2)
    assert (halves.total, halves.whole) == (500_000, 1_000_000) and halves is shared_budget(1_000_000, 2)


#: Prints Pillow's raster block size before and after this package's first image.
BLOCK_SIZE_AFTER_ONE_IMAGE = """
import io
from PIL import Image
from redcaps.download.images import process_image
before = Image.core.get_block_size()
out = io.BytesIO()
Image.new("RGB", (64, 48)).save(out, "PNG")
process_image(out.getvalue())
print(before, Image.core.get_block_size())
"""


@pytest.mark.parametrize(
    ("user_setting", "expected"),
    [(None, 64 * 2**20), ("4m", 4 * 2**20)],  # ours: over glibc's 32 MiB mmap threshold
)
def test_large_rasters_are_allocated_in_blocks_that_return_to_the_system(user_setting, expected):
    """Blocks over glibc's 32 MiB dynamic mmap threshold are unmapped when freed (see
    docs/benchmarks/memory.md): without this, each download thread's arena kept its rasters.
    Set at the first image, not on import; a user's PILLOW_BLOCK_SIZE wins."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PILLOW_BLOCK_SIZE"}
    if user_setting:
        env["PILLOW_BLOCK_SIZE"] = user_setting
    run = subprocess.run(
        [sys.executable, "-c", BLOCK_SIZE_AFTER_ONE_IMAGE],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    before, after = map(int, run.stdout.split())
    assert after == expected
    assert before == (expected if user_setting else 16 * 2**20)  # Pillow's own default until then


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pixel_limit_is_pillows_bomb_limit_without_racing_on_warning_filters():
    import threading
    import warnings

    over = Image.MAX_IMAGE_PIXELS + 1  # Pillow only warns here; twice as many is its error
    body = _png_header_only(over, 1, 1, 0)
    with pytest.raises(ImageRejected) as err:
        process_image(body, ImageOptions(max_aspect_ratio=float("inf")))
    assert err.value.reason == "too_many_pixels"
    filters = list(warnings.filters)
    outcomes = []

    def many() -> None:
        for _ in range(50):
            try:
                process_image(body, ImageOptions(max_aspect_ratio=float("inf")))
            except ImageRejected as exc:
                outcomes.append(exc.reason)

    threads = [threading.Thread(target=many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == ["too_many_pixels"] * 200 and warnings.filters == filters


def test_resample_is_checked_and_changes_only_the_resize():
    with pytest.raises(ValueError, match="resample must be one of"):
        ImageOptions(resample="nearest")  # type: ignore[arg-type]
    body = encode(Image.effect_noise((900, 700), 60).convert("RGB"))  # a 1.37 shrink: no draft scale
    bicubic, box = (process_image(body, ImageOptions(resample=r)) for r in ("bicubic", "box"))
    assert (bicubic.width, bicubic.height) == (box.width, box.height) == (658, 512)
    assert bicubic.jpeg != box.jpeg
    assert process_image(body, ImageOptions()).jpeg == bicubic.jpeg  # bicubic stays the default
