"""Adaptive per-host rate control: one token bucket per politeness group whose rate follows the host.

The rate starts at the policy's ``rate`` and, while the bucket is what holds the client back
and the host answers well (2xx, 3xx, 404 and other final 4xx, latency not climbing), rises:
doubling per second until the host first pushes back (slow start), then additively, by a share
of the rate where it last pushed back, per response and at most 5% of it per second (a cycle
back up takes at least ~150 responses and ~6 s). It never exceeds the policy's ``ceiling``. On
429, 503, timeouts and refused connections it is cut multiplicatively (at most once per ``HOLD``
seconds: answers in flight reflect the old rate too), and ``Retry-After`` pauses the whole group.
The state is a small record that a :mod:`redcaps.net.budget` store keeps in memory or shares
between processes.
"""

from __future__ import annotations

import struct
from dataclasses import astuple, dataclass

#: Cut factor on congestion (AIMD's beta): steady state swings between 0.7 and 1.0 of capacity.
CUT = 0.7
#: Cut factor when the host pushes back again within ``DROP_WITHIN`` seconds of a cut, before the
#: rate is back where it was cut: its capacity has fallen, so the usual 0.7 would take many rounds.
DROP_CUT = 0.5
DROP_WITHIN = 5.0
#: Seconds after a cut before the next cut or increase: answers in flight still reflect the old rate.
HOLD = 0.5
#: Slow start: rate += this per healthy response, so the rate roughly doubles each second.
SLOW_START_GAIN = 0.7
#: Afterwards: rate += this x (rate at the last cut) per healthy response (~150 responses from a
#: cut back to where it was cut)...
PROBE_GAIN = 0.002
#: ...but by at most this share of it per second, so fast hosts are probed every ~6 s, not every few
#: hundred milliseconds (each push-back may come with a Retry-After pause).
PROBE_PER_SECOND = 0.05
#: Growth only while a request waited for a token within this many seconds (rate is the limit).
LIMITED_WINDOW = 1.0
#: Latency "climbing": the moving average above twice the fastest seen plus this many seconds.
LATENCY_SLACK = 0.05
#: The rate of good answers is measured over at least this many seconds and answers (or 5 s); a
#: cut starts from it.
DELIVERY_WINDOW = 1.0
DELIVERY_ANSWERS = 8
#: Lowest rate a cut can reach (requests/s), and the share of a policy's start rate below which
#: cuts stop: a run of broken URLs (503s, timeouts) must not starve a host it keeps answering,
#: while ``Retry-After`` still pauses it for as long as it asks.
FLOOR = 0.05
FLOOR_SHARE = 0.2
#: A state untouched this long starts over from the policy's rate.
STALE_AFTER = 600.0


@dataclass
class ThrottleState:
    rate: float
    tokens: float
    stamp: float  # when tokens were last refilled
    paused_until: float = 0.0
    cut_at: float = 0.0
    found: float = 0.0  # the rate at the last cut; 0 while in slow start
    latency: float = 0.0  # moving average of seconds to response headers
    latency_floor: float = 0.0
    limited_at: float = 0.0
    paused_total: float = 0.0  # seconds of Retry-After pauses imposed on the group
    window_start: float = 0.0  # the current delivery-rate window: since when, how many answers
    window_count: float = 0.0
    delivered: float = 0.0  # good answers per second in the last full window (0: not known yet)

    FORMAT = struct.Struct("<13d")

    def pack(self) -> bytes:
        return self.FORMAT.pack(*astuple(self))

    @classmethod
    def unpack(cls, raw: bytes) -> ThrottleState:
        return cls(*cls.FORMAT.unpack(raw))


def fresh_state(rate: float, now: float) -> ThrottleState:
    """A group not heard from yet: one token, no burst until it has earned one."""
    never = float("-inf")
    return ThrottleState(rate=rate, tokens=1.0, stamp=now, cut_at=never, limited_at=never, window_start=now)


def take(state: ThrottleState, burst: float, now: float) -> float:
    """Take a token now (returns 0) or return how long to wait before trying again."""
    size = min(burst, max(1.0, state.rate))  # never more than a second's worth at once
    state.tokens = min(size, state.tokens + max(0.0, now - state.stamp) * state.rate)
    if state.tokens >= size:  # the group sat idle: a delivery window spanning that says nothing
        state.window_start, state.window_count = max(now, state.window_start), 0.0
    state.stamp = now
    if now < state.paused_until:
        return state.paused_until - now
    if state.tokens >= 1:
        state.tokens -= 1
        return 0.0
    state.limited_at = now
    return (1 - state.tokens) / state.rate


def congested(
    state: ThrottleState,
    now: float,
    retry_after: float | None,
    max_pause: float,
    cut: bool = True,
    floor: float = FLOOR,
) -> None:
    """The host pushed back (429, 503, timeout, refused): honour ``Retry-After`` and (unless the
    rate is fixed: ``cut`` false) cut the rate."""
    if retry_after is not None and retry_after > 0:
        until = now + min(retry_after, max_pause)
        if until > state.paused_until:
            state.paused_total += until - max(now, state.paused_until)
            state.paused_until = until
            state.window_start, state.window_count = until, 0.0  # a pause is not a slow delivery
    if not cut or now - state.cut_at < HOLD:
        return
    # what the host actually delivered is the better guess of its capacity than what we asked for
    base = min(state.rate, state.delivered) if state.delivered > 0 else state.rate
    dropped = state.rate < state.found and now - state.cut_at < DROP_WITHIN
    factor = DROP_CUT if dropped else CUT
    state.found = base
    state.rate = max(floor, base * factor)
    state.cut_at = now
    state.tokens = min(state.tokens, 0.0)


def healthy(state: ThrottleState, now: float, latency: float, ceiling: float) -> None:
    """A good answer: track latency, and raise the rate if it is what limits us and latency holds."""
    if state.latency_floor <= 0 or latency < state.latency_floor:
        state.latency_floor = latency
    state.latency = latency if state.latency <= 0 else 0.8 * state.latency + 0.2 * latency
    if now >= state.window_start:
        state.window_count += 1
        elapsed = now - state.window_start
        if elapsed >= DELIVERY_WINDOW and (state.window_count >= DELIVERY_ANSWERS or elapsed >= 5):
            state.delivered = state.window_count / (now - state.window_start)
            state.window_start, state.window_count = now, 0.0
    if (
        now - state.limited_at > LIMITED_WINDOW
        or now - state.cut_at < HOLD
        or now < state.paused_until
        or state.latency > 2 * state.latency_floor + LATENCY_SLACK
    ):
        return
    if state.found <= 0:
        step = SLOW_START_GAIN
    else:
        step = state.found * min(PROBE_GAIN, PROBE_PER_SECOND / state.rate)
    state.rate = min(ceiling, state.rate + step)
