"""Which Reddit posts become RedCaps instances, and with which image URL.

Each rule is a small named function; :func:`classify` applies them in the original's order
(removed, NSFW, score, then media) plus the checks the original lacked (self posts, videos,
crossposts' media, unsupported hosts). Every drop has a reason, counted in ``info``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

Post = dict[str, Any]

_IMGUR_ID = re.compile(r"[A-Za-z0-9]{5,7}[sbtmlh]?")
_IMGUR_ALBUM = re.compile(r"/(?:a|gallery)/(?:[\w-]*-)?([A-Za-z0-9]{5,7})/?$")
_GALLERY_EXT = {
    "image/jpg": "jpg",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
}
FLICKR_HOSTS = re.compile(r"(farm\d+\.static\.?flickr\.com|live\.staticflickr\.com|c\d+\.staticflickr\.com)")


@dataclass(frozen=True)
class Kept:
    url: str


@dataclass(frozen=True)
class Dropped:
    reason: str


class ImgurResolver(Protocol):
    """Resolves an imgur album or gallery id to its first image URL (the Imgur API)."""

    def first_image(self, album_id: str) -> Kept | Dropped: ...


def removed(post: Post) -> Dropped | None:
    return Dropped("removed") if post.get("removed_by_category") else None


def nsfw(post: Post) -> Dropped | None:
    return Dropped("nsfw") if post.get("over_18") else None


def low_score(post: Post, min_score: int) -> Dropped | None:
    score = post.get("score")
    return Dropped("low_score") if score is None or score < min_score else None


def self_post(post: Post) -> Dropped | None:
    return Dropped("self_post") if post.get("is_self") else None


def video(post: Post, url: str) -> Dropped | None:
    hint = post.get("post_hint") or ""
    path = urlsplit(url).path.lower()
    if post.get("is_video") or "video" in hint or path.endswith((".gifv", ".mp4")):
        return Dropped("video")
    return None


def media_source(post: Post) -> Post:
    """A crosspost's media is its parent's (the last of ``crosspost_parent_list``)."""
    parents = post.get("crosspost_parent_list") or []
    return parents[-1] if parents else post


def is_gallery(post: Post) -> bool:
    url = post.get("url") or ""
    host = urlsplit(url).hostname or ""
    return bool(post.get("is_gallery")) or (host.endswith("reddit.com") and "/gallery/" in url)


def gallery_url(post: Post) -> Kept | Dropped:
    """First valid image of a gallery, with the extension its mime type gives.

    The original always wrote ``.jpg``, which is wrong for PNG/GIF items."""
    items = (post.get("gallery_data") or {}).get("items") or []
    metadata = post.get("media_metadata") or {}
    for item in items:
        meta = metadata.get(item.get("media_id"), {})
        ext = _GALLERY_EXT.get(meta.get("m", ""))
        if meta.get("status") == "valid" and meta.get("e") == "Image" and ext:
            return Kept(f"https://i.redd.it/{item['media_id']}.{ext}")
    return Dropped("gallery_empty")


def imgur_url(url: str, resolver: ImgurResolver | None) -> Kept | Dropped:
    """Direct ids -> ``https://i.imgur.com/<id>.jpg``; albums and galleries via the API.

    Comma-joined ids (seen in RedCaps ``url`` values) keep the first id."""
    parts = urlsplit(url)
    album = _IMGUR_ALBUM.search(parts.path)
    if album:
        return resolver.first_image(album.group(1)) if resolver else Dropped("imgur_album_no_api")
    name = parts.path.strip("/").split("/")[-1].split(",")[0]
    image_id = name.split(".")[0]
    if not _IMGUR_ID.fullmatch(image_id):
        return Dropped("imgur_bad_url")
    return Kept(f"https://i.imgur.com/{image_id}.jpg")


def image_url(post: Post, resolver: ImgurResolver | None = None) -> Kept | Dropped:
    """Where the post's image is, on a host RedCaps takes (i.redd.it, imgur, flickr)."""
    source = media_source(post)
    if is_gallery(source):
        return gallery_url(source)
    url = html.unescape(source.get("url_overridden_by_dest") or source.get("url") or "")
    host = (urlsplit(url).hostname or "").lower()
    dropped = video(source, url)
    if dropped:
        return dropped
    if host == "i.redd.it":
        return Kept(url)
    if host in ("imgur.com", "www.imgur.com", "m.imgur.com", "i.imgur.com"):
        return imgur_url(url, resolver)
    if FLICKR_HOSTS.fullmatch(host):
        return Kept(url)
    return Dropped("unsupported_host")


def classify(post: Post, *, min_score: int = 2, resolver: ImgurResolver | None = None) -> Kept | Dropped:
    """Apply every rule in order; the first drop wins."""
    for rule in (removed, nsfw, self_post):
        dropped = rule(post)
        if dropped:
            return dropped
    dropped = low_score(post, min_score)
    return dropped or image_url(post, resolver)
