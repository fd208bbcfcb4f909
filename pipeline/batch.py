"""``RedCapsBatch``: every subreddit-year of a YAML batch config, scheduled in chunks.

Luigi's scheduler slows down quadratically past a few thousand tasks, and one official
``*_2017`` year alone is ~130 tasks (120 months folded in), so the batch hands the
scheduler ``chunk_size`` years at a time through dynamic dependencies. The whole file is
validated when the task is created, before anything is scheduled: its structure by
:mod:`redcaps.batch`, its ``settings`` against the luigi.cfg sections they override.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import luigi

from pipeline.year import RedCapsYear
from redcaps.atomic import write_json
from redcaps.batch import BatchConfig, load_batch
from redcaps.errors import RedCapsError
from redcaps.http import parse_host_policy
from redcaps.report import summarize_dataset
from tasks.base import report_progress
from tasks.config import redcaps

#: Sections a batch's ``settings`` may override, each a ``luigi.Config`` class (or free-form).
FREE_FORM_SECTIONS = {"host_limits"}


def _check_settings(batch: BatchConfig, where: str) -> None:
    for section, options in batch.settings.items():
        if section in FREE_FORM_SECTIONS:
            for host, text in options.items():
                try:
                    parse_host_policy(text)
                except (RedCapsError, ValueError) as exc:
                    raise RedCapsError(f"{where}: settings.{section}.{host}: {exc}") from None
            continue
        try:
            config_class = luigi.task_register.Register.get_task_cls(section)
        except luigi.task_register.TaskClassException:
            raise RedCapsError(f"{where}: settings.{section}: no such luigi.cfg section") from None
        known = {name for name, _ in config_class.get_params()}
        unknown = sorted(set(options) - known)
        if unknown:
            raise RedCapsError(
                f"{where}: settings.{section}: unknown option(s) {unknown} (known: {sorted(known)})"
            )


def apply_settings(settings: dict[str, dict[str, str]]) -> None:
    """Override luigi.cfg for this process (and the workers it forks) with a batch's settings.

    Config sections are luigi tasks cached per process, so the cache is cleared for them to
    be read again with the new values."""
    if not settings:
        return
    config = luigi.configuration.get_config()
    for section, options in settings.items():
        if not config.has_section(section):
            config.add_section(section)
        for key, value in options.items():
            config.set(section, key, value.replace("%", "%%"))
    luigi.task_register.Register.clear_instance_cache()


class RedCapsBatch(luigi.Task):
    """All subreddit-years of ``--config``; output: a summary of every file."""

    config = luigi.Parameter(description="YAML batch config (configs/*.yaml)")
    chunk_size = luigi.IntParameter(default=10, significant=False, description="Years scheduled at once")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.chunk_size < 1:
            raise RedCapsError(f"--chunk-size must be at least 1, got {self.chunk_size}")
        self.batch = load_batch(self.config)
        _check_settings(self.batch, self.config)
        apply_settings(self.batch.settings)

    @property
    def digest(self) -> str:
        """Changes whenever the set of runs or the settings change, so an edited config reruns."""
        content = json.dumps(
            [[r.subreddit, r.year, r.first_year] for r in self.batch.runs] + [self.batch.settings]
        )
        return hashlib.sha256(content.encode()).hexdigest()[:12]

    def output(self) -> luigi.LocalTarget:
        name = f"{self.batch.name}-{self.digest}.json"
        return luigi.LocalTarget(str(redcaps().root / "stages" / "batch" / name))

    def years(self) -> list[RedCapsYear]:
        return [
            RedCapsYear(subreddit=r.subreddit, year=r.year, first_year=r.first_year) for r in self.batch.runs
        ]

    def run(self) -> Iterator[list[RedCapsYear]]:
        years = self.years()
        chunks = range(0, len(years), self.chunk_size)
        for number, start in enumerate(chunks, 1):
            chunk = years[start : start + self.chunk_size]
            message = f"chunk {number}/{len(chunks)}: {chunk[0].stem} .. {chunk[-1].stem}"
            report_progress(self, message, 100 * (number - 1) / len(chunks))
            yield chunk  # dynamic dependencies: re-entered from the top once the chunk is done
        summary = summarize_dataset(redcaps().root, [y.stem for y in years])
        summary["config"] = self.config
        write_json(self.output().path, summary, indent=1)
