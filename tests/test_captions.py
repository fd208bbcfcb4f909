"""Caption cleaning reproduces the original, including its documented quirks."""

from __future__ import annotations

import pytest

from redcaps.collect.captions import sanitize_caption


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # the Hugging Face card's example record: curly quote straightened, lowercased
        (
            "Found on a friend\u2019s property in the Keys FL. She is now happily living in my house.",
            "found on a friend's property in the keys fl. she is now happily living in my house.",
        ),
        ("ITAP of a heron at sunrise [OC]", "itap of a heron at sunrise"),
        ("(OC) My garden (2020)", "my garden"),
        # resolutions eat the spaces around them
        ("photo 800x600 of cat", "photoof cat"),
        ("Sunset 4000 × 3000", "sunset"),
        ("2x4 workbench", "workbench"),
        # commas count as resolution separators; brackets go first
        ("I drove 1,000 miles (shot on iPhone)", "i drovemiles"),
        # mismatched brackets are a pair too
        ("[first) light", "light"),
        ("shot by @john_doe.photo today", "shot by <usr> today"),
        # the ASCII step runs after the whitespace cleanup: a trailing space survives
        ("my cat \U0001f63a", "my cat "),
        ("\u6771\u4eac\u306e\u591c", ""),  # non-Latin titles become empty
        ("Caf\u00e9 au lait", "cafe au lait"),  # NFKD then ASCII drops the accent
        ("\uff26\uff55\uff4c\uff4c width", "full width"),  # full-width letters become ASCII
        ("  lots   of\tspace  ", "lots of space"),
        ("", ""),
    ],
)
def test_sanitize_caption(raw, expected):
    assert sanitize_caption(raw) == expected
