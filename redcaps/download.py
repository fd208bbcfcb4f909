"""Download the images of one annotation-file shard and record every outcome.

Each shard keeps a manifest (JSON lines, one :class:`Outcome` per instance, in file order).
While a shard runs, outcomes are appended to a journal beside the manifest; an image is
written atomically *before* its journal line, so after a crash the journal tells exactly
which images are whole and the rerun fetches only the rest. The finished manifest is
written atomically and the journal removed.

On a later run over an existing manifest, instances that ended ``ok`` (image still on
disk, or removed by a later stage) or failed for good (404, placeholder, ...) are kept as
they are; only retryable failures (timeouts, 429, 5xx, ...) are tried again, each rerun
being one more *round* (``Outcome.round``), up to ``DownloadSettings.retry_rounds``.
A manifest is rewritten only when its bytes change, so a finished shard stays byte-stable.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

from redcaps.annotations import AnnotationFile, Record
from redcaps.atomic import atomic_open, reporting_disk_full, sweep_temp_files, write_bytes
from redcaps.http import RETRYABLE_STATUSES, Fetcher
from redcaps.images import ImageOptions, ImageRejected, process_image
from redcaps.layout import image_path, manifest_path
from redcaps.settings import DownloadSettings
from redcaps.validate import check_unique_ids


@dataclass
class Outcome:
    """What happened to one instance's image (one manifest line)."""

    image_id: str
    url: str
    status: str
    final_url: str | None = None
    error: str | None = None
    bytes: int | None = None
    original_width: int | None = None
    original_height: int | None = None
    width: int | None = None
    height: int | None = None
    sha256: str | None = None
    #: The run that produced this outcome: 1 for the first fetch, +1 for every rerun retrying it.
    round: int = 1

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUSES

    def to_line(self) -> str:
        # a flat dict of scalars: dataclasses.asdict's recursive deep copy was measurable here
        return json.dumps({name: getattr(self, name) for name in _OUTCOME_FIELDS}, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> Outcome:
        return cls(**{k: v for k, v in data.items() if k in _OUTCOME_FIELDS})


_OUTCOME_FIELDS = frozenset(f.name for f in fields(Outcome))


def num_shards(num_records: int, shard_size: int) -> int:
    return max(1, -(-num_records // shard_size))


def shard_slice(records: Sequence[Record], shard: int, shard_size: int) -> Sequence[Record]:
    return records[shard * shard_size : (shard + 1) * shard_size]


def journal_path(manifest: Path) -> Path:
    return manifest.with_name(manifest.name + ".partial")


def read_outcomes(path: Path) -> dict[str, Outcome]:
    """Outcomes by image_id from a manifest or journal; a torn last line is ignored."""
    outcomes: dict[str, Outcome] = {}
    if not path.exists():
        return outcomes
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                outcome = Outcome.from_dict(json.loads(line))
            except (ValueError, TypeError):
                continue  # a line cut short by a crash
            outcomes[outcome.image_id] = outcome
    return outcomes


def fetch_one(
    record: Record,
    image_dir: Path,
    fetcher: Fetcher,
    options: ImageOptions,
    cpu_slots: threading.Semaphore | None = None,
) -> Outcome:
    """Fetch, check, normalise and store one image; never raises for a bad link.

    ``cpu_slots`` bounds how many images are decoded at once: more fetch threads than cores
    hide network latency, but decoding more images than cores only adds cache misses.
    """
    outcome = Outcome(image_id=record["image_id"], url=record["url"], status="ok")
    result = fetcher.get(record["url"])
    outcome.final_url = result.final_url
    if not result.ok or result.body is None:
        outcome.status, outcome.error = result.status, result.error
        return outcome
    body = result.body
    outcome.bytes = len(body)
    outcome.sha256 = hashlib.sha256(body).hexdigest()
    try:
        with cpu_slots or contextlib.nullcontext():
            image = process_image(body, options)
    except ImageRejected as exc:
        outcome.status, outcome.error = exc.reason, str(exc)
        return outcome
    write_bytes(image_path(image_dir, record["subreddit"], record["image_id"]), image.jpeg)
    outcome.original_width, outcome.original_height = image.original_width, image.original_height
    outcome.width, outcome.height = image.width, image.height
    return outcome


def retries_left(outcomes: Iterable[Outcome], retry_rounds: int) -> int:
    """How many outcomes a rerun would still try again (retryable, with rounds to spare)."""
    return sum(1 for o in outcomes if o.retryable and o.round <= retry_rounds)


def _reusable(
    previous: Outcome | None, record: Record, image_dir: Path, retry_rounds: int, removed: Collection[str]
) -> bool:
    if previous is None or previous.url != record["url"]:
        return False
    if previous.ok:
        return (
            record["image_id"] in removed
            or image_path(image_dir, record["subreddit"], record["image_id"]).exists()
        )
    return not previous.retryable or previous.round > retry_rounds


def download_shard(
    records: Sequence[Record],
    image_dir: Path,
    manifest: Path,
    fetcher: Fetcher,
    options: ImageOptions | None = None,
    *,
    workers: int = DownloadSettings.workers,
    retry_rounds: int = DownloadSettings.retry_rounds,
    removed: Collection[str] = frozenset(),
    progress: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Download one shard, resuming from its journal or manifest; write the manifest.

    ``removed``: image ids a later stage removed (and deleted the image of); their ``ok`` is
    kept, never fetched again.
    """
    image_dir, manifest = Path(image_dir), Path(manifest)
    options = options or ImageOptions()
    journal = journal_path(manifest)
    previous = read_outcomes(manifest)
    previous.update(read_outcomes(journal))
    done: dict[str, Outcome] = {}
    todo: list[Record] = []
    for record in records:
        old = previous.get(record["image_id"])
        if _reusable(old, record, image_dir, retry_rounds, removed):
            done[record["image_id"]] = old  # type: ignore[assignment]
        else:
            todo.append(record)
    for outcome in done.values():
        if progress:
            progress(outcome)

    journal.parent.mkdir(parents=True, exist_ok=True)
    for directory in {journal.parent} | {image_dir / r["subreddit"] for r in todo}:
        sweep_temp_files(directory)  # what a killed run left half-written
    lock = threading.Lock()
    cpu_slots = threading.BoundedSemaphore(os.cpu_count() or 1)
    with reporting_disk_full(journal), open(journal, "a", encoding="utf-8") as log:

        def work(record: Record) -> None:
            outcome = fetch_one(record, image_dir, fetcher, options, cpu_slots)
            old = previous.get(record["image_id"])
            if old is not None and old.retryable and old.url == record["url"]:
                outcome.round = old.round + 1
            with lock:
                log.write(outcome.to_line())
                log.flush()
                done[record["image_id"]] = outcome
            if progress:
                progress(outcome)

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for future in [pool.submit(work, r) for r in todo]:
                future.result()

    ordered = [done[r["image_id"]] for r in records]
    text = "".join(o.to_line() for o in ordered)
    if not manifest.exists() or manifest.read_text(encoding="utf-8") != text:
        with atomic_open(manifest, "w") as fh:
            fh.write(text)
    journal.unlink(missing_ok=True)
    return ordered


def download_file(
    annotations: AnnotationFile,
    image_dir: Path,
    manifests: Path,
    fetcher: Fetcher,
    options: ImageOptions,
    settings: DownloadSettings,
    progress: Callable[[Outcome], None] | None = None,
    *,
    shards: Iterable[int] | None = None,
    removed: Collection[str] = frozenset(),
) -> list[Outcome]:
    """The shards of an annotation file in turn (every shard: the CLI's run; one: a task's), an
    outcome per instance; ``removed`` image ids (a later stage's) are never fetched again."""
    check_unique_ids(annotations.annotations, manifests.name)
    outcomes: list[Outcome] = []
    for shard in range(file_shards(annotations, settings)) if shards is None else shards:
        outcomes += download_shard(
            shard_slice(annotations.annotations, shard, settings.shard_size),
            image_dir,
            manifest_path(manifests, shard),
            fetcher,
            options,
            workers=settings.workers,
            retry_rounds=settings.retry_rounds,
            removed=removed,
            progress=progress,
        )
    return outcomes


def file_shards(annotations: AnnotationFile, settings: DownloadSettings) -> int:
    return num_shards(len(annotations.annotations), settings.shard_size)


def file_outcomes(
    annotations: AnnotationFile, manifests: Path, settings: DownloadSettings
) -> dict[str, Outcome]:
    """The outcomes recorded by every shard of an annotation file, by image_id."""
    return read_manifests(manifest_path(manifests, i) for i in range(file_shards(annotations, settings)))


def read_manifests(paths: Iterable[Path]) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for path in paths:
        outcomes.update(read_outcomes(Path(path)))
    return outcomes


def summarize(outcomes: Iterable[Outcome]) -> Counter[str]:
    """Count outcomes by status (the closing summary and the ``info.download`` block)."""
    return Counter(o.status for o in outcomes)


def downloaded_annotations(annotations: AnnotationFile, outcomes: dict[str, Outcome]) -> AnnotationFile:
    """The original's ``--update-annotations``, done right: keep records whose image is ok.

    Matching is by ``image_id`` from the manifests, never by position, so a resumed run
    keeps exactly the right records (the original misaligned here and deleted wrong ones).
    """
    kept = [r for r in annotations.annotations if (o := outcomes.get(r["image_id"])) and o.ok]
    counts = summarize(
        outcomes.get(r["image_id"]) or Outcome(r["image_id"], r["url"], "not_attempted")
        for r in annotations.annotations
    )
    info = dict(annotations.info)
    info["download"] = {
        "attempted": len(annotations.annotations),
        "ok": counts.pop("ok", 0),
        "failed": dict(sorted(counts.items())),
    }
    return AnnotationFile(info, kept)
