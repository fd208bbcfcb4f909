"""The official release zip (``redcaps_v1.0_annotations.zip``): fetch, verify, extract safely.

Only ``annotations/<subreddit>_<year>.json``, ``LICENSE.txt`` and ``TERMSOFUSE.txt`` are
extracted, by name checks rather than trusting member paths (no zip-slip), and an existing
file with different content is never overwritten.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import requests

from redcaps.atomic import atomic_open, sha256_file, write_bytes, write_json
from redcaps.errors import RedCapsError
from redcaps.layout import split_stem

OFFICIAL_ZIP_NAME = "redcaps_v1.0_annotations.zip"
_EXTRA_MEMBERS = ("LICENSE.txt", "TERMSOFUSE.txt")


def is_url(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https")


def download_zip(url: str, dest: Path, user_agent: str, timeout: float = 60.0) -> Path:
    """Stream ``url`` to ``dest`` atomically (standard proxy variables apply)."""
    try:
        with requests.get(url, stream=True, timeout=timeout, headers={"User-Agent": user_agent}) as resp:
            resp.raise_for_status()
            with atomic_open(dest, "wb") as fh:
                for chunk in resp.iter_content(1 << 20):
                    fh.write(chunk)
    except requests.RequestException as exc:
        raise RedCapsError(f"cannot download {url}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    return dest


def _target(name: str) -> str | None:
    """The relative path a member is extracted to, or None to skip it."""
    parts = name.split("/")
    if name.startswith("/") or ".." in parts or "\\" in name:
        raise RedCapsError(f"unsafe path in zip: {name!r}")
    if len(parts) == 2 and parts[0] == "annotations" and parts[1].endswith(".json"):
        split_stem(parts[1])  # raises UnsafeNameError on anything that is not <subreddit>_<year>
        return name
    if name in _EXTRA_MEMBERS:
        return name
    return None


def extract(zip_path: Path, dest: Path) -> list[Path]:
    """Extract the release's annotation files into ``dest``; returns the JSON files."""
    try:
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise RedCapsError(f"{zip_path}: not a readable zip: {exc}") from None
    written: list[Path] = []
    with archive:
        members = [(m, _target(m.filename)) for m in archive.infolist() if not m.is_dir()]
        if not any(t and t.endswith(".json") for _, t in members):
            raise RedCapsError(f"{zip_path}: no annotations/<subreddit>_<year>.json inside")
        for member, target in members:
            if target is None:
                continue
            data = archive.read(member)
            path = dest / target
            if path.exists() and path.read_bytes() != data:
                raise RedCapsError(f"{path} exists with different content; not overwriting it")
            if not path.exists():
                write_bytes(path, data)
            if target.endswith(".json"):
                written.append(path)
    return sorted(written)


def fetch_and_extract(
    source: str,
    dest: Path,
    *,
    sha256: str | None = None,
    marker: str | Path | None = None,
    user_agent: str = "redcaps (+https://redcaps.xyz)",
) -> list[Path]:
    """Get the zip from a path or URL, check its sha256, extract, write ``marker`` last."""
    dest = Path(dest)
    if is_url(source):
        zip_path = download_zip(source, dest / OFFICIAL_ZIP_NAME, user_agent)
    else:
        zip_path = Path(source).expanduser()
        if not zip_path.is_file():
            raise RedCapsError(f"{zip_path}: no such file")
    actual = sha256_file(zip_path)
    if sha256 and actual != sha256.lower():
        if is_url(source):
            zip_path.unlink(missing_ok=True)
        raise RedCapsError(f"{source}: sha256 mismatch: expected {sha256}, got {actual}")
    files = extract(zip_path, dest)
    if marker is not None:
        write_json(marker, {"source": source, "sha256": actual, "files": [str(f) for f in files]}, indent=1)
    return files
