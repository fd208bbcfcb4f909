"""One lock per data dir and name (a stem): ``<data_dir>/.locks/<name>.lock``.

A lock is an ``flock`` on that file, so the kernel releases it when its holder exits or is
killed (``kill -9`` included): a lock is never stale. The holder writes who it is into the file
(pid, host, since when, what), so a run that finds the lock taken can name it. What holds on
shared storage is in docs/architecture.md ("Locks").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from redcaps.errors import RedCapsError

LOCK_DIR = ".locks"
#: How often a waiting run tries the lock again.
POLL_SECONDS = 0.5


class LockBusyError(RedCapsError):
    """Another run holds the lock longer than this one may wait; the message names the holder."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as its holder wrote it into the lock file."""

    pid: int
    host: str
    since: str
    what: str

    @classmethod
    def me(cls, what: str) -> Holder:
        since = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        return cls(pid=os.getpid(), host=socket.gethostname(), since=since, what=what)

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.since} ({self.what})"


def lock_path(data_dir: str | Path, name: str) -> Path:
    return Path(data_dir) / LOCK_DIR / f"{name}.lock"


def read_holder(path: Path) -> Holder | None:
    """The holder the lock file names; ``None`` while a new holder has not written itself yet."""
    try:
        first_line = path.read_text(encoding="utf-8").partition("\n")[0]
        return Holder(**json.loads(first_line))
    except (OSError, ValueError, TypeError):
        return None


@contextlib.contextmanager
def holding(
    path: Path,
    what: str,
    *,
    shared: bool = False,
    wait: float = 0.0,
    on_wait: Callable[[str], None] = lambda message: None,
) -> Iterator[None]:
    """Hold the lock at ``path`` (``shared``: together with other shared holders, never with an
    exclusive one). A busy lock is retried for up to ``wait`` seconds, calling ``on_wait`` once
    with a line naming the holder; then :class:`LockBusyError` with that line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        _acquire(fd, path, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, wait, on_wait)
        _write_holder(fd, Holder.me(what))
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


def _acquire(fd: int, path: Path, mode: int, wait: float, on_wait: Callable[[str], None]) -> None:
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        holder = read_holder(path)
        busy = f"{path.stem} is being worked on by {holder or 'another run (starting)'}"
        if time.monotonic() >= deadline:
            raise LockBusyError(f"{busy}: gave up after {wait:g} s ({path})") from None
        if not told:
            on_wait(f"{busy}: waiting up to {wait:g} s")
            told = True
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def _write_holder(fd: int, holder: Holder) -> None:
    """One JSON line at the start of the file: shared holders may overwrite each other, and a
    reader takes the first line, so it always names one of them."""
    line = (json.dumps(asdict(holder)) + "\n").encode()
    os.pwrite(fd, line, 0)
    os.ftruncate(fd, len(line))
