"""What every content filter shares: the outcome, the info block, a safe commit, batched scoring.

A filter is split in two so a crash can never lose data: the pure part (:func:`apply_removals`)
decides what goes and builds the new annotation file in memory; ``filters.stage`` writes it and
the removal record durably and only then deletes the removed instances' images.

:func:`score_images` is the speed-critical loop of the image filters: images are decoded and
preprocessed in a thread pool (Pillow and numpy release the GIL) while the calling thread runs
one model call per batch, with a bounded number of decoded images in flight.
"""

from __future__ import annotations

import abc
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from redcaps import annotations as ann
from redcaps.atomic import atomic_open, read_jsonl
from redcaps.errors import RedCapsError
from redcaps.layout import image_path

#: filter kind -> the ``info`` key it sets (the original's names).
FILTER_KEYS = {"words": "word_filter", "nsfw": "nsfw_filter", "faces": "face_filter"}


class FilterError(RedCapsError):
    """Bad filter input or settings (one-line message, non-zero exit)."""


@dataclass(frozen=True)
class Removal:
    """One removed instance and why: ``word:<w>``, ``nsfw`` or ``face`` (with the model score)."""

    image_id: str
    subreddit: str
    reason: str
    score: float | None = None


class Skipped(NamedTuple):
    """An image that could not be judged (unreadable): its instance is kept and reported."""

    image_id: str
    reason: str


@dataclass
class FilterOutcome:
    """The result of one filter run, not yet on disk (``filters.stage`` commits it)."""

    kept: ann.AnnotationFile
    removals: list[Removal] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _key(kind: str) -> str:
    try:
        return FILTER_KEYS[kind]
    except KeyError:
        raise ValueError(f"unknown filter kind {kind!r} (one of {', '.join(FILTER_KEYS)})") from None


def already_applied(annotations: ann.AnnotationFile, kind: str) -> bool:
    """True when the file already carries this filter's info block (a rerun must be a no-op)."""
    return _key(kind) in annotations.info


def apply_removals(
    annotations: ann.AnnotationFile,
    kind: str,
    removals: Iterable[Removal],
    skipped: Iterable[tuple[str, str]] = (),
    *,
    model: str,
    confidence_threshold: float | None = None,
) -> FilterOutcome:
    """Build the filtered file: drop every instance of a removed image id, sort by ``created_utc``
    (as the original did after filtering) and add ``info.<key>``. The input is not mutated."""
    removals = list(removals)
    removed_ids = {r.image_id for r in removals}
    kept_records = [r for r in annotations.annotations if r["image_id"] not in removed_ids]
    kept_records.sort(key=lambda r: r["created_utc"])
    block: dict[str, Any] = {"num_removed": len(annotations.annotations) - len(kept_records), "model": model}
    if confidence_threshold is not None:
        block["confidence_threshold"] = confidence_threshold
    info = {**annotations.info, _key(kind): block}
    return FilterOutcome(
        kept=ann.AnnotationFile(info=info, annotations=kept_records),
        removals=removals,
        skipped=[Skipped(*s) for s in skipped],
    )


def write_removals(path: str | Path, removals: Iterable[Removal]) -> None:
    """One JSON object per line (image_id, subreddit, reason, score), written atomically."""
    with atomic_open(path, "w") as fh:
        for removal in removals:
            fh.write(json.dumps(asdict(removal)) + "\n")


def read_removals(path: str | Path) -> list[Removal]:
    """The removals a :func:`write_removals` file records (to finish an interrupted commit)."""
    return [Removal(**record) for record in read_jsonl(path)]


def delete_images(image_dir: str | Path, removals: Iterable[Removal]) -> int:
    """Delete the removed instances' images; missing ones are fine (rerun). Returns how many went."""
    deleted = 0
    for removal in removals:
        try:
            image_path(Path(image_dir), removal.subreddit, removal.image_id).unlink()
            deleted += 1
        except FileNotFoundError:
            pass
    return deleted


class ImageScorer(abc.ABC):
    """A model behind :func:`score_images`: ``prepare`` runs in worker threads, ``score`` in one."""

    #: Written to ``info.<key>.model``.
    model_name: str

    @abc.abstractmethod
    def prepare(self, path: Path) -> Any:
        """Decode and preprocess ONE image (called from worker threads, must be thread-safe)."""

    @abc.abstractmethod
    def score(self, batch: list[Any]) -> list[float]:
        """ONE model call for the whole batch; a score per item, in order."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no detail"
    return f"unreadable: {type(exc).__name__}: {text[:200]}"


def _present(annotations: ann.AnnotationFile, image_dir: Path) -> Iterator[tuple[str, Path]]:
    """(image_id, path) of each distinct image id whose image is on disk (the original judged only those)."""
    seen: set[str] = set()
    for record in annotations.annotations:
        image_id = record["image_id"]
        if image_id in seen:
            continue
        seen.add(image_id)
        path = image_path(image_dir, record["subreddit"], image_id)
        if path.is_file():
            yield image_id, path


def score_images(
    annotations: ann.AnnotationFile,
    image_dir: str | Path,
    scorer: ImageScorer,
    *,
    batch_size: int,
    workers: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, float], list[tuple[str, str]]]:
    """Score every image on disk: ({image_id: score}, [(image_id, why skipped)]).

    At most ``2 * batch_size + workers`` decoded images are alive at once, so memory stays
    bounded on any file; decoding of the next batch proceeds while the model runs this one.
    ``progress(n)`` gets the number of images finished (scored or skipped) after each batch.
    """
    if batch_size < 1 or workers < 1:
        raise FilterError(f"batch_size and workers must be >= 1 (got {batch_size}, {workers})")
    scores: dict[str, float] = {}
    skipped: list[tuple[str, str]] = []
    batch_ids: list[str] = []
    batch: list[Any] = []

    def flush() -> None:
        if batch:
            results = scorer.score(batch)
            if len(results) != len(batch):
                raise FilterError(f"{scorer.model_name}: {len(results)} scores for {len(batch)} images")
            scores.update(zip(batch_ids, (float(s) for s in results), strict=True))
        done = len(batch)
        batch.clear()
        batch_ids.clear()
        if progress is not None and done:
            progress(done)

    def prepare(path: Path) -> Any:
        return scorer.prepare(path)

    window = batch_size + workers  # futures in flight: the next batch decodes while this one scores
    pending: deque[tuple[str, Future[Any]]] = deque()
    items = _present(annotations, Path(image_dir))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="filter-decode") as pool:
        try:
            for image_id, path in items:
                pending.append((image_id, pool.submit(prepare, path)))
                if len(pending) >= window:
                    _collect(pending.popleft(), batch_ids, batch, skipped, batch_size, flush, progress)
            while pending:
                _collect(pending.popleft(), batch_ids, batch, skipped, batch_size, flush, progress)
            flush()
        finally:
            for _, future in pending:  # on error: do not decode the rest just to drop it
                future.cancel()
    return scores, skipped


def remove_above_threshold(
    annotations: ann.AnnotationFile,
    image_dir: str | Path,
    kind: str,
    scorer: ImageScorer,
    *,
    threshold: float,
    batch_size: int,
    workers: int,
    progress: Callable[[int], None] | None = None,
) -> FilterOutcome:
    """The image filters' rule: score every image on disk, remove the instances scoring
    strictly above ``threshold`` (the original's ``>``), record each removal with its score."""
    scores, skipped = score_images(
        annotations, image_dir, scorer, batch_size=batch_size, workers=workers, progress=progress
    )
    reason = {"nsfw": "nsfw", "faces": "face"}[kind]
    removals = [
        Removal(r["image_id"], r["subreddit"], reason, scores[r["image_id"]])
        for r in annotations.annotations
        if r["image_id"] in scores and scores[r["image_id"]] > threshold
    ]
    return apply_removals(
        annotations, kind, removals, skipped, model=scorer.model_name, confidence_threshold=threshold
    )


def _collect(
    item: tuple[str, Future[Any]],
    batch_ids: list[str],
    batch: list[Any],
    skipped: list[tuple[str, str]],
    batch_size: int,
    flush: Callable[[], None],
    progress: Callable[[int], None] | None,
) -> None:
    image_id, future = item
    try:
        prepared = future.result()
    except Exception as exc:  # any decoder failure: the image is reported, the run goes on
        skipped.append(Skipped(image_id, _one_line(exc)))
        if progress is not None:
            progress(1)
        return
    batch_ids.append(image_id)
    batch.append(prepared)
    if len(batch) >= batch_size:
        flush()
