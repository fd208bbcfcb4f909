"""Which Reddit posts become RedCaps instances, and with which image URL.

Each rule is a small named function returning a :class:`Dropped` (or None to pass);
:func:`classify` applies them in the original's order (removed, NSFW, score) and then the
checks the original lacked (deleted after archiving, right after removed; self posts, videos,
crossposts' media, unsupported hosts).
Every drop has a reason, and ``collect_month`` counts them in ``info.collection``.

Deliberate differences from the original tool (it had bugs here):

* gallery items get the extension of their mime type (the original always wrote ``.jpg``),
  and items that are not ``valid`` images are skipped instead of taking ``items[0]``;
* imgur page URLs on ``www.``/``m.`` hosts, with query strings or ``.png`` become
  ``https://i.imgur.com/<id>.jpg`` (the original's string replaces broke on those);
* ``.gifv``/``.mp4``, self posts and videos are dropped up front instead of failing later
  at image download; a crosspost takes its parent's media (``crosspost_parent_list[-1]``);
* an imgur album that cannot be resolved is dropped with a reason; the original kept it
  with ``url = https://i.imgur.com/removed.png``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from redcaps.net.config import strip_userinfo
from redcaps.settings import CollectionSettings

Post = dict[str, Any]

#: Every reason a post can be dropped for, with what it means (for reports and docs).
REASONS = {
    "removed": "removed_by_category is set (moderator, author, deleted, ...)",
    "deleted_later": "deleted or removed after archiving (_meta.was_deleted_later or removal_type, "
    "or author and selftext [deleted]/[removed])",
    "nsfw": "over_18 (the post or its crosspost parent)",
    "low_score": "score below min_score (votes not in favour, or unknown)",
    "self_post": "a text post: no image",
    "video": "a video, .gifv or .mp4",
    "gallery_empty": "a Reddit gallery without a valid image item (e.g. deleted)",
    "crosspost_unresolved": "a crosspost whose parent's media is not in the data",
    "imgur_bad_url": "an imgur URL without a recognisable image id",
    "imgur_album_no_api": "an imgur album, and no Imgur client id to resolve it",
    "imgur_album_gone": "the Imgur API says the album no longer exists",
    "imgur_album_empty": "the imgur album has no still image",
    "imgur_quota": "the Imgur API quota ran low, so albums were no longer resolved",
    "imgur_error": "the Imgur API kept failing for this album",
    "unsupported_host": "not an http(s) link to i.redd.it, imgur or a Flickr static host",
    "bad_id": "the post's id is not a safe file-name token (it names the image file)",
    "bad_time": "created_utc missing or not a number",
    "empty_caption": "the cleaned caption is empty (only with [captions] drop_empty = true)",
}
#: The reason ``collect_month`` gives when ``[captions] drop_empty`` drops a post.
EMPTY_CAPTION = "empty_caption"

_IMGUR_HOSTS = frozenset({"imgur.com", "www.imgur.com", "m.imgur.com", "i.imgur.com"})
#: 5 or 7 characters, optionally a size letter: kept as given (imgur serves ``<id>h`` too).
_IMGUR_ID = re.compile(r"[A-Za-z0-9]{5,7}[sbtmlh]?")
_IMGUR_ALBUM_ID = re.compile(r"[A-Za-z0-9]{5,7}")
_FLICKR_HOSTS = re.compile(
    r"farm\d+\.staticflickr\.com|farm\d+\.static\.flickr\.com|live\.staticflickr\.com|c\d+\.staticflickr\.com"
)
_GALLERY_EXT = {
    "image/jpg": "jpg",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
}
_VIDEO_HINTS = frozenset({"hosted:video", "rich:video", "video"})
_VIDEO_EXTS = (".gifv", ".mp4", ".webm")


@dataclass(frozen=True)
class Kept:
    url: str


@dataclass(frozen=True)
class Dropped:
    reason: str


Verdict = Kept | Dropped


class ImgurResolver(Protocol):
    """Resolves an imgur album or gallery id to its first image (the Imgur API)."""

    def first_image(self, album_id: str) -> Kept | Dropped: ...


# -- status rules: decided by the post itself (refreshed from Reddit when possible) --------


def removed(post: Post) -> Dropped | None:
    return Dropped("removed") if post.get("removed_by_category") else None


def deleted_later(post: Post) -> Dropped | None:
    """Deleted or removed after the archive first saw it: dumps since November 2023 re-fetch
    each record and mark ``_meta``; Reddit shows a deleted post's author and ``selftext``
    as ``[deleted]`` (by its author) or ``[removed]`` (by moderators)."""
    meta = post.get("_meta") if isinstance(post.get("_meta"), dict) else {}
    placeholder = post.get("author") == "[deleted]" and post.get("selftext") in ("[deleted]", "[removed]")
    marked = meta.get("was_deleted_later") or meta.get("removal_type") or placeholder
    return Dropped("deleted_later") if marked else None


def nsfw(post: Post) -> Dropped | None:
    """NSFW if the post is marked, or the crosspost parent whose image it shows is."""
    marked = post.get("over_18") or media_source(post).get("over_18")
    return Dropped("nsfw") if marked else None


def low_score(post: Post, min_score: int = CollectionSettings.min_score) -> Dropped | None:
    """An unknown score (no number, NaN) counts as too low: the rule is there to keep only
    upvoted posts."""
    score = post.get("score")
    known = isinstance(score, int | float) and score == score  # NaN is not equal to itself
    return Dropped("low_score") if not known or score < min_score else None


def self_post(post: Post) -> Dropped | None:
    source = media_source(post)
    return Dropped("self_post") if post.get("is_self") or source.get("is_self") else None


# -- media rules: where the image is -------------------------------------------------------


def media_source(post: Post) -> Post:
    """A crosspost's media is its parent's: the last of ``crosspost_parent_list``."""
    parents = post.get("crosspost_parent_list") or []
    return parents[-1] if parents and isinstance(parents[-1], dict) else post


def post_url(post: Post) -> str:
    """The link of a post, HTML-unescaped (Pushshift-era dumps store ``&amp;``)."""
    url = post.get("url_overridden_by_dest") or post.get("url") or ""
    return html.unescape(str(url)).strip()


def video(post: Post, url: str) -> Dropped | None:
    hint = post.get("post_hint") or ""
    path = urlsplit(url).path.lower()
    host = (urlsplit(url).hostname or "").lower()
    if post.get("is_video") or hint in _VIDEO_HINTS or host == "v.redd.it" or path.endswith(_VIDEO_EXTS):
        return Dropped("video")
    return None


def is_gallery(post: Post) -> bool:
    url = post_url(post)
    host = (urlsplit(url).hostname or "").lower()
    on_reddit = host == "reddit.com" or host.endswith(".reddit.com")
    return bool(post.get("is_gallery")) or (on_reddit and "/gallery/" in url)


def gallery_url(post: Post) -> Kept | Dropped:
    """The first item that is a ``valid`` still ``Image``, with its mime type's extension.

    The original always took ``items[0]`` and wrote ``.jpg``: wrong for PNG items, and a
    dead link when the first item had failed processing."""
    items = (post.get("gallery_data") or {}).get("items") or []
    metadata = post.get("media_metadata") or {}
    for item in items:
        media_id = str(item.get("media_id") or "")
        meta = metadata.get(media_id) or {}
        ext = _GALLERY_EXT.get(str(meta.get("m", "")).lower())
        if media_id.isalnum() and meta.get("status") == "valid" and meta.get("e") == "Image" and ext:
            return Kept(f"https://i.redd.it/{media_id}.{ext}")
    return Dropped("gallery_empty")


def imgur_album_id(url: str) -> str | None:
    """The id of ``/a/<id>``, ``/gallery/<id>`` or ``/a/some-title-<id>``; None when the URL
    is not an album's, ``""`` when it is but the id is malformed."""
    segments = [s for s in urlsplit(url).path.split("/") if s]
    if len(segments) < 2 or segments[0] not in ("a", "gallery"):
        return None
    candidate = segments[1].rsplit("-", 1)[-1]
    return candidate if _IMGUR_ALBUM_ID.fullmatch(candidate) else ""


def imgur_url(url: str, resolver: ImgurResolver | None = None) -> Kept | Dropped:
    """Direct ids become ``https://i.imgur.com/<id>.jpg`` (imgur serves an id whatever the
    extension); albums go to ``resolver`` when there is one.

    Comma-joined ids (``imgur.com/AbCdE12,XyZ9876``, seen in RedCaps ``url`` values) keep
    only the first, as RedCaps keeps one image per post."""
    album = imgur_album_id(url)
    if album is not None:
        if not album:
            return Dropped("imgur_bad_url")
        return resolver.first_image(album) if resolver else Dropped("imgur_album_no_api")
    segments = [s for s in urlsplit(url).path.split("/") if s]
    name = segments[-1].split(",")[0] if segments else ""
    image_id = name.split(".")[0]
    if not _IMGUR_ID.fullmatch(image_id):
        return Dropped("imgur_bad_url")
    return Kept(f"https://i.imgur.com/{image_id}.jpg")


def image_url(post: Post, imgur: ImgurResolver | None = None) -> Kept | Dropped:
    """Where the post's image is, on a host RedCaps takes (i.redd.it, imgur, Flickr), over
    http(s) and without the link's userinfo (``user:pw@``)."""
    if post.get("crosspost_parent") and media_source(post) is post:
        return Dropped("crosspost_unresolved")
    source = media_source(post)
    if is_gallery(source):
        return gallery_url(source)
    url = post_url(source)
    dropped = video(source, url)
    if dropped:
        return dropped
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https"):
        return Dropped("unsupported_host")
    if host == "i.redd.it" or _FLICKR_HOSTS.fullmatch(host):
        return Kept(strip_userinfo(url))
    if host in _IMGUR_HOSTS:
        return imgur_url(url, imgur)
    return Dropped("unsupported_host")


def classify(
    post: Post, *, min_score: int = CollectionSettings.min_score, imgur: ImgurResolver | None = None
) -> Kept | Dropped:
    """Apply every rule in order; the first drop wins. Albums are resolved last, so the
    Imgur quota is only spent on posts that pass every other rule."""
    for rule in (removed, deleted_later, nsfw):
        dropped = rule(post)
        if dropped:
            return dropped
    dropped = low_score(post, min_score) or self_post(post)
    return dropped or image_url(post, imgur)
