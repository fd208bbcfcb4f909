"""Image downloads: one task per shard of an annotation file, and a task for the whole file."""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import luigi

from redcaps import annotations as ann
from redcaps.download import (
    Outcome,
    download_shard,
    downloaded_annotations,
    manifest_path,
    num_shards,
    read_manifests,
    shard_slice,
)
from redcaps.http import Fetcher, HostLimiter, HostPolicy, policy_key
from tasks.base import StageTask
from tasks.config import downloads, host_policies, images


def manifest_dir(root: Path, stem: str) -> Path:
    return root / "images" / ".manifests" / stem


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
    stage = "download"

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(manifest_path(manifest_dir(self.root, self.stem), self.shard)))

    def records(self) -> list[ann.Record]:
        return list(shard_slice(self.load_input().annotations, self.shard, downloads().shard_size))

    @property
    def resources(self) -> dict[str, int]:  # type: ignore[override]
        """One slot per image host this shard touches, so workers sharing a luigid never run
        two shards against the same host at once: each shard's limiter is then the global one."""
        hosts = {urlsplit(r["url"]).hostname or "" for r in self.records()}
        return {host_resource(h): 1 for h in sorted(hosts) if h}

    def run(self) -> None:
        records = self.records()
        config = downloads()
        limiter = process_limiter(tuple(sorted(config.http_config().host_policies.items())))
        fetcher = Fetcher(config.http_config(), limiter)
        waited_before = dict(limiter.waited)
        counts: Counter[str] = Counter()
        last = 0.0

        def progress(outcome: Outcome) -> None:
            nonlocal last
            counts[outcome.status] += 1
            now = time.monotonic()
            if now - last >= 2.0 or sum(counts.values()) == len(records):
                last = now
                done = sum(counts.values())
                failed = done - counts["ok"]
                waited = {k: v - waited_before.get(k, 0.0) for k, v in limiter.waited.items()}
                waits = ", ".join(f"{k} {v:.0f}s" for k, v in waited.items() if v >= 1)
                self.report(
                    f"{done}/{len(records)} images: {counts['ok']} ok, {failed} failed"
                    + (f"; waited on hosts: {waits}" if waits else ""),
                    100.0 * done / max(1, len(records)),
                )

        try:
            download_shard(
                records,
                self.root / "images",
                Path(self.output().path),
                fetcher,
                images().options(),
                workers=config.workers,
                progress=progress,
            )
        finally:
            fetcher.close()


class DownloadImages(StageTask):
    """All images of one annotation file; writes the file of instances whose image is ok."""

    stage = "downloaded"

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.stage_path()))

    def shards(self) -> list[DownloadImageShard]:
        count = num_shards(len(self.load_input().annotations), downloads().shard_size)
        return [DownloadImageShard(annotations=self.annotations, shard=i) for i in range(count)]

    def run(self) -> Iterator[list[DownloadImageShard]]:
        source = self.load_input()  # schema-checked before any shard writes a file
        shards = self.shards()
        yield shards  # dynamic: the shard count is known only once the input exists
        outcomes = read_manifests(Path(s.output().path) for s in shards)
        ann.save(self.output().path, downloaded_annotations(source, outcomes))
