"""Settings read from luigi.cfg sections (or ``--<section>-<name>`` on the command line).

They are config, not task parameters: they do not change task ids and the web UI does not
show them. Secrets are never here; credentials are read from a file or the environment.
"""

from __future__ import annotations

from pathlib import Path

import luigi

from redcaps.errors import RedCapsError
from redcaps.filters.base import FILTER_KEYS
from redcaps.http import DEFAULT_HOST_POLICIES, HostPolicy, HttpConfig, parse_host_policy
from redcaps.images import ImageOptions

#: The original tool's filter order (filter-words, then filter-nsfw, then filter-faces).
FILTER_ORDER = tuple(FILTER_KEYS)


class redcaps(luigi.Config):  # noqa: N801 - the section is [redcaps]
    data_dir = luigi.Parameter(default="./datasets/redcaps", description="Root of the dataset layout")

    @property
    def root(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()


class images(luigi.Config):  # noqa: N801
    resize = luigi.IntParameter(default=512, description="Target edge in pixels; -1 keeps the original")
    edge = luigi.ChoiceParameter(choices=["shorter", "longer"], default="shorter")
    upscale = luigi.BoolParameter(default=False)
    quality = luigi.IntParameter(default=90, description="JPEG quality of stored images")

    def options(self) -> ImageOptions:
        return ImageOptions(resize=self.resize, edge=self.edge, upscale=self.upscale, quality=self.quality)


class downloads(luigi.Config):  # noqa: N801
    shard_size = luigi.IntParameter(default=5000, description="Images per DownloadImageShard task")
    workers = luigi.IntParameter(default=16, description="Download threads per shard")
    connect_timeout = luigi.FloatParameter(default=10.0)
    read_timeout = luigi.FloatParameter(default=30.0)
    max_attempts = luigi.IntParameter(default=5)
    backoff_base = luigi.FloatParameter(default=1.0, description="Seconds; doubles per retry, with jitter")
    max_bytes = luigi.IntParameter(default=50 * 2**20)
    user_agent = luigi.Parameter(default="", description="Empty: the built-in descriptive User-Agent")

    def http_config(self) -> HttpConfig:
        config = HttpConfig(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base,
            max_bytes=self.max_bytes,
            host_policies=host_policies(),
        )
        if self.user_agent:
            config.user_agent = self.user_agent
        return config


class filters(luigi.Config):  # noqa: N801
    """Which content filters ``RedCapsYear`` runs, always in the original's order."""

    enabled = luigi.Parameter(default="words,nsfw,faces", description="Comma list of words, nsfw, faces")

    def names(self) -> list[str]:
        wanted = [name.strip() for name in self.enabled.split(",") if name.strip()]
        unknown = sorted(set(wanted) - set(FILTER_ORDER))
        if unknown:
            raise RedCapsError(f"[filters] enabled: unknown filter(s) {unknown}; known: {list(FILTER_ORDER)}")
        return [name for name in FILTER_ORDER if name in wanted]


class shards(luigi.Config):  # noqa: N801
    shard_size = luigi.IntParameter(default=1000, description="Samples per WebDataset tar")
    format = luigi.ChoiceParameter(choices=["json", "txt"], default="json")


def host_policies() -> dict[str, HostPolicy]:
    """Built-in politeness limits, overridden per host by the ``[host_limits]`` section."""
    policies = dict(DEFAULT_HOST_POLICIES)
    parser = luigi.configuration.get_config()
    if parser.has_section("host_limits"):
        for host, text in parser.items("host_limits"):
            policies[host] = parse_host_policy(text)
    return policies


#: luigi exits 0 on failure unless [retcode] is configured: these apply wherever the user's
#: config does not say otherwise, so a failed run is visible to shells and cron.
RETCODE_DEFAULTS = {
    "already_running": "10",
    "missing_data": "20",
    "not_run": "25",
    "task_failed": "30",
    "scheduling_error": "35",
    "unhandled_exception": "40",
}


def apply_retcode_defaults() -> None:
    config = luigi.configuration.get_config()
    if not config.has_section("retcode"):
        config.add_section("retcode")
    for key, value in RETCODE_DEFAULTS.items():
        if not config.has_option("retcode", key):
            config.set("retcode", key, value)
