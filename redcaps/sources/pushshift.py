"""Pushshift-compatible search APIs: the moderator-only Pushshift (bearer token) and
PullPush-style mirrors of the Dec-2022 API.

Windows are queried with the original's exclusive ``after``/``before`` bounds, and a window
that comes back full (``size`` results) is split in half and both halves are queried, as
the original did; at one second it cannot split further and takes what it got.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import requests

from redcaps.errors import RedCapsError
from redcaps.http import default_user_agent, retry_after_seconds
from redcaps.sources.retry import RetryLater, retrying

PUSHSHIFT_URL = "https://api.pushshift.io"
SEARCH_PATHS = {"pushshift": "/reddit/submission/search", "pullpush": "/reddit/search/submission/"}
SIZE = 100


class PushshiftSource:
    name = "pushshift"

    def __init__(
        self,
        base_url: str = PUSHSHIFT_URL,
        *,
        token: str | None = None,
        flavour: str = "pushshift",
        session: requests.Session | None = None,
        max_attempts: int = 6,
        backoff_base: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 60.0,
    ) -> None:
        self.url = base_url.rstrip("/") + SEARCH_PATHS[flavour]
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = default_user_agent()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.max_attempts, self.backoff_base, self.sleep, self.timeout = (
            max_attempts,
            backoff_base,
            sleep,
            timeout,
        )

    def _query(self, subreddit: str, start: int, end: int) -> list[dict[str, Any]]:
        params = {"subreddit": subreddit, "after": start - 1, "before": end, "size": SIZE}
        try:
            resp = self.session.get(self.url, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RetryLater(type(exc).__name__) from None
        if resp.status_code in (401, 403):
            raise RedCapsError(
                f"{self.url}: HTTP {resp.status_code}: this API needs a valid token "
                "(PUSHSHIFT_TOKEN); public Pushshift access ended in 2023"
            )
        if resp.status_code == 429 or resp.status_code >= 500:
            raise RetryLater(f"HTTP {resp.status_code}", retry_after_seconds(resp.headers.get("Retry-After")))
        if resp.status_code != 200:
            raise RedCapsError(f"{self.url}: HTTP {resp.status_code} for r/{subreddit}")
        return resp.json().get("data") or []

    def _fetch(self, subreddit: str, start: int, end: int) -> list[dict[str, Any]]:
        policy = retrying(self.max_attempts, self.backoff_base, self.sleep)
        try:
            return policy(self._query, subreddit, start, end)
        except RetryLater as exc:
            raise RedCapsError(f"{self.url} kept failing for r/{subreddit}: {exc}") from None

    def _window(self, subreddit: str, start: int, end: int) -> Iterator[dict[str, Any]]:
        posts = self._fetch(subreddit, start, end)
        if len(posts) >= SIZE and end - start > 1:
            middle = (start + end) // 2
            yield from self._window(subreddit, start, middle)
            yield from self._window(subreddit, middle, end)
        else:
            yield from posts

    def iter_posts(self, subreddit: str, start: int, end: int) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        for post in self._window(subreddit, start, end):
            if post["id"] not in seen and start <= int(post["created_utc"]) < end:
                seen.add(post["id"])
                yield post
