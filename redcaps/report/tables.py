"""The report's tables: rows read from each stem's summary, manifests, removals and shards."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from redcaps.filters.base import FILTER_KEYS

if TYPE_CHECKING:
    from redcaps.report.html import StemData


def table(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body or _empty_row(len(header))}</tbody></table>"


def _empty_row(columns: int) -> str:
    return f'<tr><td colspan="{columns}" class="none">none</td></tr>'


COUNT_COLUMNS = [
    "subreddit",
    "year",
    "posts",
    "instances",
    "downloaded",
    "filtered out",
    "final",
    "empty captions",
    "in shards",
]


def counts_rows(files: list[StemData]) -> list[list[Any]]:
    """One row per stem, then a ``total`` row summing every column that has figures."""
    rows = []
    for data in files:
        s = data.summary
        rows.append(
            [
                f"r/{data.subreddit}",
                data.year,
                s.get("collected", {}).get("considered", ""),
                s.get("collected", {}).get("kept", ""),
                s.get("download", {}).get("ok", ""),
                sum(s["removed"].values()) if "removed" in s else "",
                len(data.instances),
                s.get("captions", {}).get("empty", ""),
                s.get("tars", {}).get("samples", ""),
            ]
        )
    if len(rows) > 1:
        columns = list(zip(*rows, strict=True))[2:]
        rows.append(["total", "", *(_total(column) for column in columns)])
    return rows


def _total(column: Iterable[Any]) -> int | str:
    numbers = [v for v in column if isinstance(v, int)]
    return sum(numbers) if numbers else ""


def dropped_rows(files: list[StemData]) -> tuple[list[list[Any]], list[str]]:
    """Posts dropped per collection rule (the rows, and the rules that are its columns)."""
    rules = sorted({rule for f in files for rule in f.summary.get("collected", {}).get("dropped", {})})
    return [
        [f"r/{f.subreddit}", f.year, *(f.summary["collected"]["dropped"].get(rule, 0) for rule in rules)]
        for f in files
        if "collected" in f.summary
    ], rules


def failure_rows(files: list[StemData]) -> list[list[Any]]:
    failed: Counter[tuple[str, str]] = Counter()
    for data in files:
        for record in data.manifest:
            status = record.get("status")
            if status != "ok" and isinstance(status, str):
                host = urlsplit(str(record.get("url", ""))).hostname or "(no host)"
                failed[(host, status)] += 1
    return [
        [host, reason, n]
        for (host, reason), n in sorted(failed.items(), key=lambda item: (-item[1], item[0]))
    ]


REMOVAL_COLUMNS = ["subreddit", "year", *FILTER_KEYS]
DUPLICATE_COLUMNS = ["subreddit", "year", "exact", "near", "dropped", "mode"]


def removal_rows(files: list[StemData]) -> list[list[Any]]:
    return [
        [
            f"r/{f.subreddit}",
            f.year,
            *(f.summary.get("removed", {}).get(kind, "not run") for kind in FILTER_KEYS),
        ]
        for f in files
    ]


def duplicate_rows(files: list[StemData]) -> list[list[Any]]:
    rows = []
    for f in files:
        d = f.duplicates or {}
        rows.append(
            [
                f"r/{f.subreddit}",
                f.year,
                d.get("exact", 0),
                d.get("near", 0),
                d.get("dropped", 0),
                d.get("mode", "not run"),
            ]
        )
    return rows


def shard_rows(shards: list[tuple[str, int | None, int]]) -> list[list[Any]]:
    """``(file name, samples, bytes)`` per shard, and a total row."""
    rows: list[list[Any]] = [[name, "" if n is None else n, _bytes(size)] for name, n, size in shards]
    if len(rows) > 1:
        samples = sum(n or 0 for _, n, _ in shards)
        rows.append(["total", samples, _bytes(sum(size for _, _, size in shards))])
    return rows


def _bytes(n: int) -> str:
    """Bytes for a reader: ``1.2 MB`` (decimal units, as file managers show), exact below 1 kB."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _median_size(records: list[dict[str, Any]], width: str, height: str) -> str:
    sizes = sorted(
        (r[width] * r[height], r[width], r[height])
        for r in records
        if isinstance(r.get(width), int) and isinstance(r.get(height), int)
    )
    if not sizes:
        return ""
    _, w, h = sizes[len(sizes) // 2]
    return f"{w}×{h}"


def size_rows(files: list[StemData]) -> list[list[Any]]:
    """Downloaded images: the median size as downloaded and as stored, and the bytes downloaded."""
    rows = []
    for f in files:
        ok = [r for r in f.manifest if r.get("status") == "ok"]
        downloaded = sum(r["bytes"] for r in ok if isinstance(r.get("bytes"), int))
        rows.append(
            [
                f"r/{f.subreddit}",
                f.year,
                len(ok),
                _median_size(ok, "original_width", "original_height"),
                _median_size(ok, "width", "height"),
                _bytes(downloaded),
            ]
        )
    return rows


def filter_rows(files: list[StemData]) -> list[list[Any]]:
    """Each filter's model and threshold as the files record them (one row per distinct setting)."""
    seen: dict[tuple[str, str, str], None] = {}
    for f in files:
        for kind, key in FILTER_KEYS.items():
            block = f.info.get(key)
            if isinstance(block, dict):
                threshold = block.get("confidence_threshold")
                seen[(kind, str(block.get("model", "")), "" if threshold is None else str(threshold))] = None
    return [list(row) for row in seen]


def load_snippet(tarfiles: str) -> str:
    """Three lines that load the shards (webdataset, as open_clip does), for the report to show."""
    return (
        "import glob, webdataset as wds\n"
        f"shards = sorted(glob.glob({tarfiles + '/*.tar'!r}))\n"
        'dataset = wds.WebDataset(shards, shardshuffle=False).decode("pil").to_tuple("jpg", "txt")\n'
    )
