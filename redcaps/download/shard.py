"""Download the images of one annotation-file shard and record every outcome.

Each shard keeps a manifest (:mod:`redcaps.download.manifest`). While a shard runs, outcomes
are appended to a journal beside the manifest; an image is stored atomically *before* its
journal line, so after a crash the journal tells exactly which images are whole and the rerun
fetches only the rest. The finished manifest is written atomically and the journal removed.

On a later run over an existing manifest, instances that ended ``ok`` (image still stored,
or removed by a later stage) or failed for good (404, placeholder, ...) are kept as they are;
only retryable failures (timeouts, 429, 5xx, ...) are tried again, each rerun being one more
*round* (``Outcome.round``), up to ``DownloadSettings.retry_rounds``. A manifest is rewritten
only when its bytes change, so a finished shard stays byte-stable.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from redcaps.annotations import AnnotationFile, Record
from redcaps.atomic import atomic_open, reporting_disk_full, sweep_temp_files
from redcaps.download.engine import MIN_IMAGES_PER_PROCESS, ImageWork, in_processes, in_threads
from redcaps.download.images import (
    ImageOptions,
    ImageProcessor,
    ImageRejected,
    ProcessedImage,
    image_processor,
)
from redcaps.download.manifest import Outcome, cut_torn_line, journal_path, read_manifests, read_outcomes
from redcaps.download.previews import PreviewLookup, post_id
from redcaps.download.recover import ORIGINAL, PREVIEW, attempts, host_of, preview_url, retired_host
from redcaps.download.store import ImageStore, as_store
from redcaps.layout import manifest_path
from redcaps.net.fetcher import Fetcher, FetchResult
from redcaps.settings import DownloadSettings
from redcaps.validate import check_unique_ids

log = logging.getLogger(__name__)


def num_shards(num_records: int, shard_size: int) -> int:
    return max(1, -(-num_records // shard_size))


def shard_slice(records: Sequence[Record], shard: int, shard_size: int) -> Sequence[Record]:
    return records[shard * shard_size : (shard + 1) * shard_size]


#: Failures that say an image is gone from its address for good: its other addresses are tried.
GONE = frozenset({"http_404", "http_410", "http_403", "placeholder"})


@dataclass(frozen=True)
class FetchPolicy:
    """What a fetch does besides asking for the URL: try its live forms when it is gone
    (``recover``), refuse ``disallowed`` X-Robots-Tag directives. ``retired``: hosts seen
    retired by this process, whose URLs go to their live form first."""

    recover: bool = False
    disallowed: tuple[str, ...] = ()
    retired: set[str] = field(default_factory=set, compare=False)

    @classmethod
    def of(cls, settings: DownloadSettings) -> FetchPolicy:
        return cls(settings.recover, tuple(settings.disallowed_directives))


def fetch_one(
    record: Record,
    fetcher: Fetcher,
    cpu_slots: threading.Semaphore | None = None,
    *,
    store: ImageStore,
    process: Callable[[bytes], ProcessedImage],
    policy: FetchPolicy = FetchPolicy(),
) -> Outcome:
    """Fetch, check, normalise and store one image; never raises for a bad link.

    ``cpu_slots`` bounds how many images are decoded at once: more fetch threads than cores
    hide network latency, but decoding more images than cores only adds cache misses.
    """
    result, route = _first_answer(record["url"], fetcher, policy)
    outcome = Outcome.fetched(record["image_id"], result)
    if route != ORIGINAL:
        outcome.url, outcome.route, outcome.fetched_url = record["url"], route, result.url
    if not result.ok or result.body is None:
        return outcome
    outcome.bytes = len(result.body)
    outcome.sha256 = hashlib.sha256(result.body).hexdigest()
    try:
        with cpu_slots or contextlib.nullcontext():
            image = process(result.body)
    except ImageRejected as exc:
        outcome.status, outcome.error = exc.reason, str(exc)
        return outcome
    store.write(record, image.jpeg)
    outcome.stored_sha256 = hashlib.sha256(image.jpeg).hexdigest()  # so damage to the file shows
    outcome.original_width, outcome.original_height = image.original_width, image.original_height
    outcome.width, outcome.height = image.width, image.height
    return outcome


def _first_answer(url: str, fetcher: Fetcher, policy: FetchPolicy) -> tuple[FetchResult, str]:
    """The first answer that is not "gone" among ``url``'s addresses (:func:`recover.attempts`),
    with its route; the original's answer when every address is gone."""
    if not policy.recover:
        return fetcher.get(url, disallowed=policy.disallowed), ORIGINAL
    original: FetchResult | None = None
    for candidate, route in attempts(url, dead_host=host_of(url) in policy.retired):
        result = fetcher.get(candidate, disallowed=policy.disallowed)
        if route == ORIGINAL:
            original = result
            if retired := retired_host(url, result.status):
                policy.retired.add(retired)
        if result.status not in GONE:
            return result, route
    assert original is not None  # attempts() always includes the original
    return original, ORIGINAL


def retries_left(outcomes: Iterable[Outcome], retry_rounds: int) -> int:
    """How many outcomes a rerun would still try again (retryable, with rounds to spare)."""
    return sum(1 for o in outcomes if o.retryable and o.round <= retry_rounds)


def _reusable(
    previous: Outcome | None, record: Record, store: ImageStore, retry_rounds: int, removed: Collection[str]
) -> bool:
    if previous is None or previous.url != record["url"]:
        return False
    if previous.ok:
        return record["image_id"] in removed or store.exists(record)
    return not previous.retryable or previous.round > retry_rounds


def _fetching(
    todo: Sequence[Record],
    *,
    store: ImageStore,
    fetcher: Fetcher,
    options: ImageOptions,
    processor: ImageProcessor,
    workers: int,
    processes: int,
    policy: FetchPolicy,
) -> Iterator[tuple[Record, Outcome]]:
    """The records to fetch with their outcomes, in up to ``processes`` processes when that is
    worth it and ``fetcher``'s host budgets are the machine's (each process gets its share of
    every concurrency cap and of the memory budget)."""
    count = min(processes, len(todo) // MIN_IMAGES_PER_PROCESS)
    limits = fetcher.limiter.for_processes(count) if count > 1 else None
    if limits is None:
        return in_threads(todo, _work(store, processor(options), policy), fetcher, workers)
    # the shard's memory as in one process
    work = _work(store, processor(replace(options, memory_share=count)), policy)
    return in_processes(todo, work, fetcher.config, limits, workers, count)


def _work(store: ImageStore, process: Callable[[bytes], ProcessedImage], policy: FetchPolicy) -> ImageWork:
    return functools.partial(fetch_one, store=store, process=process, policy=policy)


def download_shard(
    records: Sequence[Record],
    images: ImageStore | str | Path,
    manifest: Path,
    fetcher: Fetcher,
    options: ImageOptions | None = None,
    *,
    processor: ImageProcessor = image_processor,
    workers: int = DownloadSettings.workers,
    processes: int = 1,
    retry_rounds: int = DownloadSettings.retry_rounds,
    removed: Collection[str] = frozenset(),
    progress: Callable[[Outcome], None] | None = None,
    policy: FetchPolicy = FetchPolicy(),
    previews: PreviewLookup | None = None,
) -> list[Outcome]:
    """Download one shard into ``images`` (a store, or a directory of loose files), resuming
    from its journal or manifest; write the manifest.

    ``workers`` threads in all, spread over up to ``processes`` processes. ``removed``: image
    ids a later stage removed (and deleted the image of); their ``ok`` is kept, never fetched again.
    With ``policy.recover`` and ``previews``, images gone from every address are tried once
    more from their posts' Reddit previews, looked up together after the shard's first pass.
    """
    store, manifest, journal = as_store(images), Path(manifest), journal_path(Path(manifest))
    previous = read_outcomes(manifest)
    previous.update(read_outcomes(journal))
    done: dict[str, Outcome] = {}
    todo: list[Record] = []
    for record in records:
        old = previous.get(record["image_id"])
        if _reusable(old, record, store, retry_rounds, removed):
            done[record["image_id"]] = old  # type: ignore[assignment]
        else:
            todo.append(record)
    for outcome in done.values():
        if progress:
            progress(outcome)

    journal.parent.mkdir(parents=True, exist_ok=True)
    sweep_temp_files(journal.parent)  # what a killed run left half-written
    store.sweep(todo)
    cut_torn_line(journal)
    options = options or ImageOptions()
    fetch = functools.partial(
        _fetching,
        store=store,
        fetcher=fetcher,
        options=options,
        processor=processor,
        workers=workers,
        processes=processes,
    )
    lookup = previews if policy.recover else None
    with reporting_disk_full(journal), open(journal, "a", encoding="utf-8") as log:

        def keep(record: Record, outcome: Outcome) -> None:
            old = previous.get(record["image_id"])
            if old is not None and old.retryable and old.url == record["url"]:
                outcome.round = old.round + 1
            log.write(outcome.to_line())
            log.flush()
            done[record["image_id"]] = outcome
            if progress:
                progress(outcome)

        gone: list[tuple[Record, Outcome]] = []
        with contextlib.closing(fetch(todo, policy=policy)) as fetched:  # a failure stops it at once
            for record, outcome in fetched:
                if lookup is not None and outcome.status in GONE:
                    gone.append((record, outcome))  # journalled once its preview was tried
                else:
                    keep(record, outcome)
        if gone and lookup is not None:
            plain = replace(policy, recover=False)
            for record, outcome in _from_previews(gone, lookup, fetch, plain, _preview_edge(options)):
                keep(record, outcome)
    _report_lost(manifest, previous, [done[r["image_id"]] for r in todo])
    return _write_manifest(manifest, [done[r["image_id"]] for r in records])


def _preview_edge(options: ImageOptions) -> int:
    """The longer edge a preview needs to be resized like the original (0: the largest)."""
    return options.resize if options.edge == "longer" and options.resize > 0 else 0


def _from_previews(
    gone: list[tuple[Record, Outcome]],
    lookup: PreviewLookup,
    fetch: Callable[..., Iterator[tuple[Record, Outcome]]],
    policy: FetchPolicy,
    edge: int,
) -> Iterator[tuple[Record, Outcome]]:
    """Each gone record with its preview's outcome when that says more than "gone" (ok,
    retryable, opted out), else with its original's failure. One lookup for them all."""
    found = lookup.previews(post_id(record) for record, _ in gone)
    todo = []
    for record, _ in gone:
        url = preview_url(found.get(post_id(record)), edge)
        if url is not None:
            todo.append({**record, "url": url})
    with contextlib.closing(fetch(todo, policy=policy)) as fetched:
        tried = {record["image_id"]: outcome for record, outcome in fetched}
    for record, failed in gone:
        got = tried.get(record["image_id"])
        if got is None or not (got.ok or got.retryable or got.status == "opted_out"):
            yield record, failed
            continue
        got.url, got.route, got.fetched_url = record["url"], PREVIEW, got.url
        yield record, got


def _report_lost(manifest: Path, previous: dict[str, Outcome], fetched: list[Outcome]) -> None:
    """One line naming the images that were ``ok`` but are stored nowhere now and could not be
    fetched again (a host deleted them): lost, their new failure recorded."""
    lost = [o.image_id for o in fetched if not o.ok and (old := previous.get(o.image_id)) and old.ok]
    if lost:
        shown = ", ".join(lost[:20]) + (f" and {len(lost) - 20} more" if len(lost) > 20 else "")
        log.warning("%s: %d images lost (stored nowhere, not fetched again): %s", manifest, len(lost), shown)


def _write_manifest(manifest: Path, ordered: list[Outcome]) -> list[Outcome]:
    """Write the manifest (only if its bytes change) and remove the journal it replaces."""
    text = "".join(o.to_line() for o in ordered)
    if not manifest.exists() or manifest.read_text(encoding="utf-8") != text:
        with atomic_open(manifest, "w") as fh:
            fh.write(text)
    journal_path(manifest).unlink(missing_ok=True)
    return ordered


def download_file(
    annotations: AnnotationFile,
    images: ImageStore | str | Path,
    manifests: Path,
    fetcher: Fetcher,
    options: ImageOptions,
    settings: DownloadSettings,
    progress: Callable[[Outcome], None] | None = None,
    *,
    shards: Iterable[int] | None = None,
    removed: Collection[str] = frozenset(),
    processor: ImageProcessor = image_processor,
    previews: PreviewLookup | None = None,
) -> list[Outcome]:
    """The shards of an annotation file in turn (every shard: the CLI's run; one: a task's), an
    outcome per instance; ``removed`` image ids (a later stage's) are never fetched again.
    ``previews``: where gone images' Reddit previews are looked up when ``settings.recover``."""
    check_unique_ids(annotations.annotations, manifests.name)
    outcomes: list[Outcome] = []
    for shard in range(file_shards(annotations, settings)) if shards is None else shards:
        outcomes += download_shard(
            shard_slice(annotations.annotations, shard, settings.images_per_shard),
            images,
            manifest_path(manifests, shard),
            fetcher,
            options,
            processor=processor,
            workers=settings.workers,
            processes=settings.processes or os.cpu_count() or 1,
            retry_rounds=settings.retry_rounds,
            removed=removed,
            progress=progress,
            policy=FetchPolicy.of(settings),
            previews=previews,
        )
    return outcomes


def file_shards(annotations: AnnotationFile, settings: DownloadSettings) -> int:
    return num_shards(len(annotations.annotations), settings.images_per_shard)


def file_outcomes(
    annotations: AnnotationFile, manifests: Path, settings: DownloadSettings
) -> dict[str, Outcome]:
    """The outcomes recorded by every shard of an annotation file, by image_id."""
    return read_manifests(manifest_path(manifests, i) for i in range(file_shards(annotations, settings)))
