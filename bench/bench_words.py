"""Word-filter throughput: captions/s through ``filter_words`` for both modes and file sizes.

Captions are synthetic (seeded): 3-15 common words with punctuation, ~1% carrying a listed word.

    python bench/bench_words.py [--sizes 1000,10000,100000]

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import random
import time

from samples import annotation_file, record

from redcaps import annotations as ann
from redcaps.filters.words import filter_words, load_words

VOCAB = (  # noqa: SIM905 (a word list reads better as one string)
    "my the a this old new first little best cat dog house garden sunset beach friend found made "
    "today finally after years of in at on with from, ! . (oc) - 2020"
).split()


def make_file(count: int, seed: int = 0) -> ann.AnnotationFile:
    rng = random.Random(seed)
    words = load_words()
    records = []
    for n in range(count):
        tokens = [rng.choice(VOCAB) for _ in range(rng.randint(3, 15))]
        if rng.random() < 0.01:
            tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(words[:-1]))
        records.append(record(f"c{n}", n, caption=" ".join(tokens)))
    return annotation_file(records)


def original_rule(caption: str, words: list[str]) -> str | None:
    """The original's per-word substring loop, for comparison."""
    for bad in words:
        if f" {bad} " in f" {caption} ":
            return bad
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1000, 10000, 100000]
    )
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    filter_words(make_file(10))  # compile the regexes outside the timings
    filter_words(make_file(10), mode="punctuation")
    print("| captions per file | mode | captions/s | removed |")
    print("|---:|---|---:|---:|")
    words = load_words()
    for size in args.sizes:
        annotations = make_file(size)
        start = time.perf_counter()
        removed = sum(original_rule(r["caption"], words) is not None for r in annotations.annotations)
        rate = size / (time.perf_counter() - start)
        print(f"| {size} | original loop (reference) | {rate:,.0f} | {removed} |")
        for mode in ("exact", "punctuation"):
            start = time.perf_counter()
            outcome = filter_words(annotations, mode=mode)
            rate = size / (time.perf_counter() - start)
            print(f"| {size} | {mode} | {rate:,.0f} | {len(outcome.removals)} |")

    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
