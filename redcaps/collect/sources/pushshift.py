"""Pushshift-compatible search: moderator-only Pushshift (bearer token) and PullPush-style
mirrors of the Dec-2022 API.

Public Pushshift access ended in 2023 (anonymous calls get 403), so this source is for
those who still have a token or a compatible mirror. It keeps the original's method: query
a window with ``size=100`` and, when it comes back full, halve the window and query both
halves. Unlike the original it has a floor (``min_window`` seconds, default 1): a full
window that small is paged through oldest-first by ``created_utc`` instead of being split
forever. Bounds are exclusive in this API, so a window ``[start, end)`` is queried as
``after=start-1&before=end`` (the original lost a second at each edge).

The two flavours differ where their documentation does:

* Pushshift since its 2022 rewrite sorts with ``sort=<field>&order=asc|desc`` and answers
  422 ``unexpected value; permitted: 'id', 'created_utc', 'score'`` to the old
  ``sort=asc`` (https://github.com/pushshift/api/issues/146 and #129).
* PullPush keeps the old ``sort=asc&sort_type=created_utc`` and publishes its limits
  (https://pullpush.io, since February 2024): a soft limit after 15 requests a minute, a
  hard limit after 30 a minute and a long-term limit of 1,000 an hour. Its limiter stays
  under the soft limit (at most 15 requests in any minute, 900 an hour), and a 429 is
  waited out for up to ``max_block_wait`` seconds (an hour-long block included), each
  wait announced through ``on_wait``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests

from redcaps.errors import RedCapsError
from redcaps.net import api
from redcaps.net.limits import HostLimiter, HostPolicy
from redcaps.net.retry import RetryLater, RetryPolicy, retrying
from redcaps.net.session import guarded_session
from redcaps.settings import PUSHSHIFT_URL

log = logging.getLogger(__name__)

SEARCH_PATHS = {"pushshift": "/reddit/submission/search", "pullpush": "/reddit/search/submission/"}
SIZE = 100
#: Pushshift: about one request a second, as the original (it slept 1 s after every request).
#: PullPush: 14 a minute with a burst of 1, so never more than 15 in any minute (its soft
#: limit) nor 1,000 in an hour. Whoever runs the work builds one limiter per flavour.
HOST_POLICIES = {
    "pushshift": HostPolicy(rate=1.0, burst=5, concurrency=1),
    "pullpush": HostPolicy(rate=14 / 60, burst=1, concurrency=1),
}
#: How long a rate-limit block is waited out: PullPush's hourly limit plus a margin.
MAX_BLOCK_WAIT = 3900.0


def flavour_of(base_url: str, flavour: str | None = None) -> str:
    """``flavour``, else guessed from the URL (a PullPush host is PullPush)."""
    flavour = flavour or ("pullpush" if "pullpush" in base_url else "pushshift")
    if flavour not in SEARCH_PATHS:
        raise RedCapsError(f"unknown Pushshift flavour {flavour!r} (pushshift or pullpush)")
    return flavour


class PushshiftSource:
    """Yields every submission of a subreddit in ``[start, end)``."""

    name = "pushshift"

    def __init__(
        self,
        base_url: str = PUSHSHIFT_URL,
        *,
        token: str | None = None,
        flavour: str | None = None,
        size: int | None = None,
        min_window: int = 1,
        limiter: HostLimiter,
        session: requests.Session | None = None,
        max_attempts: int = 6,
        backoff_base: float = 1.0,
        max_block_wait: float = MAX_BLOCK_WAIT,
        block_probe: float = 300.0,
        on_wait: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: tuple[float, float] = (10.0, 60.0),
    ) -> None:
        base_url = (base_url or PUSHSHIFT_URL).rstrip("/")
        self.flavour = flavour = flavour_of(base_url, flavour)
        self.url = base_url + SEARCH_PATHS[flavour]
        self.size = size or SIZE
        self.min_window = max(1, min_window)
        self.session = session or guarded_session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.limiter = limiter
        self.retry = RetryPolicy(
            max_attempts, backoff_base, block_wait=max_block_wait, block_probe=block_probe
        )
        self.sleep, self.timeout, self.on_wait = sleep, timeout, on_wait

    def _query(self, subreddit: str, start: int, end: int, ascending: bool) -> list[dict[str, Any]]:
        params: dict[str, Any] = {
            "subreddit": subreddit,
            "after": start - 1,
            "before": end,
            "size": self.size,
        }
        if ascending and self.flavour == "pushshift":
            params.update(sort="created_utc", order="asc")
        elif ascending:
            params.update(sort="asc", sort_type="created_utc")
        resp = api.get(self.session, self.limiter, self.url, params=params, timeout=self.timeout)
        if resp.status_code in (401, 403):
            raise RedCapsError(
                f"{self.url}: HTTP {resp.status_code}: this API needs a valid token "
                "(PUSHSHIFT_TOKEN); public Pushshift access ended in 2023"
            )
        api.raise_for_retry(resp)
        if resp.status_code != 200:
            raise RedCapsError(f"{self.url}: HTTP {resp.status_code} for r/{subreddit}: {resp.text[:160]!r}")
        try:
            data = resp.json().get("data")
        except (ValueError, AttributeError):
            raise RetryLater("not JSON") from None
        return [p for p in data or [] if isinstance(p, dict) and "id" in p and "created_utc" in p]

    def _fetch(self, subreddit: str, start: int, end: int, ascending: bool = False) -> list[dict[str, Any]]:
        service = "PullPush" if self.flavour == "pullpush" else "Pushshift"
        policy = retrying(self.retry, self.sleep, on_wait=self.on_wait, service=service)
        try:
            return policy(self._query, subreddit, start, end, ascending)
        except RetryLater as exc:
            raise RedCapsError(f"{self.url} kept failing for r/{subreddit}: {exc}") from None

    def _page_through(self, subreddit: str, start: int, end: int) -> Iterator[dict[str, Any]]:
        """Oldest first with a ``created_utc`` cursor, for windows too small to split."""
        cursor = start
        while cursor < end:
            posts = self._fetch(subreddit, cursor, end, ascending=True)
            yield from posts
            if len(posts) < self.size:
                return
            last = max(int(float(p["created_utc"])) for p in posts)
            if last <= cursor:
                log.warning("r/%s: over %d posts at %d; moving the cursor on", subreddit, self.size, cursor)
                last = cursor + 1
            cursor = last

    def _window(self, subreddit: str, start: int, end: int) -> Iterator[dict[str, Any]]:
        posts = self._fetch(subreddit, start, end)
        if len(posts) < self.size:
            yield from posts
        elif end - start > self.min_window:
            middle = (start + end) // 2
            yield from self._window(subreddit, start, middle)
            yield from self._window(subreddit, middle, end)
        else:
            yield from self._page_through(subreddit, start, end)

    def iter_posts(self, subreddit: str, start: int, end: int) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        for post in self._window(subreddit, start, end):
            if post["id"] not in seen and start <= int(float(post["created_utc"])) < end:
                seen.add(post["id"])
                yield post
