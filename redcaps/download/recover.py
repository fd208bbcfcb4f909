"""Other addresses of an image whose original URL is dead: live forms, and Reddit's preview.

Two routes, in the order a download tries them (docs: issue 22; the engine records which
one served each image as ``route``):

* ``rewrite``: a known-dead URL form rewritten to its live form. Flickr retired its
  ``farmN.staticflickr.com`` / ``farmN.static.flickr.com`` hosts (410) and serves the same
  path on ``live.staticflickr.com`` (Flickr4Java #333); imgur serves an image by its id
  whatever the extension, and a ``.gifv`` is a page, not an image. A *certain* rewrite is
  tried before the dead form, the others only after the original failed.
* ``preview``: Reddit's own copy, ``preview.images[0]`` of the post (gallery-dl #4322),
  HTML-unescaped as Reddit sends ``&amp;``; only on Reddit's preview hosts.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ORIGINAL, REWRITE, PREVIEW = "original", "rewrite", "preview"
PREVIEW_HOSTS = frozenset({"preview.redd.it", "external-preview.redd.it", "i.redd.it"})
_FLICKR_FARM = re.compile(r"farm\d+\.(static\.flickr|staticflickr)\.com")
_IMGUR_FILE = re.compile(r"/([A-Za-z0-9]{5}|[A-Za-z0-9]{7})([sbtmlh]?)\.([A-Za-z0-9]+)")
_IMGUR_VIDEO = frozenset({"gifv", "mp4", "webm"})


@dataclass(frozen=True)
class Rewrite:
    url: str
    certain: bool  # the original's form is known dead: try this before it


def rewrites(url: str) -> list[Rewrite]:
    """The live forms of ``url``, certain ones first; empty when none is known."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if _FLICKR_FARM.fullmatch(host):
        return [Rewrite(urlunsplit(("https", "live.staticflickr.com", parts.path, parts.query, "")), True)]
    match = _IMGUR_FILE.fullmatch(parts.path) if host == "i.imgur.com" else None
    if match is None:
        return []
    image_id, size, ext = match[1], match[2], match[3].lower()
    forms = []
    if ext != "jpg":
        forms.append(Rewrite(f"https://i.imgur.com/{image_id}{size}.jpg", ext in _IMGUR_VIDEO))
    if size:  # a thumbnail size letter: the full-size image has the bare id
        forms.append(Rewrite(f"https://i.imgur.com/{image_id}.jpg", False))
    return forms


def attempts(url: str, *, dead_host: bool = True) -> list[tuple[str, str]]:
    """(URL, route) in the order to try them: certain rewrites, the original, other rewrites.
    ``dead_host`` False (its host not yet seen dead): the original first, then every rewrite."""
    forms = rewrites(url)
    certain = [(f.url, REWRITE) for f in forms if f.certain]
    others = [(f.url, REWRITE) for f in forms if not f.certain]
    ordered = [*certain, (url, ORIGINAL), *others] if dead_host else [(url, ORIGINAL), *certain, *others]
    unique: dict[str, str] = {}
    for candidate, route in ordered:
        unique.setdefault(candidate, route)
    return list(unique.items())


def retired_host(url: str, status: str) -> str | None:
    """The host of ``url`` when its answer says the host is retired (410 Gone for a URL with a
    certain live form, as Flickr's farms answer): its other URLs go to the live form first."""
    if status != "http_410" or not any(f.certain for f in rewrites(url)):
        return None
    return (urlsplit(url).hostname or "").lower()


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def preview_url(preview: Mapping[str, Any] | None, min_long_edge: int = 0) -> str | None:
    """The URL of Reddit's preview to fetch: the smallest resolution whose longer edge is at
    least ``min_long_edge`` (0: the source, the largest), else the largest there is; None
    when the post has no usable preview on Reddit's hosts."""
    images = (preview or {}).get("images") or []
    first = images[0] if images and isinstance(images[0], Mapping) else {}
    sizes = [s for s in [first.get("source"), *(first.get("resolutions") or [])] if _usable(s)]
    if not sizes:
        return None
    by_edge = sorted(sizes, key=_long_edge)
    fitting = [s for s in by_edge if _long_edge(s) >= min_long_edge] if min_long_edge else []
    chosen = fitting[0] if fitting else by_edge[-1]
    url = html.unescape(str(chosen["url"]))
    return url if (urlsplit(url).hostname or "").lower() in PREVIEW_HOSTS else None


def _usable(size: Any) -> bool:
    return isinstance(size, Mapping) and isinstance(size.get("url"), str) and _long_edge(size) > 0


def _long_edge(size: Mapping[str, Any]) -> int:
    edges = [size.get("width"), size.get("height")]
    return max((int(e) for e in edges if isinstance(e, int | float)), default=0)
