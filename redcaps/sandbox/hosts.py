"""Image hosts: i.redd.it, i.imgur.com, Flickr's static hosts, and the placeholder hosts.

Each behaves like the real one where it matters to a downloader: i.redd.it serves an HTML
page to clients that prefer ``text/html``; i.imgur.com answers 429 to requests without a
real User-Agent and redirects deleted images to ``removed.png``; Flickr redirects dead
photos to ``photo_unavailable.png``. The decayed web's behaviours (gone originals, retired
Flickr farm hosts, ``X-Robots-Tag``) are opt-in on the world (see :mod:`redcaps.sandbox.rot`).
"""

from __future__ import annotations

import re

from redcaps.sandbox.app import Request, Response, Router
from redcaps.sandbox.images import bomb_png, flickr_unavailable_png, imgur_removed_png
from redcaps.sandbox.world import World

IMGUR_REMOVED = "https://i.imgur.com/removed.png"
FLICKR_UNAVAILABLE = "https://s.yimg.com/pw/images/en-us/photo_unavailable.png"
HUGE_BYTES = 60 * 2**20

_PATHS = {
    "i.redd.it": re.compile(r"/[A-Za-z0-9]+\.(jpg|jpeg|png|gif|webp)"),
    "i.imgur.com": re.compile(r"/[A-Za-z0-9]{5,8}\.(jpg|jpeg|png|gif|webp)"),
    "flickr": re.compile(r"/\d+/\d+_[0-9a-f]+(_[a-z])?\.(jpg|jpeg|png|gif)"),
}
_HTML = b"<!doctype html><html><head><title>reddit</title></head><body>an image page</body></html>"


def _text(status: int, body: str = "", **headers: str) -> Response:
    return Response(status, {"Content-Type": "text/plain", **headers}, body.encode())


def _fault_response(world: World, request: Request, fault: str) -> Response | None:
    hits = world.hit(request.url)
    if fault == "retry_after_429" and hits <= 2:
        return _text(429, "too many requests", **{"Retry-After": "1"})
    if fault == "burst_503" and hits <= 2:
        return _text(503, "service unavailable")
    if fault == "gone_then_503":  # a dead image behind a flaky CDN: the 404 is the truth
        return _text(404 if hits == 1 else 503, "error")
    simple = {"http_404": 404, "http_410": 410, "http_403": 403, "always_503": 503}
    if fault in simple:
        return _text(simple[fault], "error")
    if fault == "reset":
        return Response(200, fault="reset")
    if fault == "html":
        return Response(200, {"Content-Type": "text/html; charset=utf-8"}, _HTML)
    if fault == "imgur_removed":
        return Response(302, {"Location": IMGUR_REMOVED, "Content-Type": "text/html"})
    if fault == "flickr_unavailable":
        return Response(302, {"Location": FLICKR_UNAVAILABLE, "Content-Type": "text/html"})
    if fault == "huge":
        return Response(200, {"Content-Type": "image/jpeg", "Content-Length": str(HUGE_BYTES)}, fault="huge")
    if fault == "bomb":
        return Response(200, {"Content-Type": "image/png"}, bomb_png())
    if fault == "internal_redirect":  # a hostile post: its image redirects into the downloader's network
        return Response(302, {"Location": world.internal_url, "Content-Type": "text/html"})
    return None  # recovered (429/503 bursts over) or slow/truncated, served below


def image_handler(world: World, pattern: re.Pattern[str]):  # noqa: ANN201 - returns a Handler
    def handle(request: Request) -> Response | None:
        if request.method not in ("GET", "HEAD"):
            return _text(405, "method not allowed")
        if not pattern.fullmatch(request.path):
            return _text(404, "not found")
        storm = world.storm_fault(request.url)
        if storm == "storm_reset":
            return Response(200, fault="reset")
        if storm:
            code = int(storm.removeprefix("storm_"))
            return _text(code, "storm", **({"Retry-After": "0"} if code == 429 else {}))
        url = world.canonical(request.url)
        fault = world.faults.get(url)
        if fault:
            response = _fault_response(world, request, fault)
            if response is not None:
                return response
        body, content_type = world.image(url)
        response = Response(200, {"Content-Type": content_type, "Cache-Control": "max-age=31536000"}, body)
        if url in world.robots:
            response.headers["X-Robots-Tag"] = world.robots[url]
        if fault == "slow":
            response.fault = "slow"
        elif fault == "truncated":
            response.fault = "truncate"
        elif fault == "trickle":
            response.fault = "trickle"
        return response

    return handle


def register(router: Router, world: World) -> None:
    reddit, imgur, flickr = (image_handler(world, _PATHS[k]) for k in ("i.redd.it", "i.imgur.com", "flickr"))

    def redd_it(request: Request) -> Response | None:
        if request.headers.get("accept", "").startswith("text/html"):
            return Response(200, {"Content-Type": "text/html; charset=utf-8"}, _HTML)
        return reddit(request)

    def imgur_host(request: Request) -> Response | None:
        agent = request.headers.get("user-agent", "")
        if not agent or agent.startswith("python-requests/"):
            return _text(429, "Too Many Requests: set a User-Agent")
        if request.path == "/removed.png":
            return Response(200, {"Content-Type": "image/png"}, imgur_removed_png())
        return imgur(request)

    def flickr_farm(request: Request) -> Response | None:
        if world.flickr_farms_gone:  # retired farm hosts answer 410 (Flickr4Java #333)
            return _text(410, "Gone")
        return flickr(request)

    def placeholder(request: Request) -> Response | None:
        if request.path.endswith("photo_unavailable.png"):
            return Response(200, {"Content-Type": "image/png"}, flickr_unavailable_png())
        return _text(404, "not found")

    router.add("i.redd.it", redd_it)
    router.add("i.imgur.com", imgur_host)
    for pattern in ("farm*.staticflickr.com", "farm*.static.flickr.com"):
        router.add(pattern, flickr_farm)
    for pattern in ("live.staticflickr.com", "c1.staticflickr.com"):
        router.add(pattern, flickr)
    router.add("s.yimg.com", placeholder)
