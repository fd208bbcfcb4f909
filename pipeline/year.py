"""``RedCapsYear``: one subreddit-year from Reddit posts to validated WebDataset shards.

The graph, in the original tool's order::

    FetchMonth x12 -> MergeYear -> DownloadImages (shards) -> FilterWords -> FilterNsfw
        -> FilterFaces -> Dedup -> Publish -> Validate + Tarify -> Report

Each stage has its own target, so a run killed anywhere resumes at the first missing one.
Which filters run is ``[filters] enabled``; every other setting comes from luigi.cfg.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import luigi
from luigi.cmdline_parser import CmdlineParser

from pipeline import progress
from redcaps import layout, preflight
from redcaps.atomic import read_json, write_json
from redcaps.dataset.dedup import read_counts
from redcaps.dataset.tarify import read_index
from redcaps.errors import RedCapsError
from redcaps.names import check_subreddit, check_year, subreddit_as_typed
from redcaps.report.summary import format_summary, summarize_dataset, summarize_file
from tasks import dedup, download, publish  # noqa: F401 - stages of the year list, found by family
from tasks.base import InDataDir, stage_list
from tasks.collect import CollectionConfig, MergeYear
from tasks.config import FiltersConfig, RedcapsConfig, Section
from tasks.filters import SECTIONS
from tasks.report import Report
from tasks.tarify import Tarify
from tasks.validate import Validate


class PreflightConfig(Section):
    """``[preflight] network = false`` (or ``--preflight-network false``): no request
    to the post source before a run, for offline dump sources."""

    section = "preflight"
    network = luigi.BoolParameter(
        default=preflight.PreflightSettings.network,
        parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        description="Send one request to the post source before a run",
    )


#: Preflights that passed in this process, by what they checked (settings included).
_passed: set[str] = set()


def raw_settings() -> dict[str, dict[str, str]]:
    """The strings luigi will parse for the checked sections: luigi.cfg, then the command line's
    ``--<section>-<option>`` values (which luigi parses only when a section is first read)."""
    config = luigi.configuration.get_config()
    sections = [*preflight.SECTION_TYPES, "filters", "redcaps"]
    raw = {s: dict(config.items(s)) for s in sections if config.has_section(s)}
    parser = CmdlineParser.get_instance()
    for section in sections if parser else ():
        try:
            params = luigi.task_register.Register.get_task_cls(section).get_params()
        except luigi.task_register.TaskClassException:
            continue
        for name, _ in params:
            value = getattr(parser.known_args, f"{section}_{name}", None)
            if value is not None:
                raw.setdefault(section, {})[name] = value
    return raw


def run_preflight(subreddits: Sequence[str] = (), collect: bool = True, filtering: bool = True) -> None:
    """Every check of :mod:`redcaps.preflight` against this process's luigi.cfg, before any task
    runs (called from the workflow tasks' ``requires()``, once per process and settings).
    Raises one ``PreflightError`` listing every problem; writes nothing."""
    raw = raw_settings()
    key = json.dumps(
        [sorted(subreddits), collect, filtering, raw, preflight.models_dir_text()], sort_keys=True
    )
    if key in _passed:
        return
    problems = preflight.check_settings(raw) + preflight.check_subreddits(subreddits)
    preflight.raise_problems(problems)  # the other checks read these settings
    try:
        names = FiltersConfig().names() if filtering else []
    except RedCapsError as exc:
        names, problems = [], [str(exc)]
    problems += preflight.check_models({name: SECTIONS[name][0]().model for name in names if name != "words"})
    dir_problems, free = preflight.check_data_dir(RedcapsConfig().data_dir)
    problems += dir_problems
    if collect:
        settings = CollectionConfig().settings()
        problems += preflight.check_collection(settings, subreddits, network=PreflightConfig().network)
    preflight.raise_problems(problems)
    progress.note(free)
    _passed.add(key)


class SubredditParameter(luigi.Parameter):
    """A subreddit as typed: ``r/cats`` is ``cats``."""

    def normalize(self, x: Any) -> str:
        return subreddit_as_typed(str(x))


class RedCapsYear(InDataDir):
    """Collect, download, filter, validate and pack ``r/<subreddit>`` for one year.

    ``--first-year`` folds earlier years into this one's file, as the official ``*_2017``
    files hold 2008-2017. The output is a short summary of what each stage did.
    """

    subreddit = SubredditParameter(description="Subreddit name (r/ optional)")
    year = luigi.IntParameter(description="Calendar year (UTC)")
    first_year = luigi.OptionalIntParameter(default=None, description="First year folded into this file")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """The subreddit and years are checked as a batch config's are, before anything is scheduled."""
        super().__init__(*args, **kwargs)
        check_subreddit(self.subreddit)
        check_year(self.year, "--year")
        if self.first_year is not None:
            check_year(self.first_year, "--first-year")
            if self.first_year > self.year:
                raise RedCapsError(f"--first-year: {self.first_year} is after --year {self.year}")

    @property
    def stem(self) -> str:
        return layout.stem(self.subreddit, self.year)

    def stages(self) -> tuple[Validate, Tarify, Report]:
        """The final stages of the year list; every other stage is upstream of them."""
        return (
            self.clone(Validate, graph="year"),
            self.clone(Tarify, graph="year"),
            self.clone(Report, graph="year"),
        )

    def requires(self) -> tuple[Validate, Tarify, Report]:
        run_preflight([self.subreddit])  # scheduling a year that is not done checks everything first
        return self.stages()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.layout.stage_file(layout.YEAR, self.stem)))

    def complete(self) -> bool:
        """Incomplete again while a stage has work (a download shard with failures to retry)."""
        return super().complete() and all(task.complete() for task in self.stages())

    def run(self) -> None:
        validate, tarify, report = self.stages()
        done = len(stage_list("year")) + 1  # and Validate
        self.show_progress(f"{done} stages done; summarizing", 90)
        where = self.layout
        summary = {
            "annotations": str(validate.input_path),
            "tarfiles": read_index(where, tarify.stem)["shards"],
            "report": report.output().path,
        }
        summary.update(summarize_file(where, self.stem))
        duplicates = read_counts(where, self.stem)
        if duplicates is not None:
            summary["duplicates"] = duplicates
        if not summary.get("collected", {}).get("considered"):
            summary["empty"] = self.empty_warning()
            logging.getLogger("luigi-interface").warning("%s", summary["empty"])
        write_json(self.output().path, summary, indent=1)
        self.show_progress(f"{done + 1} stages done", 100)

    def empty_warning(self) -> str:
        months = self.clone(MergeYear).months()
        span = f"{months[0]:%Y-%m}..{months[-1]:%Y-%m}"
        source = CollectionConfig().settings().source
        return (
            f"r/{self.subreddit}: no posts at all in {span} from {source} (misspelled, or the wrong years?)"
        )

    def summary_text(self) -> str:
        """What the terminal shows when the year is done: the summary and where things are."""
        report = self.clone(Report, graph="year").output().path
        text = where_things_are(self.layout, [self.stem], self.output().path, report)
        empty = (read_json(self.output().path) or {}).get("empty")
        return f"{text}\nwarning: {empty}" if empty else text


def where_things_are(where: layout.Layout, stems: Sequence[str], summary_file: str, report: str = "") -> str:
    """The summary of ``stems``, then where its summary file, HTML report and tars are."""
    summary = format_summary(summarize_dataset(where, stems))
    report_line = f"\nreport: {report}" if report else ""
    return f"{summary}\nsummary file: {summary_file}{report_line}\ntars: {where.tarfiles}"
