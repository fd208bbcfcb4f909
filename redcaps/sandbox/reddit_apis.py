"""Arctic Shift's search API over the synthetic population, with its real behaviours:
``after`` inclusive, ``before`` exclusive, ``limit`` 1-100, ``X-RateLimit-*`` headers, and a
422 "Timeout. Maybe slow down a bit" on a full page now and then."""

from __future__ import annotations

import json
import threading

from redcaps.sandbox.app import Request, Response, Router
from redcaps.sandbox.posts import population
from redcaps.sandbox.world import World

RATE_LIMIT = 1000
PUSHSHIFT_TOKEN = "sandbox-moderator-token"


def _json(status: int, data: object, **headers: str) -> Response:
    return Response(status, {"Content-Type": "application/json", **headers}, json.dumps(data).encode())


def _int(query: dict[str, list[str]], name: str, default: int | None = None) -> int | None:
    value = query.get(name, [None])[0]
    return int(value) if value not in (None, "") else default


def register(router: Router, world: World) -> None:
    lock = threading.Lock()
    state = {"calls": 0}

    def arctic_shift(request: Request) -> Response | None:
        if request.path != "/api/posts/search":
            return _json(404, {"data": None, "error": "not found"})
        query = request.query
        try:
            limit = _int(query, "limit", 25) or 25
            after, before = _int(query, "after", 0) or 0, _int(query, "before", 2**40) or 2**40
        except ValueError:
            return _json(400, {"data": None, "error": "bad parameter"})
        if not 1 <= limit <= 100:
            return _json(400, {"data": None, "error": "limit must be 1-100"})
        with lock:
            state["calls"] += 1
            calls = state["calls"]
        headers = {"X-RateLimit-Remaining": str(RATE_LIMIT - calls % RATE_LIMIT), "X-RateLimit-Reset": "60"}
        if limit == 100 and calls % 7 == 3:  # the server times out on some full pages
            return _json(422, {"data": None, "error": "Timeout. Maybe slow down a bit"}, **headers)
        subreddit = query.get("subreddit", [""])[0].lower()
        matches = [
            p
            for p in population(world.seed)
            if p["subreddit"].lower() == subreddit and after <= p["created_utc"] < before
        ]
        if query.get("sort", ["desc"])[0] != "asc":
            matches.reverse()
        return _json(200, {"data": matches[:limit]}, **headers)

    def pushshift(request: Request, needs_token: bool) -> Response | None:
        if needs_token and request.headers.get("authorization") != f"Bearer {PUSHSHIFT_TOKEN}":
            return _json(403, {"detail": "Not authenticated"})
        if request.path.rstrip("/") not in ("/reddit/submission/search", "/reddit/search/submission"):
            return _json(404, {"detail": "Not Found"})
        query = request.query
        size = min(_int(query, "size", 25) or 25, 100)
        after, before = _int(query, "after", 0) or 0, _int(query, "before", 2**40) or 2**40
        subreddit = query.get("subreddit", [""])[0].lower()
        matches = [
            p
            for p in population(world.seed)  # the API's bounds are exclusive
            if p["subreddit"].lower() == subreddit and after < p["created_utc"] < before
        ]
        return _json(200, {"data": list(reversed(matches))[:size]})  # newest first, like Pushshift

    router.add("arctic-shift.photon-reddit.com", arctic_shift)
    router.add("api.pushshift.io", lambda r: pushshift(r, needs_token=True))
    router.add("api.pullpush.io", lambda r: pushshift(r, needs_token=False))
