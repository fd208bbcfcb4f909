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
from collections.abc import Iterator, Sequence

import luigi
from luigi.cmdline_parser import CmdlineParser

from pipeline import progress
from redcaps import layout
from redcaps import preflight as checks
from redcaps.atomic import read_json, write_json
from redcaps.dataset.dedup import read_counts
from redcaps.dataset.tarify import read_index
from redcaps.errors import RedCapsError
from redcaps.report.summary import format_summary, summarize_dataset, summarize_file
from tasks.base import InDataDir, StageTask, report_progress
from tasks.collect import MergeYear, collection
from tasks.config import data_layout, filters, redcaps
from tasks.dedup import Dedup
from tasks.download import DownloadImages
from tasks.filters import SECTIONS, FilterFaces, FilterNsfw, FilterWords
from tasks.publish import Publish
from tasks.report import Report
from tasks.tarify import Tarify
from tasks.validate import Validate

FILTER_TASKS: dict[str, type[StageTask]] = {"words": FilterWords, "nsfw": FilterNsfw, "faces": FilterFaces}


class preflight(luigi.Config):  # noqa: N801 - the section is [preflight] (checks.PreflightSettings)
    """``[preflight] network = false`` (or ``--preflight-network false``): no request
    to the post source before a run, for offline dump sources."""

    network = luigi.BoolParameter(
        default=checks.PreflightSettings.network,
        parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        description="Send one request to the post source before a run",
    )


#: Preflights that passed in this process, by what they checked (settings included).
_passed: set[str] = set()


def raw_settings() -> dict[str, dict[str, str]]:
    """The strings luigi will parse for the checked sections: luigi.cfg, then the command line's
    ``--<section>-<option>`` values (which luigi parses only when a section is first read)."""
    config = luigi.configuration.get_config()
    sections = [*checks.SECTION_TYPES, "filters", "redcaps"]
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
    key = json.dumps([sorted(subreddits), collect, filtering, raw, checks.models_dir_text()], sort_keys=True)
    if key in _passed:
        return
    problems = checks.check_settings(raw) + checks.check_subreddits(subreddits)
    checks.raise_problems(problems)  # the other checks read these settings
    try:
        names = filters().names() if filtering else []
    except RedCapsError as exc:
        names, problems = [], [str(exc)]
    problems += checks.check_models({name: SECTIONS[name][0]().model for name in names if name != "words"})
    dir_problems, free = checks.check_data_dir(redcaps().data_dir)
    problems += dir_problems
    if collect:
        problems += checks.check_collection(collection().settings(), subreddits, network=preflight().network)
    checks.raise_problems(problems)
    progress.note(free)
    _passed.add(key)


def year_stages(subreddit: str, year: int, first_year: int | None = None) -> tuple[Validate, Tarify]:
    """The last two stages of a subreddit-year; everything else hangs off them."""
    current: luigi.Task = DownloadImages(
        annotations=MergeYear(subreddit=subreddit, year=year, first_year=first_year)
    )
    for name in filters().names():
        current = FILTER_TASKS[name](annotations=current)
    published = Publish(annotations=Dedup(annotations=current))
    return Validate(annotations=published), Tarify(annotations=published)


class RedCapsYear(InDataDir):
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

    def stages(self) -> tuple[Validate, Tarify, Report]:
        validate, tarify = year_stages(self.subreddit, self.year, self.first_year)
        return validate, tarify, Report(annotations=validate.annotations)

    def requires(self) -> tuple[Validate, Tarify, Report]:
        run_preflight([self.subreddit])  # scheduling a year that is not done checks everything first
        return self.stages()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(data_layout().stage_file(layout.YEAR, self.stem)))

    def complete(self) -> bool:
        """Incomplete again while a stage has work (a download shard with failures to retry)."""
        return super().complete() and all(task.complete() for task in self.stages())

    def run(self) -> None:
        validate, tarify, report = self.stages()
        report_progress(self, f"{len(list(stage_chain(validate)))} stages done; summarizing", 90)
        where = data_layout()
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
        report_progress(self, f"{len(list(stage_chain(validate))) + 1} stages done", 100)

    def empty_warning(self) -> str:
        months = MergeYear(subreddit=self.subreddit, year=self.year, first_year=self.first_year).months()
        span = f"{months[0]:%Y-%m}..{months[-1]:%Y-%m}"
        source = collection().settings().source
        return (
            f"r/{self.subreddit}: no posts at all in {span} from {source} (misspelled, or the wrong years?)"
        )

    def summary_text(self) -> str:
        """What the terminal shows when the year is done: the summary and where things are."""
        text = where_things_are(data_layout(), [self.stem], self.output().path)
        empty = (read_json(self.output().path) or {}).get("empty")
        return f"{text}\nwarning: {empty}" if empty else text


def stage_chain(task: luigi.Task) -> Iterator[luigi.Task]:
    """``task`` and every stage upstream of it (its ``annotations`` chain)."""
    while isinstance(task, luigi.Task):
        yield task
        task = getattr(task, "annotations", None)


def where_things_are(where: layout.Layout, stems: Sequence[str], report: str) -> str:
    summary = format_summary(summarize_dataset(where, stems))
    return f"{summary}\nsummary file: {report}\ntars: {where.tarfiles}"
