"""Where Reddit posts come from: a :class:`PostSource` yields raw submission dicts.

Pushshift's public API is closed (2023); the default is Arctic Shift (no auth), and local
dump files work offline. Every source yields posts with ``start <= created_utc < end``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol


class PostSource(Protocol):
    name: str

    def iter_posts(self, subreddit: str, start: int, end: int) -> Iterator[dict[str, Any]]: ...
