"""One request of an API client (Arctic Shift, Pushshift, Imgur): through a guarded session
(:mod:`redcaps.net.session`), under the client's host limiter, failures sorted for
:mod:`redcaps.net.retry` as image downloads sort theirs."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from redcaps.errors import RedCapsError
from redcaps.net.egress import BlockedAddress
from redcaps.net.limits import HostLimiter
from redcaps.net.retry import RetryLater, retry_after_seconds


def get(session: requests.Session, limiter: HostLimiter, url: str, **kwargs: Any) -> requests.Response:
    """``GET url`` once its host's slot and token are granted; a network error is worth a retry
    (:class:`RetryLater`), an address the egress guard refuses is final (:class:`RedCapsError`)."""
    try:
        with limiter.slot(urlsplit(url).hostname or ""):
            return session.get(url, **kwargs)
    except BlockedAddress as exc:
        raise RedCapsError(f"{urlsplit(url).netloc}: {exc}") from None
    except requests.RequestException as exc:
        raise RetryLater(type(exc).__name__) from None


def raise_for_retry(resp: requests.Response) -> None:
    """A 429 (a rate-limit block) or a 5xx is retried, never before its ``Retry-After``."""
    code = resp.status_code
    if code == 429 or code >= 500:
        wait = retry_after_seconds(resp.headers.get("Retry-After"))
        raise RetryLater(f"HTTP {code}", wait, rate_limited=code == 429)
