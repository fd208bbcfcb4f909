"""The last stage: the final annotation file at ``annotations/<stem>.json`` (seed layout)."""

from __future__ import annotations

import shutil

import luigi

from redcaps.atomic import atomic_path
from tasks.base import StageTask
from tasks.tarify import Tarify
from tasks.validate import Validate


class Publish(StageTask):
    """Copy the validated, packed annotation file to the dataset's ``annotations/`` folder."""

    stage = "publish"

    def requires(self) -> list[luigi.Task]:
        return [
            self.annotations,
            Validate(annotations=self.annotations),
            Tarify(annotations=self.annotations),
        ]

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.root / "annotations" / f"{self.stem}.json"))

    def run(self) -> None:
        with atomic_path(self.output().path) as tmp:
            shutil.copyfile(self.input_path, tmp)
