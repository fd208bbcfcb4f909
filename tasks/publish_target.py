"""Luigi targets for years published to ``[redcaps] publish_to`` (Luigi has no fsspec target).

A store that refuses the completion check itself (wrong credentials, an endpoint that is down)
is reported as the publish preflight's one line, so ``luigi --module pipeline ...`` ends before
any task runs instead of printing a provider traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import luigi

from redcaps import preflight
from redcaps.storage import Store, parse_options
from tasks.config import RedcapsConfig

T = TypeVar("T")

#: Publish targets whose preflight passed in this process, by URL and options.
_writable: set[str] = set()


def publish_store() -> Store | None:
    """The configured publish target, or None when ``publish_to`` is empty."""
    config = RedcapsConfig()
    if not config.publish_to:
        return None
    return Store(config.publish_to, parse_options(config.publish_options))


def check_publish_target() -> None:
    """The preflight of the publish target: writable, or one line before any work (once per
    process and target: it writes and deletes a probe object)."""
    config = RedcapsConfig()
    key = json.dumps([config.publish_to, config.publish_options])
    if key in _writable:
        return
    preflight.raise_problems(preflight.check_publish_target(config.publish_to, config.publish_options))
    _writable.add(key)


def _asking(check: Callable[[], T]) -> T:
    """``check()`` of the store; any refusal but a missing object becomes the preflight's line."""
    try:
        return check()
    except Exception:
        _writable.clear()
        check_publish_target()  # raises the one-line PreflightError when the store refuses
        raise  # the store is writable: something else, left to luigi


class PublishedYear(luigi.Target):
    """Exists when the year's manifest and every object it lists are in the store."""

    def __init__(self, store: Store, stem: str) -> None:
        self.store, self.stem = store, stem

    @property
    def path(self) -> str:
        return self.store.key(self.store.manifest_key(self.stem))

    def exists(self) -> bool:
        return _asking(lambda: self.store.is_published(self.stem))


class PublishedBatch(luigi.Target):
    """Exists when every year of a batch (part) is published: one listing, one manifest a year."""

    def __init__(self, store: Store, name: str, stems: list[str]) -> None:
        self.store, self.name, self.stems = store, name, stems

    @property
    def path(self) -> str:
        return self.store.key(f"batches/{self.name}")

    def missing(self) -> list[str]:
        """The batch's years not (wholly) published yet."""
        done = _asking(lambda: self.store.published(self.stems))
        return [stem for stem in self.stems if stem not in done]

    def exists(self) -> bool:
        return not self.missing()
