"""Polite, robust HTTP: one pooled session, per-host limits, retries only where they help.

* Keep-alive pooling and a descriptive User-Agent (imgur and i.redd.it answer 429 to
  default client strings), ``Accept: image/*`` (i.redd.it serves HTML to browsers).
* Per-host token buckets and concurrency caps: a host matches the longest policy key that
  is a dot-suffix of it (``i.imgur.com`` -> ``imgur.com``), so all hosts of one service
  share one limit. Every request takes a token: retries, and each redirect hop too.
* Retries (tenacity) only for network errors, 408, 429 and 5xx, with exponential backoff
  and full jitter, never shorter than ``Retry-After``; 404/410 and other 4xx are final.
* Placeholders count as failures: imgur's ``removed.png`` and flickr's
  ``photo_unavailable`` are served with HTTP 200 after a redirect.
* Standard ``HTTP(S)_PROXY`` / ``REQUESTS_CA_BUNDLE`` apply (requests' ``trust_env``).
* No internal addresses (:mod:`redcaps.net.egress`): a refused URL or redirect hop is
  ``blocked_address``, final.
* Deadlines: ``request_deadline`` for one request, body included (a trickling body is cut),
  ``url_deadline`` for one URL across attempts, redirects and backoff; both end as
  ``timeout``, which a later run retries. Waiting for our own host limits does not count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import hashlib
import random
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests
import tenacity
import urllib3.exceptions

from redcaps import __version__
from redcaps.net import throttle
from redcaps.net.budget import MachineBudget, ProcessBudget, egress_route
from redcaps.net.egress import BlockedAddress, EgressGuard, GuardedAdapter
from redcaps.net.throttle import ThrottleState

IMGUR_REMOVED_MD5 = "d835884373f4d6c8f24742ceabe74946"

#: Statuses a later run should try again; everything else is final.
RETRYABLE_STATUSES = frozenset(
    {"timeout", "connection_error", "http_408", "http_429", "http_5xx", "truncated"}
)


@dataclass(frozen=True)
class HostPolicy:
    """Token bucket (``rate`` per second, up to ``burst`` at once) and a concurrency cap.

    ``rate`` is where the adaptive control (:mod:`redcaps.net.throttle`) starts; it may raise the
    rate up to ``ceiling`` while the host answers well (None: ``rate`` is fixed; Retry-After still pauses)."""

    rate: float = 5.0
    burst: int = 10
    concurrency: int = 8
    ceiling: float | None = None

    @property
    def max_rate(self) -> float:
        return max(self.rate, self.ceiling or self.rate)


DEFAULT_POLICY = HostPolicy(rate=5.0, burst=10, concurrency=8, ceiling=20.0)
#: Redirect hops followed per attempt (requests' own default is 30).
MAX_REDIRECTS = 5
#: Start rates are conservative (imgur throttles hard: the original slept 2 s per imgur image);
#: ceilings bound what the adaptive control may reach per egress IP (docs/benchmarks/convergence.md).
DEFAULT_HOST_POLICIES: dict[str, HostPolicy] = {
    "imgur.com": HostPolicy(rate=1.0, burst=2, concurrency=2, ceiling=10.0),
    "redd.it": HostPolicy(rate=5.0, burst=10, concurrency=8, ceiling=50.0),
    "staticflickr.com": HostPolicy(rate=5.0, burst=10, concurrency=8, ceiling=30.0),
    "static.flickr.com": HostPolicy(rate=5.0, burst=10, concurrency=8, ceiling=30.0),
    "*": DEFAULT_POLICY,
}
_POLICY_KEYS = ("rate", "burst", "concurrency", "ceiling")


def parse_host_policy(text: str) -> HostPolicy:
    """Parse ``"rate=1 burst=2 concurrency=2 ceiling=10"`` (any subset; the rest from the defaults;
    no ``ceiling``: the rate is fixed)."""
    values: dict[str, float] = {}
    for part in text.replace(",", " ").split():
        key, sep, value = part.partition("=")
        if not sep or key not in _POLICY_KEYS:
            raise ValueError(f"bad host policy {text!r}: expected rate=R burst=N concurrency=N ceiling=R")
        try:
            values[key] = float(value)
        except ValueError:
            raise ValueError(f"bad host policy {text!r}: {key} must be a number") from None
    policy = HostPolicy(
        rate=values.get("rate", DEFAULT_POLICY.rate),
        burst=int(values.get("burst", max(1, values.get("rate", DEFAULT_POLICY.burst)))),
        concurrency=int(values.get("concurrency", DEFAULT_POLICY.concurrency)),
        ceiling=values.get("ceiling"),
    )
    if policy.rate <= 0 or policy.burst < 1 or policy.concurrency < 1:
        raise ValueError(f"bad host policy {text!r}: rate must be > 0, burst and concurrency >= 1")
    if policy.ceiling is not None and policy.ceiling < policy.rate:
        raise ValueError(f"bad host policy {text!r}: ceiling must be >= rate")
    return policy


def policy_key(host: str, policies: dict[str, HostPolicy]) -> str:
    """The longest policy key that is ``host`` or a dot-suffix of it, else ``"*"``."""
    host = host.lower().rstrip(".")
    matches = [k for k in policies if k != "*" and (host == k or host.endswith("." + k))]
    return max(matches, key=len, default="*")


#: Answers that mean "slow down": the rate is cut (and Retry-After, when given, pauses the host).
CONGESTION_CODES = frozenset({429, 503})
CONGESTION_STATUSES = frozenset({"timeout", "connection_error"})


class Ticket:
    """One request's permission from the limiter; report the host's answer back through it."""

    def __init__(self, limiter: HostLimiter, key: str, waited: float) -> None:
        self.limiter, self.key, self.waited = limiter, key, waited
        self.sent = limiter.clock()
        self.reported = False

    def response(self, code: int, retry_after: str | None = None) -> None:
        """The host answered ``code`` (headers just arrived)."""
        self.reported = True
        if code in CONGESTION_CODES:
            self.limiter.congested(self.key, retry_after_seconds(retry_after))
        elif code < 500 and code != 408:  # other 5xx and 408: neither a reason to slow down nor to speed up
            self.limiter.healthy(self.key, self.limiter.clock() - self.sent)

    def failed(self, status: str) -> None:
        """No answer: timeouts and refused connections count as the host pushing back."""
        self.reported = True
        if status in CONGESTION_STATUSES:
            self.limiter.congested(self.key, None)


class HostLimiter:
    """Per-host politeness: adaptive token buckets (:mod:`redcaps.net.throttle`) kept in ``budget``
    (this process's memory unless given a :class:`~redcaps.net.budget.MachineBudget`), and a
    concurrency cap per process. Hosts matching only ``"*"`` each get their own bucket."""

    def __init__(
        self,
        policies: dict[str, HostPolicy] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        budget: ProcessBudget | MachineBudget | None = None,
        route: str = "",
        max_pause: float = 120.0,
    ) -> None:
        self.policies = dict(policies or DEFAULT_HOST_POLICIES)
        self.policies.setdefault("*", DEFAULT_POLICY)
        self.clock, self.sleep = clock, sleep
        self.budget = budget or ProcessBudget()
        self.route, self.max_pause = route, max_pause
        self.waited: dict[str, float] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_config(cls, config: HttpConfig) -> HostLimiter:
        """The limiter ``config`` asks for: shared per machine unless ``host_scope`` is "process"."""
        budget = ProcessBudget() if config.host_scope == "process" else MachineBudget(config.budget_dir)
        proxy = urllib.request.getproxies().get("https", "")
        route = egress_route(config.source_address, proxy)
        return cls(config.host_policies, budget=budget, route=route, max_pause=config.retry_after_max)

    def for_processes(self, count: int) -> SharedLimits | None:
        """How ``count`` other processes draw on this limiter's machine budgets together, each
        with its share of every concurrency cap (None: the budgets live in this process only)."""
        if not isinstance(self.budget, MachineBudget):
            return None
        policies = {
            key: dataclasses.replace(policy, concurrency=max(1, -(-policy.concurrency // count)))
            for key, policy in self.policies.items()
        }
        return SharedLimits(policies, str(self.budget.directory), self.route, self.max_pause)

    def policy_key(self, host: str) -> str:
        key = policy_key(host, self.policies)
        return host.lower().rstrip(".") if key == "*" else key

    def _policy(self, key: str) -> HostPolicy:
        return self.policies.get(key) or self.policies["*"]

    @contextlib.contextmanager
    def _state(self, key: str) -> Iterator[ThrottleState]:
        policy = self._policy(key)
        with self.budget.state(
            f"{self.route}|{key}", lambda: throttle.fresh_state(policy.rate, self.clock())
        ) as state:
            yield state

    def _take_token(self, key: str) -> float:
        waited = 0.0
        burst = self._policy(key).burst
        while True:
            with self._state(key) as state:
                delay = min(throttle.take(state, burst, self.clock()), self.max_pause)
            if delay <= 0:
                return waited
            self.sleep(delay)
            waited += delay

    def congested(self, key: str, retry_after: float | None) -> None:
        policy = self._policy(key)
        adaptive = policy.ceiling is not None  # without a ceiling the rate is fixed
        floor = max(throttle.FLOOR, policy.rate * throttle.FLOOR_SHARE)
        with self._state(key) as state:
            throttle.congested(state, self.clock(), retry_after, self.max_pause, cut=adaptive, floor=floor)

    def healthy(self, key: str, latency: float) -> None:
        with self._state(key) as state:
            throttle.healthy(state, self.clock(), latency, self._policy(key).max_rate)

    def rate(self, host: str) -> float:
        """The current rate of ``host``'s group (requests/s)."""
        return self.status(host)["rate"]

    def status(self, host: str) -> dict[str, float]:
        """For progress lines: the group's current rate and the seconds of Retry-After pauses
        imposed on it so far (for the whole group: every thread, and every process sharing it)."""
        with self._state(self.policy_key(host)) as state:
            return {"rate": state.rate, "paused_s": state.paused_total}

    def _slot(self, key: str) -> threading.BoundedSemaphore:
        with self._lock:
            if key not in self._slots:
                self._slots[key] = threading.BoundedSemaphore(self._policy(key).concurrency)
            return self._slots[key]

    @contextlib.contextmanager
    def slot(self, host: str) -> Iterator[Ticket]:
        """Block for a concurrency slot and a token; yield a :class:`Ticket` (``.waited``: seconds
        spent waiting). An attempt that ends in a retryable error without an answer is reported."""
        key = self.policy_key(host)
        slots = self._slot(key)
        start = self.clock()
        slots.acquire()
        try:
            waited = self.clock() - start + self._take_token(key)
            with self._lock:
                self.waited[key] = self.waited.get(key, 0.0) + waited
            ticket = Ticket(self, key, waited)
            try:
                yield ticket
            except _Retry as exc:
                if not ticket.reported:
                    ticket.failed(exc.result.status)
                raise
        finally:
            slots.release()


@dataclass(frozen=True)
class SharedLimits:
    """A machine-budget limiter as another process rebuilds it (picklable)."""

    policies: dict[str, HostPolicy]
    budget_dir: str
    route: str
    max_pause: float

    def limiter(self) -> HostLimiter:
        budget = MachineBudget(self.budget_dir)
        return HostLimiter(self.policies, budget=budget, route=self.route, max_pause=self.max_pause)


def default_user_agent() -> str:
    return f"redcaps/{__version__} (+https://github.com/redcaps-dataset/redcaps-downloader; dataset research)"


@dataclass
class HttpConfig:
    user_agent: str = field(default_factory=default_user_agent)
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_bytes: int = 50 * 2**20
    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    retry_after_max: float = 120.0
    host_policies: dict[str, HostPolicy] = field(default_factory=lambda: dict(DEFAULT_HOST_POLICIES))
    pool_size: int = 32
    #: Seconds for one request from connecting to the body's last byte.
    request_deadline: float = 60.0
    #: Seconds for one URL across all attempts, redirects and backoff waits.
    url_deadline: float = 180.0
    #: CIDRs of internal networks that may be fetched (e.g. your own mirror); none by default.
    allow_networks: tuple[str, ...] = ()
    #: "machine" (default): all processes on this machine share each host's budget, as hosts
    #: count per client IP; "global": the same here, and the scheduler runs one shard per host at
    #: a time; "process": each process has its own.
    host_scope: str = "machine"
    #: Local IP to send from ("" = the OS's choice); the machine's budget is kept per address.
    source_address: str = ""
    #: Where the machine's shared budgets live ("" = $XDG_RUNTIME_DIR/redcaps/hosts or /tmp).
    budget_dir: str = ""


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


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), None when absent or junk."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


class _Retry(Exception):
    """An attempt that failed in a way worth retrying."""

    def __init__(self, result: FetchResult, retry_after: float | None = None) -> None:
        super().__init__(result.status)
        self.result = result
        self.retry_after = retry_after


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


class Fetcher:
    """Fetch URLs politely; :meth:`get` never raises for network or HTTP problems."""

    def __init__(
        self,
        config: HttpConfig | None = None,
        limiter: HostLimiter | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.config = config or HttpConfig()
        self.limiter = limiter or HostLimiter.for_config(self.config)
        self.session = session or requests.Session()
        adapter = GuardedAdapter(
            EgressGuard(self.config.allow_networks),
            self.config.source_address,
            pool_connections=self.config.pool_size,
            pool_maxsize=self.config.pool_size,
            max_retries=0,
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = self.config.user_agent

    def close(self) -> None:
        self.session.close()

    def _wait(self, state: tenacity.RetryCallState) -> float:
        config = self.config
        backoff = min(config.backoff_max, config.backoff_base * 2 ** (state.attempt_number - 1))
        delay = random.uniform(0, backoff)  # full jitter
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retry) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        return delay

    def get(self, url: str, *, accept: str = "image/*,*/*;q=0.8") -> FetchResult:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return FetchResult(url, "invalid_url", error=f"not an http(s) URL: {url[:80]!r}")
        attempts = 0
        deadline = _Deadline(self.config.url_deadline)

        def attempt() -> FetchResult:
            nonlocal attempts
            attempts += 1
            return self._attempt(url, parts.hostname or "", accept, deadline)

        def past_deadline(state: tenacity.RetryCallState) -> bool:
            return state.upcoming_sleep >= deadline.remaining()

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(1, self.config.max_attempts)) | past_deadline,
            wait=self._wait,
            retry=tenacity.retry_if_exception(self._worth_retrying),
            reraise=True,
        )
        try:
            result = retrying(attempt)
        except _Retry as exc:
            result = exc.result
        result.attempts = attempts
        return result

    def _worth_retrying(self, exc: BaseException) -> bool:
        if not isinstance(exc, _Retry):
            return False
        # a server asking us to wait longer than we are willing to: give up now, retry next run
        return exc.retry_after is None or exc.retry_after <= self.config.retry_after_max

    def _attempt(self, url: str, host: str, accept: str, deadline: _Deadline) -> FetchResult:
        """One attempt, following redirects hop by hop: every request, a redirect's included
        (imgur's deleted images redirect to ``removed.png`` on the same host), takes its own
        host's slot and token. The slot is released between hops, so two hops never hold two
        slots of one host at once (with the cap full, that would deadlock)."""
        config = self.config
        hop_url, hop_host = url, host
        for _ in range(MAX_REDIRECTS + 1):
            with self.limiter.slot(hop_host) as ticket:
                deadline.extend(ticket.waited)
                budget = min(config.request_deadline, deadline.remaining())
                if budget <= 0:
                    ticket.reported = True  # our own deadline, not the host pushing back
                    raise _Retry(
                        FetchResult(url, "timeout", error=f"over the {config.url_deadline:g} s URL deadline")
                    )
                ends = time.monotonic() + budget
                try:
                    with self.session.get(
                        hop_url,
                        headers={"Accept": accept},
                        timeout=(min(config.connect_timeout, budget), min(config.read_timeout, budget)),
                        stream=True,
                        allow_redirects=False,
                    ) as resp:
                        ticket.response(resp.status_code, resp.headers.get("Retry-After"))
                        location = resp.headers.get("Location") if resp.is_redirect else None
                        if location is None:
                            return self._read(url, resp, ends)
                except _Retry:
                    raise
                except BlockedAddress as exc:
                    return FetchResult(url, "blocked_address", final_url=hop_url, error=_one_line(exc))
                except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError) as exc:
                    raise _Retry(FetchResult(url, "timeout", error=_one_line(exc))) from None
                except (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError) as exc:
                    raise _Retry(FetchResult(url, "truncated", error=_one_line(exc))) from None
                except (requests.exceptions.ConnectionError, urllib3.exceptions.SSLError) as exc:
                    timed_out = isinstance(exc.__context__, urllib3.exceptions.ReadTimeoutError)
                    if timed_out or "timed out" in str(exc):
                        raise _Retry(FetchResult(url, "timeout", error=_one_line(exc))) from None
                    raise _Retry(FetchResult(url, "connection_error", error=_one_line(exc))) from None
                except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
                    return FetchResult(url, "connection_error", error=_one_line(exc))
            hop_url = urljoin(hop_url, location)
            hop_host = urlsplit(hop_url).hostname or ""
            if urlsplit(hop_url).scheme not in ("http", "https") or not hop_host:
                why = "redirect to a non-web URL"
                return FetchResult(url, "connection_error", final_url=hop_url, error=why)
        why = f"over {MAX_REDIRECTS} redirects"
        return FetchResult(url, "connection_error", final_url=hop_url, error=why)

    def _read(self, url: str, resp: requests.Response, ends: float) -> FetchResult:
        config = self.config
        result = FetchResult(
            url,
            "ok",
            final_url=resp.url,
            http_status=resp.status_code,
            content_type=resp.headers.get("Content-Type"),
        )
        code = resp.status_code
        if code != 200:
            result.status = _status_for_code(code)
            result.error = f"HTTP {code}"
            if code in (408, 429) or code >= 500:
                raise _Retry(result, retry_after_seconds(resp.headers.get("Retry-After")))
            return result
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > config.max_bytes:
            result.status, result.error = "too_large", f"Content-Length {length} > {config.max_bytes}"
            return result
        chunks, size = [], 0
        while chunk := _read_before(resp, ends, config.read_timeout):
            size += len(chunk)
            if size > config.max_bytes:
                result.status, result.error = "too_large", f"body over {config.max_bytes} bytes"
                return result
            chunks.append(chunk)
        body = b"".join(chunks)
        if length and length.isdigit() and len(body) < int(length):
            raise _Retry(
                FetchResult(url, "truncated", final_url=resp.url, error=f"got {len(body)} of {length} bytes")
            )
        if is_placeholder(resp.url, body):
            result.status, result.error = "placeholder", f"placeholder image at {resp.url}"
            return result
        result.body = body
        return result
