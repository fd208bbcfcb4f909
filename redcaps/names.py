"""Safe tokens: subreddit names, years and image ids become file names, so they are checked first.

Reddit ids are base36 and subreddit names are ``[A-Za-z0-9_]``; anything else (``../x``,
``a/b``, the empty string) is rejected before a single file is written. A year is one Reddit
has posts for: the same rule for ``--year`` and a batch config's years.
"""

from __future__ import annotations

import datetime as dt
import re

from redcaps.errors import RedCapsError, UnsafeNameError

FIRST_REDDIT_YEAR = 2005

_SUBREDDIT = re.compile(r"[A-Za-z0-9_]{1,64}")
_IMAGE_ID = re.compile(r"[A-Za-z0-9]{1,32}")


def check_subreddit(name: object) -> str:
    """Return ``name`` if it is a safe subreddit token, else raise :class:`UnsafeNameError`."""
    if not isinstance(name, str) or not _SUBREDDIT.fullmatch(name):
        raise UnsafeNameError(f"unsafe subreddit name {name!r} (allowed: letters, digits, '_')")
    return name


def subreddit_as_typed(name: str) -> str:
    """A subreddit as a person writes it: ``r/cats`` and ``/r/cats`` mean ``cats``."""
    return re.sub(r"^/?r/", "", name.strip())


def check_year(year: int, where: str) -> None:
    """Raise unless Reddit can have posts in ``year``: 2005 up to the current year."""
    last = dt.date.today().year
    if not FIRST_REDDIT_YEAR <= year <= last:
        raise RedCapsError(f"{where}: year {year} is outside {FIRST_REDDIT_YEAR}..{last}")


def normalize_subreddit(name: object) -> str:
    """The checked subreddit in the lower case every file name uses (Reddit names ignore case)."""
    return check_subreddit(name).lower()


def check_image_id(image_id: object) -> str:
    """Return ``image_id`` if it is a safe base36-like token, else raise :class:`UnsafeNameError`."""
    if not isinstance(image_id, str) or not _IMAGE_ID.fullmatch(image_id):
        raise UnsafeNameError(f"unsafe image_id {image_id!r} (allowed: letters and digits)")
    return image_id
