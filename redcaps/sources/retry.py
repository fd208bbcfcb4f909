"""The retry policy the web sources share: exponential backoff with jitter, never
shorter than the server's ``Retry-After``, and a hook to react before each new attempt."""

from __future__ import annotations

import random
from collections.abc import Callable

import tenacity


class RetryLater(Exception):
    """A failure worth another try; ``wait`` is the server's ``Retry-After`` if it sent one,
    ``shrink`` asks for a smaller page (Arctic Shift's "Timeout. Maybe slow down a bit")."""

    def __init__(self, why: str, wait: float | None = None, shrink: bool = False) -> None:
        super().__init__(why)
        self.wait, self.shrink = wait, shrink


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
) -> tenacity.Retrying:
    """A tenacity policy retrying :class:`RetryLater` up to ``max_attempts`` times."""

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        delay = backoff(state.attempt_number, backoff_base)
        if isinstance(exc, RetryLater) and exc.wait is not None:
            delay = max(delay, min(exc.wait, max_wait))
        return delay

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(1, max_attempts)),
        wait=wait,
        sleep=sleep,
        retry=tenacity.retry_if_exception_type(RetryLater),
        reraise=True,
    )
