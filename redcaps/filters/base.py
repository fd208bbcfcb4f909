"""What every filter shares: the removal record, the ``info`` block, and the safe commit.

A filter never edits in place. It computes a :class:`FilterOutcome` (the kept file plus a
record of every removal), :func:`commit` writes the new annotation file durably, and only
then are the removed instances' images deleted. Rerunning a filter on a file that already
carries its ``info`` block is a no-op.

Image filters plug in an :class:`ImageScorer`; :func:`score_images` does the batching, with
decoding in a thread pool that overlaps the model call, and never dies on one bad image.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from redcaps import annotations as ann
from redcaps.atomic import atomic_open
from redcaps.names import image_path

BLOCK_NAMES = {"words": "word_filter", "nsfw": "nsfw_filter", "faces": "face_filter"}


@dataclass(frozen=True)
class Removal:
    """One removed instance and why (reason is e.g. ``word:<word>``, ``nsfw``, ``face``)."""

    image_id: str
    subreddit: str
    reason: str
    score: float | None = None


@dataclass(frozen=True)
class Skipped:
    """An instance a filter could not judge (missing or unreadable image); it is kept."""

    image_id: str
    reason: str


@dataclass
class FilterOutcome:
    kept: ann.AnnotationFile
    removals: list[Removal] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    already_applied: bool = False


def already_applied(annotations: ann.AnnotationFile, filter_name: str) -> bool:
    return BLOCK_NAMES[filter_name] in annotations.info


def apply_removals(
    annotations: ann.AnnotationFile,
    filter_name: str,
    removals: Sequence[Removal],
    skipped: Sequence[Skipped] = (),
    *,
    model: str,
    confidence_threshold: float | None = None,
) -> FilterOutcome:
    """Drop removed instances, keep order (sorted by ``created_utc``), add the info block."""
    removed_ids = {r.image_id for r in removals}
    kept = [r for r in annotations.annotations if r["image_id"] not in removed_ids]
    block: dict[str, Any] = {"num_removed": len(annotations.annotations) - len(kept), "model": model}
    if confidence_threshold is not None:
        block["confidence_threshold"] = confidence_threshold
    info = {**annotations.info, BLOCK_NAMES[filter_name]: block}
    return FilterOutcome(ann.AnnotationFile(info, kept), list(removals), list(skipped))


def commit(
    outcome: FilterOutcome,
    output: str | Path,
    image_dir: str | Path | None,
    removals_path: str | Path | None = None,
) -> None:
    """Write the removal record, then the annotation file, and only then delete images."""
    if removals_path is not None:
        with atomic_open(removals_path, "w") as fh:
            for removal in outcome.removals:
                fh.write(json.dumps(asdict(removal), sort_keys=True) + "\n")
            for skip in outcome.skipped:
                fh.write(json.dumps({**asdict(skip), "skipped": True}, sort_keys=True) + "\n")
    ann.save(output, outcome.kept)
    if image_dir is None:
        return
    for removal in outcome.removals:
        image_path(Path(image_dir), removal.subreddit, removal.image_id).unlink(missing_ok=True)


class ImageScorer(Protocol):
    """A model that gives each image one score; flagged when ``score > threshold`` (strict)."""

    #: the ``model`` string written to the info block, e.g. "gantman/nsfw_model (nsfwjs mobilenet_v2)"
    model_name: str

    def prepare(self, path: Path) -> Any:
        """Decode and preprocess one image (runs in a worker thread; may raise on bad files)."""

    def score(self, batch: list[Any]) -> Sequence[float]:
        """Score a batch of prepared images with as few model calls as possible."""


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def score_images(
    annotations: ann.AnnotationFile,
    image_dir: str | Path,
    scorer: ImageScorer,
    *,
    batch_size: int = 32,
    workers: int = 4,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, float], list[Skipped]]:
    """Score every instance whose image is on disk.

    Decoding runs ``workers`` threads ahead of the model, one batch in flight, so the model
    thread never waits on JPEG decoding when the pool keeps up. Missing images are skipped
    silently (the original scored only images present); unreadable ones are recorded.
    """
    records = annotations.annotations
    paths = [image_path(Path(image_dir), r["subreddit"], r["image_id"]) for r in records]
    todo = [(r["image_id"], p) for r, p in zip(records, paths, strict=True) if p.exists()]
    scores: dict[str, float] = {}
    skipped: list[Skipped] = []

    def load(item: tuple[str, Path]) -> tuple[str, Any, str | None]:
        image_id, path = item
        try:
            return image_id, scorer.prepare(path), None
        except Exception as exc:  # one bad image must never stop the run
            return image_id, None, f"unreadable: {type(exc).__name__}: {exc}".splitlines()[0]

    batches = list(_batches(todo, batch_size))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        # Executor.map submits a whole batch at once: keep the next batch decoding while
        # the model scores the current one.
        futures = [pool.map(load, b) for b in batches[:2]]
        for index in range(len(batches)):
            loaded = list(futures[index])
            if index + 2 < len(batches):
                futures.append(pool.map(load, batches[index + 2]))
            good = [(i, x) for i, x, err in loaded if err is None]
            skipped += [Skipped(i, err) for i, _, err in loaded if err is not None]
            if good:
                values = scorer.score([x for _, x in good])
                scores.update({i: float(v) for (i, _), v in zip(good, values, strict=True)})
            if progress:
                progress(len(loaded))
    return scores, skipped
