"""Annotation collection: one task per subreddit-month, one per merged year."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import luigi

from redcaps import annotations as ann
from redcaps.collect import build_source, collect_month
from redcaps.merge import merge_files
from redcaps.names import check_subreddit
from tasks.config import redcaps


class collection(luigi.Config):  # noqa: N801 - the section is [collection]
    source = luigi.ChoiceParameter(choices=["arctic-shift", "pushshift", "dump"], default="arctic-shift")
    pushshift_url = luigi.Parameter(default="https://api.pushshift.io", description="Token: $PUSHSHIFT_TOKEN")
    pushshift_flavour = luigi.ChoiceParameter(choices=["pushshift", "pullpush"], default="pushshift")
    min_score = luigi.IntParameter(default=2, description="Drop posts scoring below this")
    arctic_shift_url = luigi.Parameter(default="https://arctic-shift.photon-reddit.com")
    dump_dir = luigi.Parameter(default="", description="Directory of RS_YYYY-MM.zst or <sub>_submissions.zst")


class FetchMonth(luigi.Task):
    """Image posts of one subreddit-month (the original's monthly file), sorted by time."""

    subreddit = luigi.Parameter()
    month = luigi.MonthParameter(description="YYYY-MM")

    @property
    def resources(self) -> dict[str, int]:  # type: ignore[override]
        return {"arctic_shift": 1} if collection().source == "arctic-shift" else {}

    def output(self) -> luigi.LocalTarget:
        name = f"{check_subreddit(self.subreddit).lower()}_{self.month:%Y-%m}.json"
        return luigi.LocalTarget(str(redcaps().root / "annotations" / name))

    def run(self) -> None:
        config = collection()
        source = build_source(
            config.source,
            base_url=config.arctic_shift_url,
            dump_dir=config.dump_dir,
            pushshift_url=config.pushshift_url,
            pushshift_flavour=config.pushshift_flavour,
        )
        result = collect_month(
            self.subreddit, self.month.year, self.month.month, source=source, min_score=config.min_score
        )
        ann.save(self.output().path, result)


class MergeYear(luigi.Task):
    """The months of a year merged (from ``first_year`` on: official ``*_2017`` holds 2008-2017)."""

    subreddit = luigi.Parameter()
    year = luigi.IntParameter()
    first_year = luigi.OptionalIntParameter(default=None, description="First year folded into this file")

    def months(self) -> list[dt.date]:
        return [
            dt.date(y, m, 1) for y in range(self.first_year or self.year, self.year + 1) for m in range(1, 13)
        ]

    def requires(self) -> list[FetchMonth]:
        return [FetchMonth(subreddit=self.subreddit, month=m) for m in self.months()]

    def output(self) -> luigi.LocalTarget:
        name = f"{check_subreddit(self.subreddit).lower()}_{self.year}.json"
        return luigi.LocalTarget(str(redcaps().root / "annotations" / name))

    def run(self) -> None:
        merge_files([Path(t.path) for t in self.input()], self.output().path)
