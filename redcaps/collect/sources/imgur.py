"""Imgur albums to their first image, through the Imgur API (``GET /3/album/{id}``).

Imgur stopped issuing API client ids in 2025, so this is optional: without one, album posts
are dropped as ``imgur_album_no_api``. With one, the quota is treated as shared and
precious: when ``X-RateLimit-UserRemaining`` runs low the resolver sleeps until
``UserReset``; when ``X-RateLimit-ClientRemaining`` (the app's daily budget) runs low it
stops resolving and drops the rest as ``imgur_quota``. The original called ``sys.exit(0)``
there, throwing the month's work away unsaved.

A 403 is a credentials error only when Imgur says the client id is wrong ("Invalid
client_id"). Imgur also answers 403 from countries it blocks (the United Kingdom since 30
September 2025, https://help.imgur.com/hc/en-us/articles/41592665292443; "Banned Country
Attempt", https://github.com/Imgur/imgurpython/issues/83): that album is dropped and
counted as ``imgur_error``, and the month is still written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests

from redcaps.collect.rules import Dropped, Kept
from redcaps.errors import RedCapsError
from redcaps.net import api
from redcaps.net.limits import HostLimiter, HostPolicy
from redcaps.net.retry import RetryLater, RetryPolicy, retrying
from redcaps.net.session import guarded_session

log = logging.getLogger(__name__)

API_URL = "https://api.imgur.com"
_VIDEO_EXTS = (".mp4", ".gifv", ".webm")
#: The API's budget; whoever runs the work builds one limiter from it.
HOST_POLICY = HostPolicy(rate=1.0, burst=3, concurrency=1)


def _int_header(headers: Any, name: str) -> int | None:
    try:
        return int(float(headers[name]))
    except (KeyError, TypeError, ValueError):
        return None


def _error(resp: requests.Response) -> str:
    """Imgur's error text (``data.error``), or the start of the body."""
    try:
        error = (resp.json().get("data") or {}).get("error")
    except (ValueError, AttributeError):
        error = None
    return str(error if error is not None else resp.text[:120])


def _says_bad_client_id(resp: requests.Response) -> bool:
    text = _error(resp).lower()
    return "client_id" in text or "client id" in text


class ImgurResolver:
    """Implements :class:`redcaps.collect.rules.ImgurResolver`; answers are cached per album id."""

    def __init__(
        self,
        client_id: str,
        *,
        base_url: str = API_URL,
        limiter: HostLimiter,
        session: requests.Session | None = None,
        client_floor: int = 500,
        user_floor: int = 3,
        max_user_wait: float = 3700.0,
        max_attempts: int = 5,
        backoff_base: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        timeout: tuple[float, float] = (10.0, 30.0),
    ) -> None:
        if not client_id:
            raise RedCapsError("the Imgur resolver needs a client id")
        self._auth = f"Client-ID {client_id}"  # never logged or shown
        self.base_url = base_url.rstrip("/")
        self.session = session or guarded_session()  # its User-Agent: imgur answers 429 without one
        self.limiter = limiter
        self.client_floor, self.user_floor, self.max_user_wait = client_floor, user_floor, max_user_wait
        self.retry = RetryPolicy(max_attempts, backoff_base)
        self.sleep, self.clock, self.timeout = sleep, clock, timeout
        self.exhausted = False
        self.refused = 0  # albums answered 403 for another reason than the client id (a blocked region)
        self._cache: dict[str, Kept | Dropped] = {}

    def __repr__(self) -> str:
        return f"ImgurResolver(base_url={self.base_url!r}, exhausted={self.exhausted})"

    def first_image(self, album_id: str) -> Kept | Dropped:
        if album_id not in self._cache:
            if self.exhausted:
                return Dropped("imgur_quota")  # not cached: a later run with a new quota retries
            verdict = self._resolve(album_id)
            if verdict != Dropped("imgur_quota"):
                self._cache[album_id] = verdict
            return verdict
        return self._cache[album_id]

    def _resolve(self, album_id: str) -> Kept | Dropped:
        policy = retrying(self.retry, self.sleep)
        try:
            resp = policy(self._get, album_id)
        except RetryLater as exc:
            log.warning("imgur album %s: giving up after %s", album_id, exc)
            if "429" in str(exc):  # still throttled after backing off: stop spending requests
                self.exhausted = True
                return Dropped("imgur_quota")
            return Dropped("imgur_error")
        if resp.status_code == 404:
            return Dropped("imgur_album_gone")
        if resp.status_code == 401 or (resp.status_code == 403 and _says_bad_client_id(resp)):
            raise RedCapsError(f"the Imgur API rejected the client id (HTTP {resp.status_code})")
        if resp.status_code == 403:
            if not self.refused:
                why = _error(resp)
                log.warning("Imgur refused album %s (HTTP 403, %s): counted as imgur_error", album_id, why)
            self.refused += 1
            return Dropped("imgur_error")
        if resp.status_code != 200:
            return Dropped("imgur_error")
        try:
            images = (resp.json().get("data") or {}).get("images") or []
        except (ValueError, AttributeError):
            return Dropped("imgur_error")
        for image in images:
            link = str(image.get("link") or "") if isinstance(image, dict) else ""
            if link.startswith(("https://", "http://")) and not link.lower().endswith(_VIDEO_EXTS):
                return Kept(link.replace("http://", "https://", 1))
        return Dropped("imgur_album_empty")

    def _get(self, album_id: str) -> requests.Response:
        url = f"{self.base_url}/3/album/{album_id}"
        resp = api.get(
            self.session, self.limiter, url, headers={"Authorization": self._auth}, timeout=self.timeout
        )
        self._watch_quota(resp.headers)
        api.raise_for_retry(resp)
        return resp

    def _watch_quota(self, headers: Any) -> None:
        client = _int_header(headers, "X-RateLimit-ClientRemaining")
        if client is not None and client <= self.client_floor:
            if not self.exhausted:
                log.warning("Imgur client quota low (%d left): no more albums resolved this run", client)
            self.exhausted = True
        user = _int_header(headers, "X-RateLimit-UserRemaining")
        if user is not None and user <= self.user_floor:
            reset = _int_header(headers, "X-RateLimit-UserReset")
            wait = max(0.0, (reset or 0) - self.clock()) + 1
            if wait > self.max_user_wait:
                self.exhausted = True
            else:
                log.info("Imgur user quota low: sleeping %.0f s", wait)
                self.sleep(wait)
