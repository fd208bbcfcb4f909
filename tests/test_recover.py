"""Live forms of dead image URLs and the choice of Reddit's preview (redcaps.download.recover)."""

from __future__ import annotations

import pytest

from redcaps.download.recover import Rewrite, attempts, preview_url, rewrites

FLICKR_PATH = "/7312/9041233215_0a1b2c3d4e.jpg"


@pytest.mark.parametrize("host", ["farm8.staticflickr.com", "farm3.static.flickr.com"])
def test_flickr_farm_hosts_are_rewritten_to_live_with_the_same_path_before_the_dead_form(host):
    url = f"https://{host}{FLICKR_PATH}"
    assert rewrites(url) == [Rewrite(f"https://live.staticflickr.com{FLICKR_PATH}", certain=True)]
    assert attempts(url) == [(f"https://live.staticflickr.com{FLICKR_PATH}", "rewrite"), (url, "original")]


def test_live_flickr_and_i_redd_it_urls_have_no_rewrite():
    for url in (f"https://live.staticflickr.com{FLICKR_PATH}", "https://i.redd.it/abc123.jpg"):
        assert rewrites(url) == []
        assert attempts(url) == [(url, "original")]


def test_imgur_gifv_is_a_page_so_its_still_is_tried_first():
    assert attempts("https://i.imgur.com/AbCdE12.gifv") == [
        ("https://i.imgur.com/AbCdE12.jpg", "rewrite"),
        ("https://i.imgur.com/AbCdE12.gifv", "original"),
    ]


def test_imgur_extension_and_size_variants_are_tried_only_after_the_original():
    assert attempts("https://i.imgur.com/AbCdE12h.png") == [
        ("https://i.imgur.com/AbCdE12h.png", "original"),
        ("https://i.imgur.com/AbCdE12h.jpg", "rewrite"),
        ("https://i.imgur.com/AbCdE12.jpg", "rewrite"),
    ]
    assert rewrites("https://i.imgur.com/AbCdE12.jpg") == []
    assert rewrites("https://i.imgur.com/not-an-id.jpg") == []


def _size(url: str, width: int, height: int) -> dict:
    return {"url": url, "width": width, "height": height}


PREVIEW = {
    "images": [
        {
            "source": _size("https://preview.redd.it/x.jpg?auto=webp&amp;s=src", 2000, 1500),
            "resolutions": [
                _size("https://preview.redd.it/x.jpg?width=108&amp;crop=smart&amp;s=a", 108, 81),
                _size("https://preview.redd.it/x.jpg?width=640&amp;crop=smart&amp;s=b", 640, 480),
                _size("https://preview.redd.it/x.jpg?width=960&amp;crop=smart&amp;s=c", 960, 720),
            ],
        }
    ],
    "enabled": True,
}


def test_preview_is_the_source_unescaped_without_a_target():
    assert preview_url(PREVIEW) == "https://preview.redd.it/x.jpg?auto=webp&s=src"


def test_preview_is_the_smallest_resolution_at_least_the_target_size():
    assert preview_url(PREVIEW, 512) == "https://preview.redd.it/x.jpg?width=640&crop=smart&s=b"
    assert preview_url(PREVIEW, 700) == "https://preview.redd.it/x.jpg?width=960&crop=smart&s=c"
    assert preview_url(PREVIEW, 5000) == "https://preview.redd.it/x.jpg?auto=webp&s=src"  # the largest


def test_portrait_previews_compare_their_longer_edge():
    portrait = {
        "images": [{"source": _size("https://preview.redd.it/p.jpg?s=1", 600, 1200), "resolutions": []}]
    }
    assert preview_url(portrait, 1000) == "https://preview.redd.it/p.jpg?s=1"


@pytest.mark.parametrize(
    "preview",
    [
        None,
        {},
        {"images": []},
        {"images": [{"source": {"url": "https://preview.redd.it/x.jpg"}}]},  # no size
        {"images": [{"source": _size("https://evil.example/x.jpg", 800, 600)}]},  # not Reddit's host
        {"images": [{"source": _size("http://127.0.0.1/x.jpg", 800, 600)}]},
    ],
)
def test_no_usable_preview(preview):
    assert preview_url(preview) is None
