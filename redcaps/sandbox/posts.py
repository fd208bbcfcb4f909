"""A deterministic population of Reddit submissions with every image-post rule's edge case.

Subreddits ``sandboxcats`` (stored as ``SandboxCats``, Reddit's capitalisation, as dumps
have it) and ``sandboxroses``, every month of 2020 and 2019-10..12. Every month has every
case in :data:`CASES` once plus 0-9 ordinary image posts (31-40 posts a month); titles and
deleted authors vary independently. Three views of the same posts:

* :func:`population`: what archives (Arctic Shift, Pushshift, dumps) hold;
* :func:`reddit_view`: what Reddit's ``/api/info`` says today (settled scores, posts
  deleted or removed since archiving);
* :func:`imgur_albums`: what the Imgur API says about the albums the posts link.

:func:`expected` gives each month's drop counts, so tests never hard-code them.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

SUBREDDITS = {"sandboxcats": "SandboxCats", "sandboxroses": "sandboxroses"}
MONTHS = tuple([(2019, 10), (2019, 11), (2019, 12)] + [(2020, m) for m in range(1, 13)])
YEAR = 2020
FILLER = (0, 9)  # ordinary image posts added to each month, min and max

#: case -> drop reason without Reddit refresh or Imgur API (None: kept).
CASES: dict[str, str | None] = {
    "image": None,
    "image_png": None,
    "imgur_direct": None,
    "imgur_png": None,
    "imgur_mobile": None,
    "imgur_www": None,
    "imgur_query": None,
    "imgur_comma": None,
    "imgur_album": "imgur_album_no_api",
    "imgur_gallery": "imgur_album_no_api",
    "imgur_slug": "imgur_album_no_api",
    "imgur_album_gone": "imgur_album_no_api",
    "gallery_png": None,
    "gallery_deleted": "gallery_empty",
    "gallery_invalid": "gallery_empty",
    "crosspost": None,
    "crosspost_gallery": None,
    "nsfw": "nsfw",
    "removed": "removed",
    "low_score": "low_score",
    "self": "self_post",
    "video": "video",
    "rich_video": "video",
    "gifv": "video",
    "flickr": None,
    "flickr_old_host": None,
    "escaped_url": None,
    "unsupported": "unsupported_host",
    "now_deleted": None,  # Reddit no longer returns it
    "now_removed": None,  # a moderator removed it after archiving
    "score_settled": "low_score",  # archived at score 1, settled at 25
    # kept by the rules, then lost later in the pipeline:
    "image_gone": None,  # i.redd.it answers 404
    "imgur_deleted": None,  # imgur redirects to removed.png
    "title_blocked": None,  # the word filter removes it
    "face": None,  # the face filter removes it
}
#: Cases whose image URL the image hosts answer with a fault (see ``World.faults``).
IMAGE_FAULTS = {"image_gone": "http_404", "imgur_deleted": "imgur_removed"}
#: Cases whose image is of a special kind (see ``redcaps.sandbox.images.render``).
IMAGE_KINDS = {"face": "face"}
#: Planted duplicates in 2020: (subreddit, n-th plain ``image`` post, source subreddit, source's
#: n-th, how): the copy's URL serves the source's image, byte for byte or at half the size.
#: Posts are counted in time order, so the source is always the earlier post. (Every ``face``
#: post also serves one photo: exact duplicates too, when the face filter does not run.)
PLANTED = (
    ("sandboxcats", 5, "sandboxcats", 0, "exact"),  # a repost
    ("sandboxcats", 7, "sandboxcats", 1, "resized"),  # a repost, resized
    ("sandboxroses", 4, "sandboxroses", 0, "resized"),
    ("sandboxroses", 6, "sandboxcats", 2, "exact"),  # the same photo in another subreddit
)
#: What changes when posts are refreshed from Reddit, or albums resolved with the API.
REFRESHED = {"now_deleted": "removed", "now_removed": "removed", "score_settled": None}
RESOLVED = {
    "imgur_album": None,
    "imgur_gallery": None,
    "imgur_slug": None,
    "imgur_album_gone": "imgur_album_gone",
}

TITLES = [
    "My cat in the sun",
    "First rose of the year",
    "Garden at dusk",
    "Found this little one",
    "Morning walk",
    "After the rain",
]
#: Title variants; the caption each gives is what ``sanitize_caption`` must produce.
TITLE_KINDS = ("plain", "brackets", "resolution", "handle", "emoji", "non_latin", "comma_number", "curly")
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_IMGUR = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


@dataclass(frozen=True)
class _World:
    posts: tuple[dict[str, Any], ...]
    cases: dict[str, str]  # post id -> case
    by_id: dict[str, dict[str, Any]]
    albums: dict[str, list[dict[str, str]] | None]  # album id -> images (None: gone)
    image_faults: dict[str, str]  # image URL -> World fault
    image_kinds: dict[str, str]  # image URL -> image kind
    copies: dict[str, tuple[str, str]]  # image URL -> (source image URL, "exact" or "resized")


class _Ids:
    """Unique random ids: a clash would silently merge two posts."""

    def __init__(self, rng: random.Random) -> None:
        self.rng, self.used = rng, set[str]()

    def __call__(self, n: int = 7, alphabet: str = _B36) -> str:
        while True:
            value = "".join(self.rng.choice(alphabet) for _ in range(n))
            if value not in self.used:
                self.used.add(value)
                return value


def _title(rng: random.Random, kind: str) -> str:
    base = rng.choice(TITLES)
    return {
        "plain": base,
        "brackets": f"[OC] {base} (taken today)",
        "resolution": f"{base} 4032x3024",
        "handle": f"{base}, photo by @snap_happy.cat",
        "emoji": f"{base} \U0001f339",
        "non_latin": "\u6771\u4eac\u306e\u591c",
        "comma_number": f"{base} after 1,000 miles",
        "curly": f"{base} \u2014 my friend\u2019s garden",
    }[kind]


def _gallery(ids: _Ids, statuses: list[tuple[str, str, str]]) -> dict[str, Any]:
    media = [(ids(13), status, kind, mime) for status, kind, mime in statuses]
    return {
        "is_gallery": True,
        "gallery_data": {"items": [{"media_id": m, "id": i + 1} for i, (m, *_) in enumerate(media)]},
        "media_metadata": {
            m: {"status": status, "e": kind, "m": mime, "s": {"x": 800, "y": 600}}
            for m, status, kind, mime in media
        },
    }


def _media(case: str, post: dict[str, Any], ids: _Ids, albums: dict[str, Any]) -> None:
    """Give ``post`` the URL and fields of ``case``."""
    pid, subreddit = post["id"], post["subreddit"]
    image = ids(7, _IMGUR)
    imgur = {"domain": "imgur.com", "post_hint": "link"}
    if case == "image_png":
        post["url"] = f"https://i.redd.it/{ids(13)}.png"
    elif case == "imgur_deleted":
        post.update(domain="i.imgur.com", url=f"https://i.imgur.com/{image}.jpg")
    elif case == "title_blocked":
        post["title"] = "Sexy sunset over the lake"
    elif case in ("imgur_direct", "imgur_png"):
        post.update(
            domain="i.imgur.com",
            url=f"https://i.imgur.com/{image}.{case[6:] if case == 'imgur_png' else 'jpg'}",
        )
    elif case == "imgur_mobile":
        post.update(imgur, domain="m.imgur.com", url=f"https://m.imgur.com/{image}")
    elif case == "imgur_www":
        post.update(imgur, url=f"https://www.imgur.com/{image}.png")
    elif case == "imgur_query":
        post.update(imgur, url=f"https://imgur.com/{image}?ref=reddit")
    elif case == "imgur_comma":
        post.update(imgur, url=f"https://imgur.com/{image},{ids(7, _IMGUR)},{ids(7, _IMGUR)}")
    elif case.startswith("imgur_"):  # albums: /a/<5>, /gallery/<7>, /a/<slug>-<7>, and a gone one
        album = ids(5 if case in ("imgur_album", "imgur_album_gone") else 7, _IMGUR)
        path = {"imgur_gallery": f"gallery/{album}", "imgur_slug": f"a/my-cat-at-home-{album}"}.get(
            case, f"a/{album}"
        )
        post.update(imgur, url=f"https://imgur.com/{path}")
        first = (
            [{"link": f"https://i.imgur.com/{ids(7, _IMGUR)}.mp4", "type": "video/mp4"}]
            if case == "imgur_slug"
            else []
        )
        albums[album] = (
            None
            if case == "imgur_album_gone"
            else first
            + [
                {"link": f"https://i.imgur.com/{ids(7, _IMGUR)}.jpg", "type": "image/jpeg"},
                {"link": f"https://i.imgur.com/{ids(7, _IMGUR)}.png", "type": "image/png"},
            ]
        )
    elif case in ("gallery_png", "gallery_deleted", "gallery_invalid"):
        post.update(domain="reddit.com", url=f"https://www.reddit.com/gallery/{pid}")
        post.pop("post_hint")
        if case == "gallery_png":  # a failed item, an animation, then a PNG: the PNG is the image
            post.update(
                _gallery(
                    ids,
                    [
                        ("failed", "Image", "image/jpg"),
                        ("valid", "AnimatedImage", "image/gif"),
                        ("valid", "Image", "image/png"),
                    ],
                )
            )
        elif case == "gallery_invalid":
            post.update(
                _gallery(ids, [("unprocessed", "Image", "image/jpg"), ("failed", "Image", "image/png")])
            )
        else:
            post.update(is_gallery=True, gallery_data=None, media_metadata=None)
    elif case in ("crosspost", "crosspost_gallery"):
        parent_id = ids()
        parent: dict[str, Any] = {
            "id": parent_id,
            "subreddit": "OtherSub",
            "is_self": False,
            "is_video": False,
        }
        if case == "crosspost":
            parent.update(url=f"https://i.redd.it/{ids(13)}.png", domain="i.redd.it", post_hint="image")
        else:
            parent.update(url=f"https://www.reddit.com/gallery/{parent_id}", domain="reddit.com")
            parent.update(_gallery(ids, [("valid", "Image", "image/jpg")]))
        post.update(
            domain="reddit.com",
            post_hint="link",
            url=f"/r/OtherSub/comments/{parent_id}/",
            crosspost_parent=f"t3_{parent_id}",
            crosspost_parent_list=[parent],
        )
    elif case == "nsfw":
        post["over_18"] = True
    elif case == "removed":
        post["removed_by_category"] = "moderator"
    elif case in ("low_score", "score_settled"):
        post["score"] = 1
    elif case == "self":
        post.update(
            is_self=True,
            domain=f"self.{subreddit}",
            post_hint="self",
            url=f"https://www.reddit.com{post['permalink']}",
        )
    elif case == "video":
        post.update(
            is_video=True, domain="v.redd.it", post_hint="hosted:video", url=f"https://v.redd.it/{ids(13)}"
        )
    elif case == "rich_video":
        post.update(
            domain="youtube.com", post_hint="rich:video", url=f"https://www.youtube.com/watch?v={ids(11)}"
        )
    elif case == "gifv":
        post.update(domain="i.imgur.com", post_hint="link", url=f"https://i.imgur.com/{image}.gifv")
    elif case in ("flickr", "flickr_old_host", "escaped_url"):
        farm, server, photo = (
            ids.rng.randint(1, 9),
            ids.rng.randint(1000, 9999),
            ids.rng.randint(10**9, 10**10),
        )
        host = (
            f"farm{farm}.static.flickr.com" if case == "flickr_old_host" else f"farm{farm}.staticflickr.com"
        )
        url = f"https://{host}/{server}/{photo}_{ids.rng.getrandbits(40):010x}.jpg"
        post.update(
            domain=host, post_hint="link", url=url + ("?zz=1&amp;yy=2" if case == "escaped_url" else "")
        )
    elif case == "unsupported":
        post.update(domain="example.com", post_hint="link", url=f"https://example.com/photos/{ids()}.jpg")


def _month_posts(
    rng: random.Random, ids: _Ids, subreddit: str, year: int, month: int, albums: dict
) -> list[tuple[dict, str]]:
    cases = list(CASES) + ["image"] * rng.randint(*FILLER)
    rng.shuffle(cases)
    days = calendar.monthrange(year, month)[1]
    start = int(dt.datetime(year, month, 1, tzinfo=dt.timezone.utc).timestamp())
    times = sorted(rng.randint(start, start + days * 86400 - 1) for _ in cases)
    times[1] = times[0]  # two posts in one second: cursors must lose neither
    times[-3] = times[-2] = times[-1]  # three at the end of the month
    out = []
    for i, (created, case) in enumerate(zip(times, cases, strict=True)):
        pid = ids()
        title = _title(rng, TITLE_KINDS[i % len(TITLE_KINDS)])
        slug = "".join(c if c.isalnum() else "_" for c in title.lower())[:40]
        post: dict[str, Any] = {
            "id": pid,
            "name": f"t3_{pid}",
            "subreddit": subreddit,
            "author": "[deleted]" if i % 9 == 4 else f"user_{ids(5)}",
            "title": title,
            "created_utc": created,
            "domain": "i.redd.it",
            "post_hint": "image",
            "url": f"https://i.redd.it/{ids(13)}.jpg",
            "is_self": False,
            "is_video": False,
            "over_18": False,
            "removed_by_category": None,
            "score": rng.randint(2, 900),
            "num_comments": rng.randint(0, 60),
            "permalink": f"/r/{subreddit}/comments/{pid}/{slug}/",
        }
        _media(case, post, ids, albums)
        out.append((post, case))
    return out


@functools.lru_cache(maxsize=4)
def _world(seed: int) -> _World:
    rng = random.Random(seed)
    ids = _Ids(rng)
    posts, cases, albums = [], {}, {}
    for subreddit in SUBREDDITS.values():
        for year, month in MONTHS:
            for post, case in _month_posts(rng, ids, subreddit, year, month, albums):
                posts.append(post)
                cases[post["id"]] = case
    posts.sort(key=lambda p: (p["created_utc"], p["id"]))
    faults = {p["url"]: IMAGE_FAULTS[cases[p["id"]]] for p in posts if cases[p["id"]] in IMAGE_FAULTS}
    kinds = {p["url"]: IMAGE_KINDS[cases[p["id"]]] for p in posts if cases[p["id"]] in IMAGE_KINDS}
    plain = {
        name: [
            p for p in posts if p["subreddit"] == stored and cases[p["id"]] == "image" and _year(p) == YEAR
        ]
        for name, stored in SUBREDDITS.items()
    }
    copies = {plain[sub][n]["url"]: (plain[source][m]["url"], how) for sub, n, source, m, how in PLANTED}
    return _World(tuple(posts), cases, {p["id"]: p for p in posts}, albums, faults, kinds, copies)


def _year(post: dict[str, Any]) -> int:
    return dt.datetime.fromtimestamp(post["created_utc"], dt.timezone.utc).year


def population(seed: int = 0) -> tuple[dict[str, Any], ...]:
    """Every synthetic post as archives hold it, sorted by (created_utc, id). Do not mutate."""
    return _world(seed).posts


def case_of(post_id: str, seed: int = 0) -> str:
    return _world(seed).cases[post_id]


def post_by_id(post_id: str, seed: int = 0) -> dict[str, Any] | None:
    """One post as archives hold it, or None. Do not mutate."""
    return _world(seed).by_id.get(post_id)


def month_posts(subreddit: str, year: int, month: int, seed: int = 0) -> list[dict[str, Any]]:
    """One subreddit-month of the population (subreddit case-insensitive)."""
    start = int(dt.datetime(year, month, 1, tzinfo=dt.timezone.utc).timestamp())
    end = int(dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.timezone.utc).timestamp())
    name = subreddit.lower()
    return [p for p in population(seed) if p["subreddit"].lower() == name and start <= p["created_utc"] < end]


def reddit_view(post_id: str, seed: int = 0) -> dict[str, Any] | None:
    """The post as Reddit's API returns it today; None when Reddit no longer has it."""
    world = _world(seed)
    post, case = world.by_id.get(post_id), world.cases.get(post_id)
    if post is None or case == "now_deleted":
        return None
    current = dict(post)
    if post["score"] >= 2:
        current["score"] = post["score"] + 3  # votes settled after archiving
    if case == "now_removed":
        current["removed_by_category"] = "moderator"
    elif case == "score_settled":
        current["score"] = 25
    return current


def image_faults(seed: int = 0) -> dict[str, str]:
    """Image URL -> the fault its host answers with, for posts the rules keep."""
    return dict(_world(seed).image_faults)


def image_kinds(seed: int = 0) -> dict[str, str]:
    """Image URL -> a special image kind (a face), for posts the rules keep."""
    return dict(_world(seed).image_kinds)


def image_copies(seed: int = 0) -> dict[str, tuple[str, str]]:
    """Image URL -> (the URL whose image it serves, ``exact`` or ``resized``): planted duplicates."""
    return dict(_world(seed).copies)


def planted_duplicates(seed: int = 0) -> list[tuple[str, str, str]]:
    """(copy post id, source post id, ``exact`` or ``resized``) of every planted duplicate."""
    world = _world(seed)
    by_url = {p["url"]: p["id"] for p in world.posts}
    return [(by_url[copy], by_url[source], how) for copy, (source, how) in world.copies.items()]


def imgur_albums(seed: int = 0) -> dict[str, list[dict[str, str]] | None]:
    """Album id -> its images as the Imgur API lists them (None: the album is gone)."""
    return _world(seed).albums


def expected(
    subreddit: str, year: int, month: int, *, refreshed: bool = False, resolved: bool = False, seed: int = 0
) -> tuple[int, Counter[str]]:
    """(kept, {drop reason: count}) that a correct ``collect_month`` gives for a month."""
    dropped: Counter[str] = Counter()
    kept = 0
    for post in month_posts(subreddit, year, month, seed):
        case = case_of(post["id"], seed)
        reason = CASES[case]
        if refreshed and case in REFRESHED:
            reason = REFRESHED[case]
        if resolved and case in RESOLVED:
            reason = RESOLVED[case]
        if reason is None:
            kept += 1
        else:
            dropped[reason] += 1
    return kept, dropped
