"""One pass over a dump file for every subreddit a batch wants: the raw matching lines, staged.

A monthly ``RS_YYYY-MM.zst`` holds every subreddit, so reading it once per subreddit costs a
batch of 350 subreddits 350 decompressions. :func:`scan_dump` reads it once: a byte regex pulls
each line's ``"subreddit":`` values, a set lookup keeps the wanted ones (the cost is the same for
1 or 350 names), and each kept line goes unchanged into a zstd JSON-lines staging file per
subreddit-month. :class:`StagedDumpSource` then yields a month's posts from its staging file
exactly as :class:`~redcaps.collect.sources.dump.DumpSource` yields them from the dump.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from redcaps.atomic import TMP_PREFIX, fsync_directory
from redcaps.collect.sources.dump import months_between, read_lines
from redcaps.errors import RedCapsError
from redcaps.names import normalize_subreddit

#: Every ``"subreddit":"<name>"`` of a line (a crosspost's nested copy included: the parsed
#: top-level value decides).
_SUBREDDIT = re.compile(rb'"subreddit":\s*"([A-Za-z0-9_]+)"')
_CREATED = re.compile(rb'"created_utc":\s*"?(\d+)')
#: A staging file is written in frames of about this much raw JSON (bounded memory per subreddit).
FRAME_BYTES = 1 << 18
STAGING_SUFFIX = ".jsonl.zst"

StagingPath = Callable[[str, str], Path]  # (subreddit, "YYYY-MM") -> its staging file


@dataclass
class ScanCounts:
    """What one scan read and kept: ``staged[(subreddit, month)]`` lines per staging file."""

    lines: int = 0
    staged: Counter[tuple[str, str]] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # too_long, undecodable


class _Staging:
    """One staging file being written: raw lines buffered, compressed a frame at a time into a
    temp file that becomes the staging file only when the whole scan succeeded."""

    def __init__(self, path: Path, compressor: zstandard.ZstdCompressor) -> None:
        self.path, self.compressor = path, compressor
        self.temp = path.with_name(f"{TMP_PREFIX}{path.name}")
        self.buffer: list[bytes] = []
        self.size = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self.temp.write_bytes(b"")

    def add(self, line: bytes) -> None:
        self.buffer.append(line + b"\n")
        self.size += len(line) + 1
        if self.size >= FRAME_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            with open(self.temp, "ab") as fh:
                fh.write(self.compressor.compress(b"".join(self.buffer)))
            self.buffer, self.size = [], 0

    def commit(self) -> None:
        self.flush()
        if not self.temp.stat().st_size:  # an empty frame: a valid zstd file with no lines
            self.temp.write_bytes(self.compressor.compress(b""))
        with open(self.temp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.temp, self.path)


def _month_of(created_utc: Any) -> str:
    return dt.datetime.fromtimestamp(int(float(created_utc)), dt.timezone.utc).strftime("%Y-%m")


def _key(line: bytes, names: list[bytes]) -> tuple[str, str] | None:
    """(subreddit, month) of a post line: from the bytes when the line holds one post (one
    ``subreddit`` and one ``created_utc`` key), else parsed (a crosspost nests its parent)."""
    created = _CREATED.findall(line)
    try:
        if len(names) == 1 and len(created) == 1:
            return names[0].decode(), _month_of(created[0])
        post = json.loads(line)
        return str(post["subreddit"]).lower(), _month_of(post["created_utc"])
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        return None


def scan_dump(
    path: Path,
    subreddits: Iterable[str],
    staging_path: StagingPath,
    months: Iterable[str],
) -> ScanCounts:
    """Read ``path`` once and stage the posts of every subreddit in ``subreddits`` created in one of
    ``months`` (``YYYY-MM``): one file per subreddit-month, empty where it has none, each written
    whole or not at all. A per-subreddit ``<sub>_submissions.zst`` is read the same way."""
    wanted = {normalize_subreddit(s) for s in subreddits}
    wanted_bytes = {s.encode() for s in wanted}
    wanted_months = set(months)
    compressor = zstandard.ZstdCompressor(level=3)
    files = {
        (s, m): _Staging(staging_path(s, m), compressor)
        for s in sorted(wanted)
        for m in sorted(wanted_months)
    }
    counts = ScanCounts()
    try:
        for line in read_lines(path, skipped=counts.skipped):
            counts.lines += 1
            names = [m.group(1).lower() for m in _SUBREDDIT.finditer(line)]
            if wanted_bytes.isdisjoint(names):
                continue
            key = _key(line, names)
            if key is None:
                counts.skipped["undecodable"] += 1
                continue
            if key in files:
                files[key].add(line)
                counts.staged[key] += 1
        for staging in files.values():
            staging.commit()
    finally:
        for staging in files.values():
            staging.temp.unlink(missing_ok=True)
    for directory in {s.path.parent for s in files.values()}:
        fsync_directory(directory)
    return counts


def months_of_years(first_year: int, last_year: int) -> list[str]:
    """``YYYY-MM`` of every month of ``first_year..last_year``."""
    return [f"{y}-{m:02d}" for y in range(first_year, last_year + 1) for m in range(1, 13)]


class StagedDumpSource:
    """Posts of a subreddit-month from the staging files :func:`scan_dump` wrote: the same posts,
    in the same order, as :class:`~redcaps.collect.sources.dump.DumpSource` reads from the dump.
    A missing staging file is an error (the scan has not run), never an empty month."""

    name = "dump"  # recorded as info.collection.source: the posts are the dump's

    def __init__(self, staging_path: StagingPath) -> None:
        self.staging_path = staging_path

    def iter_posts(self, subreddit: str, start: int, end: int) -> Iterator[dict[str, Any]]:
        name = subreddit.lower()
        for month in months_between(start, end):
            path = self.staging_path(name, month)
            if not path.exists():
                raise RedCapsError(f"{path}: the dump scan for r/{subreddit} {month} has not run")
            for line in read_lines(path):
                post = json.loads(line)
                created_utc = int(float(post["created_utc"]))
                if str(post.get("subreddit", "")).lower() == name and start <= created_utc < end:
                    yield post
