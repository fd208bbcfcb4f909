"""The web as it decays: gone originals, retired Flickr hosts, opt-outs and deleted posts.

Each behaviour is opt-in on the :class:`~redcaps.sandbox.world.World` (all off by default, so
the demo's world is unchanged) and imitates what the real hosts do, as documented in
docs/collection.md ("The sandbox's decayed web"):

* a gone i.redd.it image answers 404, or 403 for some (gallery-dl #6337); a gone imgur image
  redirects to ``removed.png`` (imgur's 2023 purge); a gone Flickr photo redirects to
  ``photo_unavailable.png``. Reddit's preview of the post usually outlives the original
  (gallery-dl #4322), so only ``preview_loss`` of the gone originals lose their preview too;
* Flickr's ``farmN.static.flickr.com`` / ``farmN.staticflickr.com`` answer 410 while
  ``live.staticflickr.com`` serves the same path (Flickr4Java #333);
* ``X-Robots-Tag`` opt-outs as img2dataset reads them (``disallowed_header_directives``);
* posts deleted or removed after archiving, marked as dumps since November 2023 mark them
  (``_meta.was_deleted_later``, ``removal_type``) or as Reddit shows them (author and
  ``selftext`` ``[deleted]`` / ``[removed]``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

#: X-Robots-Tag value -> whether it opts out of this project's user-agent token, ``redcaps``.
ROBOTS_TAGS = {
    "noai": True,
    "noimageai": True,
    "otherbot: noai": False,  # scoped to another crawler: not for us
    "redcaps: noimageindex": True,  # scoped to our token
}
#: How a post deleted after archiving is marked (see :func:`mark_deleted`).
DELETION_MARKS = ("deleted_later", "removed_later", "author_deleted", "author_removed")
FLICKR_FARM = re.compile(r"farm\d+\.(static\.flickr|staticflickr)\.com")
SECONDS_TO_REFETCH = 36 * 3600  # dumps since November 2023 re-fetch each record ~36 h later


def share(seed: int, what: str, key: str) -> float:
    """A deterministic number in [0, 1) for ``key``: which URLs or posts a share picks."""
    digest = hashlib.sha256(f"{seed}:{what}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _pick(seed: int, what: str, key: str, choices: tuple[str, ...]) -> str:
    return choices[int(share(seed, what + ":pick", key) * len(choices))]


def gone_fault(seed: int, url: str) -> str | None:
    """The fault a gone original answers with on its host; None for URLs a downloader does
    not fetch as they are (pages, albums, imgur ids it fetches as ``.jpg``)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.query:
        return None
    if host == "i.redd.it":
        return _pick(seed, "gone", url, ("http_404", "http_404", "http_404", "http_403"))
    if host == "i.imgur.com" and parts.path.endswith(".jpg"):
        return "imgur_removed"
    if FLICKR_FARM.fullmatch(host) or host == "live.staticflickr.com":
        return "flickr_unavailable"
    return None


def decay(world: Any, urls: Iterable[str]) -> None:
    """Give ``world.decay`` of ``urls`` (those without a fault or a special image) a gone
    original, and ``world.opt_outs`` of the others an ``X-Robots-Tag``."""
    for url in urls:
        fault = gone_fault(world.seed, url)
        if not fault or url in world.faults or url in world.kinds or url in world.copies:
            continue
        if share(world.seed, "decay", url) < world.decay:
            world.faults[url] = fault
            world.gone.add(url)
            if share(world.seed, "preview_loss", url) < world.preview_loss:
                world.dead_previews.add(url)
        elif share(world.seed, "robots", url) < world.opt_outs:
            world.robots[url] = _pick(world.seed, "robots", url, tuple(ROBOTS_TAGS))


def deletions(seed: int, fraction: float, post_ids: Iterable[str]) -> dict[str, str]:
    """Post id -> its deletion mark, for ``fraction`` of ``post_ids``."""
    return {
        pid: _pick(seed, "deleted", pid, DELETION_MARKS)
        for pid in post_ids
        if share(seed, "deleted", pid) < fraction
    }


def mark_deleted(post: dict[str, Any], mark: str) -> dict[str, Any]:
    """``post`` as an archive holds it once its deletion was seen: the dumps' ``_meta`` for
    a deletion after archiving, Reddit's ``[deleted]``/``[removed]`` placeholders otherwise."""
    marked = dict(post)
    if mark in ("deleted_later", "removed_later"):
        marked["_meta"] = {
            "retrieved_2nd_on": int(post["created_utc"]) + SECONDS_TO_REFETCH,
            "was_deleted_later": True,
            "removal_type": "deleted" if mark == "deleted_later" else "removed",
        }
    else:
        marked.update(author="[deleted]", selftext="[deleted]" if mark == "author_deleted" else "[removed]")
    return marked
