"""Reddit dump files: monthly ``RS_YYYY-MM.zst`` or per-subreddit ``<sub>_submissions.zst``.

They are zstd with a long window (``max_window_size=2**31`` is needed) and tens of GB, so
they are streamed line by line; a cheap regex on the raw line skips other subreddits before
any JSON is parsed, keeping memory bounded and speed up.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import zstandard

from redcaps.errors import RedCapsError

MAX_WINDOW = 2**31


def read_lines(path: Path) -> Iterator[str]:
    with open(path, "rb") as fh:
        reader = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW).stream_reader(fh)
        yield from io.TextIOWrapper(reader, encoding="utf-8", errors="replace")


def write_dump(path: Path, posts: Iterable[dict[str, Any]]) -> None:
    """Write a dump the way the real ones are made (long window), for tests and demos."""
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=31)
    with open(path, "wb") as fh, zstandard.ZstdCompressor(compression_params=params).stream_writer(fh) as out:
        for post in posts:
            out.write((json.dumps(post, sort_keys=True) + "\n").encode())


def _months(start: int, end: int) -> list[str]:
    day = dt.datetime.fromtimestamp(start, dt.timezone.utc).date().replace(day=1)
    last = dt.datetime.fromtimestamp(end - 1, dt.timezone.utc).date()
    months = []
    while day <= last:
        months.append(f"{day:%Y-%m}")
        day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return months


class DumpSource:
    name = "dump"

    def __init__(self, dump_dir: str | Path) -> None:
        self.dump_dir = Path(dump_dir)

    def files_for(self, subreddit: str, start: int, end: int) -> list[Path]:
        per_subreddit = [
            p
            for p in self.dump_dir.glob("*_submissions.zst")
            if p.name.lower() == f"{subreddit.lower()}_submissions.zst"
        ]
        if per_subreddit:
            return per_subreddit
        monthly = [self.dump_dir / f"RS_{m}.zst" for m in _months(start, end)]
        missing = [p.name for p in monthly if not p.exists()]
        if missing:
            raise RedCapsError(f"{self.dump_dir}: no {subreddit}_submissions.zst and missing {missing}")
        return monthly

    def iter_posts(self, subreddit: str, start: int, end: int) -> Iterator[dict[str, Any]]:
        wanted = re.compile(rf'"subreddit":\s*"{re.escape(subreddit)}"', re.IGNORECASE)
        for path in self.files_for(subreddit, start, end):
            for line in read_lines(path):
                if not wanted.search(line):
                    continue
                post = json.loads(line)
                if (
                    post.get("subreddit", "").lower() == subreddit.lower()
                    and start <= int(post.get("created_utc", 0)) < end
                ):
                    yield post
