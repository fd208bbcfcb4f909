"""Refresh posts from Reddit itself (PRAW ``reddit.info``), as the original's second step.

Archives keep the score and status a post had when it was archived, often minutes after
posting; Reddit has the settled score and knows what was deleted or removed since. Posts
are asked for in batches of 100 fullnames, one ``reddit.info`` call per batch so a batch
can be retried alone. Ids Reddit does not return count as deleted
(``removed_by_category = "deleted"``). A 429 (``prawcore.exceptions.TooManyRequests``,
which prawcore never retries) sleeps ``retry_after`` and retries the batch; so do server
failures, including those prawcore raises as a plain ``ResponseException`` (a 5xx it has no
class for, such as Cloudflare's 521/523/524) and ``BadJSON`` (an HTML error page with a 200);
only 4xx answers are reported as a credentials problem. Waits and give-ups are
:mod:`redcaps.net.retry`'s, as for every outside request. A host limiter keeps to 100
requests a minute (Reddit's free tier per client id).

PRAW is given our guarded session (:mod:`redcaps.net.session`), so the egress guard,
``HTTPS_PROXY`` and ``REQUESTS_CA_BUNDLE`` apply and the Reddit URLs stay the real ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import praw
import prawcore
import requests

from redcaps.collect.credentials import Credentials, RedditCredentials
from redcaps.errors import RedCapsError
from redcaps.net.config import default_user_agent
from redcaps.net.limits import HostLimiter, HostPolicy
from redcaps.net.retry import RetryLater, RetryPolicy, retrying
from redcaps.net.session import guarded_session

log = logging.getLogger(__name__)

BATCH = 100
#: At most 10 + 1.5 * 60 = 100 requests in any minute.
HOST_POLICY = HostPolicy(rate=1.5, burst=10, concurrency=1)
#: What a refresh takes from Reddit; everything else stays as the source had it.
REFRESHED_FIELDS = ("score", "removed_by_category", "over_18", "author")


def make_reddit(creds: RedditCredentials) -> praw.Reddit:
    """A PRAW client (read-only unless a username and password are given)."""
    kwargs: dict[str, Any] = {}
    if creds.username and creds.password:
        kwargs.update(username=creds.username, password=creds.password)
    return praw.Reddit(
        client_id=creds.client_id,
        client_secret=creds.client_secret,
        user_agent=creds.user_agent or default_user_agent(),
        check_for_updates=False,
        requestor_kwargs={"session": guarded_session()},  # PRAW sends through our session: guard, proxy, CA
        **kwargs,
    )


def _current(data: dict[str, Any]) -> dict[str, Any]:
    """The refreshed fields, from PRAW's data of a submission (never a lazy fetch)."""
    author = data.get("author")
    return {
        "score": data.get("score"),
        "removed_by_category": data.get("removed_by_category"),
        "over_18": bool(data.get("over_18")),
        "author": None if author is None else str(author),
    }


def _refused(status: object) -> RedCapsError:
    return RedCapsError(f"Reddit refused the request (HTTP {status}): check the credentials")


def _is_server_failure(exc: prawcore.exceptions.ResponseException, status: int | None) -> bool:
    """A failure on Reddit's side (5xx, an unparsable body), worth retrying the batch."""
    return isinstance(exc, prawcore.exceptions.BadJSON) or (status is not None and status >= 500)


class RedditRefresher:
    """``refresh(posts)`` returns copies of ``posts`` with Reddit's current status."""

    def __init__(
        self,
        reddit: praw.Reddit,
        *,
        limiter: HostLimiter,
        batch_size: int = BATCH,
        max_attempts: int = 5,
        backoff_base: float = 2.0,
        default_retry_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.reddit = reddit
        self.batch_size = min(BATCH, max(1, batch_size))
        self.limiter = limiter
        self.retry = RetryPolicy(max_attempts, backoff_base)
        self.default_retry_after, self.sleep = default_retry_after, sleep

    @classmethod
    def from_credentials(cls, creds: RedditCredentials, **options: Any) -> RedditRefresher:
        return cls(make_reddit(creds), **options)

    def __repr__(self) -> str:
        return f"RedditRefresher(batch_size={self.batch_size})"

    def info(self, fullnames: list[str]) -> dict[str, dict[str, Any]]:
        """Post id -> PRAW's data (its fields as Reddit sent them, ``vars(submission)``) for up
        to 100 fullnames: one ``reddit.info`` call, retried as above."""
        try:
            return retrying(self.retry, self.sleep, service="Reddit")(self._ask, fullnames)
        except RetryLater:
            raise RedCapsError(
                f"Reddit kept failing for a batch of {len(fullnames)} posts; try again later"
            ) from None

    def _ask(self, fullnames: list[str]) -> dict[str, dict[str, Any]]:
        """One ``reddit.info`` call; failures on Reddit's side are :class:`RetryLater`."""
        try:
            with self.limiter.slot("oauth.reddit.com"):
                found = list(self.reddit.info(fullnames=fullnames))
        except prawcore.exceptions.TooManyRequests as exc:
            raise RetryLater("HTTP 429", self._retry_after(exc), rate_limited=True) from None
        except (
            prawcore.exceptions.ServerError,
            prawcore.exceptions.RequestException,
            requests.exceptions.JSONDecodeError,  # the token endpoint's body is parsed unguarded
        ) as exc:
            raise RetryLater(type(exc).__name__) from None
        except prawcore.exceptions.ResponseException as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if not _is_server_failure(exc, status):
                raise _refused(status) from None
            raise RetryLater(f"HTTP {status}, {type(exc).__name__}") from None
        except prawcore.exceptions.OAuthException as exc:
            raise _refused(getattr(getattr(exc, "response", None), "status_code", "?")) from None
        return {item.id: vars(item) for item in found if getattr(item, "fullname", "") in fullnames}

    def _retry_after(self, exc: prawcore.exceptions.TooManyRequests) -> float:
        try:
            return float(exc.retry_after) if exc.retry_after else self.default_retry_after
        except ValueError:
            return self.default_retry_after

    def refresh(self, posts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        refreshed = []
        for i in range(0, len(posts), self.batch_size):
            batch = posts[i : i + self.batch_size]
            current = {i: _current(data) for i, data in self.info([f"t3_{p['id']}" for p in batch]).items()}
            for post in batch:
                updated = dict(post)
                if post["id"] in current:
                    updated.update(current[post["id"]])
                else:
                    updated["removed_by_category"] = "deleted"
                refreshed.append(updated)
        return refreshed


def build_refresher(credentials: Credentials, **options: Any) -> RedditRefresher | None:
    """A refresher when Reddit credentials are configured, None when there are none; its
    limiter is built here unless ``options`` bring one.

    A Reddit section that is present but unusable (malformed file, missing fields) raises
    the one-line :class:`RedCapsError` of ``require_reddit``: the user meant to refresh."""
    if credentials.reddit is None and "reddit" not in credentials.problems:
        return None
    options.setdefault("limiter", HostLimiter({"*": HOST_POLICY}))
    return RedditRefresher.from_credentials(credentials.require_reddit(), **options)
