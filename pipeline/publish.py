"""``PublishYear``: a finished year uploaded to ``[redcaps] publish_to``, and done once it is there.

Its target is the published year itself (tasks.publish_target), so a rerun on any machine, even
with an empty local data dir, finds it complete and runs nothing. The working state (stages,
journals, loose images) stays in the local data dir of the machine that ran the year.
"""

from __future__ import annotations

import luigi

from pipeline.year import RedCapsYear
from redcaps import layout
from redcaps.errors import RedCapsError
from redcaps.storage import year_objects
from tasks.base import InDataDir
from tasks.publish_target import PublishedYear, check_publish_target, publish_store


class PublishYear(InDataDir):
    """Run ``RedCapsYear`` (unless published) and upload its final files to the publish target."""

    subreddit = luigi.Parameter(description="Subreddit name, without r/")
    year = luigi.IntParameter(description="Calendar year (UTC)")
    first_year = luigi.OptionalIntParameter(default=None, description="First year folded into this file")

    @property
    def stem(self) -> str:
        return layout.stem(self.subreddit, self.year)

    def requires(self) -> RedCapsYear:
        check_publish_target()  # before the year's own preflight and any of its work
        return self.clone(RedCapsYear)

    def output(self) -> PublishedYear:
        store = publish_store()
        if store is None:
            raise RedCapsError("PublishYear needs [redcaps] publish_to (an fsspec URL: s3://bucket/prefix)")
        return PublishedYear(store, self.stem)

    def run(self) -> None:
        target = self.output()
        files, extra = year_objects(self.layout, self.stem)
        self.show_progress(f"uploading {len(files) + len(extra)} objects to {target.store.url}", 0)
        target.store.publish(self.stem, files, extra)
        self.show_progress(f"published to {target.store.url}", 100)
