"""Safe tokens: subreddit names and image ids become file names, so they are checked first.

Reddit ids are base36 and subreddit names are ``[A-Za-z0-9_]``; anything else (``../x``,
``a/b``, the empty string) is rejected before a single file is written.
"""

from __future__ import annotations

import re
from pathlib import Path

from redcaps.errors import UnsafeNameError

_SUBREDDIT = re.compile(r"[A-Za-z0-9_]{1,64}")
_IMAGE_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_STEM = re.compile(r"(?P<subreddit>[A-Za-z0-9_]{1,64})_(?P<period>\d{4}(?:-\d{2})?)")


def check_subreddit(name: object) -> str:
    """Return ``name`` if it is a safe subreddit token, else raise :class:`UnsafeNameError`."""
    if not isinstance(name, str) or not _SUBREDDIT.fullmatch(name):
        raise UnsafeNameError(f"unsafe subreddit name {name!r} (allowed: letters, digits, '_')")
    return name


def check_image_id(image_id: object) -> str:
    """Return ``image_id`` if it is a safe base36-like token, else raise :class:`UnsafeNameError`."""
    if not isinstance(image_id, str) or not _IMAGE_ID.fullmatch(image_id):
        raise UnsafeNameError(f"unsafe image_id {image_id!r} (allowed: letters and digits)")
    return image_id


def split_stem(path: str | Path) -> tuple[str, str]:
    """Split ``roses_2020.json`` or ``roses_2020-01.json`` into (subreddit, period)."""
    stem = Path(path).name.removesuffix(".json")
    match = _STEM.fullmatch(stem)
    if not match:
        raise UnsafeNameError(f"annotation file name {Path(path).name!r} is not <subreddit>_<YYYY>[-MM].json")
    return match["subreddit"], match["period"]


def image_path(image_dir: Path, subreddit: str, image_id: str) -> Path:
    """Where an instance's image lives: ``<image_dir>/<subreddit>/<image_id>.jpg`` (seed layout)."""
    return Path(image_dir) / check_subreddit(subreddit) / f"{check_image_id(image_id)}.jpg"
