"""Image downloads: one task per shard of an annotation file, and a task for the whole file."""

from __future__ import annotations

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
from redcaps.http import Fetcher, HostLimiter, HttpConfig, policy_key
from redcaps.validate import check_unique_ids
from tasks.base import StageTask, Throttled
from tasks.config import downloads, host_policies, images

_LIMITERS: dict[tuple, HostLimiter] = {}


def process_limiter(config: HttpConfig) -> HostLimiter:
    """One limiter per worker process and configuration: consecutive shards share it (a fresh
    one per shard would grant each a fresh burst); its budgets are the machine's by default."""
    key = (
        tuple(sorted(config.host_policies.items())),
        config.host_scope,
        config.source_address,
        config.budget_dir,
        config.retry_after_max,
    )
    if key not in _LIMITERS:
        _LIMITERS[key] = HostLimiter.for_config(config)
    return _LIMITERS[key]


def host_resource(host: str) -> str:
    """The ``[resources]`` name shared by every host one politeness policy covers."""
    return "host_" + policy_key(host, host_policies())


class DownloadImageShard(StageTask):
    """Download one shard (``[downloads] shard_size`` instances) and write its manifest."""

    shard = luigi.IntParameter(description="Shard index within the annotation file")

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(layout.manifest_path(self.layout.manifests(self.stem), self.shard)))

    def hosts(self) -> list[str]:
        records = shard_slice(self.load_input().annotations, self.shard, downloads().shard_size)
        return sorted({urlsplit(r["url"]).hostname or "" for r in records} - {""})

    @property
    def resources(self) -> dict[str, int]:  # type: ignore[override]
        """With ``host_scope = global``, one luigid slot per image host this shard touches, so no
        two shards anywhere use one host at once. By default hosts count per machine, and every
        process on it shares the machine's budget instead (``redcaps.hostbudget``)."""
        if downloads().host_scope != "global":
            return {}
        return {host_resource(h): 1 for h in self.hosts()}

    def run(self) -> None:
        config = downloads()
        http = config.http_config()
        limiter = process_limiter(http)
        fetcher = Fetcher(http, limiter)
        groups = sorted({limiter.policy_key(h): h for h in self.hosts()}.items())
        counts: Counter[str] = Counter()

        def report(done: int, total: int) -> None:
            self.report(
                f"{done}/{total} images: {counts['ok']} ok, {done - counts['ok']} failed; "
                + host_rates(limiter, groups),
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


def host_rates(limiter: HostLimiter, groups: list[tuple[str, str]]) -> str:
    """``redd.it 42.0/s, imgur.com 3.1/s (Retry-After 12 s)``: each host group's current rate and
    the Retry-After pauses imposed on it so far, for the whole group (every thread and process)."""
    parts = []
    for key, host in groups:
        status = limiter.status(host)
        paused = f" (Retry-After {status['paused_s']:.0f} s)" if status["paused_s"] >= 1 else ""
        parts.append(f"{key} {status['rate']:.1f}/s{paused}")
    return ", ".join(parts)


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
        yield self.shards()  # dynamic: the shard count is known only once the input exists
        outcomes = file_outcomes(source, self.layout.manifests(self.stem), downloads().settings())
        ann.save(self.output().path, downloaded_annotations(source, outcomes))
