"""WebDataset shards of one annotation file, in ``<data_dir>/tarfiles/``."""

from __future__ import annotations

from pathlib import Path

import luigi

from redcaps import integrity, layout
from redcaps.annotations import Record
from redcaps.atomic import read_json
from redcaps.dataset.shardmeta import read_sizes
from redcaps.dataset.tarify import pack
from tasks.base import StageTask, stage_list
from tasks.config import DownloadsConfig, ImagesConfig, ShardsConfig
from tasks.download import DownloadImages


class Tarify(StageTask):
    """Pack the input's instances and images; the output index is written last."""

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.layout.stage_file(layout.TARIFY, self.stem)))

    def attempted(self) -> list[Record]:
        """The records the download stage read: a failed one is in no later file, and its
        parquet row keeps its caption and other fields."""
        if "DownloadImages" not in stage_list(self.graph):
            return []
        return self.clone(DownloadImages).load_input().annotations

    def refetch(self, records: list[Record]) -> None:
        """Fetch again, through their download shards, the ``ok`` images held nowhere whole."""
        download = self.clone(DownloadImages)
        position = {r["image_id"]: i for i, r in enumerate(download.load_input().annotations)}
        per_shard = DownloadsConfig().settings().images_per_shard
        shards = download.shards()
        for index in sorted({position[r["image_id"]] // per_shard for r in records}):
            shards[index].fetch()

    def shard_artefacts(self) -> list[Path]:
        """Each shard its index lists, with its parquet and ``_stats.json``."""
        index = read_json(self.output().path) or {}
        shards = [self.layout.tarfiles / Path(p).name for p in index.get("shards", [])]
        return [p for s in shards for p in (s, layout.shard_metadata_path(s), layout.shard_stats_path(s))]

    def artefacts(self) -> list[Path]:
        return [Path(self.output().path), *self.shard_artefacts()]

    def complete(self) -> bool:
        """Also incomplete when ``sizes.json`` (every stem's, so checked by content) lacks a shard."""
        if not super().complete():
            return False
        sizes = read_sizes(self.layout.tarfiles)
        return all(path.name in sizes for path in self.shard_artefacts() if path.suffix == ".tar")

    def run(self) -> None:
        result = pack(
            self.load_input(),
            self.layout,
            self.stem,
            ShardsConfig().settings(),
            ImagesConfig().storage(),
            attempted=self.attempted(),
            refetch=self.refetch if "DownloadImages" in stage_list(self.graph) else None,
        )
        self.record_artefacts()
        integrity.prune(self.layout.root, self.layout.tarfiles, f"{self.stem}_*", self.artefacts())
        done = f"{result.samples} samples in {len(result.shards)} shards, {len(result.missing)} missing"
        self.show_progress(done, 100)
