"""Reddit's image previews: the ``preview`` of each post and the hosts that serve it.

As the real API (and so Arctic Shift and the dumps) has them: ``preview.images[0].source``
(url, width, height) and ``resolutions`` 108-1080 px wide below the source's width; on
``preview.redd.it`` for i.redd.it posts, ``external-preview.redd.it`` for linked images;
signed with ``s=`` (changing any parameter gives 403), and HTML-escaped (``&amp;``) unless
the client asks for ``raw_json=1`` (https://www.reddit.com/dev/api, "response body
encoding"). A source preview serves the original's bytes; a resolution, a JPEG of that width.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any
from urllib.parse import urlencode, urlsplit

from redcaps.sandbox.app import Request, Response, Router
from redcaps.sandbox.images import resized_jpeg

WIDTHS = (108, 216, 320, 640, 960, 1080)
PREVIEW_HOSTS = ("preview.redd.it", "external-preview.redd.it")
_LINKED = re.compile(r"i\.imgur\.com|farm\d+\.(static\.flickr|staticflickr)\.com|live\.staticflickr\.com")
_IMAGE_PATH = re.compile(r".*\.(jpg|jpeg|png|gif|webp)", re.IGNORECASE)


def preview_name(url: str) -> tuple[str, str] | None:
    """(host, file name) of the preview of the image at ``url``; None for other links."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.query or not _IMAGE_PATH.fullmatch(parts.path):
        return None
    if host == "i.redd.it":
        return "preview.redd.it", parts.path.lstrip("/")
    if _LINKED.fullmatch(host):
        token = base64.urlsafe_b64encode(hashlib.sha256(url.encode()).digest()).decode().rstrip("=")
        return "external-preview.redd.it", f"{token}.{parts.path.rsplit('.', 1)[1].lower()}"
    return None


def signature(seed: int, host: str, name: str, params: dict[str, str]) -> str:
    canonical = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    return hashlib.sha1(f"{seed}:{host}/{name}?{canonical}".encode()).hexdigest()


def signed_url(seed: int, host: str, name: str, params: dict[str, str], escaped: bool) -> str:
    query = urlencode({**params, "s": signature(seed, host, name, params)})
    return f"https://{host}/{name}?{query.replace('&', '&amp;') if escaped else query}"


def preview(world: Any, url: str, *, escaped: bool = True) -> dict[str, Any] | None:
    """The ``preview`` object Reddit gives a post linking ``url``, or None."""
    where = preview_name(url)
    if where is None:
        return None
    host, name = where
    width, height = world.image_size(url)
    source = {"url": signed_url(world.seed, host, name, {"auto": "webp"}, escaped), "width": width}
    resolutions = [
        {
            "url": signed_url(
                world.seed, host, name, {"width": str(w), "crop": "smart", "auto": "webp"}, escaped
            ),
            "width": w,
            "height": max(1, round(height * w / width)),
        }
        for w in WIDTHS
        if w < width
    ]
    image = {"source": {**source, "height": height}, "resolutions": resolutions, "variants": {}}
    return {"images": [{**image, "id": name.split(".")[0]}], "enabled": True}


def serve(world: Any, request: Request) -> Response:
    """A preview URL: 403 unless signed, 404 when unknown or gone (:meth:`World.preview_alive`)."""
    original = world.preview_original(request.host, request.path.lstrip("/"))
    if original is None:
        return Response(404, {"Content-Type": "text/plain"}, b"not found")
    params = {k: v[0] for k, v in request.query.items() if k != "s"}
    expected = signature(world.seed, request.host, request.path.lstrip("/"), params)
    if request.query.get("s", [""])[0] != expected:
        return Response(403, {"Content-Type": "text/plain"}, b"Forbidden: invalid signature")
    if not world.preview_alive(original):
        return Response(404, {"Content-Type": "text/plain"}, b"not found")
    body, content_type = world.image(original)
    width = params.get("width", "")
    if width.isdigit():
        body, content_type = resized_jpeg(body, int(width)), "image/jpeg"
    return Response(200, {"Content-Type": content_type, "Cache-Control": "max-age=31536000"}, body)


def register(router: Router, world: Any) -> None:
    for host in PREVIEW_HOSTS:
        router.add(host, lambda r: serve(world, r))
