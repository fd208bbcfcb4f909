"""A dataset's summary, read from the stage outputs (what the demo and ``redcaps summary`` print).

Every figure comes from a file a stage wrote (``stages/<stage>/<stem>.json``), so the summary
is true of what is on disk, for a finished or a half-finished run alike, and costs no
network or model call.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from redcaps.filters.base import FILTER_KEYS

#: filter kind -> (stage directory, ``info`` key the filter writes)
FILTER_STAGES = {kind: (f"filter_{kind}", key) for kind, key in FILTER_KEYS.items()}


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _info(path: Path) -> dict[str, Any]:
    info = (_read(path) or {}).get("info")
    return info if isinstance(info, dict) else {}


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}


def summarize_file(root: Path, stem: str) -> dict[str, Any]:
    """What each stage did to one annotation file (only the stages that have finished)."""
    stages = root / "stages"
    entry: dict[str, Any] = {}
    collection = _info(stages / "merged" / f"{stem}.json").get("collection")
    if isinstance(collection, dict):
        entry["collected"] = {
            "considered": collection.get("considered", 0),
            "kept": collection.get("kept", 0),
            "dropped": _counts(collection.get("dropped")),
        }
    download = _info(stages / "downloaded" / f"{stem}.json").get("download")
    if isinstance(download, dict):
        entry["download"] = {
            "attempted": download.get("attempted", 0),
            "ok": download.get("ok", 0),
            "failed": _counts(download.get("failed")),
        }
    removed = {}
    for name, (stage, key) in FILTER_STAGES.items():
        block = _info(stages / stage / f"{stem}.json").get(key)
        if isinstance(block, dict):
            removed[name] = block.get("num_removed", 0)
    if removed:
        entry["removed"] = removed
    tars = _read(stages / "tarify" / f"{stem}.json")
    if tars is not None:
        entry["tars"] = {"shards": len(tars.get("shards", [])), "samples": tars.get("samples", 0)}
    return entry


def _stems(root: Path) -> list[str]:
    stems = set()
    for stage in ("merged", "downloaded", "tarify", *(s for s, _ in FILTER_STAGES.values())):
        stems.update(p.name.removesuffix(".json") for p in (root / "stages" / stage).glob("*.json"))
    return sorted(s for s in stems if not s.endswith(".removals") and not s.startswith("."))


def summarize_dataset(root: str | Path, stems: Iterable[str] | None = None) -> dict[str, Any]:
    """Per-file entries and their totals, for ``stems`` or every file any stage has touched."""
    root = Path(root)
    files = {stem: summarize_file(root, stem) for stem in (_stems(root) if stems is None else stems)}
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
    return {
        "root": str(root),
        "files": files,
        "totals": dict(totals),
        "dropped": dict(sorted(dropped.items())),
        "failed": dict(sorted(failed.items())),
        "removed": {name: removed[name] for name in FILTER_STAGES if name in removed},
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
        f"in {Path(summary['root']) / 'tarfiles'}"
    )
    return "\n".join(lines)
