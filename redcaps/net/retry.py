"""The one retry policy of every outside request: which failures are retried, how long each
wait is (exponential backoff with jitter, never shorter than the server's ``Retry-After``),
and when to give up. Image downloads and every API client use it, each with its own values.

A rate-limit block (``RetryLater(rate_limited=True)``, an HTTP 429) can be bounded by the
time spent waiting (``block_wait``) instead of the number of attempts, so an hour-long
block (PullPush's hourly limit) is waited out, probing every ``block_probe`` seconds at
most; each wait is announced through ``on_wait`` so a task can show it as its status."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

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


def backoff(
    attempt: int,
    base: float,
    cap: float = 300.0,
    rng: Callable[[], float] = random.random,
    fixed_share: float = 0.5,
) -> float:
    """Uniform in ``[d * fixed_share, d]`` with ``d = base * 2**(attempt-1)`` (capped).

    Equal jitter (``fixed_share`` 0.5) never hits a struggling server again at once; full
    jitter (0) spreads many clients the most. The random part spreads clients that failed together."""
    delay = min(cap, base * 2 ** (attempt - 1))
    return delay * fixed_share + rng() * delay * (1 - fixed_share)


@dataclass(frozen=True)
class RetryPolicy:
    """One client's retry values; :meth:`wait` is the one place a wait after a failure
    (a 429 with ``Retry-After`` included) is decided."""

    max_attempts: int = 5
    backoff_base: float = 1.0
    #: Longest backoff between attempts (a rate-limit block: ``block_probe``).
    backoff_max: float = 300.0
    #: Share of each backoff that is not random: 0.5 equal jitter, 0 full jitter.
    fixed_share: float = 0.5
    #: Longest ``Retry-After`` honoured; a longer one is cut to this, or ends the retries
    #: when ``give_up_on_longer`` (image downloads: a later run tries again).
    retry_after_max: float = 900.0
    give_up_on_longer: bool = False
    #: Seconds a rate-limit block is waited out whatever the attempts (0: attempts count).
    block_wait: float = 0.0
    block_probe: float = 300.0

    def blocked(self, error: BaseException | None) -> bool:
        return isinstance(error, RetryLater) and error.rate_limited and self.block_wait > 0

    def worth_retrying(self, error: BaseException) -> bool:
        if not isinstance(error, RetryLater):
            return False
        too_long = error.wait is not None and error.wait > self.retry_after_max
        return not (too_long and self.give_up_on_longer)

    def wait(self, attempt: int, error: BaseException | None) -> float:
        """Seconds before attempt ``attempt + 1``: the backoff, or the server's ``Retry-After`` if longer."""
        blocked = self.blocked(error)
        cap = self.block_probe if blocked else self.backoff_max
        delay = backoff(attempt, self.backoff_base, cap, fixed_share=self.fixed_share)
        if isinstance(error, RetryLater) and error.wait is not None:
            delay = max(delay, min(error.wait, self.block_wait if blocked else self.retry_after_max))
        return delay

    def exhausted(self, attempt: int, waited: float, error: BaseException | None) -> bool:
        if self.blocked(error):
            return waited >= self.block_wait
        return attempt >= max(1, self.max_attempts)


def retrying(
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    *,
    stop_early: Callable[[tenacity.RetryCallState], bool] | None = None,
    on_wait: Callable[[str], None] | None = None,
    service: str | None = None,
) -> tenacity.Retrying:
    """A tenacity loop retrying :class:`RetryLater` as ``policy`` says; ``stop_early`` ends it
    sooner (a deadline), and each wait is logged and announced when ``service`` is named."""

    def last_error(state: tenacity.RetryCallState) -> BaseException | None:
        return state.outcome.exception() if state.outcome else None

    def stop(state: tenacity.RetryCallState) -> bool:
        done = policy.exhausted(state.attempt_number, state.idle_for, last_error(state))
        return done or (stop_early is not None and stop_early(state))

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
        wait=lambda state: policy.wait(state.attempt_number, last_error(state)),
        sleep=sleep,
        retry=tenacity.retry_if_exception(policy.worth_retrying),
        before_sleep=announce if service else None,
        reraise=True,
    )
