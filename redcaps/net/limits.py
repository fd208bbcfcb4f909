"""Per-host politeness: which limits apply to a host, and the limiter every request asks first.

A host matches the longest policy key that is a dot-suffix of it (``i.imgur.com`` ->
``imgur.com``), so all hosts of one service share one limit. Every request takes a token:
retries, and each redirect hop too. The rates adapt (:mod:`redcaps.net.throttle`); where
their state lives, in this process or shared by the machine, is :mod:`redcaps.net.budget`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redcaps.net import throttle
from redcaps.net.budget import MachineBudget, ProcessBudget, egress_route
from redcaps.net.retry import retry_after_seconds
from redcaps.net.throttle import ThrottleState

if TYPE_CHECKING:
    from redcaps.net.config import HttpConfig


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
        spent waiting); the caller reports the host's answer, or its silence, through it."""
        key = self.policy_key(host)
        slots = self._slot(key)
        start = self.clock()
        slots.acquire()
        try:
            waited = self.clock() - start + self._take_token(key)
            with self._lock:
                self.waited[key] = self.waited.get(key, 0.0) + waited
            yield Ticket(self, key, waited)
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
