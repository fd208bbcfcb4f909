"""Image hosts that throttle like real CDNs: a hidden per-client-IP capacity, 429 above it.

Real CDNs and image hosts count requests per client IP and answer 429 Too Many Requests above
their limit, with or without ``Retry-After`` (RFC 6585 section 4: the response "MAY include a
Retry-After header"; https://www.rfc-editor.org/rfc/rfc6585#section-4). Cloudflare's rate
limiting counts per IP by default and answers 429
(https://developers.cloudflare.com/waf/rate-limiting-rules/parameters/). Their thresholds are
not published, so here they are a per-host :class:`CdnProfile` the client cannot see.

A gate runs before the host's own handler: it takes a token from the client IP's bucket (the
source address the proxy sees; clients may bind 127.0.0.2-127.0.0.4 to look like separate
machines), answers 429 when the bucket is empty, and otherwise adds latency that grows as the
bucket drains (a loaded server answers slower) and lets the host's handler answer.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, replace

from redcaps.sandbox.app import Request, Response, Router


@dataclass(frozen=True)
class CdnProfile:
    """``capacity`` requests/s per client IP (bursts up to ``burst``, default one second's worth);
    ``retry_after_share`` of the 429s carry ``Retry-After: retry_after``; latency rises from
    ``latency`` to ``latency + load_latency`` as the client's bucket empties."""

    capacity: float
    burst: float | None = None
    retry_after_share: float = 0.5
    retry_after: int = 1
    latency: float = 0.0
    load_latency: float = 0.05


class _Bucket:
    def __init__(self, profile: CdnProfile, now: float) -> None:
        self.tokens = self.size(profile)
        self.stamp = now
        self.denied = 0

    @staticmethod
    def size(profile: CdnProfile) -> float:
        return profile.burst if profile.burst is not None else max(1.0, profile.capacity)


class CdnGate:
    """Per-host, per-client-IP token buckets in front of the sandbox's image hosts."""

    def __init__(self, profiles: dict[str, CdnProfile]) -> None:
        self._profiles = {pattern.lower(): profile for pattern, profile in profiles.items()}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()
        #: (host pattern, client IP, 429 or "passed") -> count: what the gate did per client.
        self.answers: Counter[tuple[str, str, int | str]] = Counter()

    def set_capacity(self, pattern: str, capacity: float, burst: float | None = None) -> None:
        """Change a host's hidden capacity mid-run (buckets keep their tokens, capped to the new size)."""
        with self._lock:
            profile = replace(self._profiles[pattern.lower()], capacity=capacity, burst=burst)
            self._profiles[pattern.lower()] = profile
            for (bucket_pattern, _), bucket in self._buckets.items():
                if bucket_pattern == pattern.lower():
                    bucket.tokens = min(bucket.tokens, _Bucket.size(profile))

    def profile(self, pattern: str) -> CdnProfile:
        return self._profiles[pattern.lower()]

    def register(self, router: Router) -> None:
        """Put the gate in front of the hosts' handlers (call before they register)."""
        for pattern in self._profiles:
            router.add(pattern, lambda request, pattern=pattern: self.admit(pattern, request))

    def admit(self, pattern: str, request: Request) -> Response | None:
        """A 429 when the client is over capacity; else wait the load's latency and pass on (None)."""
        client_ip = request.client.rsplit(":", 1)[0]
        with self._lock:
            profile = self._profiles[pattern]
            size = _Bucket.size(profile)
            now = time.monotonic()
            bucket = self._buckets.get((pattern, client_ip))
            if bucket is None:
                bucket = self._buckets[(pattern, client_ip)] = _Bucket(profile, now)
            bucket.tokens = min(size, bucket.tokens + (now - bucket.stamp) * profile.capacity)
            bucket.stamp = now
            if bucket.tokens < 1:
                bucket.denied += 1
                self.answers[(pattern, client_ip, 429)] += 1
                with_retry_after = _every_nth(bucket.denied, profile.retry_after_share)
                headers = {"Content-Type": "text/plain"}
                if with_retry_after:
                    headers["Retry-After"] = str(profile.retry_after)
                return Response(429, headers, b"Too Many Requests")
            bucket.tokens -= 1
            self.answers[(pattern, client_ip, "passed")] += 1
            load = 1.0 - bucket.tokens / size
        delay = profile.latency + profile.load_latency * load
        if delay > 0:
            time.sleep(delay)
        return None


def _every_nth(count: int, share: float) -> bool:
    """Deterministically true for ``share`` of consecutive counts (0.5: every second one)."""
    return int(count * share) > int((count - 1) * share)
