"""The dataset's HTML report: one self-contained static file that opens from disk.

Tables come from the stage outputs (:mod:`redcaps.report.summary`), the download manifests and the
filters' removals; plots are matplotlib SVG inlined in the page; sample thumbnails are small
JPEGs as ``data:`` URIs. Nothing is fetched when the page opens: no server, no network.

Images the NSFW filter removed are never thumbnailed (even while their files still exist, in a
half-finished run); face-filter removals are blurred. Thumbnails are read from the loose
images or, once those are gone, from the WebDataset shards.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
import tarfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from PIL import Image, ImageFilter

from redcaps.atomic import read_json, read_jsonl, write_text
from redcaps.dataset.dedup import read_counts
from redcaps.filters.base import FILTER_KEYS
from redcaps.layout import DOWNLOADED, MERGED, Layout, split_stem
from redcaps.report.summary import SUMMARY_STAGES, summarize_file
from redcaps.report.yields import yield_section

#: Thumbnails per subreddit on the contact sheet, their longest edge, and the face blur radius.
SAMPLES_PER_SUBREDDIT = 12
THUMBNAIL_EDGE = 128
FACE_BLUR_RADIUS = 8
#: Filters whose removed images are never shown, and those shown only blurred.
NEVER_SHOWN = ("nsfw",)
BLURRED = ("faces",)


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


def latest_file(layout: Layout, stem: str) -> Path | None:
    """The most-processed annotation file of a stem: the final one, else the last stage's."""
    candidates = [layout.final_file(stem)]
    candidates += [layout.filtered(kind, stem) for kind in reversed(FILTER_KEYS)]
    candidates += [layout.stage_file(DOWNLOADED, stem), layout.stage_file(MERGED, stem)]
    return next((path for path in candidates if path.is_file()), None)


def _removed_ids(removals: Path) -> set[str]:
    return {r["image_id"] for r in read_jsonl(removals) if isinstance(r.get("image_id"), str)}


def read_stem(layout: Layout, stem: str) -> StemData:
    subreddit, period = split_stem(stem)
    latest = latest_file(layout, stem)
    instances = (read_json(latest) or {}).get("annotations", []) if latest else []
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
    )


# --- thumbnails ---------------------------------------------------------------------------------


class ImageReader:
    """An instance's stored image: the loose file, or the member ``<id>.jpg`` of the stem's shards."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._members: dict[str, dict[str, Path]] = {}

    def _shard_members(self, stem: str) -> dict[str, Path]:
        if stem not in self._members:
            members: dict[str, Path] = {}
            for shard in self.layout.shard_files(stem):
                try:
                    with tarfile.open(shard) as tar:
                        members.update((name, shard) for name in tar.getnames())
                except (OSError, tarfile.TarError):
                    continue
            self._members[stem] = members
        return self._members[stem]

    def read(self, stem: str, subreddit: str, image_id: str) -> bytes | None:
        try:
            return self.layout.image(subreddit, image_id).read_bytes()
        except (OSError, ValueError):
            pass
        name = f"{image_id}.jpg"
        shard = self._shard_members(stem).get(name)
        if shard is None:
            return None
        try:
            with tarfile.open(shard) as tar:
                member = tar.extractfile(name)
                return member.read() if member else None
        except (OSError, tarfile.TarError, KeyError):
            return None


def thumbnail(data: bytes, blur: bool = False) -> bytes | None:
    """A small JPEG of an image (blurred beyond recognition when ``blur``), or None if unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("RGB")
            image.thumbnail((THUMBNAIL_EDGE, THUMBNAIL_EDGE))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(FACE_BLUR_RADIUS))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=75)
    return out.getvalue()


def _sample_order(image_id: str) -> str:
    return hashlib.sha256(image_id.encode()).hexdigest()


def contact_sheet(
    layout: Layout, files: list[StemData], per_subreddit: int = SAMPLES_PER_SUBREDDIT
) -> dict[str, list[dict[str, Any]]]:
    """A deterministic sample of thumbnails per subreddit: ``{"image_id", "caption", "jpeg", "blurred"}``."""
    never = {i for f in files for kind in NEVER_SHOWN for i in f.removed_ids.get(kind, ())}
    blurred = {i for f in files for kind in BLURRED for i in f.removed_ids.get(kind, ())}
    candidates: dict[str, list[tuple[str, str, dict[str, Any]]]] = defaultdict(list)
    for data in files:
        for instance in data.instances:
            if instance["image_id"] not in never:
                candidates[data.subreddit].append((_sample_order(instance["image_id"]), data.stem, instance))
    reader = ImageReader(layout)
    sheet: dict[str, list[dict[str, Any]]] = {}
    for subreddit in sorted(candidates):
        chosen: list[dict[str, Any]] = []
        for _, stem, instance in sorted(candidates[subreddit], key=lambda c: c[0]):
            if len(chosen) >= per_subreddit:
                break
            image_id = instance["image_id"]
            data = reader.read(stem, subreddit, image_id)
            jpeg = thumbnail(data, blur=image_id in blurred) if data else None
            if jpeg is not None:
                caption = str(instance.get("caption", ""))
                chosen.append(
                    {"image_id": image_id, "caption": caption, "jpeg": jpeg, "blurred": image_id in blurred}
                )
        sheet[subreddit] = chosen
    return sheet


# --- plots --------------------------------------------------------------------------------------


def _svg(figure: Any, name: str) -> str:
    """A matplotlib figure as inline SVG: text as paths (no fonts), ids fixed and prefixed by ``name``
    (the same data gives the same page; two plots never share an id), no metadata or URLs."""
    import matplotlib

    out = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"redcaps-report-{name}", "svg.fonttype": "path"}):
        figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    text = out.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg") :], flags=re.S)
    text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text, count=2)
    return re.sub(r'(\bid="|href="#|url\(#)', rf"\1{name}-", text)  # ids unique within the page


def _figure(width: float = 6.4, height: float = 3.2) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry

    return Figure(figsize=(width, height), layout="constrained")


def size_plot(files: list[StemData]) -> str | None:
    """Original width against height of every downloaded image, one colour per subreddit."""
    points: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for data in files:
        for record in data.manifest:
            w, h = record.get("original_width"), record.get("original_height")
            if record.get("status") == "ok" and isinstance(w, int) and isinstance(h, int):
                points[data.subreddit].append((w, h))
    if not points:
        return None
    figure = _figure()
    axes = figure.add_subplot()
    for subreddit in sorted(points):
        widths, heights = zip(*points[subreddit], strict=True)
        axes.scatter(widths, heights, s=8, alpha=0.6, label=f"r/{subreddit}")
    axes.set_xlabel("original width (px)")
    axes.set_ylabel("original height (px)")
    axes.legend(fontsize="small")
    return _svg(figure, "sizes")


def caption_plot(files: list[StemData]) -> str | None:
    """Words per caption, a histogram per subreddit."""
    lengths: dict[str, list[int]] = defaultdict(list)
    for data in files:
        lengths[data.subreddit] += [len(str(i.get("caption", "")).split()) for i in data.instances]
    lengths = {s: v for s, v in lengths.items() if v}
    if not lengths:
        return None
    figure = _figure()
    axes = figure.add_subplot()
    top = max(max(v) for v in lengths.values())
    bins = range(0, top + 2)
    names = sorted(lengths)
    axes.hist([lengths[s] for s in names], bins=bins, label=[f"r/{s}" for s in names], align="left")
    axes.set_xlabel("words per caption")
    axes.set_ylabel("instances")
    axes.legend(fontsize="small")
    return _svg(figure, "captions")


# --- tables -------------------------------------------------------------------------------------


def _table(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body or _empty_row(len(header))}</tbody></table>"


def _empty_row(columns: int) -> str:
    return f'<tr><td colspan="{columns}" class="none">none</td></tr>'


def counts_rows(files: list[StemData]) -> list[list[Any]]:
    rows = []
    for data in files:
        s = data.summary
        removed = sum(s.get("removed", {}).values())
        rows.append(
            [
                f"r/{data.subreddit}",
                data.year,
                s.get("collected", {}).get("considered", ""),
                s.get("collected", {}).get("kept", ""),
                s.get("download", {}).get("ok", ""),
                removed if "removed" in s else "",
                len(data.instances),
                s.get("tars", {}).get("samples", ""),
            ]
        )
    return rows


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
.plot svg { max-width: 100%; height: auto; } .note { color: #666; }
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
            f"<figcaption>{html.escape(t['caption'])}</figcaption></figure>"
            for t in thumbs
        )
        parts.append(f'<h3>r/{html.escape(subreddit)}</h3><div class="sheet">{figures or "no images"}</div>')
    return "\n".join(parts)


def render(layout: Layout, files: list[StemData], title: str) -> str:
    """The report page of ``files``."""
    dropped, rules = dropped_rows(files)
    sections = [
        _section(
            "Counts per subreddit and year",
            _table(
                [
                    "subreddit",
                    "year",
                    "posts",
                    "instances",
                    "downloaded",
                    "filtered out",
                    "final",
                    "in shards",
                ],
                counts_rows(files),
            ),
        ),
        _section("Posts dropped per rule", _table(["subreddit", "year", *rules], dropped)),
        _section(
            "Downloads failed per host and reason",
            _table(["host", "reason", "instances"], failure_rows(files)),
        ),
        yield_section(files),
        _section("Filter removals", _table(["subreddit", "year", *FILTER_KEYS], removal_rows(files))),
        _section(
            "Duplicates",
            _table(["subreddit", "year", "exact", "near", "dropped", "mode"], duplicate_rows(files)),
        ),
        _section("Image sizes", _plot(size_plot(files))),
        _section("Caption lengths", _plot(caption_plot(files))),
        _section(
            "Sample images",
            '<p class="note">A fixed sample per subreddit. Images removed by the NSFW filter are never '
            "shown; face-filter removals are blurred.</p>" + _sheet_html(contact_sheet(layout, files)),
        ),
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
