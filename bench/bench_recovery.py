"""The download yield with recovery on and off, per host, on the sandbox's decayed web.

    python bench/bench_recovery.py [--decay 0.4] [--preview-loss 0.1] [--posts 600]

Starts a sandbox whose ``--decay`` of originals are gone (``--preview-loss`` of those with
their Reddit preview) and whose Flickr farm hosts are retired, downloads the same records
twice (``[downloads] recover`` true, then false) and prints a Markdown table per host
(docs/benchmarks/recovery.md).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import Counter
from pathlib import Path

from redcaps.annotations import AnnotationFile
from redcaps.download.images import ImageOptions
from redcaps.download.previews import PreviewLookup
from redcaps.download.shard import download_file
from redcaps.net.config import HttpConfig
from redcaps.net.fetcher import Fetcher
from redcaps.net.limits import parse_host_policy
from redcaps.report.yields import COLUMNS, host_group
from redcaps.sandbox import Sandbox, posts
from redcaps.sandbox.world import World
from redcaps.settings import DownloadSettings

IMAGE_HOSTS = ("https://i.redd.it/", "https://i.imgur.com/", "https://farm")


def records(world: World, count: int) -> list[dict]:
    """Plain image posts the downloader fetches as they are (no planted faults or kinds)."""
    special = world.kinds.keys() | world.copies.keys() | (world.faults.keys() - world.gone)
    chosen = [
        p
        for p in posts.population()
        if p["url"].startswith(IMAGE_HOSTS)
        and p["url"].endswith(".jpg")
        and "?" not in p["url"]
        and p["url"] not in special
    ]
    return [
        {
            "image_id": p["id"],
            "author": "someone",
            "url": p["url"],
            "raw_caption": "a picture",
            "caption": "a picture",
            "subreddit": p["subreddit"],
            "score": 10,
            "created_utc": int(p["created_utc"]),
            "permalink": f"/r/{p['subreddit']}/comments/{p['id']}/a_picture/",
        }
        for p in chosen[:count]
    ]


def run(rows: list[dict], where: Path, recover: bool) -> dict[str, Counter]:
    policy = parse_host_policy("rate=200 burst=100 concurrency=8")
    config = HttpConfig(max_attempts=2, backoff_base=0.05, host_policies={"*": policy}, host_scope="process")
    settings = DownloadSettings(images_per_shard=10_000, workers=8, processes=1, recover=recover)
    fetcher, lookup = Fetcher(config), PreviewLookup(config=config)
    try:
        info = {"start_date": "2020-01-01", "end_date": "2020-12-31", "url": "", "version": "1.0"}
        outcomes = download_file(
            AnnotationFile(info, rows), where / "images", where / "manifests", fetcher,
            ImageOptions(resize=256), settings, previews=lookup,
        )  # fmt: skip
    finally:
        fetcher.close()
        lookup.close()
    table: dict[str, Counter] = {}
    for o in outcomes:
        counts = table.setdefault(host_group(o.url), Counter())
        counts["attempted"] += 1
        counts[o.route or "ok first try" if o.ok else "opted out" if o.status == "opted_out" else "dead"] += 1
    return dict(sorted(table.items()))


def _share(n: int, counts: Counter) -> str:
    return f"{n} ({100 * n / counts['attempted']:.0f}%)"


def markdown(on: dict[str, Counter], off: dict[str, Counter]) -> str:
    head = (
        "| host | attempted | ok, recovery off | ok first try | rewrite | preview | dead | ok, recovery on |"
    )
    lines = [head, "|" + "---|" * 8]
    for host in on:
        a, b = on[host], off.get(host, Counter())
        total_on = a["ok first try"] + a["rewrite"] + a["preview"]
        lines.append(
            f"| {host} | {a['attempted']} | {_share(b['ok first try'], a)} | {a['ok first try']}"
            f" | {a['rewrite']} | {a['preview']} | {a['dead']} | {_share(total_on, a)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decay", type=float, default=0.4)
    parser.add_argument("--preview-loss", type=float, default=0.1)
    parser.add_argument("--posts", type=int, default=600)
    args = parser.parse_args()
    world = World(0, decay=args.decay, preview_loss=args.preview_loss, flickr_farms_gone=True)
    with tempfile.TemporaryDirectory() as tmp, Sandbox(world, state_dir=Path(tmp) / "sandbox") as box:
        os.environ.update(box.env())
        rows = records(world, args.posts)
        on, off = run(rows, Path(tmp) / "on", True), run(rows, Path(tmp) / "off", False)
    print(f"decay {args.decay}, preview loss {args.preview_loss}, {len(rows)} images; columns: {COLUMNS}")
    print(markdown(on, off))


if __name__ == "__main__":
    main()
