"""A deterministic population of Reddit submissions with every image-post rule's edge case.

Subreddits ``sandboxcats`` and ``sandboxroses`` (stored with Reddit's capitalisation, as
dumps have it), every month of 2020, ~24 posts a month. Each post's case comes from its
position, so every month has every edge case.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import random
from typing import Any

SUBREDDITS = {"sandboxcats": "SandboxCats", "sandboxroses": "sandboxroses"}
YEAR = 2020
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_TITLES = [
    "My cat in the sun",
    "First rose of the year",
    "Garden at dusk",
    "Found this little one",
    "Morning walk",
    "After the rain",
]

CASES = [
    "image",
    "imgur_direct",
    "imgur_mobile",
    "imgur_album",
    "gallery_png",
    "gallery_deleted",
    "crosspost",
    "nsfw",
    "removed",
    "low_score",
    "self",
    "video",
    "gifv",
    "flickr",
    "title_brackets",
    "title_handle",
    "title_unicode",
    "deleted_author",
    "escaped_url",
    "imgur_comma",
    "image",
    "image",
    "image",
    "image",
]


def _id(rng: random.Random, n: int = 7) -> str:
    return "".join(rng.choice(_B36) for _ in range(n))


def _post(rng: random.Random, subreddit: str, created: int, case: str) -> dict[str, Any]:
    pid = _id(rng)
    title = rng.choice(_TITLES)
    post: dict[str, Any] = {
        "id": pid,
        "name": f"t3_{pid}",
        "subreddit": subreddit,
        "author": f"user_{_id(rng, 5)}",
        "title": title,
        "created_utc": created,
        "domain": "i.redd.it",
        "post_hint": "image",
        "url": f"https://i.redd.it/{_id(rng, 13)}.jpg",
        "is_self": False,
        "is_video": False,
        "over_18": False,
        "removed_by_category": None,
        "score": rng.randint(2, 900),
        "permalink": f"/r/{subreddit}/comments/{pid}/{title.lower().replace(' ', '_')}/",
    }
    imgur_id = "".join(rng.choice("ABCDEFGHJKabcdefghjk0123456789") for _ in range(7))
    if case == "imgur_direct":
        post.update(domain="i.imgur.com", url=f"https://i.imgur.com/{imgur_id}.jpg")
    elif case == "imgur_mobile":
        post.update(domain="m.imgur.com", url=f"https://m.imgur.com/{imgur_id}", post_hint="link")
    elif case == "imgur_album":
        post.update(domain="imgur.com", url=f"https://imgur.com/a/cute-{imgur_id[:5]}", post_hint="link")
    elif case == "imgur_comma":
        post.update(
            domain="imgur.com", url=f"https://imgur.com/{imgur_id},{imgur_id[::-1]}", post_hint="link"
        )
    elif case in ("gallery_png", "gallery_deleted"):
        post.update(domain="reddit.com", url=f"https://www.reddit.com/gallery/{pid}", is_gallery=True)
        post.pop("post_hint")
        if case == "gallery_png":
            first, second = _id(rng, 13), _id(rng, 13)
            post["gallery_data"] = {"items": [{"media_id": first, "id": 1}, {"media_id": second, "id": 2}]}
            post["media_metadata"] = {
                first: {"status": "failed", "e": "Image", "m": "image/jpg"},
                second: {"status": "valid", "e": "Image", "m": "image/png", "s": {"x": 800, "y": 600}},
            }
        else:
            post["gallery_data"] = None
    elif case == "crosspost":
        parent_id = _id(rng)
        parent = {
            "id": parent_id,
            "url": f"https://i.redd.it/{_id(rng, 13)}.png",
            "domain": "i.redd.it",
            "post_hint": "image",
            "is_self": False,
            "is_video": False,
        }
        post.update(
            domain="reddit.com",
            post_hint="link",
            url=f"/r/other/comments/{parent_id}/",
            crosspost_parent=f"t3_{parent_id}",
            crosspost_parent_list=[parent],
        )
    elif case == "nsfw":
        post["over_18"] = True
    elif case == "removed":
        post["removed_by_category"] = "moderator"
    elif case == "low_score":
        post["score"] = 1
    elif case == "self":
        post.update(
            is_self=True,
            domain=f"self.{subreddit}",
            post_hint="self",
            url=f"https://www.reddit.com/r/{subreddit}/comments/{pid}/x/",
        )
    elif case == "video":
        post.update(
            is_video=True,
            domain="v.redd.it",
            post_hint="hosted:video",
            url=f"https://v.redd.it/{_id(rng, 13)}",
        )
    elif case == "gifv":
        post.update(domain="i.imgur.com", post_hint="link", url=f"https://i.imgur.com/{imgur_id}.gifv")
    elif case in ("flickr", "escaped_url"):
        farm, server, photo = rng.randint(1, 9), rng.randint(1000, 9999), rng.randint(10**9, 10**10)
        base = f"https://farm{farm}.staticflickr.com/{server}/{photo}"
        url = f"{base}_{rng.getrandbits(40):010x}.jpg"
        post.update(domain="farm1.staticflickr.com", post_hint="link", url=url)
        if case == "escaped_url":
            post["url"] = url + "?zz=1&amp;yy=2"
    elif case == "title_brackets":
        post["title"] = f"[OC] {title} (taken today) 4032x3024"
    elif case == "title_handle":
        post["title"] = f"{title}, photo by @snap_happy.cat"
    elif case == "title_unicode":
        post["title"] = f"{title} \U0001f339 \u6771\u4eac \u2014 caf\u00e9"
    elif case == "deleted_author":
        post["author"] = "[deleted]"
    return post


@functools.lru_cache(maxsize=4)
def population(seed: int = 0) -> tuple[dict[str, Any], ...]:
    """Every synthetic post, sorted by (created_utc, id)."""
    rng = random.Random(seed)
    posts = []
    for subreddit in SUBREDDITS.values():
        for month in range(1, 13):
            days = calendar.monthrange(YEAR, month)[1]
            start = int(dt.datetime(YEAR, month, 1, tzinfo=dt.timezone.utc).timestamp())
            times = sorted(rng.randint(start, start + days * 86400 - 1) for _ in CASES)
            times[1] = times[0]  # two posts in the same second: cursors must not lose one
            posts += [_post(rng, subreddit, t, case) for t, case in zip(times, CASES, strict=True)]
    return tuple(sorted(posts, key=lambda p: (p["created_utc"], p["id"])))
