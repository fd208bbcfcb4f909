"""Fetch one URL politely and robustly; :meth:`Fetcher.get` never raises for network or HTTP problems.

* One pooled, guarded session (:mod:`redcaps.net.session`): keep-alive, a descriptive
  User-Agent (imgur and i.redd.it answer 429 to default client strings), ``Accept: image/*``
  (i.redd.it serves HTML to browsers), proxies and CA bundle from the environment, and no
  internal addresses (:mod:`redcaps.net.egress`): a refused URL or redirect hop is
  ``blocked_address``, final.
* Every request, each redirect hop and retry included, asks the host limiter first
  (:mod:`redcaps.net.limits`) and reports the host's answer back.
* Retries (:mod:`redcaps.net.retry`) only for network errors, 408, 429 and 5xx; 404/410
  and other 4xx are final.
* Placeholders count as failures: imgur's ``removed.png`` and flickr's
  ``photo_unavailable`` are served with HTTP 200 after a redirect.
* Opt-outs: an image whose ``X-Robots-Tag`` lines carry one of the ``disallowed`` directives
  for our user-agent token (:mod:`redcaps.net.robots`) is ``opted_out``, final; its body is
  not read.
* Deadlines: ``request_deadline`` for one request, body included (a trickling body is cut),
  ``url_deadline`` for one URL across attempts, redirects and backoff; both end as
  ``timeout``, which a later run retries. Waiting for our own host limits does not count.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
import tenacity
import urllib3.exceptions

from redcaps.net.config import HttpConfig, strip_userinfo
from redcaps.net.egress import BlockedAddress
from redcaps.net.limits import HostLimiter, Ticket
from redcaps.net.retry import RetryLater, retry_after_seconds, retrying
from redcaps.net.robots import opted_out, user_agent_token
from redcaps.net.session import guarded_session

IMGUR_REMOVED_MD5 = "d835884373f4d6c8f24742ceabe74946"

#: Statuses a later run should try again; everything else is final.
RETRYABLE_STATUSES = frozenset(
    {"timeout", "connection_error", "http_408", "http_429", "http_5xx", "truncated"}
)
#: Redirect hops followed per attempt (requests' own default is 30).
MAX_REDIRECTS = 5


@dataclass
class FetchResult:
    url: str
    status: str
    final_url: str | None = None
    http_status: int | None = None
    body: bytes | None = None
    content_type: str | None = None
    error: str | None = None
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def is_placeholder(final_url: str | None, body: bytes | None) -> bool:
    """imgur's ``removed.png`` (by final URL or md5) or flickr's ``photo_unavailable``."""
    if final_url:
        parts = urlsplit(final_url)
        host = (parts.hostname or "").lower()
        if (host == "imgur.com" or host.endswith(".imgur.com")) and parts.path.endswith("/removed.png"):
            return True
        if "photo_unavailable" in parts.path:
            return True
    return body is not None and len(body) < 4096 and hashlib.md5(body).hexdigest() == IMGUR_REMOVED_MD5


def _status_for_code(code: int) -> str:
    if code in (404, 410, 403, 408, 429):
        return f"http_{code}"
    return "http_5xx" if code >= 500 else "http_4xx"


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


class _Deadline:
    """When one URL's time is up; waits for our own host limits push it back."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def extend(self, seconds: float) -> None:
        self.at += seconds


def _read_before(resp: requests.Response, ends: float, read_timeout: float) -> bytes:
    """The body's next bytes, as soon as any arrive, or a timeout once ``ends`` has passed:
    a body that trickles in never trips the read timeout, so each read waits only until ``ends``."""
    remaining = ends - time.monotonic()
    if remaining <= 0:
        raise urllib3.exceptions.TimeoutError("body not complete before the deadline")
    timeout = min(read_timeout, remaining)
    sock = getattr(resp.raw.connection, "sock", None)
    if sock is not None:
        sock.settimeout(timeout)
    try:
        return resp.raw.read1(1 << 20)  # whatever has arrived, up to 1 MiB: fewer, cheaper calls
    except urllib3.exceptions.ReadTimeoutError:
        if timeout < read_timeout:  # the deadline cut this read short, not the read timeout
            raise urllib3.exceptions.TimeoutError("body not complete before the deadline") from None
        raise


class _RetryFetch(RetryLater):
    """An attempt that failed in a way worth retrying; ``result`` stands if it was the last."""

    def __init__(self, result: FetchResult, retry_after: float | None = None) -> None:
        super().__init__(result.status, wait=retry_after, rate_limited=result.status == "http_429")
        self.result = result


def _classify(exc: BaseException) -> tuple[str, bool]:
    """The status of a request that raised ``exc``, and whether another attempt may help."""
    if isinstance(exc, BlockedAddress):
        return "blocked_address", False
    if isinstance(exc, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError)):
        return "timeout", True
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError)):
        return "truncated", True
    if isinstance(exc, (requests.exceptions.ConnectionError, urllib3.exceptions.SSLError)):
        timed_out = isinstance(exc.__context__, urllib3.exceptions.ReadTimeoutError) or "timed out" in str(
            exc
        )
        return ("timeout" if timed_out else "connection_error"), True
    return "connection_error", False


_REQUEST_ERRORS = (BlockedAddress, requests.exceptions.RequestException, urllib3.exceptions.HTTPError)


def _is_web_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class Fetcher:
    """Fetch URLs politely; :meth:`get` never raises for network or HTTP problems."""

    def __init__(self, config: HttpConfig | None = None, limiter: HostLimiter | None = None) -> None:
        self.config = config or HttpConfig()
        self.limiter = limiter or HostLimiter.for_config(self.config)
        self.session = guarded_session(self.config)
        self.policy = self.config.retry_policy()

    def close(self) -> None:
        self.session.close()

    def get(
        self, url: str, *, accept: str = "image/*,*/*;q=0.8", disallowed: Collection[str] = ()
    ) -> FetchResult:
        """Fetch ``url``; an answer whose ``X-Robots-Tag`` applies one of ``disallowed`` to us
        is ``opted_out`` (none given: the header is not looked at)."""
        if not _is_web_url(url):
            return FetchResult(url, "invalid_url", error=f"not an http(s) URL: {url[:80]!r}")
        attempts = 0
        deadline = _Deadline(self.config.url_deadline)

        def attempt() -> FetchResult:
            nonlocal attempts
            attempts += 1
            return self._attempt(url, accept, deadline, disallowed)

        def past_deadline(state: tenacity.RetryCallState) -> bool:
            return state.upcoming_sleep >= deadline.remaining()

        try:
            result = retrying(self.policy, stop_early=past_deadline)(attempt)
        except _RetryFetch as exc:
            result = exc.result
        result.attempts = attempts
        return result

    def _attempt(
        self, url: str, accept: str, deadline: _Deadline, disallowed: Collection[str]
    ) -> FetchResult:
        """One attempt, following redirects hop by hop: every request, a redirect's included
        (imgur's deleted images redirect to ``removed.png`` on the same host), takes its own
        host's slot and token."""
        hop_url = url
        for _ in range(MAX_REDIRECTS + 1):
            answer = self._hop(url, hop_url, accept, deadline, disallowed)
            if isinstance(answer, FetchResult):
                return answer
            hop_url = urljoin(hop_url, answer)
            if not _is_web_url(hop_url):
                return FetchResult(
                    url, "connection_error", final_url=hop_url, error="redirect to a non-web URL"
                )
        return FetchResult(
            url, "connection_error", final_url=hop_url, error=f"over {MAX_REDIRECTS} redirects"
        )

    def _hop(
        self, url: str, hop_url: str, accept: str, deadline: _Deadline, disallowed: Collection[str]
    ) -> FetchResult | str:
        """One request under its host's slot: the result, or where a redirect points. The slot
        is released before the next hop, so two hops never hold two slots of one host at once
        (with the cap full, that would deadlock)."""
        with self.limiter.slot(urlsplit(hop_url).hostname or "") as ticket:
            ends = self._request_ends(url, ticket, deadline)
            try:
                return self._send(url, hop_url, accept, ticket, ends, disallowed)
            except _REQUEST_ERRORS as exc:
                status, retry = _classify(exc)
                if not retry:
                    final_url = hop_url if status == "blocked_address" else None
                    return FetchResult(url, status, final_url=final_url, error=_one_line(exc))
                if not ticket.reported:
                    ticket.failed(status)
                raise _RetryFetch(FetchResult(url, status, error=_one_line(exc))) from None

    def _request_ends(self, url: str, ticket: Ticket, deadline: _Deadline) -> float:
        """When this request must be done (``time.monotonic``); none left is a retryable timeout."""
        deadline.extend(ticket.waited)
        budget = min(self.config.request_deadline, deadline.remaining())
        if budget <= 0:
            ticket.reported = True  # our own deadline, not the host pushing back
            why = f"over the {self.config.url_deadline:g} s URL deadline"
            raise _RetryFetch(FetchResult(url, "timeout", error=why))
        return time.monotonic() + budget

    def _send(
        self, url: str, hop_url: str, accept: str, ticket: Ticket, ends: float, disallowed: Collection[str]
    ) -> FetchResult | str:
        budget = ends - time.monotonic()
        config = self.config
        with self.session.get(
            strip_userinfo(hop_url),  # never sent as credentials, a redirect's included
            headers={"Accept": accept},
            timeout=(min(config.connect_timeout, budget), min(config.read_timeout, budget)),
            stream=True,
            allow_redirects=False,
        ) as resp:
            ticket.response(resp.status_code, resp.headers.get("Retry-After"))
            location = resp.headers.get("Location") if resp.is_redirect else None
            if location is not None:
                return location
            refusal = self._opt_out(url, resp, disallowed)
            return refusal if refusal is not None else self._read(url, resp, ends)

    def _opt_out(self, url: str, resp: requests.Response, disallowed: Collection[str]) -> FetchResult | None:
        """``opted_out`` when the answer's ``X-Robots-Tag`` lines disallow us, else None."""
        if not disallowed or resp.status_code != 200:
            return None
        lines = resp.raw.headers.getlist("X-Robots-Tag")
        directive = opted_out(lines, user_agent_token(self.config.user_agent), disallowed) if lines else None
        if directive is None:
            return None
        why = f"X-Robots-Tag {directive}"
        return FetchResult(url, "opted_out", final_url=resp.url, http_status=200, error=why)

    def _read(self, url: str, resp: requests.Response, ends: float) -> FetchResult:
        result = FetchResult(
            url,
            "ok",
            final_url=resp.url,
            http_status=resp.status_code,
            content_type=resp.headers.get("Content-Type"),
        )
        code = resp.status_code
        if code != 200:
            result.status, result.error = _status_for_code(code), f"HTTP {code}"
            if code in (408, 429) or code >= 500:
                raise _RetryFetch(result, retry_after_seconds(resp.headers.get("Retry-After")))
            return result
        max_bytes = self.config.max_bytes
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            result.status, result.error = "too_large", f"Content-Length {length} > {max_bytes}"
            return result
        body = self._body(resp, ends)
        if body is None:
            result.status, result.error = "too_large", f"body over {max_bytes} bytes"
        elif length and length.isdigit() and len(body) < int(length):
            why = f"got {len(body)} of {length} bytes"
            raise _RetryFetch(FetchResult(url, "truncated", final_url=resp.url, error=why))
        elif is_placeholder(resp.url, body):
            result.status, result.error = "placeholder", f"placeholder image at {resp.url}"
        else:
            result.body = body
        return result

    def _body(self, resp: requests.Response, ends: float) -> bytes | None:
        """The whole body, or None once it grows over ``max_bytes``."""
        chunks, size = [], 0
        while chunk := _read_before(resp, ends, self.config.read_timeout):
            size += len(chunk)
            if size > self.config.max_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)
