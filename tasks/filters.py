"""Content filter stages: FilterWords -> FilterNsfw -> FilterFaces (the original's order).

Each writes ``stages/filter_<kind>/<stem>.json`` (the filtered file, with ``info.<kind>_filter``)
and ``<stem>.removals.jsonl`` beside it, and deletes the removed instances' images; the run and
its crash-safe commit are ``redcaps.filters.stage.run_filter``, shared with the CLI. Settings are
luigi.cfg sections (``[filter_words]``, ``[filter_nsfw]``, ``[filter_faces]``), not parameters.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import ClassVar

import luigi

from redcaps import integrity
from redcaps.atomic import sweep_temp_files
from redcaps.filters.base import FILTER_KEYS, ImageScorer
from redcaps.filters.models import models_dir
from redcaps.filters.stage import FilterPaths, FilterResult, new_scorer, run_filter
from redcaps.settings import FaceSettings, FilterSettings, ImageFilterSettings, NsfwSettings, WordSettings
from tasks.base import StageTask, Throttled
from tasks.config import Section, settings_from

DEVICES = ["auto", "cpu", "cuda"]


class FilterWordsConfig(Section):
    section = "filter_words"
    mode = luigi.ChoiceParameter(choices=["exact", "punctuation"], default=WordSettings.mode)


class ImageFilterConfig(Section):
    """ImageFilterSettings, shared by the two sections below."""

    model = luigi.Parameter(default=ImageFilterSettings.model, description="Model file; empty: the default")
    confidence_threshold = luigi.FloatParameter(default=ImageFilterSettings.confidence_threshold)
    workers = luigi.IntParameter(default=ImageFilterSettings.workers, description="Image decoding threads")
    device = luigi.ChoiceParameter(choices=DEVICES, default=ImageFilterSettings.device)


class FilterNsfwConfig(ImageFilterConfig):
    section = "filter_nsfw"
    batch_size = luigi.IntParameter(default=NsfwSettings.batch_size)


class FilterFacesConfig(ImageFilterConfig):
    section = "filter_faces"
    batch_size = luigi.IntParameter(default=FaceSettings.batch_size)
    long_edge = luigi.IntParameter(default=FaceSettings.long_edge, description="0: as stored")
    pad = luigi.BoolParameter(default=FaceSettings.pad, description="One padded model call per batch (GPU)")


SECTIONS: dict[str, tuple[type[luigi.Config], type[FilterSettings]]] = {
    "words": (FilterWordsConfig, WordSettings),
    "nsfw": (FilterNsfwConfig, NsfwSettings),
    "faces": (FilterFacesConfig, FaceSettings),
}


@functools.lru_cache(maxsize=4)
def cached_scorer(kind: str, settings: FilterSettings, models: str) -> ImageScorer:
    """One loaded model per worker process, reused by every file it filters (``models`` is part
    of the key only, so a changed ``$REDCAPS_MODELS_DIR`` loads afresh)."""
    return new_scorer(kind, settings)


class _FilterTask(StageTask):
    kind: ClassVar[str]

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.layout.filtered(self.kind, self.stem)))

    @property
    def paths(self) -> FilterPaths:
        return FilterPaths(
            source=self.input_path,
            output=Path(self.output().path),
            removals=self.layout.removals(self.kind, self.stem),
            images=self.layout.images,
        )

    @property
    def pending_path(self) -> Path:
        return self.paths.pending(self.kind)

    def settings(self) -> FilterSettings:
        section, cls = SECTIONS[self.kind]
        return settings_from(section(), cls)

    def run(self) -> None:
        output = Path(self.output().path)
        if not integrity.intact(self.layout.root, output):
            output.unlink(missing_ok=True)  # damaged: filtered again (its removals record stays)
        settings = self.settings()
        progress = Throttled(
            lambda done, total: self.show_progress(f"{done}/{total} images scored", 100 * done / total)
        )
        result = run_filter(
            self.kind,
            self.paths,
            settings,
            scorer=lambda: cached_scorer(self.kind, settings, str(models_dir())),
            progress=progress,
        )
        self.record_artefacts()
        sweep_temp_files(output.parent, older_than=0, named=f"{self.stem}.")  # a killed run's
        self.show_progress(_describe(result), 100.0)


def _describe(result: FilterResult) -> str:
    if result.status == "already_applied":
        return f"{FILTER_KEYS[result.kind]} already applied: nothing removed"
    if result.status == "resumed":
        return f"finished an interrupted commit: {result.removed} removed"
    skipped = f", {len(result.skipped)} unreadable (kept)" if result.skipped else ""
    return f"{result.removed} of {result.total} removed{skipped}"


class FilterWords(_FilterTask):
    """Remove instances whose cleaned caption has an LDNOOBW ``en`` word (``[filter_words] mode``)."""

    kind = "words"


class FilterNsfw(_FilterTask):
    """Remove instances whose image is NSFW (GantMan model: porn + hentai > threshold)."""

    kind = "nsfw"


class FilterFaces(_FilterTask):
    """Remove instances whose image shows a face (RetinaFace: best face score > threshold)."""

    kind = "faces"
