"""Image downloads: one task per shard of an annotation file, and a task for the whole file.

A shard whose manifest still has retryable failures (with ``[downloads] retry_rounds`` to
spare) is incomplete, so the next run retries them; in the run that wrote the manifest it is
complete (luigi's ``check_complete_on_run``). "This run" is this process: a manifest counts
as written by it when it changed since the process first looked at it.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import luigi

from redcaps import annotations as ann
from redcaps import integrity, layout
from redcaps.dataset.tarify import restore_from_shards
from redcaps.download.manifest import Outcome, downloaded_annotations, read_outcomes
from redcaps.download.previews import PreviewLookup
from redcaps.download.shard import download_file, file_outcomes, file_shards, retries_left, shard_slice
from redcaps.filters.base import FILTER_KEYS, read_removals
from redcaps.net.budget import default_budget_dir
from redcaps.net.config import HttpConfig
from redcaps.net.fetcher import Fetcher
from redcaps.net.limits import HostLimiter, policy_key
from redcaps.validate import check_unique_ids
from tasks.base import StageTask, Throttled, save_if_changed
from tasks.collect import CollectionConfig
from tasks.config import DownloadsConfig, ImagesConfig, host_policies

_LIMITERS: dict[tuple, HostLimiter] = {}


def process_limiter(config: HttpConfig) -> HostLimiter:
    """One limiter per worker process and configuration: consecutive shards share it (a fresh
    one per shard would grant each a fresh burst); its budgets are the machine's by default."""
    key = (
        tuple(sorted(config.host_policies.items())),
        config.host_scope,
        config.source_address,
        config.budget_dir or str(default_budget_dir()),
        config.retry_after_max,
    )
    if key not in _LIMITERS:
        _LIMITERS[key] = HostLimiter.for_config(config)
    return _LIMITERS[key]


def host_resource(host: str) -> str:
    """The ``[resources]`` name shared by every host one politeness policy covers."""
    return "host_" + policy_key(host, host_policies())


#: Each manifest's state when this process first looked at it (``None``: not there yet).
_first_seen: dict[str, tuple[int, int, int] | None] = {}


def _state(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def written_this_run(manifest: Path) -> bool:
    """Whether ``manifest`` changed since this process (or the worker it was forked from) first
    looked at it: the first look happens when the task is scheduled, before it runs."""
    state = _state(manifest)
    return _first_seen.setdefault(str(manifest), state) != state


@functools.lru_cache(maxsize=256)
def _retries_left(path: str, state: tuple[int, int, int], retry_rounds: int) -> int:
    return retries_left(read_outcomes(Path(path)).values(), retry_rounds)


def shard_finished(manifest: Path, retry_rounds: int) -> bool:
    """A manifest with nothing left to retry, or written by this run (retried next run)."""
    changed = written_this_run(manifest)  # the first look is remembered even before it exists
    state = _state(manifest)
    if state is None:
        return False
    return changed or not _retries_left(str(manifest), state, retry_rounds)


class DownloadImageShard(StageTask):
    """Download one shard (``[downloads] images_per_shard`` instances) and write its manifest."""

    position = "DownloadImages"
    shard = luigi.IntParameter(description="Shard index within the annotation file")

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(layout.manifest_path(self.layout.manifests(self.stem), self.shard)))

    def hosts(self) -> list[str]:
        records = shard_slice(
            self.load_input().annotations, self.shard, DownloadsConfig().settings().images_per_shard
        )
        return sorted({urlsplit(r["url"]).hostname or "" for r in records} - {""})

    def complete(self) -> bool:
        manifest = Path(self.output().path)
        finished = shard_finished(manifest, DownloadsConfig().retry_rounds)
        return finished and integrity.intact(self.layout.root, manifest)

    def removed_later(self) -> set[str]:
        return removed_later(self.layout, self.stem)

    @property
    def resources(self) -> dict[str, int]:  # type: ignore[override]
        """With ``host_scope = global``, one luigid slot per image host this shard touches, so no
        two shards anywhere use one host at once. By default hosts count per machine, and every
        process on it shares the machine's budget instead (``redcaps.net.budget``)."""
        if DownloadsConfig().host_scope != "global":
            return {}
        return {host_resource(h): 1 for h in self.hosts()}

    def run(self) -> None:
        self.fetch()

    def fetch(self) -> None:
        """Download the shard's images that are not stored (resuming) and write its manifest."""
        config = DownloadsConfig()
        http = config.http_config()
        limiter = process_limiter(http)
        fetcher = Fetcher(http, limiter)
        groups = sorted({limiter.policy_key(h): h for h in self.hosts()}.items())
        counts: Counter[str] = Counter()

        def show(done: int, total: int) -> None:
            self.show_progress(
                f"{done}/{total} images: {counts['ok']} ok, {done - counts['ok']} failed; "
                + host_rates(limiter, groups),
                100.0 * done / total,
            )

        source, settings = self.load_input(), config.settings()
        records = shard_slice(source.annotations, self.shard, settings.images_per_shard)
        total = len(records)
        throttled = Throttled(show)

        def progress(outcome: Outcome) -> None:
            counts[outcome.status] += 1
            throttled(sum(counts.values()), total)

        written_this_run(Path(self.output().path))  # its state before this run, if not seen yet
        previews = self.preview_lookup(http, records) if settings.recover else None
        try:
            download_file(
                source,
                self.layout.images,
                self.layout.manifests(self.stem),
                fetcher,
                ImagesConfig().options(),
                settings,
                progress,
                shards=[self.shard],
                removed=self.removed_later(),
                previews=previews,
            )
        finally:
            fetcher.close()
            if previews is not None:
                previews.close()
        self.record_artefacts()

    def preview_lookup(self, http: HttpConfig, records: Sequence[ann.Record]) -> PreviewLookup:
        """Previews from the side files of the records' months, then Arctic Shift, then Reddit
        when its credentials are configured (read from credentials.json or the environment)."""
        months = {(r["subreddit"], month_of(r["created_utc"])) for r in records}
        collection = CollectionConfig()
        return PreviewLookup(
            collection.arctic_shift_url,
            config=http,
            collected=[self.layout.month_previews(subreddit, month) for subreddit, month in months],
            reddit=collection.load_credentials().reddit,
        )


def month_of(created_utc: float) -> dt.date:
    """The first day of the UTC month a post was created in (the month that collected it)."""
    return dt.datetime.fromtimestamp(created_utc, dt.timezone.utc).date().replace(day=1)


def removed_later(data: layout.Layout, stem: str) -> set[str]:
    """Image ids a later stage removed (their images are gone on purpose: never refetched)."""
    removed: set[str] = set()
    for kind in FILTER_KEYS:
        path = data.removals(kind, stem)
        if path.exists():
            removed |= {r.image_id for r in read_removals(path)}
    return removed


def host_rates(limiter: HostLimiter, groups: list[tuple[str, str]]) -> str:
    """``redd.it 42/s, imgur.com 3.1/s (paused 12 s)``: each host group's current rate and the
    Retry-After pauses imposed on it so far, for the whole group (every thread and process);
    short, as the terminal's progress line drops it first when it is too wide."""
    parts = []
    for key, host in groups:
        status = limiter.status(host)
        paused = f" (paused {status['paused_s']:.0f} s)" if status["paused_s"] >= 1 else ""
        rate = status["rate"]
        parts.append(f"{key} {rate:.0f}/s{paused}" if rate >= 10 else f"{key} {rate:.1f}/s{paused}")
    return ", ".join(parts)


class DownloadImages(StageTask):
    """All images of one annotation file; writes the file of instances whose image is ok."""

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.layout.stage_file(layout.DOWNLOADED, self.stem)))

    def complete(self) -> bool:
        """Also incomplete while a shard has failures to retry, so a rerun reaches the shards."""
        return super().complete() and all(shard.complete() for shard in self.shards())

    def shards(self) -> list[DownloadImageShard]:
        count = file_shards(self.load_input(), DownloadsConfig().settings())
        return [self.clone(DownloadImageShard, shard=i) for i in range(count)]

    def run(self) -> Iterator[list[DownloadImageShard]]:
        source = self.load_input()  # schema-checked before any shard writes a file
        check_unique_ids(source.annotations, str(self.input_path))
        self.restore_from_shards(source)
        self.show_progress(f"{len(source.annotations)} images in {len(self.shards())} shards", 0)
        yield self.shards()  # dynamic: the shard count is known only once the input exists
        outcomes = file_outcomes(source, self.layout.manifests(self.stem), DownloadsConfig().settings())
        save_if_changed(self.output().path, downloaded_annotations(source, outcomes))
        self.record_artefacts()
        self.show_progress(f"{len(self.shards())} shards done", 100)

    def restore_from_shards(self, source: ann.AnnotationFile) -> None:
        """Take the ``ok`` images a ``keep_loose = false`` run deleted back out of the stem's
        shards before any shard decides what to fetch: the tars are where the year's images are
        kept, so they are never fetched again, and filters and dedup see them all."""
        outcomes = file_outcomes(source, self.layout.manifests(self.stem), DownloadsConfig().settings())
        removed = removed_later(self.layout, self.stem)
        held = [
            r
            for r in source.annotations
            if (o := outcomes.get(r["image_id"])) is not None and o.ok and o.image_id not in removed
        ]
        restore_from_shards(ann.AnnotationFile(source.info, held), self.layout, self.stem)
