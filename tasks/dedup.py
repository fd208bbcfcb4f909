"""Duplicate images of one annotation file: recorded always, dropped as ``[dedup] mode`` says."""

from __future__ import annotations

import luigi

from redcaps import layout
from redcaps.dataset.dedup import dedup_file
from tasks.base import StageTask
from tasks.config import DedupConfig


class Dedup(StageTask):
    """Hash every image once, group exact and near duplicates, write the file last."""

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.layout.stage_file(layout.DEDUP, self.stem)))

    def run(self) -> None:
        result = dedup_file(self.load_input(), self.layout, self.stem, DedupConfig().settings())
        block = result.info["dedup"]
        self.show_progress(
            f"{block['exact']} exact, {block['near']} near duplicates; {block['dropped']} dropped", 100
        )
