"""The HTML report of one subreddit-year, once it is validated and packed."""

from __future__ import annotations

import luigi

from redcaps.report.html import write_report
from tasks.base import StageTask
from tasks.tarify import Tarify
from tasks.validate import Validate


class Report(StageTask):
    """``stages/report/<stem>.html``: counts, failures, removals, plots and sample thumbnails."""

    def requires(self) -> tuple[Validate, Tarify]:
        return self.clone(Validate), self.clone(Tarify)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.layout.report_file(self.stem)))

    def run(self) -> None:
        write_report(self.layout, self.output().path, [self.stem], title=f"RedCaps report: {self.stem}")
        self.show_progress(f"wrote {self.output().path}", 100)
