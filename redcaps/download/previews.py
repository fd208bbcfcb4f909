"""Reddit's previews of posts, looked up by id in batches: the ``preview`` recovery route.

Annotation files keep the official release's schema, which has no ``preview``; so a shard
whose images are gone asks Arctic Shift's ``/api/posts/ids`` (up to 500 ids a call, README
"Posts": https://github.com/ArthurHeitmann/arctic_shift/blob/master/api/README.md) for the
posts once, in as few calls as there are 500s of them, within the API's politeness slot
and through the guarded session like every API client. Records of official files carry
the post id as ``image_id`` and in their permalink, so both kinds are looked up alike.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import requests

from redcaps.annotations import Record
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


class PreviewLookup:
    """The ``preview`` object of posts by id, from Arctic Shift (one call per 500 ids)."""

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

    def previews(self, ids: Iterable[str]) -> dict[str, Mapping[str, Any]]:
        """Post id -> its ``preview``, for the posts Arctic Shift has with one. A batch the
        API keeps refusing is logged and skipped: its images stay failed, as without recovery."""
        wanted = sorted(set(ids))
        found: dict[str, Mapping[str, Any]] = {}
        for batch in batches(wanted):
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
