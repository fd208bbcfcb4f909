"""Where Reddit posts come from: a :class:`PostSource` yields raw submission dicts.

Pushshift's public API closed in 2023, so the default is Arctic Shift (no auth); a
Pushshift-compatible API (token or PullPush-style mirror) and local dump files also work.
Every source yields each post of a subreddit with ``start <= created_utc < end`` once, in
no promised order (``collect_month`` sorts). Modules:

* ``arctic_shift``, ``pushshift``, ``dump``: the sources;
* ``reddit_refresh``: current score/status from Reddit (PRAW), when credentials exist;
* ``imgur``: imgur albums to their first image (Imgur API), when a client id exists;
* their requests go through :mod:`redcaps.net` as image downloads do: the guarded session,
  a host limiter built by whoever runs the work, and :mod:`redcaps.net.retry`'s policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol


class PostSource(Protocol):
    #: Recorded as ``info.collection.source``.
    name: str

    def iter_posts(self, subreddit: str, start: int, end: int) -> Iterator[dict[str, Any]]:
        """Raw submissions of ``subreddit`` (case-insensitive) created in ``[start, end)``."""
        ...
