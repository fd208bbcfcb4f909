"""WebDataset shards of one annotation file, in ``<data_dir>/tarfiles/``."""

from __future__ import annotations

import luigi

from redcaps.atomic import write_json
from redcaps.tarify import write_shards
from tasks.base import StageTask
from tasks.config import shards


class Tarify(StageTask):
    """Pack the input's instances and images; the output index is written last."""

    stage = "tarify"

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.stage_path()))

    def run(self) -> None:
        config = shards()
        result = write_shards(
            self.load_input(),
            self.root / "images",
            self.root / "tarfiles",
            self.stem,
            shard_size=config.shard_size,
            fmt=config.format,
        )
        self.report(f"{result.samples} samples in {len(result.shards)} shards, {len(result.missing)} missing")
        write_json(
            self.output().path,
            {
                "shards": [str(p) for p in result.shards],
                "samples": result.samples,
                "missing": len(result.missing),
                "shard_size": config.shard_size,
                "format": config.format,
            },
            indent=1,
        )
