"""Annotation collection: one task per subreddit-month, one per merged year.

Settings are the ``[collection]`` section of luigi.cfg (``redcaps.collect.month.CollectionSettings``):
config, not task parameters, so they do not change task ids and the web UI does not show them.
Secrets are never settings: ``credentials`` is only the path of credentials.json, and the
Pushshift token, Reddit and Imgur keys come from that file or environment variables.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import luigi

from redcaps import annotations as ann
from redcaps import layout
from redcaps.collect.credentials import Credentials, load_credentials
from redcaps.collect.month import build_imgur, build_refresher, build_source, collect_month
from redcaps.collect.preview_file import save_previews
from redcaps.collect.scan import StagedDumpSource
from redcaps.merge import merge_files
from redcaps.settings import SOURCES, CollectionSettings
from tasks.base import InDataDir
from tasks.config import CaptionsConfig, Section, settings_from
from tasks.scan import ScanDump, dump_file, dump_scans


class CollectionConfig(Section):
    section = "collection"
    source = luigi.ChoiceParameter(choices=list(SOURCES), default=CollectionSettings.source)
    arctic_shift_url = luigi.Parameter(default=CollectionSettings.arctic_shift_url)
    pushshift_url = luigi.Parameter(default=CollectionSettings.pushshift_url, description="$PUSHSHIFT_TOKEN")
    pushshift_flavour = luigi.ChoiceParameter(
        choices=["pushshift", "pullpush"], default=CollectionSettings.pushshift_flavour
    )
    dump_dir = luigi.Parameter(default=CollectionSettings.dump_dir, description="Dump directory or file")
    min_score = luigi.IntParameter(default=CollectionSettings.min_score, description="Drop posts below this")
    credentials = luigi.Parameter(default=CollectionSettings.credentials, description="credentials.json path")

    def settings(self) -> CollectionSettings:
        return settings_from(self, CollectionSettings)

    def load_credentials(self) -> Credentials:
        """Never raises: a bad file is reported when a stage needs the section."""
        return load_credentials(Path(self.credentials).expanduser() if self.credentials else None)


#: ``[resources]`` a FetchMonth holds, per source (dump files need none).
SOURCE_RESOURCES = {"arctic-shift": "arctic_shift", "pushshift": "pushshift"}


def _wants(creds: Credentials, section: str) -> bool:
    """A section is used when it is configured, or broken (then the stage reports why)."""
    return getattr(creds, section) is not None or section in creds.problems


class FetchMonth(InDataDir):
    """Image posts of one subreddit-month (the original's monthly file), sorted by time."""

    subreddit = luigi.Parameter()
    month = luigi.MonthParameter(description="YYYY-MM")

    @property
    def resources(self) -> dict[str, int]:  # type: ignore[override]
        """One slot per outside service this month uses, so workers sharing a luigid never
        query one service concurrently and each process's rate limiter is the global one."""
        config = CollectionConfig()
        creds = config.load_credentials()
        used = {SOURCE_RESOURCES.get(config.source)}
        used |= {
            "reddit_api" if _wants(creds, "reddit") else None,
            "imgur_api" if _wants(creds, "imgur") else None,
        }
        return {name: 1 for name in sorted(n for n in used if n)}

    def requires(self) -> list[ScanDump]:
        """From dumps, the scan staging this month: of its dump file, or, when the file holds the
        subreddit's whole history, of the whole calendar year at once (one pass, not twelve)."""
        settings = CollectionConfig().settings()
        if settings.source != "dump":
            return []
        _, whole_history = dump_file(settings.dump_dir, self.subreddit, self.month)
        months = [self.month.replace(month=m) for m in range(1, 13)] if whole_history else [self.month]
        return dump_scans(self.data_dir, settings.dump_dir, {self.subreddit: months}, only_missing=False)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.layout.month_file(self.subreddit, self.month)))

    def run(self) -> None:
        config = CollectionConfig()
        creds = config.load_credentials()
        settings = config.settings()
        self.show_progress(f"collecting from {settings.source}", 0)
        if settings.source == "dump":  # staged by ScanDump: the dump itself is never read here
            source = StagedDumpSource(self.layout.dump_staging)
        else:
            source = build_source(
                settings.source,
                **dataclasses.asdict(settings),
                on_wait=lambda message: self.show_progress(message),
            )
        previews: dict[str, dict] = {}
        result = collect_month(
            self.subreddit,
            self.month.year,
            self.month.month,
            source=source,
            refresher=build_refresher(creds),
            imgur=build_imgur(creds),
            min_score=settings.min_score,
            drop_empty_captions=CaptionsConfig().settings().drop_empty,
            previews=previews,
        )
        save_previews(self.layout.month_previews(self.subreddit, self.month), previews)  # before the output
        ann.save(self.output().path, result)  # atomic: a failed month leaves no file
        self.show_progress(f"{len(result.annotations)} posts", 100)


class MergeYear(InDataDir):
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
        return [self.clone(FetchMonth, month=m) for m in self.months()]

    def output(self) -> luigi.LocalTarget:
        stem = layout.stem(self.subreddit, self.year)
        return luigi.LocalTarget(str(self.layout.stage_file(layout.MERGED, stem)))

    def run(self) -> None:
        self.show_progress(f"merging {len(self.input())} months", 0)
        result = merge_files([Path(t.path) for t in self.input()], self.output().path)
        self.show_progress(f"{len(self.input())} months merged: {result.records} instances", 100)
