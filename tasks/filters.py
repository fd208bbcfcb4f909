"""The release filters as stages: words, then NSFW images, then faces (the original's order)."""

from __future__ import annotations

import abc
from typing import ClassVar

import luigi

from redcaps.filters.base import FilterOutcome, commit
from tasks.base import StageTask


class filters(luigi.Config):  # noqa: N801 - the section is [filters]
    enabled = luigi.Parameter(
        default="words,nsfw,faces", description="Comma list of filters RedCapsYear runs"
    )
    words_mode = luigi.ChoiceParameter(choices=["exact", "punctuation"], default="exact")
    nsfw_model = luigi.Parameter(default="", description="Empty: the offline default model")
    nsfw_threshold = luigi.FloatParameter(default=0.9)
    face_model = luigi.Parameter(default="", description="Empty: the offline default model")
    face_threshold = luigi.FloatParameter(default=0.9)
    batch_size = luigi.IntParameter(default=32)
    workers = luigi.IntParameter(default=4, description="Image decoding threads")
    device = luigi.ChoiceParameter(choices=["auto", "cpu", "cuda"], default="auto")

    def names(self) -> list[str]:
        names = [n.strip() for n in self.enabled.split(",") if n.strip()]
        unknown = set(names) - set(FILTER_TASKS)
        if unknown:
            raise ValueError(f"[filters] enabled: unknown filters {sorted(unknown)}")
        return [n for n in FILTER_TASKS if n in names]  # always the original's order


class FilterTask(StageTask):
    """Write the filtered file and a removal record; delete removed images only after that."""

    filter_name: ClassVar[str]

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.stage_path()))

    @abc.abstractmethod
    def apply(self, config: filters) -> FilterOutcome:
        """Run the filter on the input file (the core does the work)."""

    def run(self) -> None:
        outcome = self.apply(filters())
        commit(outcome, self.output().path, self.root / "images", self.stage_path(".removed.jsonl"))
        self.report(f"removed {len(outcome.removals)}, could not judge {len(outcome.skipped)}")


class FilterWords(FilterTask):
    stage = "filter-words"
    filter_name = "words"

    def apply(self, config: filters) -> FilterOutcome:
        from redcaps.filters.words import filter_words

        return filter_words(self.load_input(), mode=config.words_mode)


class FilterNsfw(FilterTask):
    stage = "filter-nsfw"
    filter_name = "nsfw"
    resources = {"filter_model": 1}  # one model in memory per worker machine at a time

    def apply(self, config: filters) -> FilterOutcome:
        from redcaps.filters.nsfw import filter_nsfw

        return filter_nsfw(
            self.load_input(),
            self.root / "images",
            model=config.nsfw_model or None,
            threshold=config.nsfw_threshold,
            batch_size=config.batch_size,
            workers=config.workers,
            device=config.device,
        )


class FilterFaces(FilterTask):
    stage = "filter-faces"
    filter_name = "faces"
    resources = {"filter_model": 1}

    def apply(self, config: filters) -> FilterOutcome:
        from redcaps.filters.faces import filter_faces

        return filter_faces(
            self.load_input(),
            self.root / "images",
            model=config.face_model or None,
            threshold=config.face_threshold,
            batch_size=config.batch_size,
            workers=config.workers,
            device=config.device,
        )


FILTER_TASKS: dict[str, type[FilterTask]] = {"words": FilterWords, "nsfw": FilterNsfw, "faces": FilterFaces}
