"""WebDataset shards of one annotation file, in ``<data_dir>/tarfiles/``."""

from __future__ import annotations

import luigi

from redcaps import layout
from redcaps.annotations import Record
from redcaps.dataset.tarify import pack
from tasks.base import StageTask, stage_list
from tasks.config import ImagesConfig, ShardsConfig
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

    def run(self) -> None:
        result = pack(
            self.load_input(),
            self.layout,
            self.stem,
            ShardsConfig().settings(),
            ImagesConfig().storage(),
            attempted=self.attempted(),
        )
        done = f"{result.samples} samples in {len(result.shards)} shards, {len(result.missing)} missing"
        self.show_progress(done, 100)
