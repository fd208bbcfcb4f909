"""``RedCapsOfficial``: images and WebDataset shards for the official annotation files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import luigi

from pipeline.year import run_preflight, where_things_are
from redcaps import layout
from redcaps.atomic import write_json
from redcaps.errors import RedCapsError
from redcaps.layout import split_stem
from redcaps.parts import balanced_part, count_instances, parse_part
from redcaps.report.summary import summarize_dataset
from tasks import download  # noqa: F401 - a stage of the official list, found by family
from tasks.base import InDataDir
from tasks.official import OfficialAnnotations
from tasks.tarify import Tarify
from tasks.validate import Validate


class OfficialFile(InDataDir, luigi.WrapperTask):
    """One official file: download its images, validate what was kept, pack the shards."""

    annotations = luigi.PathParameter(
        absolute=True, description="Path of an official <subreddit>_<year>.json"
    )

    def requires(self) -> list[luigi.Task]:
        return [self.clone(Validate, graph="official"), self.clone(Tarify, graph="official")]


class RedCapsOfficial(InDataDir):
    """Every file of a directory of official annotations, or of the release zip (path/URL).

    Files are scheduled in chunks (dynamic dependencies) so the graph never grows past what
    Luigi's scheduler handles comfortably, even for all 1,391 official files.
    """

    annotations_dir = luigi.OptionalParameter(
        default=None, description="Directory of <subreddit>_<year>.json"
    )
    annotations_zip = luigi.OptionalParameter(default=None, description="Path or URL of the release zip")
    sha256 = luigi.OptionalParameter(default=None, description="Expected sha256 of the zip")
    chunk_size = luigi.IntParameter(default=50, significant=False, description="Files scheduled at once")
    part = luigi.Parameter(default="1/1", description="i/n: this machine's share, balanced by instances")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.part_index, self.part_count = parse_part(self.part)

    def requires(self) -> list[luigi.Task]:
        if bool(self.annotations_dir) == bool(self.annotations_zip):
            raise RedCapsError("give exactly one of --annotations-dir and --annotations-zip")
        run_preflight(collect=False, filtering=False)
        if self.annotations_zip:
            return [OfficialAnnotations(source=self.annotations_zip, sha256=self.sha256)]
        return []

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.layout.stage_file(layout.OFFICIAL, self.summary_name())))

    def summary_name(self) -> str:
        """``RedCapsOfficial_<params>_<hash>`` as it was named before the data dir was a parameter
        (the hash covering the data dir too), so that an existing summary is found again."""
        params = self.to_str_params(only_significant=True, only_public=True)
        del params["data_dir"]
        if self.part_count == 1:
            del params["part"]  # the whole directory keeps the name it had before --part
        old_id = luigi.task.task_id_str(self.get_task_family(), params)
        readable, _, hashed = old_id.rpartition("_")
        digest = hashlib.md5(f"{old_id}\0{self.data_dir}".encode()).hexdigest()
        return f"{readable}_{digest[: len(hashed)]}"

    def annotation_files(self) -> list[Path]:
        """This part's official files: n machines take disjoint shares, balanced by instance count."""
        files = self.all_annotation_files()
        if self.part_count == 1:
            return files
        weights = {str(p): count_instances(p) for p in files}
        return [Path(p) for p in balanced_part(weights, self.part_index, self.part_count)]

    def all_annotation_files(self) -> list[Path]:
        directory = Path(self.annotations_dir or self.layout.official_annotations).expanduser()
        if not directory.is_dir():
            raise RedCapsError(f"{directory}: not a directory of annotation files")
        files = sorted(directory.glob("*.json"))
        if not files:
            raise RedCapsError(f"{directory}: no <subreddit>_<year>.json files")
        for path in files:
            split_stem(path)
        return [p.resolve() for p in files]

    def run(self) -> Iterator[list[OfficialFile]]:
        files = self.annotation_files()
        for start in range(0, len(files), self.chunk_size):
            yield [
                OfficialFile(annotations=p, data_dir=self.data_dir)
                for p in files[start : start + self.chunk_size]
            ]
        summary = summarize_dataset(self.layout, [layout.stem_of(p) for p in files])
        write_json(self.output().path, summary, indent=1)

    def summary_text(self) -> str:
        """What the terminal shows when every file is done: the summary and where things are."""
        stems = [layout.stem_of(p) for p in self.annotation_files()]
        return where_things_are(self.layout, stems, self.output().path)
