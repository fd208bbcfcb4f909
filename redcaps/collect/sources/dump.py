"""Reddit dump files: monthly ``RS_YYYY-MM.zst`` or per-subreddit ``<sub>_submissions.zst``.

They are newline-delimited JSON, zstd-compressed with a 2 GiB window (a default decoder
fails with "Frame requires too much memory for decoding") and tens of GB each, so they are
streamed: raw byte lines from the decompressor, a cheap byte regex on the
``"subreddit":"<name>"`` key (and on ``created_utc`` for per-subreddit files) before any
line is decoded or parsed. Memory stays at one line plus the decoder's window.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import zstandard

from redcaps.errors import RedCapsError

log = logging.getLogger(__name__)

MAX_WINDOW = 2**31
WINDOW_LOG = 31
_CREATED = re.compile(rb'"created_utc":\s*"?(\d+)')


CHUNK = 1 << 20
#: Compressed bytes per decoder call: at most ~32 MiB of output even for a crafted file.
PIECE = 1 << 10


#: No Reddit post is near this; a longer line is skipped (and counted), so memory stays bounded.
MAX_LINE = 1 << 20


def read_lines(path: Path, max_line: int = MAX_LINE, skipped: Counter[str] | None = None) -> Iterator[bytes]:
    """Every line of a dump as bytes (no newline), streamed; frames are concatenated as
    ``zstd -d`` does. A line over ``max_line`` bytes is skipped and counted in
    ``skipped["too_long"]``, so memory stays at the decoder's window plus a chunk and one line. A
    file cut short (a half-finished download) raises instead of quietly giving a month with posts
    missing."""
    decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
    tail, dropping = b"", False  # dropping: the rest of an over-long line is still to come
    counts = skipped if skipped is not None else Counter()
    with open(path, "rb") as fh:
        stream = decompressor.decompressobj()
        while chunk := fh.read(CHUNK):
            for data in _decompress(path, decompressor, stream, chunk):
                stream = data.stream
                if not data.bytes:
                    continue
                lines = (tail + data.bytes).split(b"\n")
                tail = lines.pop()
                for line in lines:
                    if dropping:
                        dropping = False  # the end of the over-long line, already counted
                    elif len(line) > max_line:
                        counts["too_long"] += 1
                    else:
                        yield line
                if len(tail) > max_line:
                    if not dropping:
                        counts["too_long"] += 1
                    tail, dropping = b"", True
    if not stream.eof:
        raise RedCapsError(f"{path}: the file ends mid-frame (truncated download?)")
    if tail and not dropping:
        yield tail


class _Decompressed(NamedTuple):
    bytes: bytes
    stream: Any  # the decompressobj to go on with (a new one after a frame ends)


def _decompress(path: Path, decompressor: Any, stream: Any, chunk: bytes) -> Iterator[_Decompressed]:
    """The output of one compressed chunk, fed in pieces so that no single call can expand past
    ``PIECE`` times zstd's best ratio (an RLE block: 4 bytes -> 128 KiB), whatever the data."""
    try:
        for offset in range(0, len(chunk), PIECE):
            piece = chunk[offset : offset + PIECE]
            while piece:
                if stream.eof:  # the previous frame ended: the next one starts here
                    stream = decompressor.decompressobj()
                data = stream.decompress(piece)
                piece = stream.unused_data if stream.eof else b""
                yield _Decompressed(data, stream)
    except zstandard.ZstdError as exc:
        raise RedCapsError(f"{path}: not a readable zstd dump ({exc})") from None


def write_dump(path: Path, posts: Iterable[dict[str, Any]]) -> None:
    """Write a dump the way the real ones are made (``window_log=31``), for tests and demos."""
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=WINDOW_LOG)
    with open(path, "wb") as fh, zstandard.ZstdCompressor(compression_params=params).stream_writer(fh) as out:
        for post in posts:
            out.write((json.dumps(post, sort_keys=True) + "\n").encode())


def subreddit_matcher(subreddit: str) -> re.Pattern[bytes]:
    """A case-insensitive match on the key, without ``re.IGNORECASE``: the literal
    ``"subreddit":`` prefix keeps the regex engine's fast scan (twice as fast on a dump)."""
    letters = b"".join(
        f"[{c.lower()}{c.upper()}]".encode() if c.isalpha() else re.escape(c).encode() for c in subreddit
    )
    return re.compile(rb'"subreddit":\s*"' + letters + rb'"')


def months_between(start: int, end: int) -> list[str]:
    """``YYYY-MM`` of every month that ``[start, end)`` touches (UTC)."""
    day = dt.datetime.fromtimestamp(start, dt.timezone.utc).date().replace(day=1)
    last = dt.datetime.fromtimestamp(end - 1, dt.timezone.utc).date()
    months = []
    while day <= last:
        months.append(f"{day:%Y-%m}")
        day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return months


class DumpSource:
    """Posts from dump files in ``dump_dir`` (or one directory below it, as torrents unpack),
    or from one given dump file (``RS_YYYY-MM.zst`` or ``<sub>_submissions.zst``)."""

    name = "dump"

    def __init__(self, dump_dir: str | Path) -> None:
        self.dump_dir = Path(dump_dir)
        self.skipped_lines = 0  # undecodable lines (a truncated last line, bad UTF-8)
        self.too_long: Counter[str] = Counter()  # lines over MAX_LINE, skipped unread

    def _find(self, name: str) -> Path | None:
        for folder in (self.dump_dir, *sorted(p for p in self.dump_dir.glob("*") if p.is_dir())):
            for candidate in folder.glob("*.zst"):
                if candidate.name.lower() == name.lower():
                    return candidate
        return None

    def files_for(self, subreddit: str, start: int, end: int) -> tuple[list[Path], bool]:
        """The files to read and whether times must be checked before parsing (a file may
        hold other months: a per-subreddit file holds all of its history)."""
        if self.dump_dir.is_file():
            return [self.dump_dir], True
        if not self.dump_dir.is_dir():
            raise RedCapsError(f"dump file or directory {self.dump_dir} does not exist")
        per_subreddit = self._find(f"{subreddit}_submissions.zst")
        if per_subreddit:
            return [per_subreddit], True
        names = [f"RS_{m}.zst" for m in months_between(start, end)]
        found = [self._find(n) for n in names]
        missing = [n for n, p in zip(names, found, strict=True) if p is None]
        if missing:
            raise RedCapsError(
                f"{self.dump_dir}: neither {subreddit}_submissions.zst nor {', '.join(missing)} found"
            )
        return [p for p in found if p is not None], False

    def iter_posts(self, subreddit: str, start: int, end: int) -> Iterator[dict[str, Any]]:
        wanted = subreddit_matcher(subreddit)
        name = subreddit.lower()
        paths, whole_history = self.files_for(subreddit, start, end)
        for path in paths:
            for line in read_lines(path, skipped=self.too_long):
                if not wanted.search(line):
                    continue
                if whole_history:  # skip other months before parsing
                    created = _CREATED.search(line)
                    if created and not start <= int(created.group(1)) < end:
                        continue
                try:
                    post = json.loads(line)
                    created_utc = int(float(post["created_utc"]))
                except (ValueError, KeyError, TypeError):
                    self.skipped_lines += 1
                    continue
                if str(post.get("subreddit", "")).lower() == name and start <= created_utc < end:
                    yield post
        if self.skipped_lines:
            log.warning("%s: skipped %d undecodable lines", self.dump_dir, self.skipped_lines)
        if self.too_long:
            log.warning(
                "%s: skipped %d lines over %d bytes", self.dump_dir, self.too_long["too_long"], MAX_LINE
            )
