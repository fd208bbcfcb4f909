"""Settings read from luigi.cfg sections (or ``--<section>-<name>`` on the command line).

They are config, not task parameters: they do not change task ids and the web UI does not
show them. Each default is the core's (the settings dataclass named beside each section);
:func:`settings_from` turns a section into that dataclass. Secrets are never here.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any, ClassVar, TypeVar

import luigi

from redcaps.download.images import RESAMPLE_FILTERS, ImageOptions
from redcaps.errors import RedCapsError
from redcaps.filters.base import FILTER_KEYS
from redcaps.layout import DEFAULT_DATA_DIR
from redcaps.net.config import HttpConfig, default_user_agent
from redcaps.net.limits import DEFAULT_HOST_POLICIES, HostPolicy, parse_host_policy
from redcaps.settings import (
    RENAMED_SETTINGS,
    CaptionSettings,
    DedupSettings,
    DownloadSettings,
    ShardSettings,
    StorageSettings,
)

#: The original tool's filter order (filter-words, then filter-nsfw, then filter-faces).
FILTER_ORDER = tuple(FILTER_KEYS)
#: Each filter's stage task family.
FILTER_STAGES = {"words": "FilterWords", "nsfw": "FilterNsfw", "faces": "FilterFaces"}

Settings = TypeVar("Settings")


def settings_from(section: luigi.Config, cls: type[Settings], **extra: Any) -> Settings:
    """The core's settings dataclass ``cls`` with the section's values for its fields (``extra``
    overrides them, for values a section holds in another form)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {name: getattr(section, name) for name in names if hasattr(section, name)}
    return cls(**{**values, **extra})


class Section(luigi.Config):
    """A luigi.cfg section named ``section`` (so are its ``--<section>-<option>`` flags): the
    Python class keeps a name of its own, which no core module has."""

    section: ClassVar[str] = ""

    @classmethod
    def get_task_family(cls) -> str:
        return cls.section or cls.__name__

    def renamed(self, new: str) -> Any:
        """The old name's value when it is set (with one deprecation line), else ``new``'s."""
        old = RENAMED_SETTINGS[(self.section, new)]
        value = getattr(self, old)
        if value is None:
            return getattr(self, new)
        _warn_renamed(self.section, old, new)
        return value


@functools.cache
def _warn_renamed(section: str, old: str, new: str) -> None:
    logging.getLogger("luigi-interface").warning(
        "[%s] %s is deprecated: it is now %s (the old name still works)", section, old, new
    )


class RedcapsConfig(Section):
    section = "redcaps"
    data_dir = luigi.Parameter(default=DEFAULT_DATA_DIR, description="Root of the dataset layout")
    lock_wait = luigi.FloatParameter(
        default=600.0, description="Seconds a stage waits for another run's lock on its stem, then fails"
    )
    publish_to = luigi.Parameter(default="", description="fsspec URL finished years go to (s3://b/p)")
    publish_options = luigi.Parameter(
        default="",
        visibility=luigi.parameter.ParameterVisibility.PRIVATE,
        description="JSON of fsspec storage options (may hold keys: never shown)",
    )


class ImagesConfig(Section):
    """ImageOptions and StorageSettings."""

    section = "images"
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


class DownloadsConfig(Section):
    """DownloadSettings and HttpConfig."""

    section = "downloads"
    images_per_shard = luigi.IntParameter(
        default=DownloadSettings.images_per_shard, description="Images per DownloadImageShard task"
    )
    shard_size = luigi.OptionalIntParameter(default=None, description="Deprecated: images_per_shard")
    workers = luigi.IntParameter(default=DownloadSettings.workers, description="Download threads per shard")
    processes = luigi.IntParameter(
        default=DownloadSettings.processes, description="Processes a shard's threads use; 0: one per core"
    )
    retry_rounds = luigi.IntParameter(
        default=DownloadSettings.retry_rounds, description="Later runs that retry retryable failures"
    )
    recover = luigi.BoolParameter(
        default=DownloadSettings.recover, description="Try dead images' live forms and Reddit previews"
    )
    disallowed_directives = luigi.Parameter(
        default=",".join(DownloadSettings.disallowed_directives),
        description="Comma list of X-Robots-Tag directives that opt an image out; empty: none",
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
        directives = tuple(d.strip() for d in self.disallowed_directives.split(",") if d.strip())
        return settings_from(
            self,
            DownloadSettings,
            images_per_shard=self.renamed("images_per_shard"),
            disallowed_directives=directives,
        )

    def http_config(self) -> HttpConfig:
        networks = tuple(n.strip() for n in self.allow_networks.split(",") if n.strip())
        config = settings_from(self, HttpConfig, host_policies=host_policies(), allow_networks=networks)
        config.user_agent = config.user_agent or default_user_agent()
        return config


class FiltersConfig(Section):
    """Which content filters ``RedCapsYear`` runs, always in the original's order."""

    section = "filters"

    enabled = luigi.Parameter(default=",".join(FILTER_ORDER), description="Comma list of words, nsfw, faces")

    def names(self) -> list[str]:
        wanted = [name.strip() for name in self.enabled.split(",") if name.strip()]
        unknown = sorted(set(wanted) - set(FILTER_ORDER))
        if unknown:
            raise RedCapsError(f"[filters] enabled: unknown filter(s) {unknown}; known: {list(FILTER_ORDER)}")
        return [name for name in FILTER_ORDER if name in wanted]

    def stages(self) -> list[str]:
        """The enabled filters' stage families, in order (``FilterWords``, ...)."""
        return [FILTER_STAGES[name] for name in self.names()]


class ShardsConfig(Section):
    """ShardSettings: the WebDataset tars."""

    section = "shards"
    samples_per_tar = luigi.IntParameter(
        default=ShardSettings.samples_per_tar, description="Samples per WebDataset tar"
    )
    shard_size = luigi.OptionalIntParameter(default=None, description="Deprecated: samples_per_tar")
    format = luigi.ChoiceParameter(choices=["both", "json", "txt"], default=ShardSettings.format)

    def settings(self) -> ShardSettings:
        return settings_from(self, ShardSettings, samples_per_tar=self.renamed("samples_per_tar"))


class CaptionsConfig(Section):
    """CaptionSettings."""

    section = "captions"
    drop_empty = luigi.BoolParameter(
        default=CaptionSettings.drop_empty, description="Drop posts whose cleaned caption is empty"
    )

    def settings(self) -> CaptionSettings:
        return settings_from(self, CaptionSettings)


class DedupConfig(Section):
    """DedupSettings."""

    section = "dedup"
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
