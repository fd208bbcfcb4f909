"""``merge``: combine annotation files (months into a year), as the original did, minus its losses.

Original semantics: inputs in sorted order, de-duplicated by ``image_id`` (the last one
wins), sorted by ``created_utc``, ``info`` dates min/max. Unlike the original, filter
blocks are not silently dropped: a block every input has with the same model and threshold
is kept with ``num_removed`` summed; otherwise it is dropped and a warning says why.
``--delete-old`` deletes inputs only after the output is written, and never the output.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redcaps import FORMAT_VERSION
from redcaps import annotations as ann
from redcaps.errors import RedCapsError

_BASE_INFO = set(ann.INFO_FIELDS)


@dataclass
class MergeResult:
    output: Path
    inputs: list[Path]
    records: int
    duplicates: int
    deleted: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def expand_inputs(patterns: Sequence[str]) -> list[Path]:
    """Expand each argument with ``glob`` (like the original); sorted and de-duplicated."""
    paths: set[Path] = set()
    for pattern in patterns:
        matches = (
            glob.glob(pattern) if glob.has_magic(pattern) else ([pattern] if Path(pattern).exists() else [])
        )
        if not matches:
            raise RedCapsError(f"{pattern}: no such file")
        paths.update(Path(m) for m in matches)
    return sorted(paths)


def _merge_filter_block(name: str, blocks: list[dict[str, Any] | None], warnings: list[str]) -> dict | None:
    present = [b for b in blocks if b is not None]
    if not present:
        return None
    if len(present) < len(blocks):
        warnings.append(
            f"info.{name} is in only {len(present)} of {len(blocks)} inputs; dropped from the output"
        )
        return None
    keys = {(b.get("model"), b.get("confidence_threshold")) for b in present}
    if len(keys) > 1:
        warnings.append(f"info.{name} differs between inputs (model or threshold); dropped from the output")
        return None
    merged = dict(present[-1])
    merged["num_removed"] = sum(int(b.get("num_removed", 0)) for b in present)
    return merged


def merge(
    files: Sequence[ann.AnnotationFile], names: Sequence[str] | None = None
) -> tuple[ann.AnnotationFile, list[str]]:
    """Merge in the given order; returns the merged file and warnings (pure, writes nothing)."""
    if not files:
        raise RedCapsError("nothing to merge")
    names = list(names or [f"input {i}" for i in range(len(files))])
    warnings: list[str] = []
    versions = {str(f.info.get("version")) for f in files}
    if len(versions) > 1:
        warnings.append(f"inputs have different versions {sorted(versions)}")
    by_id: dict[str, ann.Record] = {}
    for af in files:
        for record in af.annotations:
            by_id.pop(record["image_id"], None)  # last wins
            by_id[record["image_id"]] = record
    records = sorted(by_id.values(), key=lambda r: (r["created_utc"], r["image_id"]))
    info: dict[str, Any] = {
        "start_date": min(str(f.info.get("start_date")) for f in files),
        "end_date": max(str(f.info.get("end_date")) for f in files),
        "url": files[-1].info.get("url", ann.DATASET_URL),
        "version": FORMAT_VERSION,
    }
    for block in ann.FILTER_BLOCKS:
        merged = _merge_filter_block(block, [f.info.get(block) for f in files], warnings)
        if merged is not None:
            info[block] = merged
    extra_keys = sorted({k for f in files for k in f.info} - _BASE_INFO - set(ann.FILTER_BLOCKS))
    for key in extra_keys:
        values = [f.info.get(key) for f in files]
        if all(v == values[0] for v in values):
            info[key] = values[0]
        else:
            warnings.append(f"info.{key} differs between inputs; dropped from the output")
    return ann.AnnotationFile(info, records), warnings


def merge_files(inputs: Sequence[str | Path], output: str | Path, *, delete_old: bool = False) -> MergeResult:
    """Load every input first (a bad one fails before anything is written), save, then delete."""
    paths = sorted(Path(p) for p in inputs)
    output = Path(output)
    if output.is_dir():
        raise RedCapsError(f"{output}: is a directory; give the merged file's path")
    files = [ann.load(p) for p in paths]
    merged, warnings = merge(files, [str(p) for p in paths])
    total = sum(len(f.annotations) for f in files)
    ann.save(output, merged)
    result = MergeResult(
        output, paths, len(merged.annotations), total - len(merged.annotations), warnings=warnings
    )
    if delete_old:
        keep = output.resolve()
        for path in paths:
            if path.resolve() != keep:
                path.unlink(missing_ok=True)
                result.deleted.append(path)
    return result
