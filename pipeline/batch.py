"""``RedCapsBatch``: every subreddit-year of a YAML config, scheduled in chunks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import luigi

from pipeline.year import RedCapsYear
from redcaps.atomic import write_json
from redcaps.batch import BatchConfig, load_batch
from redcaps.errors import RedCapsError
from redcaps.report import summarize_dataset
from tasks.config import redcaps


def apply_settings(batch: BatchConfig) -> None:
    """Put the config's ``settings`` into luigi's config, checking every option exists."""
    config = luigi.configuration.get_config()
    registry = {
        cls.get_task_family(): cls
        for cls in luigi.task_register.Register._get_reg().values()
        if isinstance(cls, type) and issubclass(cls, luigi.Config)
    }
    for section, options in batch.settings.items():
        cls = registry.get(section)
        if cls is not None:
            known = {name for name, _ in cls.get_params()}
            unknown = set(options) - known
            if unknown:
                raise RedCapsError(
                    f"settings.{section}: unknown options {sorted(unknown)} (known: {sorted(known)})"
                )
        if not config.has_section(section):
            config.add_section(section)
        for key, value in options.items():
            config.set(section, key, value)
    luigi.task_register.Register.clear_instance_cache()


class RedCapsBatch(luigi.Task):
    """Chunks of ``chunk_size`` subreddit-years at a time keep each graph a few thousand
    tasks at most, the size Luigi's scheduler handles comfortably."""

    config = luigi.Parameter(description="Path of a YAML batch config (see configs/)")
    chunk_size = luigi.IntParameter(default=20, significant=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch = load_batch(self.config)  # validated before anything is scheduled
        apply_settings(self.batch)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(redcaps().root / "stages" / "batch" / f"{self.task_id}.json"))

    def years(self) -> list[RedCapsYear]:
        return [
            RedCapsYear(subreddit=r.subreddit, year=r.year, first_year=r.first_year) for r in self.batch.runs
        ]

    def run(self) -> Iterator[list[RedCapsYear]]:
        years = self.years()
        for start in range(0, len(years), self.chunk_size):
            yield years[start : start + self.chunk_size]
        summary = summarize_dataset(redcaps().root)
        stems = {r.stem for r in self.batch.runs}
        summary["files"] = {k: v for k, v in summary["files"].items() if k in stems}
        write_json(self.output().path, {"config": self.batch.name, **summary}, indent=1)
