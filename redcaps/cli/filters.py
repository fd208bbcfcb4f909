"""``redcaps filter-words | filter-nsfw | filter-faces``: the original's in-place filters, done safely.

Like the original, each command rewrites ``--annotations`` in place and deletes the removed
instances' images from ``--images``. Unlike it, the run goes through ``filters.stage`` (the same
crash-safe commit as the pipeline's tasks): every removal is recorded in
``<stem>.<kind>_filter.removals.jsonl`` next to the file, an unreadable image is reported and kept
instead of ending the run, and a file that already has the filter's ``info`` block is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import click
from tqdm import tqdm

from redcaps.filters import base
from redcaps.filters.stage import FilterPaths, FilterResult, run_filter
from redcaps.layout import DEFAULT_DATA_DIR, Layout, removals_beside
from redcaps.settings import Device, FaceSettings, FilterSettings, NsfwSettings, WordMode, WordSettings


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "-i",
        "--images",
        "image_dir",
        default=str(Layout(Path(DEFAULT_DATA_DIR)).images),
        show_default=True,
        type=click.Path(file_okay=False),
        help="Image root: <dir>/<subreddit>/<image_id>.jpg (must exist).",
    )(func)
    return click.option(
        "-a",
        "--annotations",
        "annotations_path",
        required=True,
        type=click.Path(dir_okay=False),
        help="Annotation file, rewritten in place.",
    )(func)


def _model_options(defaults: NsfwSettings | FaceSettings) -> Callable[..., Any]:
    positive = click.IntRange(min=1)
    options = [
        click.option(
            "-m", "--model", type=click.Path(dir_okay=False), help="Model file (default: installed)."
        ),
        click.option(
            "-t", "--confidence-threshold", default=defaults.confidence_threshold, show_default=True
        ),
        click.option("-b", "--batch-size", default=defaults.batch_size, show_default=True, type=positive),
        click.option("-j", "--workers", default=defaults.workers, show_default=True, type=positive),
        click.option(
            "--device",
            type=click.Choice(get_args(Device)),
            default=defaults.device,
            show_default=True,
            help="cuda: on a GPU.",
        ),
    ]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def _run(kind: str, annotations_path: str, image_dir: str, settings: FilterSettings) -> None:
    """Filter the file in place with a progress bar, then say what happened in one line."""
    path, images = Path(annotations_path), Path(image_dir)
    if not images.is_dir():
        raise base.FilterError(f"images directory not found: {images}")
    key = base.FILTER_KEYS[kind]
    paths = FilterPaths(source=path, output=path, removals=removals_beside(path, key), images=images)
    with tqdm(unit="img", disable=None, leave=False) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        report = run_filter(kind, paths, settings, progress=progress)
    click.echo(_describe(report, path, paths.removals))


def _describe(report: FilterResult, path: Path, record: Path) -> str:
    key = base.FILTER_KEYS[report.kind]
    if report.status == "already_applied":
        return f"{path}: {key} already applied; nothing to do"
    if report.status == "resumed":
        return (
            f"{path}: finished an interrupted run: removed {report.removed} instances; recorded in {record}"
        )
    for image_id, why in report.skipped:
        click.echo(f"warning: {image_id}: {why} (kept)", err=True)
    skipped = f", {len(report.skipped)} unreadable images kept" if report.skipped else ""
    removed = f"removed {report.removed} of {report.total} instances{skipped}"
    return f"{path}: {removed}; removals recorded in {record}"


@click.command("filter-words")
@_common
@click.option(
    "--mode",
    type=click.Choice(get_args(WordMode)),
    default=WordSettings.mode,
    show_default=True,
    help="exact: the original rule; punctuation: also catch words touching punctuation.",
)
def filter_words_command(annotations_path: str, image_dir: str, mode: str) -> None:
    """Remove instances whose caption contains an LDNOOBW (en) word; delete their images."""
    _run("words", annotations_path, image_dir, WordSettings(mode=mode))  # type: ignore[arg-type]


@click.command("filter-nsfw")
@_common
@_model_options(NsfwSettings())
def filter_nsfw_command(annotations_path: str, image_dir: str, model: str | None, **options: Any) -> None:
    """Remove instances whose image is NSFW (porn + hentai > threshold); delete their images."""
    _run("nsfw", annotations_path, image_dir, NsfwSettings(model=model or "", **options))


@click.command("filter-faces")
@_common
@_model_options(FaceSettings())
@click.option(
    "--pad", is_flag=True, help="Mixed sizes in one padded call per batch (GPU); border scores can shift."
)
@click.option(
    "--long-edge",
    default=FaceSettings.long_edge,
    show_default=True,
    type=click.IntRange(min=0),
    help="Resize to this longer edge first, as the original stored images (0: as stored).",
)
def filter_faces_command(annotations_path: str, image_dir: str, model: str | None, **options: Any) -> None:
    """Remove instances whose image shows a face (RetinaFace score > threshold); delete their images."""
    _run("faces", annotations_path, image_dir, FaceSettings(model=model or "", **options))


COMMANDS = (filter_words_command, filter_nsfw_command, filter_faces_command)
