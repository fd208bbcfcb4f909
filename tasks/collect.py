"""Annotation collection: one task per subreddit-month, one per merged year."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import luigi

from redcaps import annotations as ann
from redcaps.collect import build_source, collect_month
from redcaps.credentials import load_credentials
from redcaps.merge import merge_files
from redcaps.names import check_subreddit
from tasks.config import redcaps


class collection(luigi.Config):  # noqa: N801 - the section is [collection]
    source = luigi.ChoiceParameter(choices=["arctic-shift", "pushshift", "dump"], default="arctic-shift")
    min_score = luigi.IntParameter(default=2, description="Drop posts scoring below this")
    credentials = luigi.Parameter(
        default="credentials.json", description="Path of credentials.json (secrets stay out of task params)"
    )
    refresh = luigi.BoolParameter(
        default=True, description="Refresh scores/deletions with PRAW when possible"
    )
    arctic_shift_url = luigi.Parameter(default="https://arctic-shift.photon-reddit.com")
    pushshift_url = luigi.Parameter(default="https://api.pushshift.io")
    dump_dir = luigi.Parameter(default="", description="Directory of RS_YYYY-MM.zst / <sub>_submissions.zst")


def source_options(config: collection) -> dict[str, object]:
    if config.source == "arctic-shift":
        return {"base_url": config.arctic_shift_url}
    if config.source == "pushshift":
        return {"base_url": config.pushshift_url}
    return {"dump_dir": Path(config.dump_dir).expanduser()}


class FetchMonth(luigi.Task):
    """Image posts of one subreddit-month as an annotation file (the original's monthly file)."""

    subreddit = luigi.Parameter()
    month = luigi.MonthParameter(description="YYYY-MM")

    @property
    def resources(self) -> dict[str, int]:  # type: ignore[override]
        config = collection()
        used = {"arctic-shift": "arctic_shift", "pushshift": "pushshift", "dump": "dump_io"}[config.source]
        resources = {used: 1}
        if config.refresh:
            resources["reddit_api"] = 1
        return resources

    def output(self) -> luigi.LocalTarget:
        name = f"{check_subreddit(self.subreddit)}_{self.month:%Y-%m}.json"
        return luigi.LocalTarget(str(redcaps().root / "stages" / "months" / name))

    def run(self) -> None:
        config = collection()
        credentials = load_credentials(Path(config.credentials).expanduser())
        source = build_source(config.source, **source_options(config))
        refresher = None
        if config.refresh and credentials.reddit is not None:
            from redcaps.sources.reddit_refresh import RedditRefresher

            refresher = RedditRefresher(credentials.require_reddit())
        imgur = None
        if credentials.imgur is not None:
            from redcaps.sources.imgur import ImgurResolver

            imgur = ImgurResolver(credentials.require_imgur().client_id)
        result = collect_month(
            self.subreddit,
            self.month.year,
            self.month.month,
            source=source,
            refresher=refresher,
            imgur=imgur,
            min_score=config.min_score,
        )
        ann.save(self.output().path, result)


class MergeYear(luigi.Task):
    """Merge the months of a year (from ``first_year`` on: official ``*_2017`` covers 2008-2017)."""

    subreddit = luigi.Parameter()
    year = luigi.IntParameter()
    first_year = luigi.OptionalIntParameter(default=None, description="First year folded into this file")

    def months(self) -> list[dt.date]:
        start = self.first_year or self.year
        return [dt.date(y, m, 1) for y in range(start, self.year + 1) for m in range(1, 13)]

    def requires(self) -> list[FetchMonth]:
        return [FetchMonth(subreddit=self.subreddit, month=m) for m in self.months()]

    def output(self) -> luigi.LocalTarget:
        name = f"{check_subreddit(self.subreddit)}_{self.year}.json"
        return luigi.LocalTarget(str(redcaps().root / "stages" / "merged" / name))

    def run(self) -> None:
        merge_files([Path(t.path) for t in self.input()], self.output().path)
