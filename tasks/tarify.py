"""WebDataset shards of one annotation file, in ``<data_dir>/tarfiles/``."""

from __future__ import annotations

import luigi

from redcaps import layout
from redcaps.dataset.tarify import pack
from tasks.base import StageTask
from tasks.config import ImagesConfig, ShardsConfig


class Tarify(StageTask):
    """Pack the input's instances and images; the output index is written last."""

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.layout.stage_file(layout.TARIFY, self.stem)))

    def run(self) -> None:
        result = pack(
            self.load_input(), self.layout, self.stem, ShardsConfig().settings(), ImagesConfig().storage()
        )
        done = f"{result.samples} samples in {len(result.shards)} shards, {len(result.missing)} missing"
        self.show_progress(done, 100)
