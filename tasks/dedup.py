"""Duplicate images of one annotation file: recorded always, dropped as ``[dedup] mode`` says."""

from __future__ import annotations

from pathlib import Path

import luigi

from redcaps import layout
from redcaps.dataset.dedup import dedup_file
from tasks.base import StageTask
from tasks.config import DedupConfig


class Dedup(StageTask):
    """Hash every image once, group exact and near duplicates, write the file last."""

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.layout.stage_file(layout.DEDUP, self.stem)))

    def artefacts(self) -> list[Path]:
        return [self.layout.duplicates(self.stem), Path(self.output().path)]

    def run(self) -> None:
        result = dedup_file(self.load_input(), self.layout, self.stem, DedupConfig().settings())
        self.record_artefacts()
        block = result.info["dedup"]
        self.show_progress(
            f"{block['exact']} exact, {block['near']} near duplicates; {block['dropped']} dropped", 100
        )
