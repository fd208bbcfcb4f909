"""Arctic Shift (``/api/posts/search``), paged by ``created_utc`` the way its own UI pages.

``after`` is inclusive, so posts are de-duplicated by id and the cursor moves past a second
only when a whole page was already seen. A 422 "Timeout. Maybe slow down a bit" halves the
page (100 -> 50 -> 25) and backs off; 429/5xx back off honouring ``Retry-After``; when
``X-RateLimit-Remaining`` reaches 0 the source waits for ``X-RateLimit-Reset``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import requests

from redcaps.errors import RedCapsError
from redcaps.http import default_user_agent, retry_after_seconds
from redcaps.sources.retry import RetryLater, retrying

DEFAULT_BASE_URL = "https://arctic-shift.photon-reddit.com"
PAGE_SIZES = (100, 50, 25)


class ArcticShiftSource:
    name = "arctic-shift"

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        session: requests.Session | None = None,
        max_attempts: int = 6,
        backoff_base: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = default_user_agent()
        self.max_attempts, self.backoff_base, self.sleep, self.timeout = (
            max_attempts,
            backoff_base,
            sleep,
            timeout,
        )
        self.page_size = PAGE_SIZES[0]

    def _page(self, subreddit: str, after: int, before: int) -> list[dict[str, Any]]:
        params = {
            "subreddit": subreddit,
            "after": after,
            "before": before,
            "limit": self.page_size,
            "sort": "asc",
        }
        try:
            resp = self.session.get(f"{self.base_url}/api/posts/search", params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RetryLater(f"{type(exc).__name__}") from None
        if resp.status_code == 422:
            raise RetryLater("422 " + resp.text[:80], shrink=True)
        if resp.status_code == 429 or resp.status_code >= 500:
            raise RetryLater(f"HTTP {resp.status_code}", retry_after_seconds(resp.headers.get("Retry-After")))
        if resp.status_code != 200:
            raise RedCapsError(f"Arctic Shift answered HTTP {resp.status_code} for r/{subreddit}")
        if resp.headers.get("X-RateLimit-Remaining") == "0":
            self.sleep(float(resp.headers.get("X-RateLimit-Reset") or 60))
        data = resp.json().get("data")
        if data is None:
            raise RetryLater("error: " + str(resp.json().get("error"))[:80], shrink=True)
        return data

    def _fetch(self, subreddit: str, after: int, before: int) -> list[dict[str, Any]]:
        def attempt() -> list[dict[str, Any]]:
            try:
                return self._page(subreddit, after, before)
            except RetryLater as again:
                if again.shrink and self.page_size > PAGE_SIZES[-1]:
                    self.page_size = PAGE_SIZES[PAGE_SIZES.index(self.page_size) + 1]
                raise

        policy = retrying(self.max_attempts, self.backoff_base, self.sleep)
        try:
            return policy(attempt)
        except RetryLater as exc:
            raise RedCapsError(f"Arctic Shift kept failing for r/{subreddit} after {after}: {exc}") from None

    def iter_posts(self, subreddit: str, start: int, end: int) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        cursor = start
        while cursor < end:
            page = self._fetch(subreddit, cursor, end)
            fresh = [p for p in page if p["id"] not in seen]
            for post in fresh:
                seen.add(post["id"])
                yield post
            if len(page) < self.page_size:
                return
            last = int(page[-1]["created_utc"])
            cursor = last if fresh and last > cursor else cursor + 1
