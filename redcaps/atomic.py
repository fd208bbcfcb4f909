"""Atomic file writes: a reader sees either the old file or the whole new one, never a part.

Every output of the pipeline goes through here, so a killed worker leaves at most a
``.tmp-*`` file behind, which no completeness check ever mistakes for output and
:func:`sweep_temp_files` removes on the next run. A full disk is one
:class:`~redcaps.errors.DiskFullError` line naming the path and the space left, never a
traceback, and leaves no temp file. Beside them, the two ways stages read files back:
:func:`read_json` (tolerant of a stage that has not run) and :func:`sha256_file`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from redcaps.errors import DiskFullError, RedCapsError

TMP_PREFIX = ".tmp-"
#: A temp file younger than this may belong to a writer that is still running.
SWEEP_GRACE_SECONDS = 600.0  # a live writer touches its file far more often
_DISK_FULL = {errno.ENOSPC: "no space left", errno.EDQUOT: "disk quota exceeded"}


@functools.cache
def file_mode() -> int:
    """What a plain ``open()`` would give, from the umask read at the first write (not at import):
    temp files are created 0600, and a dataset others cannot read would be no dataset."""
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read from /proc where it is shown; elsewhere set and put back."""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        status = Path("/proc/self/status").read_text(encoding="ascii").splitlines()
        return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mount_point(path: Path) -> Path:
    path = path.absolute()
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def disk_full_error(path: str | Path, exc: OSError) -> DiskFullError:
    """``no space left writing <path> (<free> free on <mount>)`` for an ENOSPC/EDQUOT ``exc``."""
    path = Path(path)
    where = next((p for p in (path.parent, *path.parents) if p.exists()), Path("/"))
    try:
        free = f"{_size(shutil.disk_usage(where).free)} free on {_mount_point(where)}"
    except OSError:
        free = "free space unknown"
    return DiskFullError(f"{_DISK_FULL[exc.errno]} writing {path} ({free})")


@contextlib.contextmanager
def reporting_disk_full(path: str | Path) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT inside the block into a :class:`DiskFullError` naming ``path``
    (for writers that cannot be atomic, such as an append-only journal)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _DISK_FULL:
            raise
        raise disk_full_error(path, exc) from None


def _temp_file(path: Path) -> tuple[int, Path]:
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    return fd, Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a writer that wants a name (Pillow,
    tarfile); on success fsync it and rename it into place."""
    path = Path(path)
    with reporting_disk_full(path):
        fd, tmp_path = _temp_file(path)
    os.close(fd)
    try:
        with reporting_disk_full(path):
            yield tmp_path
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp_path, file_mode())
            os.replace(tmp_path, path)
            fsync_directory(path.parent)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open()`` for writing that only replaces ``path`` when the block finishes without
    error: one descriptor from creation to fsync."""
    if "w" not in mode:
        raise ValueError("atomic_open is for writing")
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    path = Path(path)
    with reporting_disk_full(path):
        fd, tmp_path = _temp_file(path)
    try:
        with reporting_disk_full(path):
            with open(fd, mode, **kwargs) as fh:
                yield fh
                fh.flush()
                os.fchmod(fh.fileno(), file_mode())
                os.fsync(fh.fileno())
            os.replace(tmp_path, path)
            fsync_directory(path.parent)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: str | Path) -> dict[str, Any] | None:
    """A JSON object file, or None when it is missing, unreadable or not an object (a stage that
    has not run yet): the tolerant reader for summaries and indexes."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, one per line, blank lines skipped.

    A torn last line (no newline at its end and not valid JSON: a writer killed mid-append) is
    dropped; any other line that is not a JSON object is a one-line :class:`RedCapsError` naming
    the file and line. A missing file yields nothing.
    """
    if not Path(path).is_file():
        return
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                if not raw.endswith(b"\n") and not fh.read(1):
                    return  # torn by a kill: the line was never whole
                raise RedCapsError(f"{path}:{number}: not a JSON line") from None
            if not isinstance(record, dict):
                raise RedCapsError(f"{path}:{number}: not a JSON object")
            yield record


def write_json(path: str | Path, obj: Any, **dump_kwargs: Any) -> None:
    """Write JSON atomically (``json.dump`` defaults unless told otherwise, like the original)."""
    with atomic_open(path, "w") as fh:
        json.dump(obj, fh, **dump_kwargs)


def sweep_temp_files(
    directory: str | Path, older_than: float = SWEEP_GRACE_SECONDS, named: str = ""
) -> list[Path]:
    """Remove this module's temp files (``.tmp-*``, or only those of files named ``named*``)
    directly inside ``directory`` that were last modified over ``older_than`` seconds ago:
    leftovers of a killed run. A younger one may be a live writer's, so it stays, unless the
    caller has just written every file it could be for (``older_than=0``). Returns what went."""
    cutoff = time.time() - older_than
    removed = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if not entry.name.startswith(TMP_PREFIX + named) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except FileNotFoundError:
            pass  # its writer renamed or removed it meanwhile
    return removed


def fsync_directory(directory: str | Path) -> None:
    """Make the renames done in ``directory`` durable (a power loss cannot undo them)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
