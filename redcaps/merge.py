"""``merge``: combine annotation files (months into a year) as the original did, minus its losses.

The original's semantics: inputs in sorted order, de-duplicated by ``image_id`` (the last one
wins), sorted by ``created_utc``, ``info`` dates min/max. It dropped filter blocks, so a
merged file of filtered months claimed no filtering; here a block every input has with the
same settings is kept with ``num_removed`` summed, and any other block is dropped with a
warning, so the merged file never claims a filter that was not applied to all of it.
``info.collection`` (what ``download-anns`` considered, kept and dropped per rule) is summed.
``--delete-old`` deletes inputs only after the output is written, and never the output.
"""

from __future__ import annotations

import copy
import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redcaps import FORMAT_VERSION
from redcaps import annotations as ann
from redcaps.errors import AnnotationFormatError, RedCapsError
from redcaps.validate import filter_block_problems, iso_date

_OWN_INFO = {*ann.INFO_FIELDS, *ann.FILTER_BLOCKS, "collection"}
_COUNTS = ("considered", "kept")


@dataclass
class MergeResult:
    """What ``merge_files`` did; ``duplicates`` counts records replaced by a later input's copy."""

    output: Path
    inputs: list[Path]
    records: int
    duplicates: int
    deleted: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _listing(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def expand_inputs(patterns: Sequence[str]) -> list[Path]:
    """Expand each argument with ``glob`` like the original; sorted, each file once.

    An existing path is taken literally first, so a name containing ``[`` still works. An
    argument that matches no file is an error rather than silently merging less.
    """
    found: dict[Path, Path] = {}  # resolved -> as spelled, so ./a.json and a.json count once
    for pattern in patterns:
        matches = [pattern] if Path(pattern).exists() else sorted(glob.glob(pattern))
        files = [Path(m) for m in matches if Path(m).is_file()]
        if not files:
            reason = "is a directory, not an annotation file" if matches else "no such file"
            raise RedCapsError(f"{pattern}: {reason}")
        for path in files:
            found.setdefault(path.resolve(), path)
    return sorted(found.values())


def _date_range(files: Sequence[ann.AnnotationFile], names: Sequence[str]) -> tuple[str, str]:
    """min start / max end; an input without valid dates cannot be placed, so it is an error."""
    starts, ends = [], []
    for af, name in zip(files, names, strict=True):
        for key, into in (("start_date", starts), ("end_date", ends)):
            date = iso_date(af.info.get(key))
            if date is None:
                raise AnnotationFormatError(f"{name}: info.{key}: missing or not a YYYY-MM-DD date")
            into.append(date)
    return min(starts).isoformat(), max(ends).isoformat()


def _version_warnings(files: Sequence[ann.AnnotationFile], names: Sequence[str]) -> list[str]:
    versions = {name: str(af.info.get("version", "missing")) for af, name in zip(files, names, strict=True)}
    if len(set(versions.values())) <= 1:
        return []
    listing = _listing([f"{name}: {version}" for name, version in versions.items()], limit=6)
    return [f"inputs have different versions ({listing}); the output says {FORMAT_VERSION}"]


def _merge_url(files: Sequence[ann.AnnotationFile], warnings: list[str]) -> str:
    urls = {af.info["url"] for af in files if isinstance(af.info.get("url"), str)}
    if len(urls) > 1:
        warnings.append(f"inputs have different info.url {sorted(urls)}; the output says {ann.DATASET_URL}")
    return urls.pop() if len(urls) == 1 else ann.DATASET_URL


def _filter_settings(block: dict[str, Any]) -> dict[str, Any]:
    """Everything but the count: model, threshold and whatever else pins what the filter did."""
    return {key: value for key, value in block.items() if key != "num_removed"}


def _merge_filter_block(
    name: str, blocks: Sequence[Any], names: Sequence[str], warnings: list[str]
) -> dict[str, Any] | None:
    """The block for the merged file, or None (with a warning when inputs had it but disagree)."""
    missing = [n for n, block in zip(names, blocks, strict=True) if block is None]
    if len(missing) == len(blocks):
        return None
    if missing:
        warnings.append(
            f"info.{name} dropped: only {len(blocks) - len(missing)} of {len(blocks)} inputs have it"
            f" (not {_listing(missing)}), so the merged file does not claim this filter"
        )
        return None
    for block, source in zip(blocks, names, strict=True):
        problems = filter_block_problems(name, block)
        if problems:
            raise AnnotationFormatError(f"{source}: {problems[0].where}: {problems[0].message}")
    settings = [_filter_settings(block) for block in blocks]
    if any(s != settings[0] for s in settings):
        distinct = _listing(list(dict.fromkeys(map(repr, settings))))
        warnings.append(f"info.{name} dropped: inputs used different settings ({distinct})")
        return None
    return {**copy.deepcopy(blocks[0]), "num_removed": sum(block["num_removed"] for block in blocks)}


def _merge_collection(blocks: Sequence[Any], warnings: list[str]) -> dict[str, Any] | None:
    """``info.collection`` of months summed into their year: considered, kept and every drop
    reason added up, so a year can still say how many posts each rule dropped. ``refreshed``
    holds only if every month was refreshed; ``source`` lists each source used."""
    present = [b for b in blocks if b is not None]
    if not present:
        return None
    malformed = [
        b
        for b in present
        if not isinstance(b, dict)
        or not all(isinstance(b.get(k), int) and not isinstance(b.get(k), bool) for k in _COUNTS)
        or not isinstance(b.get("dropped", {}), dict)
        or not all(isinstance(v, int) for v in b.get("dropped", {}).values())
    ]
    if len(present) < len(blocks) or malformed:
        why = (
            "malformed in some inputs"
            if malformed
            else f"only {len(present)} of {len(blocks)} inputs have it"
        )
        warnings.append(f"info.collection dropped: {why}")
        return None
    dropped: dict[str, int] = {}
    for block in present:
        for reason, count in block.get("dropped", {}).items():
            dropped[reason] = dropped.get(reason, 0) + count
    sources = sorted({str(b.get("source")) for b in present})
    refreshed = all(b.get("refreshed") is True for b in present)
    merged: dict[str, Any] = {
        "source": sources[0] if len(sources) == 1 else ",".join(sources),
        "refreshed": refreshed,
    }
    notes = list(dict.fromkeys(str(b["note"]) for b in present if "note" in b))
    if notes:
        merged["note"] = notes[0] if len(notes) == 1 else "; ".join(notes)
    merged.update({k: sum(b[k] for b in present) for k in _COUNTS})
    merged["dropped"] = dict(sorted(dropped.items()))
    merged["months"] = sum(b["months"] if isinstance(b.get("months"), int) else 1 for b in present)
    return merged


def _merge_extra_info(files: Sequence[ann.AnnotationFile], warnings: list[str]) -> dict[str, Any]:
    """Info keys beyond the format's own: kept when every input has the same value."""
    merged = {}
    for key in dict.fromkeys(k for af in files for k in af.info if k not in _OWN_INFO):
        values = [af.info[key] for af in files if key in af.info]
        if len(values) < len(files):
            warnings.append(f"info.{key} dropped: only {len(values)} of {len(files)} inputs have it")
        elif any(value != values[0] for value in values):
            warnings.append(f"info.{key} dropped: it differs between inputs")
        else:
            merged[key] = copy.deepcopy(values[0])
    return merged


def _merge_records(files: Sequence[ann.AnnotationFile]) -> list[ann.Record]:
    """Last copy of each image_id wins; sorted by time, ties by id so the output is deterministic."""
    by_id: dict[str, ann.Record] = {}
    for af in files:
        for record in af.annotations:
            by_id[record["image_id"]] = record
    return sorted((dict(r) for r in by_id.values()), key=lambda r: (r["created_utc"], r["image_id"]))


def merge(
    files: Sequence[ann.AnnotationFile], names: Sequence[str] | None = None
) -> tuple[ann.AnnotationFile, list[str]]:
    """Merge loaded files in the given order; returns (merged, warnings). Writes and mutates nothing.

    ``names`` label the inputs in warnings and errors (default ``input 1``, ...). An input
    without valid info dates or with a malformed filter block raises
    :class:`AnnotationFormatError`.
    """
    if not files:
        raise RedCapsError("nothing to merge")
    names = list(names) if names is not None else [f"input {i}" for i in range(1, len(files) + 1)]
    if len(names) != len(files):
        raise ValueError(f"{len(names)} names for {len(files)} files")
    start, end = _date_range(files, names)
    warnings = _version_warnings(files, names)
    info: dict[str, Any] = {
        "start_date": start,
        "end_date": end,
        "url": _merge_url(files, warnings),
        "version": FORMAT_VERSION,
    }
    for block in ann.FILTER_BLOCKS:
        merged_block = _merge_filter_block(block, [af.info.get(block) for af in files], names, warnings)
        if merged_block is not None:
            info[block] = merged_block
    collection = _merge_collection([af.info.get("collection") for af in files], warnings)
    if collection is not None:
        info["collection"] = collection
    info.update(_merge_extra_info(files, warnings))
    return ann.AnnotationFile(info, _merge_records(files)), warnings


def _load(path: Path) -> ann.AnnotationFile:
    """``ann.load`` with every malformed-input failure as a one-line :class:`AnnotationFormatError`."""
    try:
        return ann.load(path)
    except RedCapsError:
        raise
    except (ValueError, RecursionError) as exc:  # urlsplit on "http://[x", deeply nested JSON
        raise AnnotationFormatError(f"{path}: {exc}") from None


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)  # Roses_2020.json is roses_2020.json on case-insensitive disks
    except OSError:
        return False


def _delete_inputs(paths: Sequence[Path], output: Path, warnings: list[str]) -> list[Path]:
    deleted = []
    for path in paths:
        if _same_file(path, output):
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            warnings.append(f"could not delete {path}: {exc.strerror or exc}")
            continue
        deleted.append(path)
    return deleted


def merge_files(inputs: Sequence[str | Path], output: str | Path, *, delete_old: bool = False) -> MergeResult:
    """Merge files into ``output``: load all (a bad one fails before anything is written),
    write atomically, and only then, with ``delete_old``, delete the inputs other than ``output``.

    Inputs are taken in sorted order whatever order they are given in, so "last wins" is
    well defined (``roses_2020-02.json`` over ``roses_2020-01.json``). One input is fine.
    """
    output = Path(output)
    if output.is_dir():
        raise RedCapsError(f"{output}: is a directory; give the path of the merged .json file")
    paths = sorted({Path(p).resolve(): Path(p) for p in inputs}.values())
    files = [_load(path) for path in paths]
    merged, warnings = merge(files, [str(path) for path in paths])
    try:
        ann.save(output, merged)
    except OSError as exc:
        raise RedCapsError(f"{output}: cannot write: {exc.strerror or exc}") from None
    records = len(merged.annotations)
    duplicates = sum(len(af.annotations) for af in files) - records
    result = MergeResult(output, paths, records, duplicates, warnings=warnings)
    if delete_old:
        result.deleted = _delete_inputs(paths, output, warnings)
    return result
