"""A month's collected previews: post id -> the ``preview`` its source returned, beside the month.

Archives and dumps carry Reddit's ``preview`` with each post, but the annotation file keeps the
official schema without it; this small zstd JSON side file keeps it for the download's
``preview`` route, so images gone from their host are found without asking an API again. It is
no stage output: a missing or unreadable one only means "no previews known".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import zstandard

from redcaps.atomic import write_bytes

log = logging.getLogger(__name__)

#: Largest side file read back (a month of a busy subreddit is a few MB).
MAX_BYTES = 512 << 20


def save_previews(path: str | Path, previews: Mapping[str, Any]) -> None:
    """Write ``previews`` atomically (none: remove a stale file instead)."""
    path = Path(path)
    if not previews:
        path.unlink(missing_ok=True)
        return
    text = json.dumps(dict(sorted(previews.items())), separators=(",", ":"), ensure_ascii=False)
    write_bytes(path, zstandard.ZstdCompressor(level=3).compress(text.encode()))


def load_previews(path: str | Path) -> dict[str, Any]:
    """The side file's previews; ``{}`` when it is missing, and when it is unreadable (logged)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("%s: collected previews not read (%s)", path, exc)
        return {}
    try:
        text = zstandard.ZstdDecompressor().decompress(data, max_output_size=MAX_BYTES)
        previews = json.loads(text)
    except (zstandard.ZstdError, ValueError) as exc:
        log.warning("%s: collected previews not read (%s)", path, exc)
        return {}
    return previews if isinstance(previews, dict) else {}
