"""One filter run for every entry point: load, skip a no-op, filter, commit crash-safely.

The Luigi tasks write a new file under ``stages/``; the CLI rewrites its file in place. Both go
through :func:`run_filter`, which commits in one order: the removal record, then the filtered
file under a ``.pending`` name, then the image deletions, and last the rename onto the output.
A run that finds a ``.pending`` file beside its record finishes that commit instead of
filtering again (re-filtering would keep instances whose image is already gone).

A stage that runs again over a new input (a rerun downloaded more images) first removes what
its earlier run removed, then filters the rest: those images are gone, and an image filter
would keep an instance it cannot judge.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from redcaps import annotations as ann
from redcaps.filters import base
from redcaps.settings import FaceSettings, FilterSettings, ImageFilterSettings, NsfwSettings, WordSettings

#: ``progress(done, total)``: images scored so far, of the distinct images in the file.
Progress = Callable[[int, int], object]
ScorerFactory = Callable[[], base.ImageScorer]

SETTINGS: dict[str, type[FilterSettings]] = {
    "words": WordSettings,
    "nsfw": NsfwSettings,
    "faces": FaceSettings,
}


@dataclass(frozen=True)
class FilterPaths:
    """The files one filter run reads and writes (``output`` may be ``source``: in place)."""

    source: Path
    output: Path
    removals: Path
    images: Path

    def pending(self, kind: str) -> Path:
        return self.output.with_name(f"{self.output.name}.{kind}.pending")


@dataclass
class FilterResult:
    """What a run did: ``filtered``, ``already_applied`` (nothing to do) or ``resumed``."""

    kind: str
    status: Literal["filtered", "already_applied", "resumed"]
    removed: int = 0
    total: int = 0
    skipped: list[base.Skipped] = field(default_factory=list)


def new_scorer(kind: str, settings: ImageFilterSettings) -> base.ImageScorer:
    """The image filter's model as ``settings`` name it (imported here: loading is heavy)."""
    if kind == "nsfw":
        from redcaps.filters.nsfw import NsfwScorer

        return NsfwScorer.from_settings(settings)  # type: ignore[arg-type]
    from redcaps.filters.faces import FaceScorer

    return FaceScorer.from_settings(settings)  # type: ignore[arg-type]


def run_filter(
    kind: str,
    paths: FilterPaths,
    settings: FilterSettings,
    *,
    scorer: ScorerFactory | None = None,
    progress: Progress | None = None,
) -> FilterResult:
    """Filter ``paths.source`` into ``paths.output``; no model is loaded when there is nothing to do."""
    pending = paths.pending(kind)
    if pending.exists() and paths.removals.exists():  # a commit interrupted after writing
        removals = base.read_removals(paths.removals)
        _commit(paths, pending, removals)
        return FilterResult(kind, "resumed", removed=len(removals))
    source = ann.load(paths.source)  # schema errors: one line, before anything is touched
    if base.already_applied(source, kind):
        if not paths.output.exists():  # a stage whose input was filtered before: pass it on
            base.write_removals(paths.removals, [])
            ann.save(paths.output, source)
        return FilterResult(kind, "already_applied", total=len(source.annotations))
    earlier = _earlier_removals(paths, source)
    if earlier:
        gone = {r.image_id for r in earlier}
        rest = ann.AnnotationFile(source.info, [r for r in source.annotations if r["image_id"] not in gone])
        new = _filter(kind, rest, paths.images, settings, scorer, progress)
        block = new.kept.info[base.FILTER_KEYS[kind]]
        outcome = base.apply_removals(
            source,
            kind,
            earlier + new.removals,
            new.skipped,
            model=block["model"],
            confidence_threshold=block.get("confidence_threshold"),
        )
    else:
        outcome = _filter(kind, source, paths.images, settings, scorer, progress)
    base.write_removals(paths.removals, outcome.removals)
    ann.save(pending, outcome.kept)
    _commit(paths, pending, outcome.removals)
    removed = len(source.annotations) - len(outcome.kept.annotations)
    return FilterResult(kind, "filtered", removed, len(source.annotations), list(outcome.skipped))


def _earlier_removals(paths: FilterPaths, source: ann.AnnotationFile) -> list[base.Removal]:
    """What an earlier, committed run of this stage removed from instances ``source`` still has."""
    if paths.output == paths.source or not (paths.output.exists() and paths.removals.exists()):
        return []
    ids = {r["image_id"] for r in source.annotations}
    return [r for r in base.read_removals(paths.removals) if r.image_id in ids]


def filter_images(
    kind: str,
    annotations: ann.AnnotationFile,
    image_dir: str | Path,
    settings: ImageFilterSettings,
    *,
    scorer: base.ImageScorer | None = None,
    progress: Callable[[int], None] | None = None,
) -> base.FilterOutcome:
    """The image filter ``kind`` in memory: score every image on disk (with ``scorer``, default
    the model ``settings`` name) and remove those strictly above the threshold."""
    return base.remove_above_threshold(
        annotations,
        image_dir,
        kind,
        scorer or new_scorer(kind, settings),
        threshold=settings.confidence_threshold,
        batch_size=settings.batch_size,
        workers=settings.workers,
        progress=progress,
    )


def _filter(
    kind: str,
    source: ann.AnnotationFile,
    images: Path,
    settings: FilterSettings,
    scorer: ScorerFactory | None,
    progress: Progress | None,
) -> base.FilterOutcome:
    if isinstance(settings, WordSettings):
        from redcaps.filters.words import filter_words

        return filter_words(source, mode=settings.mode)
    total = len({r["image_id"] for r in source.annotations})
    done = 0

    def update(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    return filter_images(kind, source, images, settings, scorer=scorer() if scorer else None, progress=update)


def _commit(paths: FilterPaths, pending: Path, removals: list[base.Removal]) -> None:
    """Images go only once the new file is durable; the rename comes last, so the output is
    complete only when the images are gone too."""
    base.delete_images(paths.images, removals)
    os.replace(pending, paths.output)
    _fsync_dir(paths.output.parent)


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (POSIX); best effort where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
