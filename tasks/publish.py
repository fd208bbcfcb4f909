"""Publish: the last stage's annotation file becomes ``annotations/<stem>.json`` (seed layout)."""

from __future__ import annotations

import luigi

from redcaps.atomic import write_bytes
from tasks.base import StageTask


class Publish(StageTask):
    """Copy the finished (filtered) annotation file to its final place, byte for byte.

    The final file gets its own stage instead of being the filters' output so that the
    seed's path ``annotations/<subreddit>_<year>.json`` only ever holds a finished file: a
    reader never mistakes a half-filtered year for a released one, and every earlier stage
    keeps its own target under ``stages/`` to resume from.
    """

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.layout.final_file(self.stem)))

    def run(self) -> None:
        self.show_progress(f"publishing {self.input_path.name}", 0)
        records = self.load_input()  # schema-checked: a broken upstream file is never published
        write_bytes(self.output().path, self.input_path.read_bytes())
        self.record_artefacts()
        self.show_progress(f"{len(records.annotations)} instances in {self.output().path}", 100)
