"""A dataset's summary, read from the stage outputs (what the demo and ``redcaps summary`` print)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def summarize_dataset(root: str | Path) -> dict[str, Any]:
    """Totals over every annotation file that reached the download and tar stages."""
    root = Path(root)
    files: dict[str, dict[str, Any]] = {}
    failed: Counter[str] = Counter()
    for path in sorted((root / "stages" / "downloaded").glob("*.json")):
        data = _read(path) or {}
        download = data.get("info", {}).get("download", {})
        entry = files.setdefault(path.stem, {})
        entry.update(attempted=download.get("attempted", 0), downloaded=download.get("ok", 0))
        failed.update(download.get("failed", {}))
        for block in ("word_filter", "nsfw_filter", "face_filter"):
            if block in data.get("info", {}):
                entry[block] = data["info"][block].get("num_removed", 0)
    for path in sorted((root / "stages" / "tarify").glob("*.json")):
        data = _read(path) or {}
        entry = files.setdefault(path.stem, {})
        entry.update(samples=data.get("samples", 0), shards=len(data.get("shards", [])))
    totals: Counter[str] = Counter()
    for entry in files.values():
        totals.update({k: v for k, v in entry.items() if isinstance(v, int)})
    return {"root": str(root), "files": files, "totals": dict(totals), "failed": dict(sorted(failed.items()))}


def format_summary(summary: dict[str, Any]) -> str:
    totals = summary["totals"]
    lines = [
        f"dataset: {summary['root']}",
        f"annotation files: {len(summary['files'])}",
        f"instances attempted: {totals.get('attempted', 0)}",
        f"images downloaded: {totals.get('downloaded', 0)}",
    ]
    if summary["failed"]:
        lines.append("failed: " + ", ".join(f"{k} {v}" for k, v in summary["failed"].items()))
    lines.append(
        f"tar shards: {totals.get('shards', 0)} with {totals.get('samples', 0)} samples "
        f"in {Path(summary['root']) / 'tarfiles'}"
    )
    return "\n".join(lines)
