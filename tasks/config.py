"""Settings read from luigi.cfg sections (or ``--<section>-<name>`` on the command line).

They are config, not task parameters: they do not change task ids and the web UI does not
show them. Each default is the core's (the settings dataclass named beside each section);
:func:`settings_from` turns a section into that dataclass. Secrets are never here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import luigi

from redcaps.download.images import RESAMPLE_FILTERS, ImageOptions
from redcaps.errors import RedCapsError
from redcaps.filters.base import FILTER_KEYS
from redcaps.layout import DEFAULT_DATA_DIR, Layout
from redcaps.net.config import HttpConfig, default_user_agent
from redcaps.net.limits import DEFAULT_HOST_POLICIES, HostPolicy, parse_host_policy
from redcaps.settings import DedupSettings, DownloadSettings, ShardSettings, StorageSettings

#: The original tool's filter order (filter-words, then filter-nsfw, then filter-faces).
FILTER_ORDER = tuple(FILTER_KEYS)

Settings = TypeVar("Settings")


def settings_from(section: luigi.Config, cls: type[Settings], **extra: Any) -> Settings:
    """The core's settings dataclass ``cls`` with the section's values for its fields (``extra``
    overrides them, for values a section holds in another form)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {name: getattr(section, name) for name in names if hasattr(section, name)}
    return cls(**{**values, **extra})


class redcaps(luigi.Config):  # noqa: N801 - the section is [redcaps]
    data_dir = luigi.Parameter(default=DEFAULT_DATA_DIR, description="Root of the dataset layout")


def data_layout() -> Layout:
    """The layout of ``[redcaps] data_dir``."""
    return Layout.at(redcaps().data_dir)


class images(luigi.Config):  # noqa: N801 - ImageOptions
    resize = luigi.IntParameter(default=ImageOptions.resize, description="Target edge; -1 keeps the original")
    edge = luigi.ChoiceParameter(choices=["shorter", "longer"], default=ImageOptions.edge)
    upscale = luigi.BoolParameter(default=ImageOptions.upscale)
    quality = luigi.IntParameter(default=ImageOptions.quality, description="JPEG quality of stored images")
    resample = luigi.ChoiceParameter(
        choices=sorted(RESAMPLE_FILTERS), default=ImageOptions.resample, description="Resize filter"
    )
    max_pixels = luigi.IntParameter(default=ImageOptions.max_pixels)
    max_raster_bytes = luigi.IntParameter(default=ImageOptions.max_raster_bytes, description="Per image")
    memory_budget = luigi.IntParameter(default=ImageOptions.memory_budget, description="Decodes per shard")
    max_aspect_ratio = luigi.FloatParameter(default=ImageOptions.max_aspect_ratio)
    keep_loose = luigi.BoolParameter(
        default=StorageSettings.keep_loose, description="false: delete loose images once in verified tars"
    )

    def options(self) -> ImageOptions:
        return settings_from(self, ImageOptions)

    def storage(self) -> StorageSettings:
        return settings_from(self, StorageSettings)


class downloads(luigi.Config):  # noqa: N801 - DownloadSettings and HttpConfig
    shard_size = luigi.IntParameter(default=DownloadSettings.shard_size, description="Images per shard task")
    workers = luigi.IntParameter(default=DownloadSettings.workers, description="Download threads per shard")
    processes = luigi.IntParameter(
        default=DownloadSettings.processes, description="Processes a shard's threads use; 0: one per core"
    )
    retry_rounds = luigi.IntParameter(
        default=DownloadSettings.retry_rounds, description="Later runs that retry retryable failures"
    )
    connect_timeout = luigi.FloatParameter(default=HttpConfig.connect_timeout)
    read_timeout = luigi.FloatParameter(default=HttpConfig.read_timeout)
    max_attempts = luigi.IntParameter(default=HttpConfig.max_attempts)
    backoff_base = luigi.FloatParameter(default=HttpConfig.backoff_base, description="Seconds, doubling")
    max_bytes = luigi.IntParameter(default=HttpConfig.max_bytes)
    user_agent = luigi.Parameter(default="", description="Empty: the built-in descriptive User-Agent")
    request_deadline = luigi.FloatParameter(default=HttpConfig.request_deadline, description="Whole body, s")
    url_deadline = luigi.FloatParameter(default=HttpConfig.url_deadline, description="All attempts, s")
    allow_networks = luigi.Parameter(
        default="", description="Comma list of internal CIDRs that may be fetched"
    )
    host_scope = luigi.ChoiceParameter(
        choices=["machine", "global", "process"], default=HttpConfig.host_scope
    )
    source_address = luigi.Parameter(default=HttpConfig.source_address, description="Local IP to send from")
    budget_dir = luigi.Parameter(default=HttpConfig.budget_dir, description="Where machine budgets live")

    def settings(self) -> DownloadSettings:
        return settings_from(self, DownloadSettings)

    def http_config(self) -> HttpConfig:
        networks = tuple(n.strip() for n in self.allow_networks.split(",") if n.strip())
        config = settings_from(self, HttpConfig, host_policies=host_policies(), allow_networks=networks)
        config.user_agent = config.user_agent or default_user_agent()
        return config


class filters(luigi.Config):  # noqa: N801
    """Which content filters ``RedCapsYear`` runs, always in the original's order."""

    enabled = luigi.Parameter(default=",".join(FILTER_ORDER), description="Comma list of words, nsfw, faces")

    def names(self) -> list[str]:
        wanted = [name.strip() for name in self.enabled.split(",") if name.strip()]
        unknown = sorted(set(wanted) - set(FILTER_ORDER))
        if unknown:
            raise RedCapsError(f"[filters] enabled: unknown filter(s) {unknown}; known: {list(FILTER_ORDER)}")
        return [name for name in FILTER_ORDER if name in wanted]


class shards(luigi.Config):  # noqa: N801 - ShardSettings
    shard_size = luigi.IntParameter(
        default=ShardSettings.shard_size, description="Samples per WebDataset tar"
    )
    format = luigi.ChoiceParameter(choices=["both", "json", "txt"], default=ShardSettings.format)

    def settings(self) -> ShardSettings:
        return settings_from(self, ShardSettings)


class dedup(luigi.Config):  # noqa: N801 - DedupSettings
    mode = luigi.ChoiceParameter(
        choices=["off", "exact", "perceptual"], default=DedupSettings.mode, description="What is dropped"
    )
    max_distance = luigi.IntParameter(
        default=DedupSettings.max_distance, description="pHash bits that may differ in a near duplicate"
    )

    def settings(self) -> DedupSettings:
        return settings_from(self, DedupSettings)


def host_policies() -> dict[str, HostPolicy]:
    """Built-in politeness limits, overridden per host by the ``[host_limits]`` section."""
    policies = dict(DEFAULT_HOST_POLICIES)
    parser = luigi.configuration.get_config()
    if parser.has_section("host_limits"):
        for host, text in parser.items("host_limits"):
            policies[host] = parse_host_policy(text)
    return policies
