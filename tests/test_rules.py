"""Each image-post rule on its own, then classify's order."""

from __future__ import annotations

import pytest

from redcaps.collect.rules import Dropped, Kept, classify, gallery_url, image_url, imgur_url, media_source


def post(**fields):
    base = {
        "id": "abc123",
        "url": "https://i.redd.it/ynhaz7herbxc1.jpeg",
        "score": 57,
        "over_18": False,
        "removed_by_category": None,
        "is_self": False,
        "is_video": False,
        "post_hint": "image",
    }
    base.update(fields)
    return base


class FakeResolver:
    def __init__(self):
        self.asked = []

    def first_image(self, album_id):
        self.asked.append(album_id)
        return Kept(f"https://i.imgur.com/{album_id}x.jpg")


def test_i_redd_it_is_kept():
    assert classify(post()) == Kept("https://i.redd.it/ynhaz7herbxc1.jpeg")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"removed_by_category": "moderator"}, "removed"),
        ({"removed_by_category": "deleted", "over_18": True}, "removed"),  # order: removed first
        ({"over_18": True}, "nsfw"),
        ({"score": 1}, "low_score"),
        ({"is_self": True, "url": "https://www.reddit.com/r/x/comments/abc123/t/"}, "self_post"),
        ({"is_video": True, "url": "https://v.redd.it/xyz"}, "video"),
        ({"url": "https://i.imgur.com/AbCdE12.gifv"}, "video"),
        ({"url": "https://i.imgur.com/AbCdE12.mp4", "post_hint": "link"}, "video"),
        ({"url": "https://example.com/cat.jpg", "post_hint": "link"}, "unsupported_host"),
        ({"url": "https://preview.redd.it/abc.jpg?s=sig"}, "unsupported_host"),
    ],
)
def test_drop_reasons(fields, reason):
    assert classify(post(**fields)) == Dropped(reason)


def test_score_threshold_is_configurable():
    assert classify(post(score=3), min_score=5) == Dropped("low_score")
    assert isinstance(classify(post(score=1), min_score=0), Kept)


def test_gallery_first_valid_item_with_extension_from_mime():
    gallery = post(
        url="https://www.reddit.com/gallery/abc123",
        is_gallery=True,
        post_hint=None,
        gallery_data={"items": [{"media_id": "bad1"}, {"media_id": "anim1"}, {"media_id": "png1"}]},
        media_metadata={
            "bad1": {"status": "failed", "e": "Image", "m": "image/jpg"},
            "anim1": {"status": "valid", "e": "AnimatedImage", "m": "image/gif"},
            "png1": {"status": "valid", "e": "Image", "m": "image/png"},
        },
    )
    assert classify(gallery) == Kept("https://i.redd.it/png1.png")  # the original wrote .jpg


def test_deleted_gallery_is_dropped():
    assert gallery_url(post(gallery_data=None, media_metadata=None)) == Dropped("gallery_empty")
    deleted = post(url="https://www.reddit.com/gallery/abc123", gallery_data=None)
    assert classify(deleted) == Dropped("gallery_empty")


@pytest.mark.parametrize(
    "url",
    [
        "https://imgur.com/AbCdE12",
        "https://m.imgur.com/AbCdE12",
        "https://www.imgur.com/AbCdE12.png",
        "https://i.imgur.com/AbCdE12.jpg",
        "https://imgur.com/AbCdE12?ref=x",
        "https://i.imgur.com/AbCdE12.jpg,XyZ9876",
    ],
)
def test_imgur_direct_ids(url):
    assert imgur_url(url, None) == Kept("https://i.imgur.com/AbCdE12.jpg")


@pytest.mark.parametrize(
    ("url", "album"),
    [
        ("https://imgur.com/a/AbCdE", "AbCdE"),
        ("https://imgur.com/gallery/XyZ9876", "XyZ9876"),
        ("https://imgur.com/a/my-holiday-photos-AbCdE12", "AbCdE12"),
    ],
)
def test_imgur_albums_need_the_api(url, album):
    assert imgur_url(url, None) == Dropped("imgur_album_no_api")
    resolver = FakeResolver()
    assert imgur_url(url, resolver) == Kept(f"https://i.imgur.com/{album}x.jpg") and resolver.asked == [album]


@pytest.mark.parametrize(
    "host",
    ["farm3.staticflickr.com", "farm8.static.flickr.com", "live.staticflickr.com", "c1.staticflickr.com"],
)
def test_flickr_static_hosts(host):
    url = f"https://{host}/65535/12345_abcdef.jpg"
    assert classify(post(url=url, post_hint="link")) == Kept(url)


def test_crosspost_takes_the_parents_media():
    parent = post(id="par123", url="https://i.imgur.com/PaReNt1.jpg")
    child = post(
        url="https://www.reddit.com/r/x/comments/par123/",
        post_hint="link",
        crosspost_parent="t3_par123",
        crosspost_parent_list=[parent],
    )
    assert media_source(child) is parent
    assert classify(child) == Kept("https://i.imgur.com/PaReNt1.jpg")


def test_dump_urls_are_unescaped():
    escaped = post(url="https://farm1.staticflickr.com/1/2_ab.jpg?a=1&amp;b=2")
    assert image_url(escaped) == Kept("https://farm1.staticflickr.com/1/2_ab.jpg?a=1&b=2")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"url": "https://www.youtube.com/watch?v=abc", "post_hint": "rich:video"}, "video"),
        ({"score": None}, "low_score"),  # unknown score: not shown to be upvoted
        ({"crosspost_parent": "t3_gone12", "url": "/r/x/comments/gone12/"}, "crosspost_unresolved"),
        (
            {
                "crosspost_parent": "t3_p",
                "crosspost_parent_list": [{"over_18": True, "url": "https://i.redd.it/a.jpg"}],
            },
            "nsfw",
        ),
        (
            {
                "crosspost_parent": "t3_p",
                "crosspost_parent_list": [{"is_self": True, "url": "https://reddit.com/r/x/"}],
            },
            "self_post",
        ),
        ({"url": "https://imgur.com/a/bad"}, "imgur_bad_url"),
        ({"url": "https://imgur.com/"}, "imgur_bad_url"),
    ],
)
def test_more_drop_reasons(fields, reason):
    assert classify(post(**fields)) == Dropped(reason)


def test_gallery_without_a_valid_still_image_is_dropped():
    gallery = post(
        url="https://www.reddit.com/gallery/abc123",
        is_gallery=True,
        gallery_data={"items": [{"media_id": "u1"}, {"media_id": "f1"}]},
        media_metadata={
            "u1": {"status": "unprocessed", "e": "Image", "m": "image/jpg"},
            "f1": {"status": "failed", "e": "Image", "m": "image/png"},
        },
    )
    assert classify(gallery) == Dropped("gallery_empty")


def test_every_reason_is_documented():
    from redcaps.collect.rules import REASONS
    from redcaps.sandbox.posts import CASES, RESOLVED

    produced = {r for r in (*CASES.values(), *RESOLVED.values()) if r}
    assert produced <= set(REASONS)


@pytest.mark.parametrize(
    "fields",
    [
        {"_meta": {"was_deleted_later": True, "removal_type": "deleted"}},
        {"_meta": {"removal_type": "removed"}},
        {"author": "[deleted]", "selftext": "[deleted]"},
        {"author": "[deleted]", "selftext": "[removed]"},
    ],
)
def test_posts_deleted_or_removed_after_archiving_are_dropped(fields):
    assert classify(post(**fields)) == Dropped("deleted_later")


@pytest.mark.parametrize(
    "fields",
    [
        {"author": "[deleted]"},  # a deleted account's post is still up (the demo has many)
        {"author": "[deleted]", "selftext": ""},
        {"author": "someone", "selftext": "[removed]"},
        {"_meta": {"was_deleted_later": False, "removal_type": None, "retrieved_2nd_on": 1700000000}},
        {"_meta": None},
    ],
)
def test_posts_not_deleted_are_kept(fields):
    assert classify(post(**fields)) == Kept("https://i.redd.it/ynhaz7herbxc1.jpeg")


def test_removed_by_category_stays_removed_before_deleted_later():
    marked = post(removed_by_category="deleted", author="[deleted]", selftext="[deleted]")
    assert classify(marked) == Dropped("removed")
    assert classify(post(over_18=True, _meta={"was_deleted_later": True})) == Dropped("deleted_later")
