"""The dump scan as tasks: each dump file read once for every subreddit-month that needs it.

:class:`ScanDump` stages the raw posts of several subreddits from one dump file
(:func:`redcaps.collect.scan.scan_dump`); it is complete when every staging file it would write
exists, whichever scan wrote them, so a batch's big scan also satisfies a single year's
``FetchMonth``. :func:`dump_scans` groups the subreddit-months still to stage by the dump file
holding them: one task per file.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path

import luigi

from redcaps.collect.month import month_bounds
from redcaps.collect.scan import scan_dump
from redcaps.collect.sources.dump import DumpSource
from redcaps.layout import Layout
from tasks.base import InDataDir


class ScanDump(InDataDir):
    """Stage the posts of ``subreddits`` in ``months`` from one dump file, in one pass."""

    dump = luigi.Parameter(description="An RS_YYYY-MM.zst or <sub>_submissions.zst file")
    subreddits = luigi.ListParameter(description="Subreddits staged (normalized names)")
    months = luigi.ListParameter(description="YYYY-MM of the months staged")

    def output(self) -> list[luigi.LocalTarget]:
        return [
            luigi.LocalTarget(str(self.layout.dump_staging(s, m)))
            for s in self.subreddits
            for m in self.months
        ]

    def locks(self) -> list[tuple[str, bool]]:
        """One scan of a dump file at a time (its staging files are many, each written whole)."""
        return [(f"scan-{Path(self.dump).name}", False)]

    def run(self) -> None:
        self.show_progress(f"scanning {Path(self.dump).name} for {len(self.subreddits)} subreddits", 0)
        counts = scan_dump(Path(self.dump), self.subreddits, self.layout.dump_staging, self.months)
        self.show_progress(f"{counts.lines} lines read, {sum(counts.staged.values())} posts staged", 100)


def dump_file(dump_dir: str, subreddit: str, month: dt.date) -> tuple[Path, bool]:
    """The dump file holding a subreddit-month, and whether it holds other months too."""
    _, _, start, end = month_bounds(month.year, month.month)
    paths, whole_history = DumpSource(Path(dump_dir).expanduser()).files_for(subreddit, start, end)
    return paths[0], whole_history


def dump_scans(
    data_dir: str, dump_dir: str, wanted: dict[str, list[dt.date]], only_missing: bool = True
) -> list[ScanDump]:
    """One :class:`ScanDump` per dump file for the subreddit-months in ``wanted`` (subreddit ->
    months), leaving out those already staged unless ``only_missing`` is false."""
    where = Layout.at(data_dir)
    groups: dict[Path, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for subreddit, months in wanted.items():
        name = subreddit.lower()
        for month in months:
            key = f"{month:%Y-%m}"
            if only_missing and where.dump_staging(name, key).exists():
                continue
            path, _ = dump_file(dump_dir, subreddit, month)
            groups[path][0].add(name)
            groups[path][1].add(key)
    return [
        ScanDump(dump=str(path), subreddits=sorted(subs), months=sorted(months), data_dir=data_dir)
        for path, (subs, months) in sorted(groups.items())
    ]
