"""``RedCapsBatch``: every subreddit-year of a YAML batch config, scheduled in chunks.

Luigi's scheduler slows down quadratically past a few thousand tasks, and one official
``*_2017`` year alone is ~130 tasks (120 months folded in), so the batch hands the
scheduler ``chunk_size`` years at a time through dynamic dependencies. The whole file is
validated when the task is created, before anything is scheduled: its structure by
:mod:`redcaps.batch`, its ``settings`` against the luigi.cfg sections they override. The
settings are applied when the batch is scheduled, once, in the worker that runs its years.

Several machines share one batch with ``--part i/n`` against one luigid: each takes every
n-th subreddit. A worker runs only tasks it scheduled itself, and chunks are scheduled from
inside ``run()``, so splitting the batch (not running it twice) is what spreads the work;
``[resources]`` still keep every image host and API within its limits across all of them.

With ``[redcaps] publish_to`` set, each year is a ``PublishYear`` and the batch is complete
when every year is published (one listing of the store, one manifest read a year), so a rerun
from any machine, even with an empty data dir, runs nothing and writes nothing there.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any

import luigi

from pipeline.publish import PublishYear
from pipeline.year import RedCapsYear, run_preflight, where_things_are
from redcaps import layout, preflight
from redcaps.atomic import write_json
from redcaps.batch import BatchConfig, load_batch
from redcaps.dataset.dedup import batch_duplicates
from redcaps.errors import RedCapsError
from redcaps.parts import parse_part
from redcaps.report.html import write_report
from redcaps.report.summary import summarize_dataset
from tasks.base import InDataDir
from tasks.collect import CollectionConfig, MergeYear
from tasks.config import DedupConfig
from tasks.publish_target import PublishedBatch, check_publish_target, publish_store
from tasks.scan import ScanDump, dump_scans

#: Sections a batch's ``settings`` may override, each a ``luigi.Config`` class (or free-form).
FREE_FORM_SECTIONS = {"host_limits"}


def _check_settings(batch: BatchConfig, where: str) -> None:
    """Every problem of the batch's ``settings`` at once, one line each."""
    problems = preflight.check_settings(batch.settings, where=f"{where}: ")
    for section, options in batch.settings.items():
        if section in FREE_FORM_SECTIONS:
            continue  # each value checked by the preflight (host policies)
        try:
            config_class = luigi.task_register.Register.get_task_cls(section)
        except luigi.task_register.TaskClassException:
            problems.append(f"{where}: settings.{section}: no such luigi.cfg section")
            continue
        known = {name for name, _ in config_class.get_params()}
        unknown = sorted(set(options) - known)
        if unknown:
            problems.append(
                f"{where}: settings.{section}: unknown option(s) {unknown} (known: {sorted(known)})"
            )
    if problems:
        raise RedCapsError("\n".join(dict.fromkeys(problems)))


def checked_batch(path: str) -> BatchConfig:
    """The batch at ``path``, validated with its settings; read again only when the file changes."""
    stat = os.stat(path) if os.path.exists(path) else None
    return _checked_batch(path, stat and (stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=16)
def _checked_batch(path: str, version: tuple[int, int] | None) -> BatchConfig:
    batch = load_batch(path)
    _check_settings(batch, path)
    return batch


#: The digest of the batch whose settings this process runs with (they are applied once).
_applied: str | None = None


def apply_settings(settings: dict[str, dict[str, str]], digest: str) -> None:
    """Override luigi.cfg for this process (and the workers it forks) with a batch's settings,
    once per batch. Config sections are luigi tasks cached per process, so the cache is
    cleared for them to be read again with the new values."""
    global _applied
    if _applied == digest:
        return
    _applied = digest
    if not settings:
        return
    config = luigi.configuration.get_config()
    for section, options in settings.items():
        if not config.has_section(section):
            config.add_section(section)
        for key, value in options.items():
            config.set(section, key, value.replace("%", "%%"))
    luigi.task_register.Register.clear_instance_cache()


class RedCapsBatch(InDataDir):
    """All subreddit-years of ``--config``; output: a summary of every file."""

    config = luigi.Parameter(description="YAML batch config (configs/*.yaml)")
    part = luigi.Parameter(default="1/1", description="i/n: this machine's share, every n-th subreddit")
    chunk_size = luigi.IntParameter(default=10, significant=False, description="Years scheduled at once")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Checks the whole config (and the options) before anything is scheduled; changes nothing."""
        super().__init__(*args, **kwargs)
        if self.chunk_size < 1:
            raise RedCapsError(f"--chunk-size must be at least 1, got {self.chunk_size}")
        self.part_index, self.part_count = parse_part(self.part)
        self.batch = checked_batch(self.config)

    def requires(self) -> list[luigi.Task]:
        """Scheduling the batch (in the worker that forks the years' processes) applies its settings,
        then checks everything its years need (the preflight) before any of them runs."""
        apply_settings(self.batch.settings, self.digest)
        pending = [year for year in self.years() if not year.complete()]
        if pending:  # a batch whose years are all done needs nothing, not even the network
            if publish_store() is not None:
                check_publish_target()
            run_preflight(sorted({year.subreddit for year in pending}))
        return []

    @property
    def digest(self) -> str:
        """Changes whenever the set of runs or the settings change, so an edited config reruns."""
        content = json.dumps(
            [[r.subreddit, r.year, r.first_year] for r in self.batch.runs] + [self.batch.settings]
        )
        return hashlib.sha256(content.encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        """The name of this batch's (part's) summary and report."""
        part = f"-part{self.part_index}of{self.part_count}" if self.part_count > 1 else ""
        return f"{self.batch.name}-{self.digest}{part}"

    @property
    def summary_path(self) -> str:
        """The local summary of the years this machine has (written when the batch runs here)."""
        return str(self.layout.stage_file(layout.BATCH, self.name))

    def output(self) -> luigi.LocalTarget | PublishedBatch:
        """The local summary; with ``publish_to``, every year published to the store."""
        store = publish_store()
        if store is not None:
            return PublishedBatch(store, self.name, [year.stem for year in self.years()])
        return luigi.LocalTarget(self.summary_path)

    def years(self) -> list[RedCapsYear] | list[PublishYear]:
        """This part's years, each ranked above the next: a worker finishes one year (its stages
        inherit its priority in luigid) before starting the next, so while it downloads, other
        workers can use the one-at-a-time collection APIs."""
        subreddits = sorted({r.subreddit for r in self.batch.runs})
        mine = set(subreddits[self.part_index - 1 :: self.part_count])
        runs = [r for r in self.batch.runs if r.subreddit in mine]
        years = []
        kind = RedCapsYear if publish_store() is None else PublishYear
        for rank, r in enumerate(runs):
            year = kind(subreddit=r.subreddit, year=r.year, first_year=r.first_year, data_dir=self.data_dir)
            year.priority = len(runs) - rank
            years.append(year)
        return years

    def dump_scans(self) -> list[ScanDump]:
        """From dumps: one scan per dump file for every subreddit-month of this part not yet
        collected nor staged, so each dump is read once for the whole batch."""
        settings = CollectionConfig().settings()
        if settings.source != "dump":
            return []
        wanted: dict[str, list] = {}
        publishing = publish_store() is not None
        for year in self.years():
            if publishing and year.complete():
                continue  # published (by any machine): its months are needed nowhere
            months = year.clone(MergeYear).months()
            missing = [m for m in months if not self.layout.month_file(year.subreddit, m).exists()]
            wanted.setdefault(year.subreddit, []).extend(missing)
        return dump_scans(self.data_dir, settings.dump_dir, wanted)

    def run(self) -> Iterator[list[RedCapsYear] | list[ScanDump]]:
        years = self.years()
        chunks = range(0, len(years), self.chunk_size)
        if not years:
            raise RedCapsError(f"{self.config}: part {self.part} has no subreddits (fewer than parts?)")
        scans = self.dump_scans()
        if scans:
            self.show_progress(f"scanning {len(scans)} dump files", 0)
            yield scans  # re-entered from the top once staged: then nothing is left to scan
        for number, start in enumerate(chunks, 1):
            chunk = years[start : start + self.chunk_size]
            message = f"chunk {number}/{len(chunks)}: {chunk[0].stem} .. {chunk[-1].stem}"
            self.show_progress(message, 100 * (number - 1) / len(chunks))
            yield chunk  # dynamic dependencies: re-entered from the top once the chunk is done
        where, stems = self.layout, self.local_stems()
        if not stems:
            return  # every year was published by other machines: nothing to summarize here
        duplicates = batch_duplicates(where, stems, self.name, DedupConfig().max_distance)
        report = write_report(
            where, where.report_file(self.name), stems, title=f"RedCaps report: {self.name}"
        )
        summary = summarize_dataset(where, stems)
        summary["duplicates"] = duplicates
        summary["config"] = self.config
        summary["report"] = str(report)
        write_json(self.summary_path, summary, indent=1)
        self.show_progress(f"{len(years)} years done", 100)

    def local_stems(self) -> list[str]:
        """The years whose files are in this data dir: all of them, unless publishing, where
        other machines may have done some."""
        stems = [y.stem for y in self.years()]
        if publish_store() is None:
            return stems
        return [stem for stem in stems if self.layout.stage_file(layout.YEAR, stem).exists()]

    def summary_text(self) -> str:
        """What the terminal shows when the batch is done: the summary and where things are."""
        stems, report = self.local_stems(), self.layout.report_file(self.name)
        store = publish_store()
        published = f"published: {len(self.years())} years to {store.url}" if store else ""
        if not stems:
            return published
        text = where_things_are(self.layout, stems, self.summary_path, str(report))
        return f"{text}\n{published}" if published else text
