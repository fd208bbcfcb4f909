"""The dataset's HTML report: one self-contained static file that opens from disk.

Tables come from the stage outputs (:mod:`redcaps.report.summary`), the download manifests, the
filters' removals and the shards (:mod:`redcaps.report.tables`); plots are matplotlib SVG inlined
in the page (:mod:`redcaps.report.plots`); sample thumbnails are small JPEGs as ``data:`` URIs
(:mod:`redcaps.report.thumbnails`). Nothing is fetched when the page opens: no server, no
network. Every value is HTML-escaped, and the same data gives the same page: the run date is the
newest stage output's modification time.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redcaps
from redcaps.atomic import read_json, read_jsonl, write_text
from redcaps.dataset.dedup import read_counts
from redcaps.dataset.shardmeta import read_sizes
from redcaps.filters.base import FILTER_KEYS
from redcaps.layout import TARIFY, Layout, split_stem
from redcaps.report import plots, tables, yields
from redcaps.report.summary import SUMMARY_STAGES, latest_file, summarize_file
from redcaps.report.thumbnails import contact_sheet, recovered_routes


@dataclass
class StemData:
    """What the report reads of one annotation file."""

    stem: str
    subreddit: str
    year: str
    summary: dict[str, Any]
    instances: list[dict[str, Any]]
    manifest: list[dict[str, Any]]
    removed_ids: dict[str, set[str]] = field(default_factory=dict)
    duplicates: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _removed_ids(removals: Path) -> set[str]:
    return {r["image_id"] for r in read_jsonl(removals) if isinstance(r.get("image_id"), str)}


def read_stem(layout: Layout, stem: str) -> StemData:
    subreddit, period = split_stem(stem)
    latest = latest_file(layout, stem)
    data = (read_json(latest) or {}) if latest else {}
    instances = data.get("annotations", [])
    info = data.get("info")
    manifests = sorted(layout.manifests(stem).glob("*.jsonl"))
    removed = {kind: _removed_ids(layout.removals(kind, stem)) for kind in FILTER_KEYS}
    return StemData(
        stem=stem,
        subreddit=subreddit,
        year=period[:4],
        summary=summarize_file(layout, stem),
        instances=[i for i in instances if isinstance(i, dict) and isinstance(i.get("image_id"), str)],
        manifest=[record for path in manifests for record in read_jsonl(path)],
        removed_ids=removed,
        duplicates=read_counts(layout, stem),
        info=info if isinstance(info, dict) else {},
    )


def shards_of(layout: Layout, files: list[StemData]) -> list[tuple[str, int | None, int]]:
    """``(file name, samples, bytes)`` of every shard of ``files``, in order."""
    sizes = read_sizes(layout.tarfiles)
    found = []
    for data in files:
        for shard in layout.shard_files(data.stem):
            try:
                found.append((shard.name, sizes.get(shard.name), shard.stat().st_size))
            except OSError:
                continue
    return found


def run_date(layout: Layout, files: list[StemData]) -> str:
    """When the newest stage output of ``files`` was written (UTC): a fact of the data on disk,
    so writing the report again gives the same page."""
    stages = (*SUMMARY_STAGES, TARIFY)
    times = []
    for data in files:
        for path in [layout.stage_file(stage, data.stem) for stage in stages] + [
            layout.final_file(data.stem)
        ]:
            try:
                times.append(path.stat().st_mtime)
            except OSError:
                continue
    if not times:
        return "no stage has run"
    return dt.datetime.fromtimestamp(max(times), dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# --- the page -----------------------------------------------------------------------------------

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; } th, td { padding: 2px 10px; border: 1px solid #ddd; }
th { background: #f2f2f2; } td { text-align: right; } td:first-child { text-align: left; }
td.none { text-align: center; color: #888; }
.sheet { display: flex; flex-wrap: wrap; gap: 6px; }
.sheet figure { margin: 0; width: 128px; }
.sheet img { display: block; width: 128px; height: 128px; object-fit: cover; }
.sheet figcaption { font-size: 11px; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
.sheet .route { color: #1b7f3b; font-weight: bold; }
.plot svg { max-width: 100%; height: auto; } .note { color: #666; }
.warn { background: #fff4d6; padding: 4px 8px; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; }
"""


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>\n{body}\n</section>"


def _plot(svg: str | None) -> str:
    return f'<div class="plot">{svg}</div>' if svg else '<p class="note">no data yet</p>'


def _sheet_html(sheet: dict[str, list[dict[str, Any]]]) -> str:
    if not sheet:
        return '<p class="note">no images yet</p>'
    parts = []
    for subreddit, thumbs in sheet.items():
        figures = "".join(
            f'<figure data-image-id="{html.escape(t["image_id"])}"{" data-blurred" if t["blurred"] else ""}>'
            f'<img alt="{html.escape(t["caption"])}" title="{html.escape(t["caption"])}" '
            f'src="data:image/jpeg;base64,{base64.b64encode(t["jpeg"]).decode()}">'
            f"<figcaption>{_route_label(t.get('route'))}{html.escape(t['caption'])}</figcaption></figure>"
            for t in thumbs
        )
        parts.append(f'<h3>r/{html.escape(subreddit)}</h3><div class="sheet">{figures or "no images"}</div>')
    return "\n".join(parts)


def _route_label(route: str | None) -> str:
    return f'<span class="route">via {html.escape(route)}</span> ' if route else ""


def _recovered_section(layout: Layout, files: list[StemData]) -> str:
    """A sample of the images stored from a recovery route, labelled with it (none: no section)."""
    routes = recovered_routes(files)
    sheet = {s: t for s, t in contact_sheet(layout, files, routes=routes).items() if t} if routes else {}
    if not sheet:
        return ""
    return _section(
        "Recovered images",
        f'<p class="note">{len(routes)} images came from a recovery route after their original URL '
        "failed for good: a rewrite of a retired URL form (Flickr's farm hosts) or the post's Reddit "
        "preview. The annotation's <code>url</code> stays the original; the sample's <code>.json</code>"
        " and parquet row record <code>route</code> and <code>fetched_url</code>.</p>" + _sheet_html(sheet),
    )


def _about(layout: Layout, files: list[StemData]) -> str:
    rows = [["tool", f"redcaps {redcaps.__version__}"], ["run date", run_date(layout, files)]]
    rows.append(["data dir", str(layout.root)])
    models = tables.filter_rows(files)
    return tables.table(["", ""], rows) + tables.table(["filter", "model", "confidence threshold"], models)


def _empty_note(files: list[StemData]) -> str:
    empty = sum(f.summary.get("captions", {}).get("empty", 0) for f in files)
    total = sum(f.summary.get("captions", {}).get("instances", 0) for f in files)
    if not empty:
        return ""
    return (
        f'<p class="warn">{empty} of {total} instances have an empty caption (a title without Latin '
        "letters loses them all in the original's ASCII step). They are kept, as RedCaps v1 keeps "
        "them; <code>[captions] drop_empty = true</code> drops them at collection.</p>"
    )


def _shards_html(layout: Layout, files: list[StemData]) -> str:
    snippet = tables.load_snippet(str(layout.tarfiles))
    listing = tables.table(["shard", "samples", "bytes"], tables.shard_rows(shards_of(layout, files)))
    return (
        f'{listing}<p class="note">in {html.escape(str(layout.tarfiles))}; how to load '
        "(more loaders: docs/format.md):</p>"
        f"<pre><code>{html.escape(snippet)}</code></pre>"
    )


def _yield_section(files: list[StemData]) -> str:
    """Attempted, ok first try, recovered per route, dead and opted out, per host and year."""
    table = yields.yields((data.year, data.manifest) for data in files)
    body = tables.table(["host", "year", *yields.COLUMNS], yields.rows(table)) + _plot(
        yields.yield_plot(table)
    )
    return _section("Download yield per host and year", body)


def render(layout: Layout, files: list[StemData], title: str) -> str:
    """The report page of ``files``."""
    dropped, rules = tables.dropped_rows(files)
    sections = [
        _section("About this report", _about(layout, files)),
        _section(
            "Counts per subreddit and year",
            tables.table(tables.COUNT_COLUMNS, tables.counts_rows(files)) + _empty_note(files),
        ),
        _section("Shards", _shards_html(layout, files)),
        _section("Posts dropped per rule", tables.table(["subreddit", "year", *rules], dropped)),
        _section(
            "Downloads failed per host and reason",
            tables.table(["host", "reason", "instances"], tables.failure_rows(files)),
        ),
        _section(
            "Filter removals", tables.table(["subreddit", "year", *FILTER_KEYS], tables.removal_rows(files))
        ),
        _yield_section(files),
        _section(
            "Duplicates",
            tables.table(
                ["subreddit", "year", "exact", "near", "dropped", "mode"], tables.duplicate_rows(files)
            ),
        ),
        _section(
            "Image sizes",
            tables.table(
                ["subreddit", "year", "images", "original (median)", "stored (median)", "downloaded"],
                tables.size_rows(files),
            )
            + _plot(plots.size_plot(files)),
        ),
        _section("Posts per month", _plot(plots.month_plot(files))),
        _section("Scores", _plot(plots.score_plot(files))),
        _section("Caption lengths", _plot(plots.caption_plot(files))),
        _section(
            "Sample images",
            '<p class="note">A fixed sample per subreddit. Images removed by the NSFW filter are never '
            "shown; face-filter removals are blurred.</p>" + _sheet_html(contact_sheet(layout, files)),
        ),
        _recovered_section(layout, files),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
        f'<h1>{html.escape(title)}</h1>\n<p class="note">{html.escape(str(layout.root))}: '
        f"{len(files)} annotation file(s)</p>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def report_stems(layout: Layout) -> list[str]:
    """Every subreddit-year (or month) file a stage has written."""
    return layout.stems(SUMMARY_STAGES)


def write_report(
    layout: Layout, path: str | Path, stems: Iterable[str] | None = None, title: str | None = None
) -> Path:
    """Write the report of ``stems`` (every stem on disk by default) to ``path``, atomically."""
    stems = report_stems(layout) if stems is None else list(stems)
    files = [read_stem(layout, stem) for stem in stems]
    page = render(layout, files, title or f"RedCaps dataset report: {layout.root.name}")
    write_text(path, page)
    return Path(path)
