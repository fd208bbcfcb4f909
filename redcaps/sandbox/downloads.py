"""The official annotation zip, at the historical Dropbox URL of the real release."""

from __future__ import annotations

from redcaps.sandbox.app import Request, Response, Router
from redcaps.sandbox.world import World

ANNOTATIONS_ZIP_URL = "https://www.dropbox.com/s/cqtdpsl4hewlli1/redcaps_v1.0_annotations.zip?dl=1"
_ZIP_PATH = "/s/cqtdpsl4hewlli1/redcaps_v1.0_annotations.zip"


def register(router: Router, world: World) -> None:
    def dropbox(request: Request) -> Response | None:
        if request.path != _ZIP_PATH:
            return Response(404, {"Content-Type": "text/plain"}, b"not found")
        return Response(200, {"Content-Type": "application/zip"}, world.annotations_zip())

    router.add("www.dropbox.com", dropbox)
