"""Image processing: sizes, orientation, colour, rejection reasons, determinism."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from redcaps.images import ImageOptions, ImageRejected, process_image, target_size
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

    import redcaps.images as images

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
