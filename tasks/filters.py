"""Content filter stages: FilterWords -> FilterNsfw -> FilterFaces (the original's order).

Each writes ``stages/<stage>/<stem>.json`` (the filtered file, with ``info.<kind>_filter``) and
``stages/<stage>/<stem>.removals.jsonl`` (one line per removed instance), and deletes the removed
instances' images from ``<data_dir>/images``.

Crash safety: the filtered file is first written durably under a ``.pending`` name, then the
images are deleted, and only then is it renamed to the output, so the task is complete only when
whole. A rerun that finds a ``.pending`` file finishes that commit (deletes the recorded images,
renames) instead of filtering again: re-filtering would wrongly keep instances whose image it
already deleted, since missing images are not judged.

Settings are luigi.cfg sections (``[filter_words]``, ``[filter_nsfw]``, ``[filter_faces]``),
not task parameters, so changing a batch size never changes a task id.
"""

from __future__ import annotations

import abc
import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import luigi

from redcaps import annotations as ann
from redcaps.filters import base
from redcaps.models import models_dir
from tasks.base import StageTask


class filter_words(luigi.Config):  # noqa: N801 - the section is [filter_words]
    mode = luigi.ChoiceParameter(
        choices=["exact", "punctuation"],
        default="exact",
        description="exact: the original rule; punctuation: also words touching punctuation",
    )


class filter_nsfw(luigi.Config):  # noqa: N801
    model = luigi.Parameter(default="", description="Model file (.h5/.onnx); empty: the installed default")
    confidence_threshold = luigi.FloatParameter(default=0.9, description="Flag when porn + hentai > this")
    batch_size = luigi.IntParameter(default=32)
    workers = luigi.IntParameter(default=4, description="Image decoding threads")
    device = luigi.ChoiceParameter(choices=["auto", "cpu", "cuda"], default="auto")


class filter_faces(luigi.Config):  # noqa: N801
    model = luigi.Parameter(default="", description="Model file (.onnx/.pth); empty: the installed default")
    confidence_threshold = luigi.FloatParameter(default=0.9, description="Flag when best face score > this")
    batch_size = luigi.IntParameter(default=16)
    workers = luigi.IntParameter(default=4, description="Image decoding threads")
    device = luigi.ChoiceParameter(choices=["auto", "cpu", "cuda"], default="auto")
    long_edge = luigi.IntParameter(
        default=512,
        description="Longer edge to resize to first, as the original stored images (0: as stored)",
    )
    pad = luigi.BoolParameter(
        default=False, description="One padded model call per batch (GPU throughput; border scores can shift)"
    )


class _FilterTask(StageTask):
    """Shared run(): filter the input in memory, then commit in the crash-safe order."""

    kind: ClassVar[str]

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.stage_path()))

    @property
    def removals_path(self) -> Path:
        return self.stage_path(".removals.jsonl")

    @property
    def pending_path(self) -> Path:
        return self.stage_path(".json.pending")

    @property
    def image_dir(self) -> Path:
        return self.root / "images"

    @abc.abstractmethod
    def filter(self, annotations: ann.AnnotationFile) -> base.FilterOutcome:
        """The filter's outcome for ``annotations`` (in memory; ``run`` commits it)."""

    def run(self) -> None:
        output, pending = Path(self.output().path), self.pending_path
        if pending.exists() and self.removals_path.exists():  # a commit interrupted after writing
            removals = base.read_removals(self.removals_path)
            self.report(f"resuming: deleting {len(removals)} removed images")
        else:
            outcome = self.filter(self.load_input())
            if outcome.already_applied:  # the input was filtered before: pass it on unchanged
                base.write_removals(self.removals_path, [])
                ann.save(output, outcome.kept)
                self.report(f"{base.FILTER_KEYS[self.kind]} already applied: nothing removed", 100.0)
                return
            base.write_removals(self.removals_path, outcome.removals)
            ann.save(pending, outcome.kept)
            removals = outcome.removals
            skipped = f", {len(outcome.skipped)} unreadable (kept)" if outcome.skipped else ""
            self.report(f"{len(removals)} of {len(self.load_input().annotations)} removed{skipped}", 100.0)
        base.delete_images(self.image_dir, removals)
        os.replace(pending, output)  # written last: complete only when the images are gone too


class FilterWords(_FilterTask):
    """Remove instances whose cleaned caption has an LDNOOBW ``en`` word (``[filter_words] mode``)."""

    stage = "filter_words"
    kind = "words"

    def filter(self, annotations: ann.AnnotationFile) -> base.FilterOutcome:
        from redcaps.filters.words import filter_words as run_filter

        return run_filter(annotations, mode=filter_words().mode)  # type: ignore[arg-type]


class _ImageFilterTask(_FilterTask):
    def progress(self, total: int) -> Callable[[int], None]:
        """A throttled ``report`` callback for score_images."""
        done, last = 0, 0.0

        def update(n: int) -> None:
            nonlocal done, last
            done += n
            now = time.monotonic()
            if now - last >= 2.0 or done >= total:
                last = now
                self.report(f"{done}/{total} images scored", 100.0 * done / max(1, total))

        return update

    def total(self, annotations: ann.AnnotationFile) -> int:
        return len({r["image_id"] for r in annotations.annotations})


class FilterNsfw(_ImageFilterTask):
    """Remove instances whose image is NSFW (GantMan model: porn + hentai > threshold)."""

    stage = "filter_nsfw"
    kind = "nsfw"

    def filter(self, annotations: ann.AnnotationFile) -> base.FilterOutcome:
        from redcaps.filters.nsfw import filter_nsfw as run_filter

        config = filter_nsfw()
        if base.already_applied(annotations, "nsfw"):  # no model needed for a no-op
            return run_filter(annotations, self.image_dir)
        return run_filter(
            annotations,
            self.image_dir,
            model=config.model or None,
            threshold=config.confidence_threshold,
            batch_size=config.batch_size,
            workers=config.workers,
            device=config.device,
            scorer=_nsfw_scorer(config.model, str(models_dir()), config.device),
            progress=self.progress(self.total(annotations)),
        )


@functools.lru_cache(maxsize=2)
def _nsfw_scorer(model: str, models_dir: str, device: str):  # noqa: ANN202 - imported lazily
    """One loaded NSFW model per worker process (a Keras ``.h5`` takes seconds to load)."""
    from redcaps.filters.nsfw import NsfwScorer

    return NsfwScorer(model or None, device=device)


@functools.lru_cache(maxsize=2)
def _face_scorer(model: str, models_dir: str, device: str, pad: bool, long_edge: int):  # noqa: ANN202 - imported lazily
    """One loaded face model per worker process, reused by every file it filters (``models_dir``
    is part of the key only, so a changed ``$REDCAPS_MODELS_DIR`` loads afresh)."""
    from redcaps.filters.faces import FaceScorer

    return FaceScorer(model or None, device=device, pad=pad, long_edge=long_edge or None)


class FilterFaces(_ImageFilterTask):
    """Remove instances whose image shows a face (RetinaFace: best face score > threshold)."""

    stage = "filter_faces"
    kind = "faces"

    def filter(self, annotations: ann.AnnotationFile) -> base.FilterOutcome:
        from redcaps.filters.faces import filter_faces as run_filter

        config = filter_faces()
        if base.already_applied(annotations, "faces"):  # no model needed for a no-op
            return run_filter(annotations, self.image_dir)
        return run_filter(
            annotations,
            self.image_dir,
            threshold=config.confidence_threshold,
            batch_size=config.batch_size,
            workers=config.workers,
            scorer=_face_scorer(config.model, str(models_dir()), config.device, config.pad, config.long_edge),
            progress=self.progress(self.total(annotations)),
        )
