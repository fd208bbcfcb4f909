"""Image downloads: one task per shard of an annotation file, and a task for the whole file."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator
from urllib.parse import urlsplit

import luigi

from redcaps import annotations as ann
from redcaps import layout
from redcaps.download import (
    Outcome,
    download_file_shard,
    downloaded_annotations,
    file_outcomes,
    file_shards,
    shard_slice,
)
from redcaps.http import Fetcher, HostLimiter, HostPolicy, policy_key
from redcaps.validate import check_unique_ids
from tasks.base import StageTask, Throttled
from tasks.config import downloads, host_policies, images


@functools.lru_cache(maxsize=4)
def process_limiter(policies: tuple[tuple[str, HostPolicy], ...]) -> HostLimiter:
    """One limiter per worker process: consecutive shards share its buckets. A limiter per
    shard would grant every new shard a fresh burst, so a shard boundary could exceed a
    host's rate."""
    return HostLimiter(dict(policies))


def host_resource(host: str) -> str:
    """The ``[resources]`` name shared by every host one politeness policy covers."""
    return "host_" + policy_key(host, host_policies())


class DownloadImageShard(StageTask):
    """Download one shard (``[downloads] shard_size`` instances) and write its manifest."""

    shard = luigi.IntParameter(description="Shard index within the annotation file")

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(layout.manifest_path(self.layout.manifests(self.stem), self.shard)))

    @property
    def resources(self) -> dict[str, int]:  # type: ignore[override]
        """One slot per image host this shard touches, so workers sharing a luigid never run
        two shards against the same host at once: each shard's limiter is then the global one."""
        records = shard_slice(self.load_input().annotations, self.shard, downloads().shard_size)
        hosts = {urlsplit(r["url"]).hostname or "" for r in records}
        return {host_resource(h): 1 for h in sorted(hosts) if h}

    def run(self) -> None:
        config = downloads()
        http = config.http_config()
        limiter = process_limiter(tuple(sorted(http.host_policies.items())))
        fetcher = Fetcher(http, limiter)
        waited_before = dict(limiter.waited)
        counts: Counter[str] = Counter()

        def report(done: int, total: int) -> None:
            waited = {k: v - waited_before.get(k, 0.0) for k, v in limiter.waited.items()}
            waits = ", ".join(f"{k} {v:.0f}s" for k, v in waited.items() if v >= 1)
            self.report(
                f"{done}/{total} images: {counts['ok']} ok, {done - counts['ok']} failed"
                + (f"; waited on hosts: {waits}" if waits else ""),
                100.0 * done / total,
            )

        source, settings = self.load_input(), config.settings()
        total = len(shard_slice(source.annotations, self.shard, settings.shard_size))
        throttled = Throttled(report)

        def progress(outcome: Outcome) -> None:
            counts[outcome.status] += 1
            throttled(sum(counts.values()), total)

        try:
            download_file_shard(
                source,
                self.shard,
                self.layout.images,
                self.layout.manifests(self.stem),
                fetcher,
                images().options(),
                settings,
                progress,
            )
        finally:
            fetcher.close()


class DownloadImages(StageTask):
    """All images of one annotation file; writes the file of instances whose image is ok."""

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.layout.stage_file(layout.DOWNLOADED, self.stem)))

    def shards(self) -> list[DownloadImageShard]:
        count = file_shards(self.load_input(), downloads().settings())
        return [DownloadImageShard(annotations=self.annotations, shard=i) for i in range(count)]

    def run(self) -> Iterator[list[DownloadImageShard]]:
        source = self.load_input()  # schema-checked before any shard writes a file
        check_unique_ids(source.annotations, str(self.input_path))
        self.report(f"{len(source.annotations)} images in {len(self.shards())} shards", 0)
        yield self.shards()  # dynamic: the shard count is known only once the input exists
        outcomes = file_outcomes(source, self.layout.manifests(self.stem), downloads().settings())
        ann.save(self.output().path, downloaded_annotations(source, outcomes))
        self.report(f"{len(self.shards())} shards done", 100)
