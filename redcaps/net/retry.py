"""The retry policy the web sources share: exponential backoff with jitter, never
shorter than the server's ``Retry-After``, and a hook to react before each new attempt.

A rate-limit block (``RetryLater(rate_limited=True)``, an HTTP 429) is not bounded by the
number of attempts but by the time spent waiting (``max_block_wait``), so an hour-long
block (PullPush's hourly limit) is waited out, probing every ``block_probe`` seconds at
most; each wait is announced through ``on_wait`` so a task can show it as its status."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import tenacity

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """A failure worth another try; ``wait`` is the server's ``Retry-After`` if it sent one,
    ``shrink`` asks for a smaller page (Arctic Shift's "Timeout. Maybe slow down a bit"),
    ``rate_limited`` marks a rate-limit block that may last long (an HTTP 429)."""

    def __init__(
        self, why: str, wait: float | None = None, shrink: bool = False, rate_limited: bool = False
    ) -> None:
        super().__init__(why)
        self.wait, self.shrink, self.rate_limited = wait, shrink, rate_limited


def backoff(attempt: int, base: float, cap: float = 300.0, rng: Callable[[], float] = random.random) -> float:
    """Equal jitter: uniform in ``[d/2, d]`` with ``d = base * 2**(attempt-1)`` (capped).

    Half the delay is fixed so that a struggling server is never hit again at once, the
    random half spreads out clients that failed together."""
    delay = min(cap, base * 2 ** (attempt - 1))
    return delay / 2 + rng() * delay / 2


def retrying(
    max_attempts: int,
    backoff_base: float,
    sleep: Callable[[float], None],
    *,
    max_wait: float = 900.0,
    max_block_wait: float = 0.0,
    block_probe: float = 300.0,
    on_wait: Callable[[str], None] | None = None,
    service: str = "the API",
) -> tenacity.Retrying:
    """A tenacity policy retrying :class:`RetryLater`: up to ``max_attempts`` times, and for a
    rate-limit block (when ``max_block_wait`` > 0) until ``max_block_wait`` seconds were spent
    waiting."""

    def last_error(state: tenacity.RetryCallState) -> BaseException | None:
        return state.outcome.exception() if state.outcome else None

    def wait(state: tenacity.RetryCallState) -> float:
        exc = last_error(state)
        blocked = isinstance(exc, RetryLater) and exc.rate_limited and max_block_wait > 0
        delay = backoff(state.attempt_number, backoff_base, cap=block_probe if blocked else 300.0)
        if isinstance(exc, RetryLater) and exc.wait is not None:
            delay = max(delay, min(exc.wait, max_block_wait if blocked else max_wait))
        return delay

    def stop(state: tenacity.RetryCallState) -> bool:
        exc = last_error(state)
        if isinstance(exc, RetryLater) and exc.rate_limited and max_block_wait > 0:
            return state.idle_for >= max_block_wait
        return state.attempt_number >= max(1, max_attempts)

    def announce(state: tenacity.RetryCallState) -> None:
        delay = state.next_action.sleep if state.next_action else 0.0
        message = (
            f"{service}: {last_error(state)}; waiting {delay:.0f} s before retry {state.attempt_number}"
            f" ({state.idle_for:.0f} s waited in all)"
        )
        log.info("%s", message)
        if on_wait is not None:
            on_wait(message)

    return tenacity.Retrying(
        stop=stop,
        wait=wait,
        sleep=sleep,
        retry=tenacity.retry_if_exception_type(RetryLater),
        before_sleep=announce,
        reraise=True,
    )
