"""A finished year published to object storage: any fsspec URL (``s3://``, ``gs://``, ``az://``, a path).

Objects are uploaded whole: each to a temporary key, then renamed (a copy on object stores, whose
single PUT is atomic), so no partially written object is ever at its final key. A year's manifest
(``manifests/<stem>.json``: size and sha256 of every object) is uploaded last, and the year counts as
published only when its manifest exists and every object it lists has its size: an interrupted
upload has no manifest and is redone whole, never trusted. Credentials come from the provider's
standard chain (``AWS_*`` variables and profiles, ``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``)
or ``options`` (``[redcaps] publish_options``), never from task parameters.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from redcaps.atomic import read_json
from redcaps.errors import RedCapsError
from redcaps.layout import Layout, shard_metadata_path, shard_stats_path, sizes_path

MANIFESTS = "manifests"
TEMP_PREFIX = ".partial-"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def parse_options(text: str) -> dict[str, Any]:
    """``[redcaps] publish_options``: a JSON object of fsspec storage options (empty: none)."""
    try:
        options = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise RedCapsError(f"[redcaps] publish_options is not JSON ({exc.msg})") from None
    if not isinstance(options, dict):
        raise RedCapsError("[redcaps] publish_options must be a JSON object")
    return options


class Store:
    """The publish target: keys are paths relative to the URL's prefix."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        import fsspec  # imported here: only publishing needs it (and its s3fs/gcsfs extras)

        self.url = url
        try:
            # a fresh filesystem: fsspec caches instances by options, and a cached one keeps the
            # endpoint and keys of the environment it was made in (fsspec docs, "Instance Caching")
            self.fs, self.root = fsspec.core.url_to_fs(url, skip_instance_cache=True, **(options or {}))
        except (ImportError, ValueError) as exc:
            raise RedCapsError(f"[redcaps] publish_to {url}: {exc}") from None
        self.local = "file" in self.fs.protocol or "local" in self.fs.protocol

    def key(self, relative: str) -> str:
        return f"{self.root.rstrip('/')}/{relative}"

    def _temp_key(self, relative: str) -> str:
        folder, _, name = relative.rpartition("/")
        return self.key(f"{folder}/{TEMP_PREFIX}{uuid.uuid4().hex}-{name}".lstrip("/"))

    def _place(self, temp: str, relative: str) -> None:
        if self.local:  # a folder needs making; object stores have none
            self.fs.makedirs(self.key(relative).rpartition("/")[0], exist_ok=True)
        self.fs.mv(temp, self.key(relative))

    def put_file(self, local: Path, relative: str) -> None:
        """Upload ``local`` whole to ``relative``: never partly visible there."""
        temp = self._temp_key(relative)
        if self.local:
            self.fs.makedirs(temp.rpartition("/")[0], exist_ok=True)
        self.fs.put_file(str(local), temp)
        self._place(temp, relative)

    def put_bytes(self, data: bytes, relative: str) -> None:
        temp = self._temp_key(relative)
        if self.local:
            self.fs.makedirs(temp.rpartition("/")[0], exist_ok=True)
        self.fs.pipe_file(temp, data)
        self._place(temp, relative)

    def read_json(self, relative: str) -> Any:
        """The JSON object at ``relative``, or None when there is none."""
        try:
            return json.loads(self.fs.cat_file(self.key(relative)))
        except FileNotFoundError:
            return None

    def size(self, relative: str) -> int | None:
        try:
            return int(self.fs.info(self.key(relative))["size"])
        except FileNotFoundError:
            return None

    def check_writable(self) -> str | None:
        """Why nothing can be written here (a missing bucket, refused credentials), or None:
        a small probe object is written and deleted."""
        probe = self._temp_key(".write-check")
        try:
            if self.local:
                self.fs.makedirs(self.root, exist_ok=True)
            self.fs.pipe_file(probe, b"redcaps write check\n")
            self.fs.rm_file(probe)
        except Exception as exc:  # noqa: BLE001 - any refusal, told in one line
            return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'refused'}"
        return None

    # -- a year's objects ------------------------------------------------------------------------
    def manifest_key(self, stem: str) -> str:
        return f"{MANIFESTS}/{stem}.json"

    def is_published(self, stem: str) -> bool:
        """The year's manifest exists and every object it lists is there with its size."""
        return _complete(self.read_json(self.manifest_key(stem)), self.size)

    def published(self, stems: list[str]) -> set[str]:
        """Which of ``stems`` are published, from one listing of the prefix and one manifest read
        per listed year (a batch's completion check: no request per object)."""
        self.fs.invalidate_cache(self.root)  # other machines publish too: never a stale listing
        try:
            listing = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return set()
        prefix = self.root.rstrip("/") + "/"
        sizes = {key.removeprefix(prefix): info.get("size") for key, info in listing.items()}
        return {
            stem
            for stem in stems
            if self.manifest_key(stem) in sizes
            and _complete(self.read_json(self.manifest_key(stem)), sizes.get)
        }

    def publish(self, stem: str, files: dict[str, Path], extra: dict[str, bytes] | None = None) -> dict:
        """Upload ``files`` (key -> local file) and ``extra`` (key -> bytes), then the manifest."""
        objects = {}
        for relative, local in sorted(files.items()):
            self.put_file(local, relative)
            objects[relative] = {"size": local.stat().st_size, "sha256": sha256_of(local)}
        for relative, data in sorted((extra or {}).items()):
            self.put_bytes(data, relative)
            objects[relative] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        manifest = {"stem": stem, "objects": objects}
        self.put_bytes(json.dumps(manifest, indent=1, sort_keys=True).encode(), self.manifest_key(stem))
        return manifest


def _complete(manifest: Any, size_of: Any) -> bool:
    """A manifest whose every object has its recorded size (``size_of(key)``)."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("objects"), dict):
        return False
    return all(size_of(key) == entry.get("size") for key, entry in manifest["objects"].items())


def year_objects(where: Layout, stem: str) -> tuple[dict[str, Path], dict[str, bytes]]:
    """What a finished year publishes: its final annotation file, its tars with their parquet and
    ``_stats.json``, its HTML report (key -> local file), and its ``sizes.json`` entries as
    ``tarfiles/<stem>_sizes.json`` (the shared ``sizes.json`` lists other years too)."""
    files = {f"annotations/{stem}.json": where.final_file(stem)}
    shards = where.shard_files(stem)
    for shard in shards:
        for path in (shard, shard_metadata_path(shard), shard_stats_path(shard)):
            if path.exists():
                files[f"tarfiles/{path.name}"] = path
    report = where.report_file(stem)
    if report.exists():
        files[f"reports/{report.name}"] = report
    everything = read_json(sizes_path(where.tarfiles)) or {}
    sizes = {shard.name: everything[shard.name] for shard in shards if shard.name in everything}
    extra = {f"tarfiles/{stem}_sizes.json": json.dumps(sizes, indent=1).encode()}
    return files, extra
