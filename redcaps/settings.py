"""The settings of each stage and their defaults, stated once: luigi.cfg sections (``tasks/``) and
the CLI's options read them from here. Images and HTTP have theirs beside their code
(``images.ImageOptions``, ``http.HttpConfig``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from redcaps.net.robots import DISALLOWED_DIRECTIVES

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

    images_per_shard: int = 5000
    workers: int = 16
    processes: int = 0
    retry_rounds: int = 3
    recover: bool = True
    disallowed_directives: tuple[str, ...] = DISALLOWED_DIRECTIVES


@dataclass(frozen=True)
class ShardSettings:
    """How WebDataset shards are made: samples per tar, and which caption members each sample has
    (``both``: ``.json`` and ``.txt``; ``json`` or ``txt`` alone are the older layouts)."""

    samples_per_tar: int = 1000
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
    max_distance: int = 4


@dataclass(frozen=True)
class WordSettings:
    """``exact`` is the original's rule; ``punctuation`` also catches words touching punctuation."""

    mode: WordMode = "exact"


@dataclass(frozen=True)
class ImageFilterSettings:
    """What every image filter takes: the model, the strict threshold, batching and the device."""

    model: str = ""  # empty: the installed default model
    confidence_threshold: float = 0.9
    batch_size: int = 16
    workers: int = 4  # image decoding threads
    device: Device = "auto"


@dataclass(frozen=True)
class NsfwSettings(ImageFilterSettings):
    """GantMan classifier: remove when porn + hentai > ``confidence_threshold``."""

    batch_size: int = 32


@dataclass(frozen=True)
class FaceSettings(ImageFilterSettings):
    """RetinaFace: remove when the best face score > ``confidence_threshold``."""

    long_edge: int = 512  # as the original stored images; 0 keeps the stored size
    pad: bool = False  # one padded model call per batch (GPU); border scores can shift


FilterSettings = WordSettings | NsfwSettings | FaceSettings
