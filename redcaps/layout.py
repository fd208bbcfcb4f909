"""Where every file of a dataset directory lives: the one home of paths, stage names and stems.

Tasks, the CLI, the report and the workflows all ask a :class:`Layout` (or the functions below,
for the CLI's loose files) instead of joining paths themselves::

    annotations/<subreddit>_<YYYY-MM>.json   a month of posts (FetchMonth, download-anns)
    annotations/<stem>.json                  the final, filtered file (Publish)
    stages/<stage>/<stem>.json               each stage's own output (+ .removals.jsonl, ...)
    images/<subreddit>/<image_id>.jpg        stored images
    images/.manifests/<stem>/<shard>.jsonl   one outcome per instance, per download shard
    tarfiles/<stem>_%08d.tar                 WebDataset shards (+ .parquet, _stats.json, sizes.json)
    stages/report/<name>.html                the HTML report of a year or a batch
    stages/dump_scan/<subreddit>_<YYYY-MM>.jsonl.zst   a month's raw posts from one dump scan
    stages/previews/<subreddit>_<YYYY-MM>.json.zst     the ``preview`` of the month's collected posts
    official/                                the extracted release zip
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from redcaps.errors import UnsafeNameError
from redcaps.names import check_image_id, check_subreddit, normalize_subreddit

DEFAULT_DATA_DIR = "./datasets/redcaps"

# Stage folders under stages/ (the filters' are ``filter_<kind>``, see filter_stage()).
MERGED = "merged"
DOWNLOADED = "downloaded"
VALIDATE = "validate"
TARIFY = "tarify"
DEDUP = "dedup"
YEAR = "year"
BATCH = "batch"
OFFICIAL = "official"
REPORT = "report"
DUMP_SCAN = "dump_scan"
PREVIEWS = "previews"

_STEM = re.compile(r"(?P<subreddit>[A-Za-z0-9_]{1,64})_(?P<period>\d{4}(?:-\d{2})?)")
SHARD_PATTERN = "{stem}_{index:08d}.tar"


def filter_stage(kind: str) -> str:
    """The stage folder of a content filter: ``filter_words``, ``filter_nsfw``, ``filter_faces``."""
    return f"filter_{kind}"


def stem(subreddit: str, period: int | str | dt.date) -> str:
    """``roses_2020`` for a year, ``roses_2020-01`` for a month: the name of every file of it."""
    if isinstance(period, dt.date):
        period = f"{period:%Y-%m}"
    return f"{normalize_subreddit(subreddit)}_{period}"


def stem_of(path: str | Path) -> str:
    """The stem of an annotation file (its name without ``.json``)."""
    return Path(path).name.removesuffix(".json")


def split_stem(path: str | Path) -> tuple[str, str]:
    """Split ``roses_2020.json`` or ``roses_2020-01.json`` into (subreddit, period)."""
    match = _STEM.fullmatch(stem_of(path))
    if not match:
        raise UnsafeNameError(f"annotation file name {Path(path).name!r} is not <subreddit>_<YYYY>[-MM].json")
    return match["subreddit"], match["period"]


def image_path(image_dir: str | Path, subreddit: str, image_id: str) -> Path:
    """Where an instance's image lives: ``<image_dir>/<subreddit>/<image_id>.jpg`` (seed layout)."""
    return Path(image_dir) / check_subreddit(subreddit) / f"{check_image_id(image_id)}.jpg"


def manifest_dir(image_dir: str | Path, file_stem: str) -> Path:
    """The download manifests of one annotation file live beside its images."""
    return Path(image_dir) / ".manifests" / file_stem


def manifest_path(manifests: str | Path, shard: int) -> Path:
    return Path(manifests) / f"{shard:05d}.jsonl"


def shard_path(output_dir: str | Path, file_stem: str, index: int) -> Path:
    return Path(output_dir) / SHARD_PATTERN.format(stem=file_stem, index=index)


def shard_glob(file_stem: str) -> str:
    """The file names of a stem's shards, as a glob pattern (``roses_2020_[0-9]...[0-9].tar``)."""
    return f"{file_stem}_{'[0-9]' * 8}.tar"


def shard_files(output_dir: str | Path, file_stem: str) -> list[Path]:
    """The WebDataset shards of one stem on disk, in order: every ``<stem>_%08d.tar``, gaps and all
    (the one listing of a stem's tars, for packing, cleaning up and reading back)."""
    return sorted(Path(output_dir).glob(shard_glob(file_stem)))


def shard_metadata_path(shard: str | Path) -> Path:
    """The img2dataset-style table beside a shard: ``<stem>_%08d.parquet``."""
    return Path(shard).with_suffix(".parquet")


def shard_stats_path(shard: str | Path) -> Path:
    """The counts beside a shard: ``<stem>_%08d_stats.json`` (img2dataset's name)."""
    path = Path(shard)
    return path.with_name(f"{path.stem}_stats.json")


def sizes_path(output_dir: str | Path) -> Path:
    """``sizes.json``: samples per shard file name, for every stem in ``output_dir`` (open_clip's)."""
    return Path(output_dir) / "sizes.json"


def removals_beside(annotations_path: str | Path, info_key: str) -> Path:
    """Where the CLI's in-place filters record removals: ``roses_2020.face_filter.removals.jsonl``."""
    path = Path(annotations_path)
    return path.with_name(f"{stem_of(path)}.{info_key}.removals.jsonl")


@dataclass(frozen=True)
class Layout:
    """Every path of one dataset directory (``[redcaps] data_dir``)."""

    root: Path

    @classmethod
    def at(cls, data_dir: str | Path) -> Layout:
        return cls(Path(data_dir).expanduser().resolve())

    @property
    def annotations(self) -> Path:
        return self.root / "annotations"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def tarfiles(self) -> Path:
        return self.root / "tarfiles"

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    @property
    def official(self) -> Path:
        return self.root / "official"

    @property
    def official_annotations(self) -> Path:
        return self.official / "annotations"

    @property
    def official_marker(self) -> Path:
        return self.official / "extracted.json"

    def month_file(self, subreddit: str, month: dt.date) -> Path:
        return self.annotations / f"{stem(subreddit, month)}.json"

    def dump_staging(self, subreddit: str, month: str) -> Path:
        """A subreddit-month's raw posts staged by one dump scan (``month`` is ``YYYY-MM``)."""
        return self.stage_file(DUMP_SCAN, stem(subreddit, month), ".jsonl.zst")

    def month_previews(self, subreddit: str, month: dt.date) -> Path:
        """FetchMonth's side file: post id -> the ``preview`` its source returned (no Luigi output)."""
        return self.stage_file(PREVIEWS, stem(subreddit, month), ".json.zst")

    def final_file(self, file_stem: str) -> Path:
        return self.annotations / f"{file_stem}.json"

    def stage_file(self, stage: str, file_stem: str, suffix: str = ".json") -> Path:
        return self.stages / stage / f"{file_stem}{suffix}"

    def filtered(self, kind: str, file_stem: str) -> Path:
        return self.stage_file(filter_stage(kind), file_stem)

    def removals(self, kind: str, file_stem: str) -> Path:
        return self.stage_file(filter_stage(kind), file_stem, ".removals.jsonl")

    def validate_errors(self, file_stem: str) -> Path:
        return self.stage_file(VALIDATE, file_stem, ".errors.txt")

    def duplicates(self, file_stem: str) -> Path:
        """The Dedup stage's groups: which instance was kept, which are its duplicates."""
        return self.stage_file(DEDUP, file_stem, ".duplicates.jsonl")

    def image_hashes(self, file_stem: str) -> Path:
        """sha256 and pHash of every image the Dedup stage saw, computed once."""
        return self.stage_file(DEDUP, file_stem, ".hashes.jsonl")

    def batch_duplicates(self, batch_name: str) -> Path:
        """Duplicates across the years of a batch (``<name>-<digest>``)."""
        return self.stage_file(BATCH, batch_name, ".duplicates.jsonl")

    def image(self, subreddit: str, image_id: str) -> Path:
        return image_path(self.images, subreddit, image_id)

    def manifests(self, file_stem: str) -> Path:
        return manifest_dir(self.images, file_stem)

    def shard_files(self, file_stem: str) -> list[Path]:
        """The WebDataset shards of one stem on disk, in order (:func:`shard_files`)."""
        return shard_files(self.tarfiles, file_stem)

    def report_file(self, name: str) -> Path:
        """The HTML report of a year (``name`` is its stem) or a batch (its output's name)."""
        return self.stage_file(REPORT, name, ".html")

    def stems(self, stages: tuple[str, ...]) -> list[str]:
        """Every stem with an output in one of ``stages`` (sidecar files are not stems)."""
        found = {stem_of(path) for stage in stages for path in (self.stages / stage).glob("*.json")}
        return sorted(s for s in found if not s.startswith(".") and "." not in s)
