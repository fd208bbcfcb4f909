"""Image hosts that throttle like real CDNs: a hidden per-client-IP capacity, pushed back above it.

Real CDNs and image hosts count requests per client IP and push back above their limit, and they
differ in how, so each axis here is configurable on its own (:class:`CdnProfile`):

* the counter: a token bucket (``capacity`` per second, ``burst`` deep) or a sliding window
  (``capacity x window`` requests in any rolling ``window`` seconds). Cloudflare's rate limiting
  counts requests per IP over a period and answers 429
  (https://developers.cloudflare.com/waf/rate-limiting-rules/parameters/);
* the answer when over: 429 Too Many Requests (RFC 6585 section 4,
  https://www.rfc-editor.org/rfc/rfc6585#section-4), 503, or a reset connection;
* ``Retry-After``: absent, delta-seconds (0, 1, 30...) or an HTTP date; RFC 6585 says a 429
  "MAY include a Retry-After header", RFC 9110 section 10.2.3 defines both forms
  (https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3);
* latency that rises as the client's allowance runs out (a loaded server answers slower);
* a capacity that drops and recovers mid-run (``dip``), or changes for good (``set_capacity``).

Their thresholds are not published, so the client cannot see the profile. The client IP is the
source address the proxy sees (clients may bind 127.0.0.x to look like separate machines).
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, replace

from redcaps.sandbox.app import Request, Response, Router

#: How an over-capacity request is answered: a status, or 0 for a reset connection (as logged).
OVER_STATUS = {"429": 429, "503": 503, "reset": 0}


@dataclass(frozen=True)
class CdnProfile:
    """``capacity`` requests/s per client IP, counted by a token bucket ``burst`` deep (default one
    second's worth) or, with ``window`` set, by a sliding window of ``capacity x window`` requests
    per rolling ``window`` seconds. Over it: ``over`` ("429", "503" or "reset"); ``retry_after_share``
    of those carry ``Retry-After: retry_after`` (None: never; as an HTTP date with
    ``retry_after_date``). Latency rises from ``latency`` to ``latency + load_latency`` as the
    client's allowance runs out. ``dip`` = (start, length, factor): from ``start`` seconds after a
    client's first request, for ``length`` seconds, its capacity is ``factor`` times as large."""

    capacity: float
    burst: float | None = None
    window: float | None = None
    over: str = "429"
    retry_after: float | None = 1
    retry_after_share: float = 0.5
    retry_after_date: bool = False
    latency: float = 0.0
    load_latency: float = 0.05
    dip: tuple[float, float, float] | None = None

    def capacity_at(self, elapsed: float) -> float:
        """The capacity ``elapsed`` seconds after the client's first request."""
        if self.dip is not None and self.dip[0] <= elapsed < self.dip[0] + self.dip[1]:
            return self.capacity * self.dip[2]
        return self.capacity

    def bucket_size(self, capacity: float) -> float:
        return self.burst if self.burst is not None else max(1.0, capacity)

    def retry_after_header(self, wall_now: float) -> str:
        if self.retry_after_date:  # HTTP dates have whole seconds: round up, never early
            return email.utils.formatdate(int(wall_now + self.retry_after + 0.999), usegmt=True)
        return f"{self.retry_after:g}"


class _Client:
    """One client IP's allowance at one host: a token bucket and a log of its accepted requests."""

    def __init__(self, profile: CdnProfile, now: float) -> None:
        self.first = self.stamp = now
        self.tokens = profile.bucket_size(profile.capacity_at(0.0))
        self.accepted: deque[float] = deque()
        self.refused = 0

    def admit(self, profile: CdnProfile, now: float) -> float | None:
        """Count a request: None if refused, else the share of the allowance in use (0..1)."""
        capacity = profile.capacity_at(now - self.first)
        if profile.window is not None:
            limit = max(1.0, capacity * profile.window)
            while self.accepted and self.accepted[0] <= now - profile.window:
                self.accepted.popleft()
            if len(self.accepted) >= limit:
                return None
            self.accepted.append(now)
            return len(self.accepted) / limit
        size = profile.bucket_size(capacity)
        self.tokens = min(size, self.tokens + (now - self.stamp) * capacity)
        self.stamp = now
        if self.tokens < 1:
            return None
        self.tokens -= 1
        return 1.0 - self.tokens / size


class CdnGate:
    """Per-host, per-client-IP allowances in front of the sandbox's image hosts."""

    def __init__(self, profiles: dict[str, CdnProfile]) -> None:
        self._profiles = {pattern.lower(): profile for pattern, profile in profiles.items()}
        self._clients: dict[tuple[str, str], _Client] = {}
        self._lock = threading.Lock()
        #: (host pattern, client IP, over status or "passed") -> count: what the gate did per client.
        self.answers: Counter[tuple[str, str, int | str]] = Counter()

    def set_capacity(self, pattern: str, capacity: float, burst: float | None = None) -> None:
        """Change a host's hidden capacity mid-run (buckets keep their tokens, capped to the new size)."""
        with self._lock:
            profile = replace(self._profiles[pattern.lower()], capacity=capacity, burst=burst)
            self._profiles[pattern.lower()] = profile
            for (client_pattern, _), client in self._clients.items():
                if client_pattern == pattern.lower():
                    client.tokens = min(client.tokens, profile.bucket_size(capacity))

    def profile(self, pattern: str) -> CdnProfile:
        return self._profiles[pattern.lower()]

    def register(self, router: Router) -> None:
        """Put the gate in front of the hosts' handlers (call before they register)."""
        for pattern in self._profiles:
            router.add(pattern, lambda request, pattern=pattern: self.admit(pattern, request))

    def admit(self, pattern: str, request: Request) -> Response | None:
        """Push back when the client is over capacity; else wait the load's latency and pass on (None)."""
        client_ip = request.client.rsplit(":", 1)[0]
        with self._lock:
            profile = self._profiles[pattern]
            now = time.monotonic()
            client = self._clients.get((pattern, client_ip))
            if client is None:
                client = self._clients[(pattern, client_ip)] = _Client(profile, now)
            load = client.admit(profile, now)
            if load is None:
                client.refused += 1
                return self._refusal(pattern, client_ip, profile, client.refused)
            self.answers[(pattern, client_ip, "passed")] += 1
        delay = profile.latency + profile.load_latency * load
        if delay > 0:
            time.sleep(delay)
        return None

    def _refusal(self, pattern: str, client_ip: str, profile: CdnProfile, count: int) -> Response:
        status = OVER_STATUS[profile.over]
        self.answers[(pattern, client_ip, status)] += 1
        if profile.over == "reset":
            return Response(status, fault="reset")
        headers = {"Content-Type": "text/plain"}
        if profile.retry_after is not None and _every_nth(count, profile.retry_after_share):
            headers["Retry-After"] = profile.retry_after_header(time.time())
        return Response(status, headers, b"Too Many Requests" if status == 429 else b"Service Unavailable")


def _every_nth(count: int, share: float) -> bool:
    """Deterministically true for ``share`` of consecutive counts (0.5: every second one)."""
    return int(count * share) > int((count - 1) * share)
