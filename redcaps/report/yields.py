"""The download yield per image host and year: what came first try, what the recovery routes
(:mod:`redcaps.download.recover`) brought back, what is dead and what opted out.

Read from the download manifests alone, for the HTML report (a table and a stacked bar
plot) and ``redcaps summary`` (a few lines).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from redcaps.atomic import read_jsonl
from redcaps.layout import Layout, split_stem
from redcaps.net.fetcher import RETRYABLE_STATUSES
from redcaps.report.plots import _figure, _svg

#: The columns of a yield, in order (every manifest line counts in ``attempted`` and one other).
COLUMNS = ("attempted", "ok first try", "rewrite", "preview", "dead", "opted out", "to retry")


def host_group(url: str) -> str:
    """``i.redd.it`` -> ``redd.it``, ``farm3.staticflickr.com`` -> ``staticflickr.com``."""
    host = (urlsplit(url).hostname or "").lower()
    return ".".join(host.split(".")[-2:]) or "(no host)"


def column(line: Mapping[str, Any]) -> str:
    """Which yield column one manifest line counts in, besides ``attempted``."""
    status = line.get("status")
    if status == "ok":
        return str(line.get("route") or "ok first try")
    if status == "opted_out":
        return "opted out"
    return "to retry" if status in RETRYABLE_STATUSES else "dead"


def yields(
    lines_by_year: Iterable[tuple[str, Iterable[Mapping[str, Any]]]],
) -> dict[tuple[str, str], Counter]:
    """(host group, year) -> counts per :data:`COLUMNS`, from (year, manifest lines) pairs."""
    table: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for year, lines in lines_by_year:
        for line in lines:
            counts = table[(host_group(str(line.get("url", ""))), year)]
            counts["attempted"] += 1
            counts[column(line)] += 1
    return dict(sorted(table.items()))


def dataset_yields(layout: Layout, stems: Iterable[str]) -> dict[tuple[str, str], Counter]:
    """The yields of every stem's manifests."""
    pairs = []
    for stem in stems:
        lines = [line for path in sorted(layout.manifests(stem).glob("*.jsonl")) for line in read_jsonl(path)]
        pairs.append((split_stem(stem)[1][:4], lines))
    return yields(pairs)


def rows(table: Mapping[tuple[str, str], Counter]) -> list[list[Any]]:
    return [[host, year, *(counts[c] for c in COLUMNS)] for (host, year), counts in table.items()]


def summary_lines(table: Mapping[tuple[str, str], Counter]) -> list[str]:
    """``redcaps summary``'s yield: one line per host and year."""
    return [
        f"  {host} {year}: " + ", ".join(f"{c} {counts[c]}" for c in COLUMNS if counts[c] or c == "attempted")
        for (host, year), counts in table.items()
    ]


def yield_plot(table: Mapping[tuple[str, str], Counter]) -> str | None:
    """Stacked bars per host and year: ok first try, recovered per route, dead, opted out."""
    if not table:
        return None
    labels = [f"{host}\n{year}" for host, year in table]
    figure = _figure()
    axes = figure.add_subplot()
    bottom = [0] * len(labels)
    for name in COLUMNS[1:]:
        heights = [counts[name] for counts in table.values()]
        axes.bar(labels, heights, bottom=bottom, label=name)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_ylim(0, max(max(bottom) * 1.08, 1))  # zero-height bars on top would pin the axis there
    axes.set_ylabel("images")
    axes.legend(fontsize="small")
    return _svg(figure, "yields")
