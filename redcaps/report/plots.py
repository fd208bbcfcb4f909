"""The report's plots: matplotlib figures as inline SVG, deterministic for the same data."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redcaps.report.html import StemData


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


def _size_points(files: list[StemData], width: str, height: str) -> dict[str, list[tuple[int, int]]]:
    points: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for data in files:
        for record in data.manifest:
            w, h = record.get(width), record.get(height)
            if record.get("status") == "ok" and isinstance(w, int) and isinstance(h, int):
                points[data.subreddit].append((w, h))
    return points


def size_plot(files: list[StemData]) -> str | None:
    """Width against height of every downloaded image as downloaded and as stored, one colour per
    subreddit."""
    panels = [("original", _size_points(files, "original_width", "original_height"))]
    panels.append(("stored", _size_points(files, "width", "height")))
    if not panels[0][1]:
        return None
    figure = _figure(9.6, 3.6)
    for n, (name, points) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, 2, n)
        for subreddit in sorted(points):
            widths, heights = zip(*points[subreddit], strict=True)
            axes.scatter(widths, heights, s=8, alpha=0.6, label=f"r/{subreddit}")
        axes.set_title(f"{name} size")
        axes.set_xlabel(f"{name} width (px)")
        axes.set_ylabel(f"{name} height (px)")
        axes.legend(fontsize="small")
    return _svg(figure, "sizes")


def _month(created_utc: Any) -> str | None:
    if not isinstance(created_utc, (int, float)) or isinstance(created_utc, bool):
        return None
    try:
        return dt.datetime.fromtimestamp(created_utc, dt.timezone.utc).strftime("%Y-%m")
    except (OverflowError, OSError, ValueError):
        return None


def month_plot(files: list[StemData]) -> str | None:
    """Instances per month of posting, one bar group per subreddit."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for data in files:
        counts[data.subreddit].update(m for i in data.instances if (m := _month(i.get("created_utc"))))
    counts = {s: c for s, c in counts.items() if c}
    if not counts:
        return None
    months = sorted({m for c in counts.values() for m in c})
    figure = _figure()
    axes = figure.add_subplot()
    width = 0.8 / len(counts)
    for n, subreddit in enumerate(sorted(counts)):
        xs = [x + n * width for x in range(len(months))]
        axes.bar(xs, [counts[subreddit][m] for m in months], width=width, label=f"r/{subreddit}")
    axes.set_xticks([x + 0.4 - width / 2 for x in range(len(months))], months, rotation=60, fontsize="small")
    axes.set_ylabel("instances")
    axes.legend(fontsize="small")
    return _svg(figure, "months")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def score_plot(files: list[StemData]) -> str | None:
    """Post scores (log-spaced bins: scores span 2 to tens of thousands), per subreddit."""
    scores: dict[str, list[int]] = defaultdict(list)
    for data in files:
        scores[data.subreddit] += [
            s
            for i in data.instances
            if isinstance(s := i.get("score"), int) and not isinstance(s, bool) and s > 0
        ]
    scores = {s: v for s, v in scores.items() if v}
    if not scores:
        return None
    top = max(max(v) for v in scores.values())
    edges = [1.0]
    while edges[-1] <= top:
        edges.append(edges[-1] * 2)
    figure = _figure()
    axes = figure.add_subplot()
    names = sorted(scores)
    axes.hist([scores[s] for s in names], bins=edges, label=[f"r/{s}" for s in names])
    axes.set_xscale("log", base=2)
    axes.set_xlabel("post score")
    axes.set_ylabel("instances")
    axes.legend(fontsize="small")
    return _svg(figure, "scores")
