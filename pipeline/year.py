"""``RedCapsYear``: one subreddit-year from Reddit posts to validated WebDataset shards.

The graph, in the original tool's order::

    FetchMonth x12 -> MergeYear -> DownloadImages (shards) -> FilterWords -> FilterNsfw
        -> FilterFaces -> Publish -> Validate + Tarify -> Report

Each stage has its own target, so a run killed anywhere resumes at the first missing one.
Which filters run is ``[filters] enabled``; every other setting comes from luigi.cfg.
"""

from __future__ import annotations

import luigi

from redcaps import layout
from redcaps.atomic import write_json
from redcaps.report import summarize_file
from redcaps.tarify import read_index
from tasks.base import StageTask
from tasks.collect import MergeYear
from tasks.config import data_layout, filters
from tasks.download import DownloadImages
from tasks.filters import FilterFaces, FilterNsfw, FilterWords
from tasks.publish import Publish
from tasks.report import Report
from tasks.tarify import Tarify
from tasks.validate import Validate

FILTER_TASKS: dict[str, type[StageTask]] = {"words": FilterWords, "nsfw": FilterNsfw, "faces": FilterFaces}


def year_stages(subreddit: str, year: int, first_year: int | None = None) -> tuple[Validate, Tarify]:
    """The last two stages of a subreddit-year; everything else hangs off them."""
    current: luigi.Task = DownloadImages(
        annotations=MergeYear(subreddit=subreddit, year=year, first_year=first_year)
    )
    for name in filters().names():
        current = FILTER_TASKS[name](annotations=current)
    published = Publish(annotations=current)
    return Validate(annotations=published), Tarify(annotations=published)


class RedCapsYear(luigi.Task):
    """Collect, download, filter, validate and pack ``r/<subreddit>`` for one year.

    ``--first-year`` folds earlier years into this one's file, as the official ``*_2017``
    files hold 2008-2017. The output is a short summary of what each stage did.
    """

    subreddit = luigi.Parameter(description="Subreddit name, without r/")
    year = luigi.IntParameter(description="Calendar year (UTC)")
    first_year = luigi.OptionalIntParameter(default=None, description="First year folded into this file")

    @property
    def stem(self) -> str:
        return layout.stem(self.subreddit, self.year)

    def requires(self) -> tuple[Validate, Tarify, Report]:
        validate, tarify = year_stages(self.subreddit, self.year, self.first_year)
        return validate, tarify, Report(annotations=validate.annotations)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(data_layout().stage_file(layout.YEAR, self.stem)))

    def run(self) -> None:
        validate, tarify, report = self.requires()
        where = data_layout()
        summary = {
            "annotations": str(validate.input_path),
            "tarfiles": read_index(where, tarify.stem)["shards"],
            "report": report.output().path,
        }
        write_json(self.output().path, {**summary, **summarize_file(where, self.stem)}, indent=1)
