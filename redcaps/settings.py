"""The settings of each stage and their defaults, stated once: luigi.cfg sections (``tasks/``) and
the CLI's options read them from here. Images and HTTP have theirs beside their code
(``images.ImageOptions``, ``http.HttpConfig``). A numeric setting declares its valid range on its
field (:func:`ranged`); the preflight and the CLI check values against it before any work."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

#: img2dataset's default ``disallowed_header_directives``: an ``X-Robots-Tag`` naming one opts
#: the image out (``redcaps.net.robots``).
DISALLOWED_DIRECTIVES = ("noai", "noimageai", "noindex", "noimageindex")

#: Where posts come from (``redcaps.collect.month.build_source``).
SOURCES = ("arctic-shift", "pushshift", "dump")
ARCTIC_SHIFT_URL = "https://arctic-shift.photon-reddit.com"
PUSHSHIFT_URL = "https://api.pushshift.io"
PULLPUSH_URL = "https://api.pullpush.io"
Format = Literal["both", "json", "txt"]
DedupMode = Literal["off", "exact", "perceptual"]
WordMode = Literal["exact", "punctuation"]
Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class Range:
    """The values a numeric setting may take: from ``low`` (excluded when ``above``) to ``high``,
    plus the special values in ``also`` (``resize = -1`` keeps the size)."""

    low: float | None = None
    high: float | None = None
    above: bool = False
    also: tuple[float, ...] = ()

    def __contains__(self, value: float) -> bool:
        if value in self.also:
            return True
        too_low = self.low is not None and (value <= self.low if self.above else value < self.low)
        return not too_low and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        low = "" if self.low is None else f"{'above' if self.above else 'at least'} {self.low:g}"
        if self.low is not None and self.high is not None and not self.above:
            text = f"between {self.low:g} and {self.high:g}"
        else:
            text = " and ".join(filter(None, [low, "" if self.high is None else f"at most {self.high:g}"]))
        return " or ".join([*(f"{v:g}" for v in self.also), text])


def ranged(default: Any, **bounds: Any) -> Any:
    """A dataclass field with ``default`` whose valid values are ``Range(**bounds)``."""
    return dataclasses.field(default=default, metadata={"range": Range(**bounds)})


def range_of(cls: type, name: str) -> Range | None:
    """The declared range of field ``name`` of dataclass ``cls``, if it has one."""
    found = [f for f in dataclasses.fields(cls) if f.name == name]
    return found[0].metadata.get("range") if found else None


def range_problems(settings: Any) -> list[str]:
    """``name: value must be <range>`` for each field of a settings object outside its range."""
    problems = []
    for f in dataclasses.fields(settings):
        value, bounds = getattr(settings, f.name), f.metadata.get("range")
        if bounds is not None and value not in bounds:
            problems.append(f"{f.name}: {value!r} must be {bounds}")
    return problems


AT_LEAST_ONE = {"low": 1}
POSITIVE = {"low": 0, "above": True}


@dataclass(frozen=True)
class CollectionSettings:
    """Where posts come from and the score rule; ``credentials`` is a path, never a secret."""

    source: str = "arctic-shift"
    arctic_shift_url: str = ARCTIC_SHIFT_URL
    pushshift_url: str = PUSHSHIFT_URL  # its token: $PUSHSHIFT_TOKEN
    pushshift_flavour: str = "pushshift"  # or pullpush, for PullPush-style mirrors
    dump_dir: str = ""  # RS_YYYY-MM.zst / <sub>_submissions.zst (a directory or one file)
    min_score: int = 2  # posts scoring below this are dropped
    credentials: str = "./credentials.json"


@dataclass(frozen=True)
class CaptionSettings:
    """``drop_empty`` drops posts whose cleaned caption is empty at collection, counted as
    ``empty_caption``; the original (and RedCaps v1) keeps them, so the default keeps them."""

    drop_empty: bool = False


@dataclass(frozen=True)
class DownloadSettings:
    """How a file's images are fetched: instances per shard (a task each), threads per shard, the
    processes they are spread over (0: one per core), and how many later runs retry a shard's
    retryable failures (timeouts, 429, 5xx). ``recover``: try a dead image's live forms and its
    Reddit preview (docs/collection.md); ``disallowed_directives``: the ``X-Robots-Tag``
    directives that opt an image out (empty: the header is ignored)."""

    images_per_shard: int = ranged(5000, **AT_LEAST_ONE)
    workers: int = ranged(16, **AT_LEAST_ONE)
    processes: int = ranged(0, low=0)
    retry_rounds: int = ranged(3, low=0)
    recover: bool = True
    disallowed_directives: tuple[str, ...] = DISALLOWED_DIRECTIVES


@dataclass(frozen=True)
class ShardSettings:
    """How WebDataset shards are made: samples per tar, and which caption members each sample has
    (``both``: ``.json`` and ``.txt``; ``json`` or ``txt`` alone are the older layouts)."""

    samples_per_tar: int = ranged(1000, **AT_LEAST_ONE)
    format: Format = "both"


#: luigi.cfg options renamed so that a download shard and a tar are told apart: (section, new
#: name) -> old name, which is still read (with one deprecation line).
RENAMED_SETTINGS: dict[tuple[str, str], str] = {
    ("downloads", "images_per_shard"): "shard_size",
    ("shards", "samples_per_tar"): "shard_size",
}


@dataclass(frozen=True)
class StorageSettings:
    """``keep_loose = False`` deletes a year's loose images once tars holding them are verified."""

    keep_loose: bool = True


@dataclass(frozen=True)
class DedupSettings:
    """What the Dedup stage drops (``off``: nothing, only recorded) and the pHash distance of a
    near duplicate."""

    mode: DedupMode = "off"
    max_distance: int = ranged(4, low=0, high=64)  # a pHash has 64 bits


@dataclass(frozen=True)
class WordSettings:
    """``exact`` is the original's rule; ``punctuation`` also catches words touching punctuation."""

    mode: WordMode = "exact"


@dataclass(frozen=True)
class ImageFilterSettings:
    """What every image filter takes: the model, the strict threshold, batching and the device."""

    model: str = ""  # empty: the installed default model
    confidence_threshold: float = ranged(0.9, low=0, high=1)
    batch_size: int = ranged(16, **AT_LEAST_ONE)
    workers: int = ranged(4, **AT_LEAST_ONE)  # image decoding threads
    device: Device = "auto"


@dataclass(frozen=True)
class NsfwSettings(ImageFilterSettings):
    """GantMan classifier: remove when porn + hentai > ``confidence_threshold``."""

    batch_size: int = ranged(32, **AT_LEAST_ONE)


@dataclass(frozen=True)
class FaceSettings(ImageFilterSettings):
    """RetinaFace: remove when the best face score > ``confidence_threshold``."""

    long_edge: int = ranged(512, low=0)  # as the original stored images; 0 keeps the stored size
    pad: bool = False  # one padded model call per batch (GPU); border scores can shift


FilterSettings = WordSettings | NsfwSettings | FaceSettings
