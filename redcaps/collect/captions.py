"""Caption cleaning exactly as the original ``_sanitize_caption`` — quirks included.

Users compare against the official release, so this reproduces it step for step rather than
improving it: ``"photo 800x600 of cat"`` becomes ``"photoof cat"`` and a trailing space can
survive emoji removal, as there. ``raw_caption`` always keeps the untouched title.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import ftfy

_BRACKETS = re.compile(r"[\[\(].*?[\]\)]", flags=re.IGNORECASE)
_RESOLUTIONS = re.compile(r"\s*\d+\s*[x×\*\,]\s*\d+\s*", flags=re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_HANDLES = re.compile(r"\@[_\d\w\.]+")
USER_TOKEN = "<usr>"
_LONE_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` as every later writer can store it: a lone UTF-16 surrogate (valid JSON, but no
    UTF-8 encoder takes it) becomes U+FFFD and NUL is dropped."""
    return _LONE_SURROGATES.sub("\ufffd", text).replace("\x00", "")


def sanitize_caption(raw: str) -> str:
    """Clean a post title the way RedCaps v1.0 did."""
    caption = ftfy.fix_text(raw, normalization="NFKD").lower()
    for pattern in (_BRACKETS, _RESOLUTIONS):  # each removal is followed by whitespace cleanup
        caption = _SPACES.sub(" ", pattern.sub("", caption)).strip()
    caption = _HANDLES.sub(USER_TOKEN, caption)
    return caption.encode("ascii", "ignore").decode()


def is_empty(caption: object) -> bool:
    """No words left: ``""`` or only spaces (a non-Latin title loses every letter in the ASCII step)."""
    return isinstance(caption, str) and not caption.strip()


def empty_captions(records: Iterable[object]) -> list[int]:
    """Positions of the records whose caption is empty (records that are not objects are skipped)."""
    return [n for n, r in enumerate(records) if isinstance(r, dict) and is_empty(r.get("caption"))]
