"""The retry policy the search APIs share: exponential backoff, at least ``Retry-After``."""

from __future__ import annotations

from collections.abc import Callable

import tenacity


class RetryLater(Exception):
    """A failure worth another try; ``wait`` is the server's ``Retry-After`` if it sent one."""

    def __init__(self, why: str, wait: float | None = None, shrink: bool = False) -> None:
        super().__init__(why)
        self.wait, self.shrink = wait, shrink


def retrying(max_attempts: int, backoff_base: float, sleep: Callable[[float], None]) -> tenacity.Retrying:
    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        delay = backoff_base * 2 ** (state.attempt_number - 1)
        return max(delay, exc.wait or 0) if isinstance(exc, RetryLater) else delay

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max_attempts),
        wait=wait,
        sleep=sleep,
        retry=tenacity.retry_if_exception_type(RetryLater),
        reraise=True,
    )
