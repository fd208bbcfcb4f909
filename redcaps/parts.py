"""``--part i/n``: each of n machines takes a disjoint share of the work, together all of it.

Subreddit-years differ in size by two orders of magnitude, so taking every n-th item would
leave one machine with most of the images. :func:`balanced_part` assigns the largest items
first, each to the share with the least work so far (longest-processing-time first): every
machine computes the same assignment from the same weights, with no coordination.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from pathlib import Path

from redcaps.errors import RedCapsError

_KEY = b'"image_id"'


def parse_part(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``1 <= i <= n``; anything else is a one-line error."""
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = 0
    if not 1 <= i <= n:
        raise RedCapsError(f"--part must be i/n with 1 <= i <= n, got {text!r}")
    return i, n


def balanced_part(weights: Mapping[str, int], index: int, count: int) -> list[str]:
    """The names of share ``index`` (1-based) of ``count``, sorted; shares are disjoint, their
    union is every name, and their total weights differ by at most the largest single weight."""
    shares: list[tuple[int, int]] = [(0, i) for i in range(count)]  # (weight so far, share)
    mine = []
    for name in sorted(weights, key=lambda n: (-weights[n], n)):
        weight, share = heapq.heappop(shares)
        if share == index - 1:
            mine.append(name)
        heapq.heappush(shares, (weight + max(weights[name], 1), share))
    return sorted(mine)


def count_instances(path: str | Path) -> int:
    """Instances in an annotation file, counted from its bytes (one ``"image_id"`` key each),
    streamed: cheap enough to weigh all of the official files on every machine."""
    total, carry = 0, b""
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            data = carry + block
            total += data.count(_KEY)
            carry = data[-(len(_KEY) - 1) :]
    return total
