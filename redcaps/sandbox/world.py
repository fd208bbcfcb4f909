"""The sandbox's deterministic world: which URL serves what, and the official files.

Every URL on an image host serves a generated image unless the world gives it a fault;
``expected_status`` says what a correct downloader must record for each URL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import random
import threading
import zipfile
from collections import Counter
from typing import Any

from redcaps import FORMAT_VERSION
from redcaps.sandbox import posts, previews, rot
from redcaps.sandbox.images import KINDS, half_size, image_size, render

FAULT_STATUS = {
    None: "ok",
    "retry_after_429": "ok",
    "burst_503": "ok",
    "http_404": "http_404",
    "http_410": "http_410",
    "http_403": "http_403",
    "always_503": "http_5xx",
    "reset": "connection_error",
    "slow": "timeout",
    "truncated": "truncated",
    "html": "not_image",
    "imgur_removed": "placeholder",
    "flickr_unavailable": "placeholder",
    "huge": "too_large",
    "bomb": "too_many_pixels",
    "internal_redirect": "blocked_address",
    "trickle": "timeout",
    "gone_then_503": "http_404",
}
#: What a storm answers (``World.storm``): every one retryable, as a real outage is.
STORM_FAULTS = ("storm_503", "storm_500", "storm_429", "storm_reset")
#: Faults a test puts on a URL itself (``world.faults[url] = ...``); the official files have none.
OPT_IN_FAULTS = ("internal_redirect", "trickle", "gone_then_503")
FAULTS = tuple(f for f in FAULT_STATUS if f and f not in OPT_IN_FAULTS)

OFFICIAL = {  # stem -> (records, first day, last day)
    "sandboxcats_2020": (60, dt.date(2020, 1, 1), dt.date(2020, 12, 31)),
    "sandboxroses_2019": (40, dt.date(2019, 1, 1), dt.date(2019, 12, 31)),
    "sandboxbirds_2017": (30, dt.date(2012, 1, 1), dt.date(2017, 12, 31)),
}
_WORDS = (
    "sunset",
    "garden",
    "my cat",
    "old barn",
    "first bloom",
    "morning light",
    "the lake",
    "tiny bird",
    "after the rain",
    "city lights",
    "rose bush",
    "a heron",
    "forest path",
    "new leaf",
    "snow day",
)
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


class World:
    """Seeded, so the same seed always gives the same URLs, faults, images and files.

    The decayed web (:mod:`redcaps.sandbox.rot`) is opt-in: ``decay`` of the originals are
    gone, ``preview_loss`` of those lose their Reddit preview too, ``opt_outs`` of the
    others send an ``X-Robots-Tag``, ``deletions`` of the plain image posts are marked
    deleted after archiving, and ``flickr_farms_gone`` retires Flickr's farm hosts."""

    def __init__(
        self,
        seed: int = 0,
        *,
        decay: float = 0.0,
        preview_loss: float = 0.1,
        opt_outs: float = 0.0,
        deletions: float = 0.0,
        flickr_farms_gone: bool = False,
    ) -> None:
        self.seed = seed
        # the population's image faults and faces; official_files() adds its own
        self.faults: dict[str, str] = posts.image_faults(seed)
        self.kinds: dict[str, str] = posts.image_kinds(seed)
        self.copies: dict[str, tuple[str, str]] = posts.image_copies(seed)
        self.decay, self.preview_loss, self.opt_outs = decay, preview_loss, opt_outs
        self.flickr_farms_gone = flickr_farms_gone
        self.robots: dict[str, str] = {}  # image URL -> the X-Robots-Tag it is served with
        self.dead_previews: set[str] = set()  # image URLs whose Reddit preview is gone too
        self.gone: set[str] = set()  # image URLs the decay took (their previews usually live on)
        population = posts.population(seed)
        rot.decay(self, [p["url"] for p in population])
        plain = [p["id"] for p in population if posts.case_of(p["id"], seed) == "image"]
        self.deleted_later: dict[str, str] = rot.deletions(seed, deletions, plain)
        self.hits: Counter[str] = Counter()
        #: Where ``internal_redirect`` points (nothing listens on port 9; tests put a listener here).
        self.internal_url = "http://127.0.0.1:9/secret.jpg"
        self._lock = threading.Lock()
        self._official: dict[str, dict[str, Any]] | None = None
        self._official_posts: dict[str, dict[str, Any]] | None = None
        self._index: tuple[dict[tuple[str, str], str], dict[str, str]] | None = None
        self.storm(0.0)

    def storm(self, fraction: float, failures: int = 0) -> None:
        """From now on, ``fraction`` of the image URLs (chosen per URL, deterministically) answer
        their next ``failures`` requests with 503, 500, 429 or a reset, then recover;
        ``storm(0)`` ends it. Every storm counts its requests afresh."""
        with self._lock:
            self.storm_fraction, self.storm_failures = fraction, failures
            self.storm_hits: Counter[str] = Counter()

    def storm_fault(self, url: str) -> str | None:
        """The storm's answer to this request of ``url`` (one of ``STORM_FAULTS``), or None."""
        digest = hashlib.sha256(f"{self.seed}:storm:{url}".encode()).digest()
        if int.from_bytes(digest[:4], "big") >= self.storm_fraction * 2**32:
            return None
        with self._lock:
            self.storm_hits[url] += 1
            attempt = self.storm_hits[url]
        if attempt > self.storm_failures:
            return None
        pick = hashlib.sha256(f"{self.seed}:storm:{url}:{attempt}".encode()).digest()[0]
        return STORM_FAULTS[pick % len(STORM_FAULTS)]

    def hit(self, url: str) -> int:
        """Count a request for ``url``; returns how many there have been, this one included."""
        with self._lock:
            self.hits[url] += 1
            return self.hits[url]

    def image_kind(self, url: str) -> str:
        if url in self.kinds:
            return self.kinds[url]
        path = url.lower().split("?")[0]
        for ext, kind in ((".png", "png_alpha"), (".gif", "gif"), (".webp", "webp")):
            if path.endswith(ext):
                return kind
        return "phone" if int(hashlib.sha256(url.encode()).hexdigest(), 16) % 20 == 0 else "web"

    def image(self, url: str) -> tuple[bytes, str]:
        """(body, content type) served at ``url``: its own image, or a planted copy of another's."""
        if url in self.copies:
            source, how = self.copies[url]
            body, content_type = self.image(source)
            return (half_size(body), "image/jpeg") if how == "resized" else (body, content_type)
        return render(self.image_kind(url), url)

    def image_size(self, url: str) -> tuple[int, int]:
        """(width, height) of the image served at ``url``, without rendering it."""
        if url in self.copies:
            source, how = self.copies[url]
            width, height = self.image_size(source)
            return (max(1, width // 2), max(1, height // 2)) if how == "resized" else (width, height)
        return image_size(self.image_kind(url), url)

    def expected_status(self, url: str) -> str:
        if self.flickr_farms_gone and rot.FLICKR_FARM.fullmatch(url.split("/")[2]):
            return "http_410"
        if rot.ROBOTS_TAGS.get(self.robots.get(url, ""), False):
            return "opted_out"
        return FAULT_STATUS[self.faults.get(self.canonical(url))]

    # -- the same image under other names: live Flickr paths, Reddit's previews ---------------
    def canonical(self, url: str) -> str:
        """The URL whose image, faults and headers ``url`` serves: a ``live.staticflickr.com``
        path serves the farm URL's photo of the same path."""
        host, _, path = url.removeprefix("https://").partition("/")
        return self._names()[1].get(f"/{path}", url) if host == "live.staticflickr.com" else url

    def preview_alive(self, url: str) -> bool:
        """Whether the Reddit preview of the image at ``url`` serves: not when the decay took it
        too, nor when ``url`` has a fault of its own (a link broken from the start never had a
        preview, so the faults' expected statuses hold whatever a downloader recovers)."""
        return url not in self.dead_previews and (url in self.gone or url not in self.faults)

    def preview_original(self, host: str, name: str) -> str | None:
        """The image URL whose Reddit preview is ``https://<host>/<name>``, if any."""
        return self._names()[0].get((host, name))

    def _names(self) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
        with self._lock:
            if self._index is None:
                urls = [p["url"] for p in posts.population(self.seed)] + [
                    r["url"] for r in self.official_posts().values()
                ]
                by_preview = {where: url for url in urls if (where := previews.preview_name(url))}
                farms = {
                    "/" + u.split("/", 3)[3]: u for u in urls if rot.FLICKR_FARM.fullmatch(u.split("/")[2])
                }
                self._index = (by_preview, farms)
            return self._index

    # -- posts as the APIs answer them -------------------------------------------------------------
    def official_posts(self) -> dict[str, dict[str, Any]]:
        """The official files' records as Reddit posts, by id (for lookups by ``image_id``)."""
        if self._official_posts is None:
            self._official_posts = {
                r["image_id"]: {
                    "id": r["image_id"],
                    "name": f"t3_{r['image_id']}",
                    "subreddit": r["subreddit"],
                    "author": r["author"] or "[deleted]",
                    "title": r["raw_caption"],
                    "created_utc": r["created_utc"],
                    "url": r["url"],
                    "score": r["score"],
                    "permalink": r["permalink"],
                }
                for content in self.official_files().values()
                for r in content["annotations"]
            }
        return self._official_posts

    def post(self, post_id: str) -> dict[str, Any] | None:
        """A post by id, from the population or the official files."""
        return posts.post_by_id(post_id, self.seed) or self.official_posts().get(post_id)

    def archived(self, post: dict[str, Any], *, escaped: bool = True) -> dict[str, Any]:
        """``post`` as the archives answer it: with its Reddit ``preview``, and marked when
        it was deleted after archiving."""
        preview = previews.preview(self, post["url"], escaped=escaped)
        mark = self.deleted_later.get(post["id"])
        if preview is None and mark is None:
            return post
        answer = rot.mark_deleted(post, mark) if mark else dict(post)
        if preview is not None:
            answer["preview"] = preview
        return answer

    # -- official files ----------------------------------------------------------------
    def official_files(self) -> dict[str, dict[str, Any]]:
        """Official-format annotation files; every fault and image kind appears at least once."""
        if self._official is None:
            rng = random.Random(self.seed)
            specials = [("fault", f) for f in FAULTS] + [("kind", k) for k in KINDS if k != "web"]
            files = {}
            for stem, (count, first, last) in OFFICIAL.items():
                records = [self._record(rng, stem, first, last) for _ in range(count)]
                files[stem] = records
            everything = [r for recs in files.values() for r in recs]
            for (what, value), rec in zip(specials, rng.sample(everything, len(specials)), strict=False):
                if what == "fault":
                    if value == "imgur_removed" or value == "flickr_unavailable":
                        rec["url"] = self._url(rng, "imgur" if value == "imgur_removed" else "flickr")
                    self.faults[rec["url"]] = value
                else:
                    self.kinds[rec["url"]] = value
            rot.decay(self, [r["url"] for r in everything])
            self._official = {
                stem: {
                    "info": self._info(*OFFICIAL[stem][1:], len(recs)),
                    "annotations": sorted(recs, key=lambda r: (r["created_utc"], r["image_id"])),
                }
                for stem, recs in files.items()
            }
        return json.loads(json.dumps(self._official))  # a copy callers may modify

    @staticmethod
    def _info(first: dt.date, last: dt.date, count: int) -> dict[str, Any]:
        return {
            "start_date": first.isoformat(),
            "end_date": last.isoformat(),
            "url": "https://redcaps.xyz",
            "version": FORMAT_VERSION,
            "word_filter": {
                "num_removed": 1,
                "model": "LDNOOBW/List-of-Dirty-Naughty-Obscene-and-Otherwise-Bad-Words",
            },
            "nsfw_filter": {"num_removed": 0, "model": "gantman/nsfw_model", "confidence_threshold": 0.9},
            "face_filter": {
                "num_removed": count // 30,
                "model": "redcaps-dataset/pytorch-retinaface",
                "confidence_threshold": 0.9,
            },
        }

    @staticmethod
    def _id(rng: random.Random, n: int) -> str:
        return "".join(rng.choice(_B36) for _ in range(n))

    def _url(self, rng: random.Random, host: str) -> str:
        if host == "imgur":
            letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
            return f"https://i.imgur.com/{''.join(rng.choice(letters) for _ in range(7))}.jpg"
        if host == "flickr":
            farm, server = rng.randint(1, 9), rng.randint(1000, 9999)
            return (
                f"https://farm{farm}.staticflickr.com/{server}/{rng.randint(10**9, 10**10)}_"
                f"{rng.getrandbits(40):010x}.jpg"
            )
        return f"https://i.redd.it/{self._id(rng, 13)}.jpg"

    def _record(self, rng: random.Random, stem: str, first: dt.date, last: dt.date) -> dict[str, Any]:
        subreddit = stem.rsplit("_", 1)[0]
        start = int(dt.datetime(first.year, first.month, first.day, tzinfo=dt.timezone.utc).timestamp())
        end = int(
            dt.datetime(last.year, last.month, last.day, 23, 59, 59, tzinfo=dt.timezone.utc).timestamp()
        )
        image_id = self._id(rng, 6)
        title = f"{rng.choice(_WORDS).capitalize()} {rng.choice(_WORDS)}"
        record: dict[str, Any] = {
            "image_id": image_id,
            "author": None if rng.random() < 0.1 else f"user_{self._id(rng, 5)}",
            "url": self._url(rng, rng.choice(["reddit"] * 6 + ["imgur"] * 3 + ["flickr"])),
            "raw_caption": title + (" [OC]" if rng.random() < 0.3 else ""),
            "caption": title.lower(),
            "subreddit": subreddit,
            "score": rng.randint(2, 5000),
            "created_utc": rng.randint(start, end),
            "permalink": f"/r/{subreddit}/comments/{image_id}/{title.lower().replace(' ', '_')}/",
        }
        if rng.random() < 0.05:
            record["crosspost_parents"] = [f"t3_{self._id(rng, 6)}"]
        return record

    def annotations_zip(self) -> bytes:
        """Like ``redcaps_v1.0_annotations.zip``, byte-identical on every call."""
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:

            def add(name: str, data: bytes) -> None:
                info = zipfile.ZipInfo(name, date_time=(2021, 10, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data)

            add("LICENSE.txt", b"Sandbox annotations for testing (CC-BY 4.0 in the real release).\n")
            add("TERMSOFUSE.txt", b"Synthetic data generated by redcaps.sandbox.\n")
            for stem, content in sorted(self.official_files().items()):
                add(f"annotations/{stem}.json", json.dumps(content).encode())
        return out.getvalue()

    def annotations_zip_sha256(self) -> str:
        return hashlib.sha256(self.annotations_zip()).hexdigest()
