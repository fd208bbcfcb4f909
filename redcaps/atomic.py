"""Atomic file writes: a reader sees either the old file or the whole new one, never a part.

Every output of the pipeline goes through here, so a killed worker leaves at most a
``.tmp-*`` file behind, which no completeness check ever mistakes for output.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TMP_PREFIX = ".tmp-"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: What a plain ``open()`` would give: temp files are created 0600, and a dataset others
#: (a training job, a worker under another account) cannot read would be no dataset.
FILE_MODE = 0o666 & ~_umask()


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
    fd, tmp_path = _temp_file(path)
    os.close(fd)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, path)
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
    fd, tmp_path = _temp_file(path)
    try:
        with open(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fchmod(fh.fileno(), FILE_MODE)
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)


def write_json(path: str | Path, obj: Any, **dump_kwargs: Any) -> None:
    """Write JSON atomically (``json.dump`` defaults unless told otherwise, like the original)."""
    with atomic_open(path, "w") as fh:
        json.dump(obj, fh, **dump_kwargs)
