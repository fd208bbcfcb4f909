"""Checksums of the final artefacts: recorded when written, checked cheaply on every run.

A stage that writes an artefact (an annotation file, a tar, its parquet and ``_stats.json``, a
manifest, a stage marker) records its size and sha256 in ``<data_dir>/checksums/<its path under
the data dir>.json``. A stage is complete only while its artefacts are :func:`intact`: present,
of the recorded size, and (small JSON files) parseable; anything else reruns the stage.
:func:`damage` is ``redcaps verify``: every hash, and every tar and parquet read through.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from redcaps.atomic import read_json, sha256_file, write_json

CHECKSUMS = "checksums"
#: JSON files up to this size are parsed by the cheap check (markers, indexes, small years).
PARSE_LIMIT = 1 << 20


def record_path(root: Path, artefact: Path) -> Path:
    return Path(root) / CHECKSUMS / (str(Path(artefact).relative_to(root)) + ".json")


def record(root: str | Path, artefacts: Iterable[Path]) -> None:
    """Record each artefact's size and sha256 as it is now (just written)."""
    for artefact in artefacts:
        facts = {"size": os.path.getsize(artefact), "sha256": sha256_file(artefact)}
        write_json(record_path(Path(root), Path(artefact)), facts, sort_keys=True)


def intact(root: str | Path, artefact: Path) -> bool:
    """Present, of its recorded size (when recorded), and a small JSON file parses: the check
    every run makes before trusting a stage's output."""
    try:
        size = os.path.getsize(artefact)
    except OSError:
        return False
    facts = read_json(record_path(Path(root), Path(artefact)))
    if facts is not None and facts.get("size") != size:
        return False
    return Path(artefact).suffix != ".json" or size > PARSE_LIMIT or _parses(Path(artefact))


def all_intact(root: str | Path, artefacts: Iterable[Path]) -> bool:
    return all(intact(root, a) for a in artefacts)


def _parses(path: Path) -> bool:
    try:
        json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return True


def damage(root: str | Path) -> Iterator[tuple[Path, str]]:
    """(artefact, what is wrong) for every recorded artefact that is missing, of another size or
    hash, or (tars, parquet, JSON) does not read: the full check, reading every byte."""
    root = Path(root)
    for facts_path in sorted((root / CHECKSUMS).rglob("*.json")):
        artefact = root / str(facts_path.relative_to(root / CHECKSUMS))[: -len(".json")]
        facts = read_json(facts_path) or {}
        if not artefact.is_file():
            yield artefact, "missing"
        elif os.path.getsize(artefact) != facts.get("size"):
            yield artefact, f"{os.path.getsize(artefact)} bytes, recorded {facts.get('size')}"
        elif sha256_file(artefact) != facts.get("sha256"):
            yield artefact, "sha256 differs from the recorded one"
        elif (problem := unreadable(artefact)) is not None:
            yield artefact, problem


def unreadable(artefact: Path) -> str | None:
    """Why a tar, parquet or JSON file does not read through, or None when it does."""
    try:
        if artefact.suffix == ".tar":
            with tarfile.open(artefact) as tar:
                for member in tar:
                    if (data := tar.extractfile(member)) is not None:
                        data.read()
        elif artefact.suffix == ".parquet":
            import pyarrow.parquet as pq  # only verify needs pyarrow here

            pq.read_table(artefact)
        elif artefact.suffix == ".json":
            json.loads(artefact.read_bytes())
    except Exception as exc:  # any reader's failure is the artefact's damage
        return f"does not read: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return None


def mark_damaged(root: str | Path, artefact: Path, why: str) -> None:
    """Record that an artefact is damaged, so the next run's cheap check fails and rebuilds it."""
    write_json(record_path(Path(root), artefact), {"damaged": why, "size": None}, sort_keys=True)


def rebuilt_by(root: str | Path, artefact: Path) -> str:
    """The stage whose rerun rebuilds an artefact, and for which stem: ``Tarify of roses_2020``."""
    parts = Path(artefact).relative_to(root).parts
    name = Path(parts[-1]).name
    if parts[0] == "annotations":
        return f"Publish of {name.split('.')[0]}"
    if parts[0] == "tarfiles":
        return f"Tarify of {name.split('.')[0].rpartition('_')[0]}"
    if parts[0] == "images" and len(parts) > 2:
        return f"DownloadImages of {parts[2]} (shard {name.split('.')[0]})"
    return f"{parts[1]} stage of {name.split('.')[0]}" if len(parts) > 2 else f"the stage writing {name}"


def prune(root: str | Path, directory: Path, pattern: str, keep: Iterable[Path]) -> None:
    """Forget the records of ``directory``'s artefacts matching ``pattern`` that are not in
    ``keep`` (stale shards a rerun removed), so verify never looks for them."""
    root, kept = Path(root), {record_path(Path(root), Path(p)) for p in keep}
    records = record_path(root, Path(directory) / "x").parent
    for stale in set(records.glob(pattern + ".json")) - kept:
        stale.unlink(missing_ok=True)
