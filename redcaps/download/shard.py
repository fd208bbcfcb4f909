"""Download the images of one annotation-file shard and record every outcome.

Each shard keeps a manifest (JSON lines, one :class:`Outcome` per instance, in file order).
While a shard runs, outcomes are appended to a journal beside the manifest; an image is
written atomically *before* its journal line, so after a crash the journal tells exactly
which images are whole and the rerun fetches only the rest. The finished manifest is
written atomically and the journal removed.

A shard's images are fetched by threads (they hide the hosts' latency) in one or more
processes (so decoding and resizing use every core); the processes draw on the machine's
host budgets together and hand their outcomes to the shard's process, the journal's one writer.

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
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, fields, replace
from pathlib import Path

from redcaps.annotations import AnnotationFile, Record
from redcaps.atomic import atomic_open, reporting_disk_full, sweep_temp_files, write_bytes
from redcaps.download.images import ImageOptions, ImageRejected, process_image
from redcaps.layout import image_path, manifest_path
from redcaps.net.fetcher import RETRYABLE_STATUSES, Fetcher, HttpConfig, SharedLimits
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

    def as_dict(self) -> dict:
        # a flat dict of scalars: dataclasses.asdict's recursive deep copy was measurable here
        return {name: getattr(self, name) for name in _OUTCOME_FIELDS}

    def to_line(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True) + "\n"

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


#: Fewer images than this per process are not worth starting one (about 0.4 s each).
MIN_IMAGES_PER_PROCESS = 50


def in_threads(
    records: Sequence[Record],
    image_dir: Path,
    fetcher: Fetcher,
    options: ImageOptions,
    workers: int,
) -> Iterator[tuple[Record, Outcome]]:
    """Each record with its outcome, as ``workers`` threads finish them (at most one decoding per
    core). A failure that is not the image's (a full disk) cancels what has not started."""
    cpu_slots = threading.BoundedSemaphore(os.cpu_count() or 1)
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        futures = {pool.submit(fetch_one, r, image_dir, fetcher, options, cpu_slots): r for r in records}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def in_processes(
    records: Sequence[Record],
    image_dir: Path,
    config: HttpConfig,
    limits: SharedLimits,
    options: ImageOptions,
    workers: int,
    processes: int,
) -> Iterator[tuple[Record, Outcome]]:
    """:func:`in_threads` in ``processes`` child processes, each taking every n-th record with its
    share of the threads and of the memory budget; a child's error is raised here, and children
    stop with this process.
    Each child may decode one image per core: while one of its images is in Python code (GIL),
    another process's can use that core."""
    context = multiprocessing.get_context("spawn")  # forking a threaded process is unsafe
    results = context.Queue()
    by_id = {r["image_id"]: r for r in records}
    threads = max(1, -(-workers // processes))
    options = replace(options, memory_share=processes)  # the shard's memory stays as in one process
    shared = (image_dir, config, limits, options, threads, results, os.getpid())
    children = [
        context.Process(target=_download_part, args=(records[i::processes], *shared), daemon=True)
        for i in range(processes)
    ]
    for child in children:
        child.start()
    try:
        running = processes
        while running:
            try:
                message = results.get(timeout=1.0)
            except queue.Empty:
                dead = [child.exitcode for child in children if child.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a download process died (exit {dead[0]}); a rerun resumes") from None
                continue
            if message[0] == "outcome":
                yield by_id[message[1]], Outcome.from_dict(message[2])
            elif message[0] == "error":
                raise message[1]
            else:
                running -= 1
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
            child.join()
        results.close()


def _download_part(
    records: Sequence[Record],
    image_dir: Path,
    config: HttpConfig,
    limits: SharedLimits,
    options: ImageOptions,
    threads: int,
    results: multiprocessing.Queue,
    parent: int,
) -> None:
    """A child of :func:`in_processes`: its records' outcomes (or its error) go to ``results``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    threading.Thread(target=_exit_without, args=(parent,), daemon=True).start()
    fetcher = Fetcher(config, limits.limiter())
    try:
        for record, outcome in in_threads(records, image_dir, fetcher, options, threads):
            results.put(("outcome", record["image_id"], outcome.as_dict()))
        results.put(("done",))
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - an exception that cannot cross processes
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        results.put(("error", exc))
    finally:
        fetcher.close()


def _exit_without(parent: int) -> None:
    """End this child soon after its parent is gone (killed, so it never stopped us)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


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
    processes: int = 1,
    retry_rounds: int = DownloadSettings.retry_rounds,
    removed: Collection[str] = frozenset(),
    progress: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Download one shard, resuming from its journal or manifest; write the manifest.

    ``workers`` threads in all, spread over up to ``processes`` processes when ``fetcher``'s
    host budgets are the machine's (each process gets its share of every concurrency cap).
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
    count = min(processes, len(todo) // MIN_IMAGES_PER_PROCESS)
    limits = fetcher.limiter.for_processes(count) if count > 1 else None
    if limits is not None:
        fetched = in_processes(todo, image_dir, fetcher.config, limits, options, workers, count)
    else:
        fetched = in_threads(todo, image_dir, fetcher, options, workers)
    with (
        reporting_disk_full(journal),
        open(journal, "a", encoding="utf-8") as log,
        contextlib.closing(fetched),  # a failure here stops the fetching at once
    ):
        for record, outcome in fetched:
            old = previous.get(record["image_id"])
            if old is not None and old.retryable and old.url == record["url"]:
                outcome.round = old.round + 1
            log.write(outcome.to_line())
            log.flush()
            done[record["image_id"]] = outcome
            if progress:
                progress(outcome)

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
            shard_slice(annotations.annotations, shard, settings.images_per_shard),
            image_dir,
            manifest_path(manifests, shard),
            fetcher,
            options,
            workers=settings.workers,
            processes=settings.processes or os.cpu_count() or 1,
            retry_rounds=settings.retry_rounds,
            removed=removed,
            progress=progress,
        )
    return outcomes


def file_shards(annotations: AnnotationFile, settings: DownloadSettings) -> int:
    return num_shards(len(annotations.annotations), settings.images_per_shard)


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
