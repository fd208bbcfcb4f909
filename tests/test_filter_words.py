"""Word filter: the original's exact rule, the opt-in punctuation mode, and the shipped list."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from redcaps import annotations as ann
from redcaps.collect.captions import sanitize_caption
from redcaps.filters import base, stage
from redcaps.filters.words import (
    MODEL,
    WORDS_SHA256,
    Blocklist,
    filter_words,
    find_blocked,
    load_words,
    words_bytes,
)
from redcaps.settings import WordSettings
from tests.helpers import annotation_file, record, write_images

WORDS = load_words()


def original_rule(caption: str, words: list[str]) -> str | None:
    """The original filter-words loop, verbatim in behaviour."""
    for bad in words:
        if f" {bad} " in f" {caption} ":
            return bad
    return None


def test_shipped_list_is_upstream_en() -> None:
    data = words_bytes()
    assert hashlib.sha256(data).hexdigest() == WORDS_SHA256
    packaged = Path(__file__).parents[1] / "redcaps" / "data" / "ldnoobw-en.txt"
    assert hashlib.sha256(packaged.read_bytes()).hexdigest() == WORDS_SHA256
    assert len(WORDS) == 403
    assert sum(" " in w for w in WORDS) == 124
    assert WORDS[0] == "2g1c" and WORDS[-1] == "🖕"


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("my porn collection", "porn"),
        ("porn", "porn"),
        ("look at this porn, wow", None),  # punctuation defeats the original rule
        ("(porn) night", None),
        ("pornography exhibit", "pornography"),
        ("Porn", None),  # case-sensitive (captions are lowercased by cleaning)
        ("a cocktail party", None),  # never inside a word
        ("sexy cat", "sexy"),
        ("a blow job joke", "blow job"),
        ("a blow  job joke", None),  # the rule is a substring test: two spaces break it
        ("2 girls 1 cup", "2 girls 1 cup"),
        ("", None),
    ],
)
def test_exact_mode_is_the_original_rule(caption: str, expected: str | None) -> None:
    assert find_blocked(caption, WORDS) == expected
    assert original_rule(caption, WORDS) == expected


def test_exact_mode_matches_original_on_random_captions() -> None:
    rng = random.Random(0)
    vocab = ["the", "my", "cat", "old", "house", ",", "!", "(oc)", "s", "-", ""] + WORDS[:-1]
    captions = []
    for _ in range(3000):
        tokens = [rng.choice(vocab) for _ in range(rng.randint(0, 8))]
        joiners = [rng.choice([" ", " ", " ", "", ", ", "  "]) for _ in tokens]
        captions.append(
            "".join(t + j for t, j in zip(tokens, joiners, strict=True)).strip(rng.choice([" ", ""]))
        )
    for caption in captions:
        assert find_blocked(caption, WORDS) == original_rule(caption, WORDS), caption
        if original_rule(caption, WORDS) is not None:  # punctuation mode only ever adds matches
            assert find_blocked(caption, WORDS, "punctuation") is not None, caption


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("look at this porn, wow", "porn"),
        ("(porn) night", "porn"),
        ("porn!", "porn"),
        ("a blow job.", "blow job"),
        ("(blow  job)", "blow job"),  # multi-word entries: any whitespace between the words
        ("blowjob?", "blowjob"),
        ("g-spot!", "g-spot"),
        ("s&m.", "s&m"),
        ("cocktail, anyone?", None),  # still whole words only
        ("pornography", "pornography"),
        ("porn_star", None),  # '_' is a word character
        ("my cat", None),
    ],
)
def test_punctuation_mode(caption: str, expected: str | None) -> None:
    assert find_blocked(caption, WORDS, "punctuation") == expected


def test_first_listed_word_is_reported() -> None:
    # "anal" comes before "porn" in the list, whatever their order in the caption.
    assert WORDS.index("anal") < WORDS.index("porn")
    assert find_blocked("porn and anal", WORDS) == "anal"
    assert find_blocked("porn, anal.", WORDS, "punctuation") == "anal"


@pytest.mark.parametrize("mode", ["exact", "punctuation"])
def test_emoji_entry_never_matches_a_cleaned_caption(mode: str) -> None:
    caption = sanitize_caption("Look 🖕 at this (🖕) 🖕!")
    assert caption.isascii()
    assert find_blocked(caption, ["🖕"], mode) is None  # type: ignore[arg-type]
    assert find_blocked(caption, WORDS, mode) is None  # type: ignore[arg-type]


def test_unknown_mode_and_custom_lists() -> None:
    with pytest.raises(ValueError, match="mode"):
        Blocklist(WORDS, "fuzzy")  # type: ignore[arg-type]
    assert find_blocked("anything", []) is None
    assert find_blocked("a b c", ["b c", "a"]) == "b c"


def _file() -> ann.AnnotationFile:
    return annotation_file(
        [
            record("aaa1", caption="a rose", created_utc=1),
            record("bbb2", caption="my porn collection", created_utc=2),
            record("ccc3", subreddit="pics", caption="a blow job joke", created_utc=3),
            record("ddd4", caption="porn, wow", created_utc=4),
        ]
    )


def test_filter_words_removals_and_info() -> None:
    source = _file()
    outcome = filter_words(source)
    assert [r["image_id"] for r in outcome.kept.annotations] == ["aaa1", "ddd4"]
    assert outcome.removals == [
        base.Removal("bbb2", "roses", "word:porn"),
        base.Removal("ccc3", "pics", "word:blow job"),
    ]
    assert outcome.kept.info["word_filter"] == {"num_removed": 2, "model": MODEL}
    assert "word_filter" not in source.info and len(source.annotations) == 4  # input untouched

    punct = filter_words(_file(), mode="punctuation")
    assert [r.image_id for r in punct.removals] == ["bbb2", "ccc3", "ddd4"]
    assert punct.kept.info["word_filter"]["num_removed"] == 3

    custom = filter_words(_file(), words=["rose"])
    assert [(r.image_id, r.reason) for r in custom.removals] == [("aaa1", "word:rose")]


def test_rerun_is_a_noop(tmp_path: Path) -> None:
    path = tmp_path / "roses_2020.json"
    ann.save(path, filter_words(_file()).kept)
    before = path.read_bytes()
    paths = stage.FilterPaths(path, path, tmp_path / "removals.jsonl", tmp_path)
    report = stage.run_filter("words", paths, WordSettings(mode="punctuation"))
    assert report.status == "already_applied" and path.read_bytes() == before


def test_commit_deletes_only_removed_images(tmp_path: Path) -> None:
    source = _file()
    image_dir = tmp_path / "images"
    write_images(image_dir, source.annotations)
    output = tmp_path / "roses_2020.json"
    ann.save(output, source)
    stage.run_filter(
        "words", stage.FilterPaths(output, output, tmp_path / "removals.jsonl", image_dir), WordSettings()
    )
    present = sorted(p.stem for p in image_dir.rglob("*.jpg"))
    assert present == ["aaa1", "ddd4"]
    saved = ann.load(output)
    assert [r["image_id"] for r in saved.annotations] == ["aaa1", "ddd4"]
    assert saved.info["word_filter"]["num_removed"] == 2
    lines = (tmp_path / "removals.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"reason": "word:porn"' in lines[0]
