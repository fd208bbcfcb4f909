"""Reddit's previews of posts, looked up by id in batches: the ``preview`` recovery route.

Annotation files keep the official release's schema, which has no ``preview``; so a shard
whose images are gone looks their posts up once, through a chain of sources, each asked only
for the ids the ones before it did not know:

1. the collected previews: the side files FetchMonth wrote of what its source returned
   (:mod:`redcaps.collect.preview_file`), no request at all;
2. Arctic Shift's ``/api/posts/ids`` (up to 500 ids a call, README "Posts":
   https://github.com/ArthurHeitmann/arctic_shift/blob/master/api/README.md), within the
   API's politeness slot and through the guarded session like every API client;
3. with Reddit credentials, PRAW ``reddit.info(fullnames=...)``, 100 a call
   (https://praw.readthedocs.io/en/stable/code_overview/reddit_instance.html#praw.Reddit.info),
   through the refresh's client and its 429 handling (:mod:`redcaps.collect.sources.reddit_refresh`).

Records of official files carry the post id as ``image_id`` and in their permalink, so both
kinds are looked up alike.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import requests

from redcaps.annotations import Record
from redcaps.collect.credentials import RedditCredentials
from redcaps.collect.preview_file import load_previews
from redcaps.collect.sources import reddit_refresh
from redcaps.collect.sources.arctic_shift import HOST_POLICY
from redcaps.errors import RedCapsError
from redcaps.net import api
from redcaps.net.config import HttpConfig
from redcaps.net.limits import HostLimiter
from redcaps.net.retry import RetryLater, RetryPolicy, retrying
from redcaps.net.session import guarded_session
from redcaps.settings import ARCTIC_SHIFT_URL

log = logging.getLogger(__name__)

IDS_PATH = "/api/posts/ids"
IDS_PER_CALL = 500
_PERMALINK_ID = re.compile(r"/comments/([a-z0-9]+)/")


def post_id(record: Record) -> str:
    """The Reddit post id of a record: from its permalink, else its ``image_id``."""
    match = _PERMALINK_ID.search(record.get("permalink") or "")
    return match[1] if match else str(record["image_id"]).removeprefix("t3_")


def batches(ids: Sequence[str], size: int = IDS_PER_CALL) -> Iterable[Sequence[str]]:
    return (ids[i : i + size] for i in range(0, len(ids), size))


Previews = dict[str, Mapping[str, Any]]


class PreviewSource(Protocol):
    """One place previews are known: ``previews(ids)`` answers those it has."""

    def previews(self, ids: Sequence[str]) -> Previews: ...

    def close(self) -> None: ...


class PreviewLookup:
    """The ``preview`` object of posts by id: collected side files, then Arctic Shift, then
    Reddit itself when ``reddit`` credentials are given."""

    def __init__(
        self,
        base_url: str = ARCTIC_SHIFT_URL,
        *,
        config: HttpConfig | None = None,
        limiter: HostLimiter | None = None,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        collected: Iterable[str | Path] = (),
        reddit: RedditCredentials | None = None,
    ) -> None:
        self.sources: list[PreviewSource] = [
            CollectedPreviews(collected),
            ArcticShiftPreviews(base_url, config=config, limiter=limiter, session=session, retry=retry),
        ]
        if reddit is not None:
            self.sources.append(RedditPreviews(reddit))

    def close(self) -> None:
        for source in self.sources:
            source.close()

    def previews(self, ids: Iterable[str]) -> Previews:
        """Post id -> its ``preview``, for the posts some source has with one."""
        wanted = sorted(set(ids))
        found: Previews = {}
        for source in self.sources:
            missing = [i for i in wanted if i not in found]
            if not missing:
                break
            found.update(source.previews(missing))
        return found


class CollectedPreviews:
    """What the collection's sources returned, read from the months' side files when first asked."""

    def __init__(self, paths: Iterable[str | Path]) -> None:
        self.paths = sorted({Path(p) for p in paths})
        self.known: Previews | None = None

    def close(self) -> None:
        self.known = None

    def previews(self, ids: Sequence[str]) -> Previews:
        if self.known is None:
            self.known = {}
            for path in self.paths:
                self.known.update(load_previews(path))
        return {i: p for i in ids if isinstance(p := self.known.get(i), Mapping)}


class RedditPreviews:
    """Reddit's current ``preview`` of posts, 100 fullnames a ``reddit.info`` call (PRAW)."""

    def __init__(self, creds: RedditCredentials, *, limiter: HostLimiter | None = None) -> None:
        limiter = limiter or HostLimiter({"*": reddit_refresh.HOST_POLICY})
        self.client = reddit_refresh.RedditRefresher.from_credentials(creds, limiter=limiter)

    def close(self) -> None:
        """PRAW has no public close; its session ends with the client, as the refresh's does."""

    def previews(self, ids: Sequence[str]) -> Previews:
        """A batch Reddit keeps refusing is logged and skipped: its images stay failed."""
        found: Previews = {}
        for batch in batches(ids, reddit_refresh.BATCH):
            try:
                posts = self.client.info([f"t3_{i}" for i in batch])
            except RedCapsError as exc:
                log.warning("Reddit preview lookup of %d posts failed: %s", len(batch), exc)
                continue
            found.update({i: d["preview"] for i, d in posts.items() if isinstance(d.get("preview"), Mapping)})
        return found


class ArcticShiftPreviews:
    """Previews from Arctic Shift's ids endpoint, one call per 500 ids."""

    def __init__(
        self,
        base_url: str = ARCTIC_SHIFT_URL,
        *,
        config: HttpConfig | None = None,
        limiter: HostLimiter | None = None,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_url = (base_url or ARCTIC_SHIFT_URL).rstrip("/")
        self.session = session or guarded_session(config)
        self.limiter = limiter or HostLimiter({"*": HOST_POLICY})
        self.retry = retry or RetryPolicy(max_attempts=5, backoff_base=2.0)

    def close(self) -> None:
        self.session.close()

    def previews(self, ids: Sequence[str]) -> Previews:
        """A batch the API keeps refusing is logged and skipped: its images stay failed, as
        without recovery."""
        found: Previews = {}
        for batch in batches(ids):
            try:
                posts = retrying(self.retry, service="Arctic Shift")(self._call, batch)
            except (RetryLater, RedCapsError) as exc:
                log.warning("Arctic Shift preview lookup of %d posts failed: %s", len(batch), exc)
                continue
            for post in posts:
                if isinstance(post, Mapping) and isinstance(post.get("preview"), Mapping):
                    found[str(post.get("id"))] = post["preview"]
        return found

    def _call(self, batch: Sequence[str]) -> list[Any]:
        url = f"{self.base_url}{IDS_PATH}"
        resp = api.get(self.session, self.limiter, url, params={"ids": ",".join(batch)}, timeout=(10, 90))
        api.raise_for_retry(resp)
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise RedCapsError(f"Arctic Shift answered HTTP {resp.status_code} to {IDS_PATH}")
        return body["data"]
