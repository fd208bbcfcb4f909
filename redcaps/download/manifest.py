"""The manifest format: one :class:`Outcome` per instance as a JSON line, and reading it back.

A shard's manifest lists its instances' outcomes in file order; while the shard runs, outcomes
are appended to a journal beside it (:func:`journal_path`). Lines are JSON objects with sorted
keys, so a manifest's bytes depend only on its outcomes.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

from redcaps.annotations import AnnotationFile
from redcaps.atomic import read_jsonl
from redcaps.errors import RedCapsError
from redcaps.net.fetcher import RETRYABLE_STATUSES, FetchResult


@dataclass
class Outcome:
    """What happened to one instance's image (one manifest line).

    ``url``, ``status``, ``final_url`` and ``error`` are the fetch's (:meth:`fetched`), the
    status being replaced by a rejection reason when the body is not a usable image.
    """

    image_id: str
    url: str
    status: str
    final_url: str | None = None
    error: str | None = None
    bytes: int | None = None
    original_width: int | None = None
    original_height: int | None = None
    width: int | None = None
    height: int | None = None
    sha256: str | None = None
    #: sha256 of the stored image file (``sha256`` is the fetched body's): a damaged file shows.
    stored_sha256: str | None = None
    #: The run that produced this outcome: 1 for the first fetch, +1 for every rerun retrying it.
    round: int = 1
    #: How the image was got when not from ``url`` itself (:mod:`redcaps.download.recover`):
    #: ``rewrite`` or ``preview``, from ``fetched_url``. Both stay off the line for the original.
    route: str | None = None
    fetched_url: str | None = None

    @classmethod
    def fetched(cls, image_id: str, result: FetchResult) -> Outcome:
        """The outcome of a fetch, before its body (if any) is looked at."""
        return cls(image_id, **{name: getattr(result, name) for name in _FROM_FETCH})

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUSES

    @property
    def route_taken(self) -> str:
        """``original``, ``rewrite`` or ``preview``."""
        return self.route or "original"

    def as_dict(self) -> dict:
        # a flat dict of scalars: dataclasses.asdict's recursive deep copy was measurable here
        data = {name: getattr(self, name) for name in _OUTCOME_FIELDS}
        for name in _ROUTE_FIELDS:  # a line from the original URL is as it always was
            if data[name] is None:
                del data[name]
        return data

    def to_line(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> Outcome:
        """An outcome from its line's fields; fields a later version added are ignored."""
        return cls(**{k: v for k, v in data.items() if k in _OUTCOME_FIELDS})


_OUTCOME_FIELDS = frozenset(f.name for f in fields(Outcome))
_ROUTE_FIELDS = ("route", "fetched_url")
#: The fields an outcome shares with the fetch it records.
_FROM_FETCH = tuple(f.name for f in fields(FetchResult) if f.name in _OUTCOME_FIELDS)


def journal_path(manifest: Path) -> Path:
    return manifest.with_name(manifest.name + ".partial")


def read_outcomes(path: Path) -> dict[str, Outcome]:
    """Outcomes by image_id from a manifest or journal (none if it is missing); a torn last
    line is dropped, any other bad line is an error."""
    outcomes: dict[str, Outcome] = {}
    for data in read_jsonl(path):
        try:
            outcome = Outcome.from_dict(data)
        except TypeError:
            raise RedCapsError(f"{path}: not an outcome: {json.dumps(data)[:120]}") from None
        outcomes[outcome.image_id] = outcome
    return outcomes


def read_manifests(paths: Iterable[Path]) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for path in paths:
        outcomes.update(read_outcomes(Path(path)))
    return outcomes


def cut_torn_line(journal: Path) -> None:
    """Drop a journal's torn last line (a killed writer's), so the next line appended is whole."""
    try:
        data = journal.read_bytes()
    except FileNotFoundError:
        return
    if data and not data.endswith(b"\n"):
        os.truncate(journal, data.rfind(b"\n") + 1)


def summarize(outcomes: Iterable[Outcome]) -> Counter[str]:
    """Count outcomes by status (the closing summary and the ``info.download`` block)."""
    return Counter(o.status for o in outcomes)


def downloaded_annotations(annotations: AnnotationFile, outcomes: dict[str, Outcome]) -> AnnotationFile:
    """The original's ``--update-annotations``, done right: keep records whose image is ok.

    Matching is by ``image_id`` from the manifests, never by position, so a resumed run
    keeps exactly the right records (the original misaligned here and deleted wrong ones).
    """
    kept = [r for r in annotations.annotations if (o := outcomes.get(r["image_id"])) and o.ok]
    counts = summarize(
        outcomes.get(r["image_id"]) or Outcome(r["image_id"], r["url"], "not_attempted")
        for r in annotations.annotations
    )
    info = dict(annotations.info)
    info["download"] = {
        "attempted": len(annotations.annotations),
        "ok": counts.pop("ok", 0),
        "failed": dict(sorted(counts.items())),
    }
    return AnnotationFile(info, kept)
