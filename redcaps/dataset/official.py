"""The official release zip (``redcaps_v1.0_annotations.zip``): fetch, verify, extract safely.

Only ``annotations/<subreddit>_<year>.json``, ``LICENSE.txt`` and ``TERMSOFUSE.txt`` are
extracted, by name checks rather than trusting member paths (no zip-slip), and an existing
file with different content is never overwritten. Members are streamed, never held whole, and
one whose declared size or compression ratio no annotation file comes near is refused before
a byte is written (a zip bomb).
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import requests

from redcaps.atomic import atomic_open, sha256_file, write_json
from redcaps.errors import RedCapsError
from redcaps.layout import split_stem

OFFICIAL_ZIP_NAME = "redcaps_v1.0_annotations.zip"
_EXTRA_MEMBERS = ("LICENSE.txt", "TERMSOFUSE.txt")
#: The largest member extracted: the biggest official annotation file is far below it.
MAX_MEMBER_BYTES = 4 * 2**30
#: The largest uncompressed/compressed ratio of a member over 1 MiB: deflated JSON is about 5-10.
MAX_RATIO = 100
_CHUNK = 1 << 20


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


def check_member(member: zipfile.ZipInfo) -> None:
    """Refuse a member whose declared size or compression ratio is a zip bomb's; reading
    stops at the declared size (``zipfile`` then fails its CRC), so these bound what is written."""
    size, packed = member.file_size, max(member.compress_size, 1)
    if size > MAX_MEMBER_BYTES:
        raise RedCapsError(f"zip member {member.filename}: {size} bytes, over the {MAX_MEMBER_BYTES} cap")
    if size > _CHUNK and size / packed > MAX_RATIO:
        raise RedCapsError(
            f"zip member {member.filename}: compression ratio {size / packed:.0f}, over {MAX_RATIO}"
            " (a zip bomb?)"
        )


def _member_digest(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> str:
    digest = hashlib.sha256()
    with archive.open(member) as src:
        for block in iter(lambda: src.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _extract_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path) -> None:
    """Stream ``member`` to ``path`` atomically; an existing different file is an error."""
    if path.exists():
        if _member_digest(archive, member) != sha256_file(path):
            raise RedCapsError(f"{path} exists with different content; not overwriting it")
        return
    with archive.open(member) as src, atomic_open(path, "wb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)


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
            if target is not None:
                check_member(member)
        for member, target in members:
            if target is None:
                continue
            try:
                _extract_member(archive, member, dest / target)
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise RedCapsError(f"{zip_path}: member {member.filename} is damaged: {exc}") from None
            if target.endswith(".json"):
                written.append(dest / target)
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
