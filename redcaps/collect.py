"""Collect one subreddit-month of image posts as an annotation file (``download-anns``).

Posts come from a :class:`~redcaps.sources.PostSource`; :mod:`redcaps.rules` decides what is
kept and with which URL; captions are cleaned as the original did. ``info.collection``
records the source and every drop reason with its count.
"""

from __future__ import annotations

import calendar
import datetime as dt
import os
from collections import Counter
from pathlib import Path
from typing import Any

from redcaps import annotations as ann
from redcaps.captions import sanitize_caption
from redcaps.errors import RedCapsError
from redcaps.names import check_subreddit
from redcaps.rules import Dropped, ImgurResolver, classify
from redcaps.sources import PostSource

SOURCES = ("arctic-shift", "pushshift", "dump")


def build_source(name: str, **options: Any) -> PostSource:
    """The source called ``name`` (``arctic-shift``, ``pushshift`` or ``dump``)."""
    if name == "arctic-shift":
        from redcaps.sources.arctic_shift import ArcticShiftSource

        return ArcticShiftSource(**{k: v for k, v in options.items() if k in ("base_url",)})
    if name == "pushshift":
        from redcaps.sources.pushshift import PUSHSHIFT_URL, PushshiftSource

        # the token is a secret: from the environment, never a task parameter
        return PushshiftSource(
            options.get("pushshift_url") or PUSHSHIFT_URL,
            token=os.environ.get("PUSHSHIFT_TOKEN"),
            flavour=options.get("pushshift_flavour") or "pushshift",
        )
    if name == "dump":
        from redcaps.sources.dump import DumpSource

        if not options.get("dump_dir"):
            raise RedCapsError("the dump source needs a dump directory (--dump-dir)")
        return DumpSource(Path(options["dump_dir"]))
    raise RedCapsError(f"unknown source {name!r} (choose from {', '.join(SOURCES)})")


def month_bounds(year: int, month: int) -> tuple[dt.date, dt.date, int, int]:
    first = dt.date(year, month, 1)
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    start = int(dt.datetime(year, month, 1, tzinfo=dt.timezone.utc).timestamp())
    end = int(dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.timezone.utc).timestamp())
    return first, last, start, end


def to_record(post: dict[str, Any], url: str) -> ann.Record:
    author = post.get("author")
    return {
        "image_id": post["id"],
        "author": None if author in (None, "[deleted]", "None") else str(author),
        "url": url,
        "raw_caption": post.get("title") or "",
        "caption": sanitize_caption(post.get("title") or ""),
        "subreddit": str(post["subreddit"]).lower(),
        "score": post.get("score"),
        "created_utc": int(post["created_utc"]),
        "permalink": post.get("permalink") or f"/r/{post['subreddit']}/comments/{post['id']}/",
    }


def collect_month(
    subreddit: str,
    year: int,
    month: int,
    *,
    source: PostSource,
    imgur: ImgurResolver | None = None,
    min_score: int = 2,
) -> ann.AnnotationFile:
    """Image posts of ``r/subreddit`` in one UTC month, sorted by time, one per id."""
    check_subreddit(subreddit)
    first, last, start, end = month_bounds(year, month)
    dropped: Counter[str] = Counter()
    records: dict[str, ann.Record] = {}
    considered = 0
    for post in source.iter_posts(subreddit, start, end):
        considered += 1
        verdict = classify(post, min_score=min_score, resolver=imgur)
        if isinstance(verdict, Dropped):
            dropped[verdict.reason] += 1
        else:
            records[post["id"]] = to_record(post, verdict.url)
    info = ann.new_info(first, last)
    info["collection"] = {
        "source": source.name,
        "refreshed": False,
        "note": "scores and removals as the source reports them (no Reddit credentials used)",
        "considered": considered,
        "kept": len(records),
        "dropped": dict(sorted(dropped.items())),
    }
    annotations = sorted(records.values(), key=lambda r: (r["created_utc"], r["image_id"]))
    result = ann.AnnotationFile(info, annotations)
    ann.parse(result.to_json(), f"r/{subreddit} {year}-{month:02d}")  # never save what would not load
    return result
