"""A Luigi target for a year published to ``[redcaps] publish_to`` (Luigi has no fsspec target)."""

from __future__ import annotations

import luigi

from redcaps.storage import Store, parse_options
from tasks.config import RedcapsConfig


def publish_store() -> Store | None:
    """The configured publish target, or None when ``publish_to`` is empty."""
    config = RedcapsConfig()
    if not config.publish_to:
        return None
    return Store(config.publish_to, parse_options(config.publish_options))


class PublishedYear(luigi.Target):
    """Exists when the year's manifest and every object it lists are in the store."""

    def __init__(self, store: Store, stem: str) -> None:
        self.store, self.stem = store, stem

    @property
    def path(self) -> str:
        return self.store.key(self.store.manifest_key(self.stem))

    def exists(self) -> bool:
        return self.store.is_published(self.stem)
