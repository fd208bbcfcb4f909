"""A dataset's summary, read from the stage outputs (what the demo and ``redcaps summary`` print).

Every figure comes from a file a stage wrote (``stages/<stage>/<stem>.json``), so the summary
is true of what is on disk, for a finished or a half-finished run alike, and costs no
network or model call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from redcaps.atomic import read_json
from redcaps.collect.captions import empty_captions
from redcaps.dataset.tarify import read_index
from redcaps.filters.base import FILTER_KEYS
from redcaps.layout import DOWNLOADED, MERGED, TARIFY, Layout, filter_stage
from redcaps.report.yields import dataset_yields, summary_lines


def _info(path: Path) -> dict[str, Any]:
    info = (read_json(path) or {}).get("info")
    return info if isinstance(info, dict) else {}


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}


def latest_file(layout: Layout, stem: str) -> Path | None:
    """The most-processed annotation file of a stem: the final one, else the last stage's."""
    candidates = [layout.final_file(stem)]
    candidates += [layout.filtered(kind, stem) for kind in reversed(FILTER_KEYS)]
    candidates += [layout.stage_file(DOWNLOADED, stem), layout.stage_file(MERGED, stem)]
    return next((path for path in candidates if path.is_file()), None)


def caption_counts(path: Path | None) -> dict[str, int] | None:
    """Instances and empty captions of an annotation file (None without a readable one)."""
    records = (read_json(path) or {}).get("annotations") if path else None
    if not isinstance(records, list):
        return None
    return {"instances": len(records), "empty": len(empty_captions(records))}


def summarize_file(layout: Layout, stem: str) -> dict[str, Any]:
    """What each stage did to one annotation file (only the stages that have finished), and the
    empty captions of its most-processed file."""
    entry: dict[str, Any] = {}
    collection = _info(layout.stage_file(MERGED, stem)).get("collection")
    if isinstance(collection, dict):
        entry["collected"] = {
            "considered": collection.get("considered", 0),
            "kept": collection.get("kept", 0),
            "dropped": _counts(collection.get("dropped")),
        }
    download = _info(layout.stage_file(DOWNLOADED, stem)).get("download")
    if isinstance(download, dict):
        entry["download"] = {
            "attempted": download.get("attempted", 0),
            "ok": download.get("ok", 0),
            "failed": _counts(download.get("failed")),
        }
    removed = {}
    for kind, key in FILTER_KEYS.items():
        block = _info(layout.filtered(kind, stem)).get(key)
        if isinstance(block, dict):
            removed[kind] = block.get("num_removed", 0)
    if removed:
        entry["removed"] = removed
    tars = read_index(layout, stem)
    if tars is not None:
        entry["tars"] = {"shards": len(tars.get("shards", [])), "samples": tars.get("samples", 0)}
    captions = caption_counts(latest_file(layout, stem))
    if captions is not None:
        entry["captions"] = captions
    return entry


#: The stages whose outputs name the files a summary covers.
SUMMARY_STAGES = (MERGED, DOWNLOADED, TARIFY, *map(filter_stage, FILTER_KEYS))


def summarize_dataset(layout: Layout, stems: Iterable[str] | None = None) -> dict[str, Any]:
    """Per-file entries and their totals, for ``stems`` or every file any stage has touched."""
    stems = layout.stems(SUMMARY_STAGES) if stems is None else stems
    files = {stem: summarize_file(layout, stem) for stem in stems}
    totals: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    for entry in files.values():
        if "collected" in entry:
            totals.update(considered=entry["collected"]["considered"], collected=entry["collected"]["kept"])
            dropped.update(entry["collected"]["dropped"])
        if "download" in entry:
            totals.update(attempted=entry["download"]["attempted"], downloaded=entry["download"]["ok"])
            failed.update(entry["download"]["failed"])
        removed.update(entry.get("removed", {}))
        if "tars" in entry:
            totals.update(entry["tars"])
        if "captions" in entry:
            totals.update(instances=entry["captions"]["instances"], empty_captions=entry["captions"]["empty"])
    return {
        "root": str(layout.root),
        "files": files,
        "totals": dict(totals),
        "dropped": dict(sorted(dropped.items())),
        "failed": dict(sorted(failed.items())),
        "removed": {kind: removed[kind] for kind in FILTER_KEYS if kind in removed},
    }


def _per_reason(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in counts.items()) or "none"


def format_summary(summary: dict[str, Any]) -> str:
    totals = summary["totals"]
    lines = [f"dataset: {summary['root']}", f"annotation files: {len(summary['files'])}"]
    if "considered" in totals:
        lines.append(f"posts considered: {totals['considered']}, instances collected: {totals['collected']}")
        lines.append(f"dropped per rule: {_per_reason(summary['dropped'])}")
    lines.append(f"images attempted: {totals.get('attempted', 0)}, downloaded: {totals.get('downloaded', 0)}")
    lines.append(f"failed per reason: {_per_reason(summary['failed'])}")
    if summary["removed"]:
        lines.append(f"removed per filter: {_per_reason(summary['removed'])}")
    lines.append(
        f"tar shards: {totals.get('shards', 0)} with {totals.get('samples', 0)} samples "
        f"in {Layout(Path(summary['root'])).tarfiles}"
    )
    if totals.get("empty_captions"):
        lines.append(
            f"warning: {totals['empty_captions']} of {totals['instances']} instances have an empty caption"
            " (kept, as RedCaps v1 keeps them; [captions] drop_empty = true drops them at collection)"
        )
    table = dataset_yields(Layout(Path(summary["root"])), summary["files"])
    if table:
        lines += ["yield per host and year:", *summary_lines(table)]
    return "\n".join(lines)
