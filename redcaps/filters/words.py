"""Word filter: the LDNOOBW ``en`` blocklist, shipped with the package, on cleaned captions.

The original fetched the list from GitHub at run time (unpinned) and removed an instance when
``f" {bad} " in f" {caption} "``: exact, space-delimited, case-sensitive. That is ``"exact"``
mode, the default, so results match the release. It misses words touching punctuation
(``"word,"``, ``"(word)"``); ``"punctuation"`` mode also catches those, still as whole words
(multi-word entries too), by treating any non-word character as a boundary.

One compiled regex per mode answers "any match?" fast; on a hit the list is walked in its
upstream order, so the reported word is the one the original would have printed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import get_args

from redcaps import annotations as ann
from redcaps.filters.base import FilterOutcome, Removal, apply_removals
from redcaps.settings import WordMode, WordSettings

MODEL = "LDNOOBW/List-of-Dirty-Naughty-Obscene-and-Otherwise-Bad-Words"
WORDS_FILE = "ldnoobw-en.txt"
#: sha256 of the upstream ``en`` file (last changed 2020-07-13); the shipped copy is identical.
WORDS_SHA256 = "af851ecef1d5f212caba17339b12ac39cc2fef7d78c74876f67237644fcee8bd"

Mode = WordMode
MODES: tuple[Mode, ...] = get_args(WordMode)


def words_bytes() -> bytes:
    return (resources.files("redcaps") / "data" / WORDS_FILE).read_bytes()


def load_words() -> list[str]:
    """The 403 entries in upstream order (lines, as the original read them; no empty entries)."""
    return [line for line in words_bytes().decode("utf-8").split("\n") if line]


#: (before, after) lookarounds per mode. Exact mode searches f" {caption} ", so "preceded and
#: followed by a space" is the original padded substring test.
_BOUNDS: dict[str, tuple[str, str]] = {"exact": ("(?<= )", "(?= )"), "punctuation": (r"(?<!\w)", r"(?!\w)")}


def _body(word: str, mode: Mode) -> str:
    if mode == "exact":
        return re.escape(word)
    return r"\s+".join(re.escape(part) for part in word.split())


class Blocklist:
    """A word list compiled for one mode; :meth:`find` returns the first listed word matched."""

    def __init__(self, words: Sequence[str], mode: Mode = "exact") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown word-filter mode {mode!r} (use {' or '.join(MODES)})")
        self.mode = mode
        self.words = tuple(w for w in words if w.strip())
        before, after = _BOUNDS[mode]
        bodies = [_body(w, mode) for w in self.words]
        self._each = [re.compile(before + b + after) for b in bodies]
        # Lookarounds factored out of the alternation: checked once per position, not per word.
        self._any = re.compile(f"{before}(?:{'|'.join(bodies)}){after}") if bodies else None

    def find(self, caption: str) -> str | None:
        text = f" {caption} " if self.mode == "exact" else caption
        if self._any is None or not self._any.search(text):
            return None
        return next(w for w, p in zip(self.words, self._each, strict=True) if p.search(text))


@lru_cache(maxsize=8)
def _blocklist(words: tuple[str, ...], mode: Mode) -> Blocklist:
    return Blocklist(words, mode)


def find_blocked(caption: str, words: Sequence[str], mode: Mode = "exact") -> str | None:
    """The first entry of ``words`` that ``caption`` contains under ``mode``, else None."""
    return _blocklist(tuple(words), mode).find(caption)


def filter_words(
    annotations: ann.AnnotationFile, *, mode: Mode = WordSettings.mode, words: Sequence[str] | None = None
) -> FilterOutcome:
    """Remove instances whose caption contains a blocklisted word (reason ``word:<word>``)."""
    blocklist = _blocklist(tuple(load_words() if words is None else words), mode)
    removals = []
    for record in annotations.annotations:
        word = blocklist.find(record["caption"])
        if word is not None:
            removals.append(Removal(record["image_id"], record["subreddit"], f"word:{word}"))
    return apply_removals(annotations, "words", removals, model=MODEL)
