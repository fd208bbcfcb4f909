"""The Reddit-data APIs over the synthetic population (:mod:`redcaps.sandbox.posts`), with
the behaviours their documentation describes, which clients must cope with:

* Arctic Shift ``/api/posts/search``
  (https://github.com/ArthurHeitmann/arctic_shift/blob/master/api/README.md): ``before``
  exclusive, ``after`` inclusive or exclusive (:attr:`ApiState.arctic_after_inclusive`: the
  README does not say, so tests run both), ``limit`` 1-100, ``sort``;
  ``X-RateLimit-Remaining/Reset`` over a short window (429 for a client that ignores them);
  a 422 "Timeout. Maybe slow down a bit" (issue #66) the first time a full page
  (``limit=100``) starting at :data:`CHOSEN_422_AFTER` is asked for; the README's
  "Query timed out" (or any error text) on the :attr:`ApiState.arctic_error_call`-th call.
* Arctic Shift ``/api/posts/ids?ids=<id>,...`` (same README, "Posts"): up to 500 ids a call
  (more: 400), the posts it has, with their ``preview``; same rate-limit headers.
* Every post these APIs answer carries Reddit's ``preview`` (:mod:`redcaps.sandbox.previews`)
  and, in a world with deletions, the marks of a deletion after archiving
  (:func:`redcaps.sandbox.rot.mark_deleted`).
* Arctic Shift ``/api/subreddits/search?subreddit=<name>`` (same README, "Subreddits"): the
  subreddit's record, or none for an unknown name.
* Pushshift (``api.pushshift.io``: bearer token, 403 without) and PullPush
  (``api.pullpush.io``): exclusive bounds, ``size`` up to 100, newest first unless asked
  otherwise. Pushshift sorts with ``sort=<field>&order=asc`` and answers 422 to the old
  ``sort=asc`` (https://github.com/pushshift/api/issues/146). PullPush takes
  ``sort=asc&sort_type=created_utc`` and enforces its published limits
  (https://pullpush.io): slower answers past a soft limit (15 a minute), 429 past the hard
  limit (30 a minute) and past the long-term limit (1,000 an hour), without
  ``Retry-After``; the windows are knobs so tests run in seconds. One 429 with
  ``Retry-After`` on the :attr:`ApiState.pushshift_429_call`-th call of either.
* Arctic Shift knobs: one 429 with ``Retry-After`` (:attr:`ApiState.arctic_429_call`) and a
  dying API that answers 400 from the :attr:`ApiState.arctic_fail_from`-th call on; an ids
  endpoint that knows none of the posts or fails every call (``arctic_ids_*``).
* Reddit OAuth: ``POST www.reddit.com/api/v1/access_token`` (Basic auth) and
  ``GET oauth.reddit.com/api/info/`` with ``x-ratelimit-*`` headers, one 429 with
  ``Retry-After`` on the :attr:`ApiState.reddit_429_call`-th info call, and Cloudflare's
  520/522/524 or an HTML page with a 200 (:attr:`ApiState.reddit_fault`), which prawcore
  raises as ``ServerError``, a plain ``ResponseException`` or ``BadJSON``.
* Imgur ``GET api.imgur.com/3/album/{id}`` and ``/3/credits`` (``Client-ID``) with its
  rate-limit headers, one 429 on the :attr:`ApiState.imgur_429_call`-th call, and the 403
  a blocked country gets (:attr:`ApiState.imgur_blocked_country`; the UK since September
  2025, https://help.imgur.com/hc/en-us/articles/41592665292443).

Tests read and tune the per-world :class:`ApiState` with :func:`state`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import threading
import time
import weakref
from dataclasses import dataclass, field, fields
from typing import Any

from redcaps.sandbox import previews
from redcaps.sandbox.app import Request, Response, Router
from redcaps.sandbox.posts import SUBREDDITS, imgur_albums, population, reddit_view
from redcaps.sandbox.world import World

PUSHSHIFT_TOKEN = "sandbox-moderator-token"
REDDIT_CLIENT_ID = "sandbox-reddit-client"
REDDIT_CLIENT_SECRET = "sandbox-reddit-secret"
IMGUR_CLIENT_ID = "sandbox-imgur-client"
#: A full page at the start of July 2020 times out once per subreddit.
ARCTIC_IDS_MAX = 500
CHOSEN_422_AFTER = int(dt.datetime(2020, 7, 1, tzinfo=dt.timezone.utc).timestamp())
REDDIT_WINDOW = 600  # seconds, as Reddit reports x-ratelimit-reset


@dataclass
class ApiState:
    """Knobs (first block) and what the APIs saw (second block)."""

    arctic_limit: int = 1000  # requests per window before X-RateLimit-Remaining is 0
    arctic_window: float = 60.0  # seconds
    arctic_429_call: int = 0  # the n-th search answers 429 with Retry-After once (0: never)
    arctic_retry_after: int = 1
    arctic_fail_from: int = 0  # from the n-th search on, answer HTTP 400 (0: never): a dying API
    arctic_after_inclusive: bool = True  # does `after` include its own second?
    arctic_error_call: int = 0  # the n-th search answers arctic_error_status/text once (0: never)
    arctic_error_status: int = 400
    arctic_error_text: str = "Query timed out"
    arctic_ids_known: bool = True  # False: the ids endpoint has none of the posts (an archive gap)
    arctic_ids_status: int = 0  # every ids call answers this HTTP status (0: never)
    pushshift_429_call: int = 0  # the n-th search answers 429 with Retry-After once (0: never)
    pushshift_calls: int = 0
    pullpush_soft_limit: int = 15  # requests a minute before answers slow down
    pullpush_hard_limit: int = 30  # requests a minute before 429
    pullpush_hourly_limit: int = 1000  # requests an hour before 429
    pullpush_minute: float = 60.0  # seconds in the sandbox's "minute" and "hour"
    pullpush_hour: float = 3600.0
    pullpush_soft_delay: float = 0.5  # seconds an answer past the soft limit is held back
    reddit_429_call: int = 2  # the n-th /api/info call answers 429 once (0: never)
    reddit_limit: int = 1000
    reddit_fault: str = ""  # "520", "522", "524" or "badjson": answered from reddit_fault_call on
    reddit_fault_call: int = 1
    reddit_fault_times: int = 1  # how many calls in a row get the fault
    imgur_429_call: int = 1  # the n-th album call answers 429 once (0: never)
    imgur_client_remaining: int = 12_500
    imgur_user_remaining: int = 500
    imgur_blocked_country: str = ""  # e.g. "GB": every call answers 403 "Banned Country Attempt"

    arctic_queries: list[dict[str, Any]] = field(default_factory=list)  # params and status
    arctic_id_calls: list[list[str]] = field(default_factory=list)  # ids asked for, per call
    arctic_window_start: float = 0.0
    arctic_used: int = 0
    pushshift_queries: list[dict[str, Any]] = field(default_factory=list)  # host, params and status
    pullpush_served: list[float] = field(default_factory=list)  # monotonic times of served requests
    reddit_tokens: list[str] = field(default_factory=list)
    reddit_info_calls: list[list[str]] = field(default_factory=list)  # fullnames per call
    reddit_window_start: float = field(default_factory=lambda: time.time() - REDDIT_WINDOW / 2)
    imgur_calls: list[str] = field(default_factory=list)
    injected: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reset(self) -> None:
        """Back to a fresh world: defaults, empty logs, faults armed again."""
        fresh = ApiState()
        with self.lock:
            for f in fields(self):
                if f.name != "lock":
                    setattr(self, f.name, getattr(fresh, f.name))


_STATES: weakref.WeakKeyDictionary[World, ApiState] = weakref.WeakKeyDictionary()


def state(world: World) -> ApiState:
    """The APIs' state for ``world`` (one per world, shared by its sandboxes)."""
    if world not in _STATES:
        _STATES[world] = ApiState()
    return _STATES[world]


def _json(status: int, data: object, **headers: str) -> Response:
    return Response(
        status, {"Content-Type": "application/json; charset=utf-8", **headers}, json.dumps(data).encode()
    )


def _int(query: dict[str, list[str]], name: str, default: int) -> int:
    value = (query.get(name) or [""])[0]
    if not value:
        return default
    number = int(float(value))
    return number // 1000 if number > 10**11 else number  # epoch milliseconds are accepted


def _matches(world: World, query: dict[str, list[str]], after: int, before: int) -> list[dict[str, Any]]:
    subreddit = (query.get("subreddit") or [""])[0].lower()
    return [
        p
        for p in population(world.seed)
        if p["subreddit"].lower() == subreddit and after <= p["created_utc"] < before
    ]


# -- Arctic Shift -----------------------------------------------------------------------------
def _arctic_headers(api: ApiState) -> tuple[dict[str, str], bool]:
    """Rate-limit headers for one more request, and whether it is over the limit."""
    now = time.monotonic()
    with api.lock:
        if now - api.arctic_window_start >= api.arctic_window:
            api.arctic_window_start, api.arctic_used = now, 0
        api.arctic_used += 1
        over = api.arctic_used > api.arctic_limit
        remaining = max(0, api.arctic_limit - api.arctic_used)
        reset = max(1, math.ceil(api.arctic_window_start + api.arctic_window - now))
    return {
        "X-RateLimit-Limit": str(api.arctic_limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(reset),
    }, over


def arctic_subreddits(request: Request) -> Response:
    """``GET /api/subreddits/search?subreddit=<name>``: the subreddit's record, or no records for an
    unknown one (https://github.com/ArthurHeitmann/arctic_shift/blob/master/api/README.md,
    "Subreddits", "Search"). Not counted among the post queries, whose faults count calls."""
    name = (request.query.get("subreddit") or [""])[0].lower()
    known = [{"display_name": SUBREDDITS[name], "id": f"t5_{name}"}] if name in SUBREDDITS else []
    return _json(200, {"data": known})


def arctic_shift(world: World, request: Request) -> Response:
    api = state(world)
    if request.path == "/api/subreddits/search":
        return arctic_subreddits(request)
    if request.path == "/api/posts/ids":
        return arctic_ids(world, request)
    if request.path != "/api/posts/search":
        return _json(404, {"data": None, "error": "Not found"})
    headers, over = _arctic_headers(api)
    query = request.query
    record: dict[str, Any] = {k: v[0] for k, v in query.items()}
    api.arctic_queries.append(record)
    calls = len(api.arctic_queries)
    if api.arctic_fail_from and calls >= api.arctic_fail_from:
        record["status"] = 400
        return _json(400, {"data": None, "error": "Internal error"}, **headers)
    if calls == api.arctic_429_call and "arctic429" not in api.injected:
        api.injected.add("arctic429")
        record["status"] = 429
        return _json(
            429,
            {"data": None, "error": "Too many requests"},
            **headers,
            **{"Retry-After": str(api.arctic_retry_after)},
        )
    if over:
        record["status"] = 429
        return _json(
            429,
            {"data": None, "error": "Too many requests"},
            **headers,
            **{"Retry-After": headers["X-RateLimit-Reset"]},
        )
    try:
        limit = _int(query, "limit", 25)
        after, before = _int(query, "after", 0), _int(query, "before", 2**40)
    except ValueError:
        record["status"] = 400
        return _json(400, {"data": None, "error": "Invalid parameter"}, **headers)
    if not 1 <= limit <= 100:
        record["status"] = 400
        return _json(400, {"data": None, "error": "limit must be between 1 and 100"}, **headers)
    if calls == api.arctic_error_call and "arctic_error" not in api.injected:
        api.injected.add("arctic_error")
        record["status"] = api.arctic_error_status
        return _json(api.arctic_error_status, {"data": None, "error": api.arctic_error_text}, **headers)
    key = f"422:{query.get('subreddit', [''])[0].lower()}"
    if limit == 100 and after in (CHOSEN_422_AFTER - 1, CHOSEN_422_AFTER) and key not in api.injected:
        api.injected.add(key)
        record["status"] = 422
        return _json(422, {"data": None, "error": "Timeout. Maybe slow down a bit"}, **headers)
    matches = _matches(world, query, after if api.arctic_after_inclusive else after + 1, before)
    if (query.get("sort") or ["desc"])[0] != "asc":
        matches.reverse()
    record["status"] = 200
    return _json(200, {"data": [world.archived(p) for p in matches[:limit]]}, **headers)


def arctic_ids(world: World, request: Request) -> Response:
    """``GET /api/posts/ids?ids=a,b,...``: the posts among up to 500 ids (``t3_`` optional)."""
    api = state(world)
    headers, over = _arctic_headers(api)
    ids = [i.removeprefix("t3_") for i in ",".join(request.query.get("ids", [])).split(",") if i]
    with api.lock:
        api.arctic_id_calls.append(ids)
    if over:
        return _json(429, {"data": None, "error": "Too many requests"}, **{"Retry-After": "1", **headers})
    if api.arctic_ids_status:
        return _json(api.arctic_ids_status, {"data": None, "error": "Internal error"}, **headers)
    if not 1 <= len(ids) <= ARCTIC_IDS_MAX:
        return _json(400, {"data": None, "error": f"between 1 and {ARCTIC_IDS_MAX} ids"}, **headers)
    found = [world.archived(post) for post in map(world.post, ids) if post is not None]
    return _json(200, {"data": found if api.arctic_ids_known else []}, **headers)


# -- Pushshift and PullPush ---------------------------------------------------------------------
def _pullpush_limit(api: ApiState) -> str | None:
    """Apply PullPush's published limits to one request: the 429 text when refused (after
    holding an answer past the soft limit back)."""
    now = time.monotonic()
    with api.lock:
        served = api.pullpush_served
        in_hour = sum(1 for t in served if now - t < api.pullpush_hour)
        in_minute = sum(1 for t in served if now - t < api.pullpush_minute)
        if in_hour >= api.pullpush_hourly_limit:
            return "Too many requests: long-term limit reached"
        if in_minute >= api.pullpush_hard_limit:
            return "Too many requests: hard limit reached"
        served.append(now)
    if in_minute >= api.pullpush_soft_limit:
        time.sleep(api.pullpush_soft_delay)
    return None


def pushshift(world: World, request: Request, needs_token: bool) -> Response:
    if needs_token and request.headers.get("authorization") != f"Bearer {PUSHSHIFT_TOKEN}":
        return _json(403, {"detail": "Not authenticated"})
    if request.path.rstrip("/") not in ("/reddit/submission/search", "/reddit/search/submission"):
        return _json(404, {"detail": "Not Found"})
    api = state(world)
    query = request.query
    record: dict[str, Any] = {"host": "pushshift" if needs_token else "pullpush"}
    record.update({k: v[0] for k, v in query.items()})
    with api.lock:
        api.pushshift_calls += 1
        calls = api.pushshift_calls
        api.pushshift_queries.append(record)
    if calls == api.pushshift_429_call and "pushshift429" not in api.injected:
        api.injected.add("pushshift429")
        record["status"] = 429
        return _json(429, {"detail": "Too many requests"}, **{"Retry-After": "3"})
    if not needs_token:
        refused = _pullpush_limit(api)
        if refused:
            record["status"] = 429
            return _json(429, {"detail": refused})
    order = (query.get("sort") or ["desc"])[0]
    if needs_token:  # Pushshift since its 2022 rewrite: sort=<field>, order=asc|desc
        sort = (query.get("sort") or ["created_utc"])[0]
        if sort not in ("id", "created_utc", "score"):
            record["status"] = 422
            detail = {
                "loc": ["query", "sort"],
                "msg": "unexpected value; permitted: 'id', 'created_utc', 'score'",
                "type": "value_error.const",
                "ctx": {"given": sort, "permitted": ["id", "created_utc", "score"]},
            }
            return _json(422, {"detail": [detail]})
        order = (query.get("order") or ["desc"])[0]
    try:
        size = min(_int(query, "size", 25), 100)
        after, before = _int(query, "after", -1), _int(query, "before", 2**40)
    except ValueError:
        record["status"] = 400
        return _json(400, {"detail": "invalid parameter"})
    matches = _matches(world, query, after + 1, before)  # this API's bounds are exclusive
    if order != "asc":
        matches.reverse()  # newest first, as Pushshift
    record["status"] = 200
    return _json(200, {"data": [world.archived(p) for p in matches[:size]]})


# -- Reddit OAuth ---------------------------------------------------------------------------------
def reddit_token(world: World, request: Request) -> Response:
    if request.method != "POST" or request.path != "/api/v1/access_token":
        return _json(404, {"message": "Not Found", "error": 404})
    expected = base64.b64encode(f"{REDDIT_CLIENT_ID}:{REDDIT_CLIENT_SECRET}".encode()).decode()
    if request.headers.get("authorization") != f"Basic {expected}":
        return _json(401, {"message": "Unauthorized", "error": 401})
    grant = dict(p.split("=", 1) for p in request.body.decode().split("&") if "=" in p).get("grant_type")
    if grant not in ("client_credentials", "password"):
        return _json(200, {"error": "unsupported_grant_type"})
    api = state(world)
    token = f"sandbox-token-{len(api.reddit_tokens) + 1}"
    api.reddit_tokens.append(token)
    return _json(200, {"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"})


def reddit_info(world: World, request: Request) -> Response:
    api = state(world)
    auth = request.headers.get("authorization", "")
    if not auth.startswith("bearer ") or auth.split(" ", 1)[1] not in api.reddit_tokens:
        return _json(401, {"message": "Unauthorized", "error": 401})
    if request.path.rstrip("/") != "/api/info":
        return _json(404, {"message": "Not Found", "error": 404})
    fullnames = [n for n in ",".join(request.query.get("id", [])).split(",") if n]
    with api.lock:
        api.reddit_info_calls.append(fullnames)
        calls = len(api.reddit_info_calls)
        elapsed = time.time() - api.reddit_window_start
        if elapsed >= REDDIT_WINDOW:
            api.reddit_window_start, elapsed = time.time(), 0.0
    used = calls
    headers = {
        "x-ratelimit-used": str(used),
        "x-ratelimit-remaining": str(max(0, api.reddit_limit - used)),
        "x-ratelimit-reset": str(max(1, int(REDDIT_WINDOW - elapsed))),
    }
    fault = _reddit_fault(api, calls)
    if fault is not None:
        return fault
    if calls == api.reddit_429_call and "reddit429" not in api.injected:
        api.injected.add("reddit429")
        return _json(429, {"message": "Too Many Requests", "error": 429}, **headers, **{"retry-after": "1"})
    if len(fullnames) > 100:
        return _json(400, {"message": "Bad Request", "error": 400}, **headers)
    escaped = (request.query.get("raw_json") or ["0"])[0] != "1"
    children = []
    for name in fullnames:
        current = reddit_view(name.removeprefix("t3_"), world.seed) if name.startswith("t3_") else None
        if current is not None:
            children.append({"kind": "t3", "data": _reddit_today(world, current, escaped)})
    listing = {
        "kind": "Listing",
        "data": {"after": None, "before": None, "dist": len(children), "children": children},
    }
    return _json(200, listing, **headers)


def _reddit_today(world: World, post: dict[str, Any], escaped: bool) -> dict[str, Any]:
    """Reddit's view with its preview; a post deleted since archiving shows as deleted."""
    preview = previews.preview(world, post["url"], escaped=escaped)
    current = dict(post, preview=preview) if preview else post
    if post["id"] in world.deleted_later:
        current = dict(current, author="[deleted]", selftext="[deleted]", removed_by_category="deleted")
    return current


def _reddit_fault(api: ApiState, calls: int) -> Response | None:
    """Cloudflare's error pages in front of Reddit: 520/522/524 or an HTML page with a 200."""
    first = api.reddit_fault_call
    if not api.reddit_fault or not first <= calls < first + api.reddit_fault_times:
        return None
    page = b"<html><head><title>reddit.com: error</title></head><body>Cloudflare</body></html>"
    status = 200 if api.reddit_fault == "badjson" else int(api.reddit_fault)
    return Response(status, {"Content-Type": "text/html; charset=utf-8"}, page)


# -- Imgur API --------------------------------------------------------------------------------------
def imgur_album(world: World, request: Request) -> Response:
    api = state(world)
    if not request.headers.get("user-agent") or request.headers["user-agent"].startswith("python-requests"):
        return _json(429, {"data": {"error": "Too Many Requests"}, "success": False, "status": 429})
    if request.headers.get("authorization") != f"Client-ID {IMGUR_CLIENT_ID}":
        return _json(403, {"data": {"error": "Invalid client_id"}, "success": False, "status": 403})
    if api.imgur_blocked_country:  # Imgur's answer to a country it blocks (imgurpython issue #83)
        error = f"Banned Country Attempt ({api.imgur_blocked_country})"
        return _json(403, {"data": {"error": error, "method": "GET"}, "success": False, "status": 403})
    parts = request.path.strip("/").split("/")
    if parts == ["3", "credits"]:
        return _imgur_credits(api)
    if len(parts) != 3 or parts[:2] != ["3", "album"]:
        return _json(404, {"data": {"error": "Not found"}, "success": False, "status": 404})
    with api.lock:
        api.imgur_calls.append(parts[2])
        api.imgur_client_remaining = max(0, api.imgur_client_remaining - 1)
        api.imgur_user_remaining = max(0, api.imgur_user_remaining - 1)
        calls = len(api.imgur_calls)
    headers = _imgur_headers(api)
    if calls == api.imgur_429_call and "imgur429" not in api.injected:
        api.injected.add("imgur429")
        return _json(
            429,
            {"data": {"error": "Too Many Requests"}, "success": False, "status": 429},
            **headers,
            **{"Retry-After": "1"},
        )
    images = imgur_albums(world.seed).get(parts[2])
    if images is None:
        error = f"Unable to find an album with the id, {parts[2]}"
        return _json(404, {"data": {"error": error}, "success": False, "status": 404}, **headers)
    data = {
        "id": parts[2],
        "images_count": len(images),
        "images": [dict(i, id=i["link"].rsplit("/", 1)[1].split(".")[0]) for i in images],
    }
    return _json(200, {"data": data, "success": True, "status": 200}, **headers)


def _imgur_headers(api: ApiState) -> dict[str, str]:
    return {
        "X-RateLimit-UserLimit": "500",
        "X-RateLimit-UserRemaining": str(api.imgur_user_remaining),
        "X-RateLimit-UserReset": str(int(time.time()) + 3600),
        "X-RateLimit-ClientLimit": "12500",
        "X-RateLimit-ClientRemaining": str(api.imgur_client_remaining),
    }


def _imgur_credits(api: ApiState) -> Response:
    """``GET /3/credits`` (https://apidocs.imgur.com, "Credits"): the quotas, free of charge."""
    data = {
        "UserLimit": 500,
        "UserRemaining": api.imgur_user_remaining,
        "UserReset": int(time.time()) + 3600,
        "ClientLimit": 12500,
        "ClientRemaining": api.imgur_client_remaining,
    }
    return _json(200, {"data": data, "success": True, "status": 200}, **_imgur_headers(api))


def register(router: Router, world: World) -> None:
    state(world)
    router.add("arctic-shift.photon-reddit.com", lambda r: arctic_shift(world, r))
    router.add("api.pushshift.io", lambda r: pushshift(world, r, needs_token=True))
    router.add("api.pullpush.io", lambda r: pushshift(world, r, needs_token=False))
    router.add("www.reddit.com", lambda r: reddit_token(world, r))
    router.add("oauth.reddit.com", lambda r: reddit_info(world, r))
    router.add("api.imgur.com", lambda r: imgur_album(world, r))
