"""Collect one subreddit-month of image posts as an annotation file (``download-anns``).

Posts come from a :class:`~redcaps.collect.sources.PostSource`; an optional Reddit refresh updates
score and status (the original always did this; without credentials the source's fields
are used and ``info.collection`` says so); :mod:`redcaps.collect.rules` decides what is kept and
with which URL; captions are cleaned as the original did. ``info.collection`` records the
source and every drop reason with its count.

Typical use (what ``FetchMonth`` does)::

    creds = load_credentials(path)
    result = collect_month("roses", 2020, 5, source=build_source("arctic-shift"),
                           refresher=build_refresher(creds), imgur=build_imgur(creds))
    annotations.save(out_path, result)
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Protocol

from redcaps import annotations as ann
from redcaps.collect.captions import clean_text, is_empty, sanitize_caption
from redcaps.collect.credentials import Credentials
from redcaps.collect.rules import EMPTY_CAPTION, Dropped, ImgurResolver, Kept, classify
from redcaps.collect.sources import PostSource
from redcaps.errors import RedCapsError
from redcaps.names import check_image_id, check_subreddit
from redcaps.net.limits import HostLimiter, HostPolicy
from redcaps.settings import PUSHSHIFT_URL, SOURCES, CaptionSettings, CollectionSettings

NOT_REFRESHED = "source fields used, no Reddit credentials"
REFRESHED = "score, removal, NSFW and author refreshed from Reddit"


class Refresher(Protocol):
    """Returns copies of the posts with Reddit's current status (see ``reddit_refresh``)."""

    def refresh(self, posts: list[dict[str, Any]]) -> list[dict[str, Any]]: ...


def build_source(name: str, **options: Any) -> PostSource:
    """The source called ``name``; options that belong to other sources are ignored, so a
    caller can pass its whole configuration.

    * ``arctic-shift``: ``base_url`` (or ``arctic_shift_url``)
    * ``pushshift``: ``pushshift_url``, ``pushshift_flavour`` (``pushshift``/``pullpush``),
      ``token`` (default ``$PUSHSHIFT_TOKEN``: a secret, so never a task parameter)
    * ``dump``: ``dump_dir``
    * any web source: ``on_wait``, called with a one-line message before each long wait
      (a rate limit, a retry), for a task's status line; ``limiter``, the API's
      :class:`~redcaps.net.limits.HostLimiter` (default: a new one with the API's policy)
    """
    if name == "arctic-shift":
        from redcaps.collect.sources import arctic_shift

        return arctic_shift.ArcticShiftSource(
            options.get("arctic_shift_url") or options.get("base_url") or "",
            limiter=options.get("limiter") or _limiter(arctic_shift.HOST_POLICY),
            on_wait=options.get("on_wait"),
        )
    if name == "pushshift":
        from redcaps.collect.sources import pushshift

        url = options.get("pushshift_url") or PUSHSHIFT_URL
        flavour = pushshift.flavour_of(url, options.get("pushshift_flavour") or None)
        return pushshift.PushshiftSource(
            url,
            token=options.get("token") or os.environ.get("PUSHSHIFT_TOKEN"),
            flavour=flavour,
            limiter=options.get("limiter") or _limiter(pushshift.HOST_POLICIES[flavour]),
            on_wait=options.get("on_wait"),
        )
    if name == "dump":
        from redcaps.collect.sources.dump import DumpSource

        if not options.get("dump_dir"):
            raise RedCapsError(
                "the dump source needs a dump file or directory (--dump-file, --dump-dir or dump_dir)"
            )
        return DumpSource(Path(options["dump_dir"]))
    raise RedCapsError(f"unknown source {name!r} (choose from {', '.join(SOURCES)})")


def _limiter(policy: HostPolicy) -> HostLimiter:
    """One API's limiter: every request of the work it is built for shares its budget."""
    return HostLimiter({"*": policy})


def build_imgur(credentials: Credentials, **options: Any) -> ImgurResolver | None:
    """An Imgur album resolver when an Imgur client id is configured, else None; its limiter
    is built here unless ``options`` bring one."""
    if credentials.imgur is None and "imgur" not in credentials.problems:
        return None
    from redcaps.collect.sources import imgur

    options.setdefault("limiter", _limiter(imgur.HOST_POLICY))
    return imgur.ImgurResolver(credentials.require_imgur().client_id, **options)


def build_refresher(credentials: Credentials, **options: Any) -> Refresher | None:
    """A Reddit refresher when Reddit credentials are configured, else None."""
    from redcaps.collect.sources.reddit_refresh import build_refresher as build

    return build(credentials, **options)


def month_bounds(year: int, month: int) -> tuple[dt.date, dt.date, int, int]:
    """First and last day, and ``[start, end)`` in epoch seconds, of a UTC month."""
    first = dt.date(year, month, 1)
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    start = int(dt.datetime(year, month, 1, tzinfo=dt.timezone.utc).timestamp())
    end = int(dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.timezone.utc).timestamp())
    return first, last, start, end


#: The range a parquet ``int64`` column (and most readers) can hold: scores beyond it are clamped.
INT64 = (-(2**63), 2**63 - 1)


def _score(value: Any) -> int | None:
    """The score as an int64; the rules dropped scores that are no number (NaN included)."""
    if value is None:
        return None
    return int(min(max(value, INT64[0]), INT64[1]))


def to_record(post: dict[str, Any], url: str) -> ann.Record:
    """The official record shape, with every text field storable (:func:`clean_text`). A deleted
    author is null (the original wrote "None")."""
    author = post.get("author")
    title = clean_text(str(post.get("title") or ""))
    subreddit = str(post["subreddit"])
    return {
        "image_id": post["id"],
        "author": None if author in (None, "", "[deleted]") else clean_text(str(author)),
        "url": clean_text(url),
        "raw_caption": title,
        "caption": sanitize_caption(title),
        "subreddit": subreddit.lower(),
        "score": _score(post.get("score")),
        "created_utc": int(float(post["created_utc"])),
        "permalink": clean_text(str(post.get("permalink") or f"/r/{subreddit}/comments/{post['id']}/")),
    }


def _created(post: dict[str, Any]) -> float | None:
    try:
        created = float(post["created_utc"])
    except (KeyError, TypeError, ValueError):
        return None
    return created if math.isfinite(created) else None


def _unusable(post: Any, subreddit: str, start: int, end: int) -> str | None:
    """Why a post from the source cannot be an instance: a counted drop reason (``bad_id``,
    ``bad_time``), ``""`` for a post of another subreddit or month (sources filter those;
    this double-checks), None for a usable post."""
    if not isinstance(post, dict):
        return "bad_id"
    try:
        check_image_id(post.get("id"))
    except RedCapsError:
        return "bad_id"
    created = _created(post)
    if created is None:
        return "bad_time"
    in_month = start <= int(created) < end
    return None if in_month and str(post.get("subreddit", "")).lower() == subreddit.lower() else ""


def collect_month(
    subreddit: str,
    year: int,
    month: int,
    *,
    source: PostSource,
    refresher: Refresher | None = None,
    imgur: ImgurResolver | None = None,
    min_score: int = CollectionSettings.min_score,
    drop_empty_captions: bool = CaptionSettings.drop_empty,
    previews: dict[str, Any] | None = None,
) -> ann.AnnotationFile:
    """Image posts of ``r/subreddit`` created in one UTC month, sorted by (time, id), one
    record per post id; with ``drop_empty_captions`` a post whose cleaned caption is empty is
    dropped as ``empty_caption``. ``previews``, when given, is filled with the ``preview`` the
    source returned for each kept post (:mod:`redcaps.collect.preview_file`)."""
    check_subreddit(subreddit)
    first, last, start, end = month_bounds(year, month)
    posts: dict[str, dict[str, Any]] = {}
    dropped: Counter[str] = Counter()
    for post in source.iter_posts(subreddit, start, end):
        why = _unusable(post, subreddit, start, end)
        if why is None:
            posts.setdefault(post["id"], post)
        elif why:
            dropped[why] += 1
    unusable = dropped.total()
    candidates = list(posts.values())
    if refresher is not None:
        candidates = refresher.refresh(candidates)
    records = []
    for post in candidates:
        verdict = classify(post, min_score=min_score, imgur=imgur)
        if isinstance(verdict, Kept):
            record = to_record(post, verdict.url)
            if not (drop_empty_captions and is_empty(record["caption"])):
                records.append(record)
                if previews is not None and isinstance(post.get("preview"), dict):
                    previews[record["image_id"]] = post["preview"]
                continue
            verdict = Dropped(EMPTY_CAPTION)
        dropped[verdict.reason] += 1
    info = ann.new_info(first, last)
    info["collection"] = {
        "source": source.name,
        "refreshed": refresher is not None,
        "note": REFRESHED if refresher is not None else NOT_REFRESHED,
        "considered": len(candidates) + unusable,
        "kept": len(records),
        "dropped": dict(sorted(dropped.items())),
    }
    records.sort(key=lambda r: (r["created_utc"], r["image_id"]))
    result = ann.AnnotationFile(info, records)
    ann.parse(result.to_json(), f"r/{subreddit} {year}-{month:02d}")  # never save what would not load
    return result
