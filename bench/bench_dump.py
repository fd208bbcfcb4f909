"""Dump reading speed: lines/s and MB/s of the dump source filtering one subreddit.

Writes synthetic monthly ``RS_YYYY-MM.zst`` files into ``bench/out/dumps`` (zstd level 3,
``window_log=31`` like the real dumps; reused when present), each line a submission of
realistic size and shape (~1.3 KB of JSON, keys sorted as in post-2023 dumps) spread over
``--subreddits`` subreddits, then times ``DumpSource.iter_posts`` for one subreddit over all
months in a fresh process (so its peak RSS is the reader's own). For comparison it also
times a naive reader that parses every line with ``json.loads``.

    python bench/bench_dump.py [--months 3] [--lines-per-month 100000] [--subreddits 500]
    python bench/bench_dump.py --scan 350 --months 3 --lines-per-month 1000000

Prints a markdown table. ``--scan N`` instead compares one pass of ``scan_dump`` for a batch of
N subreddits with one pass for a single subreddit, counting with an audit hook how often each
dump is opened, and times the per-subreddit reader for a few subreddits to project N of them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redcaps.collect.sources.dump import read_lines, write_dump  # noqa: E402

OUT = ROOT / "bench" / "out" / "dumps"
TARGET = "EarthPorn"  # the subreddit read back; mixed case as in the dumps
WORDS = "the a my of in at cat garden sunset old new first photo view morning city lake tree".split()  # noqa: SIM905


def _post(rng: random.Random, created: int, subreddit: str, n: int) -> dict:
    pid = f"{n:07x}"
    title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14)))
    return {
        "all_awardings": [],
        "author": f"user_{rng.getrandbits(32):08x}",
        "author_flair_text": None,
        "created_utc": created,
        "domain": "i.redd.it",
        "gilded": 0,
        "id": pid,
        "is_self": False,
        "is_video": False,
        "link_flair_text": None,
        "media": None,
        "name": f"t3_{pid}",
        "num_comments": rng.randint(0, 300),
        "over_18": False,
        "permalink": f"/r/{subreddit}/comments/{pid}/{title.replace(' ', '_')[:50]}/",
        "post_hint": "image",
        "preview": {
            "enabled": True,
            "images": [
                {
                    "id": f"{rng.getrandbits(64):016x}",
                    "resolutions": [
                        {
                            "height": h,
                            "url": f"https://preview.redd.it/{pid}.jpg?width={h}&amp;s={h:x}",
                            "width": h,
                        }
                        for h in (108, 216, 320, 640)
                    ],
                    "source": {"height": 3000, "url": f"https://preview.redd.it/{pid}.jpg", "width": 4000},
                }
            ],
        },
        "removed_by_category": None,
        "retrieved_on": created + 36 * 3600,
        "score": rng.randint(0, 5000),
        "selftext": "",
        "subreddit": subreddit,
        "subreddit_id": f"t5_{rng.getrandbits(24):06x}",
        "thumbnail": "https://b.thumbs.redditmedia.com/x.jpg",
        "title": title,
        "upvote_ratio": 0.97,
        "url": f"https://i.redd.it/{rng.getrandbits(64):013x}.jpg",
    }


def make_dumps(months: int, per_month: int, subreddits: int, seed: int = 0) -> list[Path]:
    """Monthly dumps from 2021-01 on; ``TARGET`` gets ~1/subreddits of the posts."""
    OUT.mkdir(parents=True, exist_ok=True)
    names = [TARGET] + [f"sub{i:04d}" for i in range(1, subreddits)]
    paths = []
    for m in range(months):
        month = dt.date(2021 + m // 12, m % 12 + 1, 1)
        path = OUT / f"RS_{month:%Y-%m}.zst"
        paths.append(path)
        tag = path.with_suffix(f".{per_month}x{subreddits}")
        if path.exists() and tag.exists():
            continue
        rng = random.Random(seed + m)
        start = int(dt.datetime(month.year, month.month, 1, tzinfo=dt.timezone.utc).timestamp())
        step = 28 * 86400 // per_month
        write_dump(
            path,
            (_post(rng, start + i * step, rng.choice(names), m * per_month + i) for i in range(per_month)),
        )
        for old in OUT.glob(f"RS_{month:%Y-%m}.*x*"):
            old.unlink()
        tag.touch()
    return paths


def _child(mode: str, folder: str, months: int) -> None:
    """Run one reader and print its figures as JSON (in a fresh process: honest peak RSS)."""
    from redcaps.collect.sources.dump import DumpSource

    first = dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc)
    last = dt.datetime(2021 + months // 12, months % 12 + 1, 1, tzinfo=dt.timezone.utc)
    start, end = int(first.timestamp()), int(last.timestamp())
    opened: list[str] = []
    sys.addaudithook(lambda event, a: event == "open" and "RS_" in str(a[0]) and opened.append(str(a[0])))
    began = time.perf_counter()
    if mode.startswith("scan-"):
        found = _scan(folder, int(mode.split("-")[1]), months)
    elif mode.startswith("dump-source-"):  # the per-subreddit reader, once per subreddit
        found = sum(
            1
            for name in _batch(int(mode.split("-")[2]))
            for _ in DumpSource(folder).iter_posts(name.lower(), start, end)
        )
    elif mode == "dump-source":
        found = sum(1 for _ in DumpSource(folder).iter_posts(TARGET.lower(), start, end))
    else:  # naive: parse every line, then filter
        found = 0
        for path in sorted(Path(folder).glob("RS_*.zst")):
            for line in read_lines(path):
                post = json.loads(line)
                found += post["subreddit"].lower() == TARGET.lower() and start <= post["created_utc"] < end
    seconds = time.perf_counter() - began
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    print(
        json.dumps({"found": found, "seconds": seconds, "peak_rss_mib": peak, "opened": opened, "cpu": cpu})
    )


def _batch(n: int) -> list[str]:
    """``n`` subreddits that are all in the dumps (the expensive case: every one matches)."""
    return [TARGET] + [f"sub{i:04d}" for i in range(1, n)]


def _scan(folder: str, n: int, months: int) -> int:
    import tempfile

    from redcaps.collect.scan import scan_dump

    staged = 0
    with tempfile.TemporaryDirectory() as staging:
        for path in sorted(Path(folder).glob("RS_*.zst"))[:months]:
            month = path.stem[3:]
            counts = scan_dump(path, _batch(n), lambda s, m: Path(staging) / f"{s}_{m}.jsonl.zst", [month])
            staged += sum(counts.staged.values())
    return staged


def scan_table(args: argparse.Namespace, paths: list[Path], lines: int, raw_mb: float) -> None:
    """One pass for a batch of ``--scan`` subreddits against one pass for one, side by side."""
    print(
        "| run | posts staged/found | seconds | CPU seconds | dumps opened (distinct) | MB decompressed"
        " | peak RSS MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    results = {}
    for mode in ("scan-1", f"scan-{args.scan}", "dump-source-5"):
        r = _run_child(mode, args.months)
        results[mode] = r
        opened = len(r["opened"])
        print(
            f"| {mode} | {r['found']:,} | {r['seconds']:.1f} | {r['cpu']:.1f} |"
            f" {opened} ({len(set(r['opened']))}) |"
            f" {raw_mb * opened / len(paths):,.0f} | {r['peak_rss_mib']:.0f} |"
        )
    big, one = results[f"scan-{args.scan}"], results["scan-1"]
    per_sub = results["dump-source-5"]["seconds"] / 5
    print(
        f"\nscan of {args.scan} / scan of 1: {big['seconds'] / one['seconds']:.2f}x wall time,"
        f" {big['cpu'] / one['cpu']:.2f}x CPU; reading the dumps once per subreddit instead:"
        f" ~{per_sub * args.scan:,.0f} s ({per_sub:.1f} s per subreddit x {args.scan})"
    )


def _run_child(mode: str, months: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(OUT), str(months)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--lines-per-month", type=int, default=100_000)
    parser.add_argument("--subreddits", type=int, default=500)
    parser.add_argument("--scan", type=int, default=0, help="compare a batch scan of N subreddits with 1")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]))
        return
    paths = make_dumps(args.months, args.lines_per_month, args.subreddits)
    lines = sum(1 for p in paths for _ in read_lines(p))
    raw_mb = sum(len(line) + 1 for p in paths for line in read_lines(p)) / 1e6
    zst_mb = sum(p.stat().st_size for p in paths) / 1e6
    print(
        f"{len(paths)} dumps, {lines:,} lines, {raw_mb:,.0f} MB NDJSON ({zst_mb:,.0f} MB zstd),"
        f" {args.subreddits} subreddits, load {os.getloadavg()[0]:.1f}\n"
    )
    if args.scan:
        scan_table(args, paths, lines, raw_mb)
        return
    print("| reader | posts found | seconds | lines/s | MB/s (uncompressed) | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode in ("dump-source", "json-every-line"):
        r = _run_child(mode, args.months)
        print(
            f"| {mode} | {r['found']:,} | {r['seconds']:.1f} | {lines / r['seconds']:,.0f} |"
            f" {raw_mb / r['seconds']:,.0f} | {r['peak_rss_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
