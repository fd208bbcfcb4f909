"""Arctic Shift (``/api/posts/search``), the live no-auth replacement for Pushshift.

Paged by ``created_utc`` the way its own UI pages: ``sort=asc&after=<cursor>``. The API's
README does not say whether ``after`` includes its own second (its download tool behaves as
if it does, its search page as if it does not), so every query overlaps the previous page
by one second (``after=<last created_utc> - 1``) and posts are de-duplicated by id: no post
is lost either way. ``fields`` is left off: it cannot select
``media_metadata``/``gallery_data``, which galleries need.

Being polite is part of being reliable here. The errors its README and issues document
(https://github.com/ArthurHeitmann/arctic_shift/blob/master/api/README.md, issues #12 and
#66): "Query timed out", "Timeout. Maybe slow down a bit" (a 422) and "Slow down a little"
back off and shrink the page (100 -> 50 -> 25, growing back after a run of successes);
429 and 5xx back off honouring ``Retry-After``; when ``X-RateLimit-Remaining`` reaches 0
the source sleeps until ``X-RateLimit-Reset``. Long waits are announced through ``on_wait``.
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
from redcaps.settings import ARCTIC_SHIFT_URL

log = logging.getLogger(__name__)

SEARCH_PATH = "/api/posts/search"
PAGE_SIZES = (100, 50, 25)
GROW_AFTER = 20  # successful pages at a shrunk size before trying the next size up
#: The API's budget; whoever runs the work builds one limiter from it for all its requests.
HOST_POLICY = HostPolicy(rate=2.0, burst=5, concurrency=1)


def reset_delay(value: str | None, now: float, default: float = 60.0) -> float:
    """Seconds until ``X-RateLimit-Reset``: an epoch (s or ms) or a delta in seconds."""
    try:
        reset = float(value) if value else default
    except ValueError:
        return default
    if reset > 1e12:  # epoch milliseconds
        reset = reset / 1000 - now
    elif reset > 1e9:  # epoch seconds
        reset -= now
    return max(0.0, reset)


#: Error texts that mean "the query was too heavy right now": retry smaller and later.
SLOW_DOWN_TEXTS = ("slow down", "timeout", "timed out")


def is_slow_down(text: str) -> bool:
    text = text.lower()
    return any(marker in text for marker in SLOW_DOWN_TEXTS)


class ArcticShiftSource:
    """Yields every submission of a subreddit in ``[start, end)``, oldest first."""

    name = "arctic-shift"

    def __init__(
        self,
        base_url: str = ARCTIC_SHIFT_URL,
        *,
        limiter: HostLimiter,
        session: requests.Session | None = None,
        max_attempts: int = 8,
        backoff_base: float = 2.0,
        max_reset_wait: float = 900.0,
        on_wait: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        timeout: tuple[float, float] = (10.0, 90.0),
    ) -> None:
        self.base_url = (base_url or ARCTIC_SHIFT_URL).rstrip("/")
        self.session = session or guarded_session()
        self.limiter = limiter
        self.retry = RetryPolicy(max_attempts, backoff_base, block_wait=max_reset_wait)
        self.max_reset_wait, self.sleep, self.clock, self.timeout = max_reset_wait, sleep, clock, timeout
        self.on_wait = on_wait
        self.page_size = PAGE_SIZES[0]
        self._good_pages = 0

    # -- one request ------------------------------------------------------------------------
    def _honour_rate_limit(self, resp: requests.Response) -> None:
        remaining = resp.headers.get("X-RateLimit-Remaining")
        try:
            exhausted = remaining is not None and float(remaining) <= 0
        except ValueError:
            exhausted = False
        if exhausted:
            wait = min(self.max_reset_wait, reset_delay(resp.headers.get("X-RateLimit-Reset"), self.clock()))
            message = f"Arctic Shift rate limit reached: sleeping {wait:.0f} s until X-RateLimit-Reset"
            log.info("%s", message)
            if self.on_wait is not None:
                self.on_wait(message)
            self.sleep(wait)

    def _page(self, subreddit: str, after: int, before: int) -> tuple[list[dict[str, Any]], int]:
        limit = self.page_size
        params = {"subreddit": subreddit, "after": after, "before": before, "limit": limit, "sort": "asc"}
        resp = api.get(
            self.session, self.limiter, self.base_url + SEARCH_PATH, params=params, timeout=self.timeout
        )
        self._honour_rate_limit(resp)
        api.raise_for_retry(resp)
        code = resp.status_code
        try:
            body = resp.json()
        except ValueError:
            body = None
        error = str(body.get("error") or "") if isinstance(body, dict) else resp.text[:200]
        if code == 422 or is_slow_down(error):
            raise RetryLater(f"HTTP {code}: {error[:80]}", shrink=True)
        if code != 200 or not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise RedCapsError(f"Arctic Shift answered HTTP {code} for r/{subreddit}: {error[:120]!r}")
        return body["data"], limit

    def _shrink(self) -> None:
        self._good_pages = 0
        smaller = [size for size in PAGE_SIZES if size < self.page_size]
        if smaller:
            self.page_size = max(smaller)
            log.info("Arctic Shift asked us to slow down: pages of %d now", self.page_size)

    def _grow(self) -> None:
        self._good_pages += 1
        bigger = [size for size in PAGE_SIZES if size > self.page_size]
        if bigger and self._good_pages >= GROW_AFTER:
            self.page_size = min(bigger)
            self._good_pages = 0

    def _fetch(self, subreddit: str, after: int, before: int) -> tuple[list[dict[str, Any]], int]:
        def attempt() -> tuple[list[dict[str, Any]], int]:
            try:
                return self._page(subreddit, after, before)
            except RetryLater as again:
                if again.shrink:
                    self._shrink()
                raise

        policy = retrying(self.retry, self.sleep, on_wait=self.on_wait, service="Arctic Shift")
        try:
            page = policy(attempt)
        except RetryLater as exc:
            raise RedCapsError(f"Arctic Shift kept failing for r/{subreddit} after={after}: {exc}") from None
        self._grow()
        return page

    # -- the walk ---------------------------------------------------------------------------
    def iter_posts(self, subreddit: str, start: int, end: int) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        cursor = start  # every post before this second has been seen
        while cursor < end:
            page, limit = self._fetch(subreddit, cursor - 1, end)  # one second of overlap
            for post in page:
                if not isinstance(post, dict) or "id" not in post or "created_utc" not in post:
                    continue
                created = int(float(post["created_utc"]))
                if post["id"] not in seen and start <= created < end:
                    seen.add(post["id"])
                    yield post
            if len(page) < limit:
                return
            last = max(
                (int(float(p.get("created_utc", cursor))) for p in page if isinstance(p, dict)),
                default=cursor,
            )
            if last <= cursor:  # a whole page within two seconds: move on (the rest is lost)
                log.warning("r/%s: over %d posts at %d; moving the cursor on", subreddit, limit, cursor)
                last = cursor + 1
            cursor = last
