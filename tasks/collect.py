"""Annotation collection: one task per subreddit-month, one per merged year.

Settings are the ``[collection]`` section of luigi.cfg (config, not task parameters: they do
not change task ids and the scheduler UI does not show them). Secrets are never settings:
``credentials`` is only the path of credentials.json, and the Pushshift token, Reddit and
Imgur keys come from that file or environment variables.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import luigi

from redcaps import annotations as ann
from redcaps.collect import build_imgur, build_refresher, build_source, collect_month
from redcaps.credentials import Credentials, load_credentials
from redcaps.merge import merge_files
from redcaps.names import check_subreddit
from tasks.config import redcaps


class collection(luigi.Config):  # noqa: N801 - the section is [collection]
    source = luigi.ChoiceParameter(choices=["arctic-shift", "pushshift", "dump"], default="arctic-shift")
    arctic_shift_url = luigi.Parameter(default="https://arctic-shift.photon-reddit.com")
    pushshift_url = luigi.Parameter(default="https://api.pushshift.io", description="Token: $PUSHSHIFT_TOKEN")
    pushshift_flavour = luigi.ChoiceParameter(choices=["pushshift", "pullpush"], default="pushshift")
    dump_dir = luigi.Parameter(default="", description="RS_YYYY-MM.zst / <sub>_submissions.zst (dir or file)")
    min_score = luigi.IntParameter(default=2, description="Drop posts scoring below this")
    credentials = luigi.Parameter(default="./credentials.json", description="Path of credentials.json")

    def load_credentials(self) -> Credentials:
        """Never raises: a bad file is reported when a stage needs the section."""
        return load_credentials(Path(self.credentials).expanduser() if self.credentials else None)


#: ``[resources]`` a FetchMonth holds, per source (dump files need none).
SOURCE_RESOURCES = {"arctic-shift": "arctic_shift", "pushshift": "pushshift"}


def _wants(creds: Credentials, section: str) -> bool:
    """A section is used when it is configured, or broken (then the stage reports why)."""
    return getattr(creds, section) is not None or section in creds.problems


class FetchMonth(luigi.Task):
    """Image posts of one subreddit-month (the original's monthly file), sorted by time."""

    subreddit = luigi.Parameter()
    month = luigi.MonthParameter(description="YYYY-MM")

    @property
    def resources(self) -> dict[str, int]:  # type: ignore[override]
        """One slot per outside service this month uses, so workers sharing a luigid never
        query one service concurrently and each process's rate limiter is the global one."""
        config = collection()
        creds = config.load_credentials()
        used = {SOURCE_RESOURCES.get(config.source)}
        used |= {
            "reddit_api" if _wants(creds, "reddit") else None,
            "imgur_api" if _wants(creds, "imgur") else None,
        }
        return {name: 1 for name in sorted(n for n in used if n)}

    def output(self) -> luigi.LocalTarget:
        name = f"{check_subreddit(self.subreddit).lower()}_{self.month:%Y-%m}.json"
        return luigi.LocalTarget(str(redcaps().root / "annotations" / name))

    def run(self) -> None:
        config = collection()
        creds = config.load_credentials()
        source = build_source(
            config.source,
            arctic_shift_url=config.arctic_shift_url,
            dump_dir=config.dump_dir,
            pushshift_url=config.pushshift_url,
            pushshift_flavour=config.pushshift_flavour,
        )
        result = collect_month(
            self.subreddit,
            self.month.year,
            self.month.month,
            source=source,
            refresher=build_refresher(creds),
            imgur=build_imgur(creds),
            min_score=config.min_score,
        )
        ann.save(self.output().path, result)  # atomic: a failed month leaves no file


class MergeYear(luigi.Task):
    """The months of a year merged (from ``first_year`` on: official ``*_2017`` holds 2008-2017).

    Writes ``stages/merged/<subreddit>_<year>.json``; the final, filtered
    ``annotations/<subreddit>_<year>.json`` is a later stage's output."""

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
        return luigi.LocalTarget(str(redcaps().root / "stages" / "merged" / name))

    def run(self) -> None:
        merge_files([Path(t.path) for t in self.input()], self.output().path)
