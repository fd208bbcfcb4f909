"""``RedCapsYear``: one subreddit-year from Reddit posts to validated WebDataset shards."""

from __future__ import annotations

import luigi

from tasks.collect import MergeYear
from tasks.download import DownloadImages
from tasks.filters import FILTER_TASKS, filters
from tasks.publish import Publish


class RedCapsYear(luigi.WrapperTask):
    """FetchMonth x12 -> MergeYear -> image shards -> filter-words -> filter-nsfw ->
    filter-faces -> Validate -> Tarify -> Publish (``annotations/<subreddit>_<year>.json``)."""

    subreddit = luigi.Parameter()
    year = luigi.IntParameter()
    first_year = luigi.OptionalIntParameter(default=None, description="Fold years from here into this file")

    def final_stage(self) -> luigi.Task:
        stage: luigi.Task = DownloadImages(
            annotations=MergeYear(
                subreddit=self.subreddit.lower(), year=self.year, first_year=self.first_year
            )
        )
        for name in filters().names():
            stage = FILTER_TASKS[name](annotations=stage)
        return stage

    def requires(self) -> Publish:
        return Publish(annotations=self.final_stage())
