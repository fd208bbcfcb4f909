"""``redcaps filter-words | filter-nsfw | filter-faces``: the original's in-place filters, done safely.

Like the original, each command rewrites ``--annotations`` in place and deletes the removed
instances' images from ``--images``. Unlike it, the new file is written beside the old one and
renamed over it (fsync'd) before any image is deleted, every removal is recorded in
``<stem>.<kind>_filter.removals.jsonl`` next to the file, an unreadable image is reported and
kept instead of ending the run, and a file that already has the filter's ``info`` block is a
no-op (exit 0) that only finishes a deletion an earlier, interrupted run had recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from redcaps import annotations as ann
from redcaps.filters import base

DEFAULT_IMAGES = "./datasets/redcaps/images"


def removals_path(annotations_path: Path, kind: str) -> Path:
    """Where the CLI records a filter's removals: ``roses_2020.face_filter.removals.jsonl``."""
    stem = annotations_path.name.removesuffix(".json")
    return annotations_path.with_name(f"{stem}.{base.FILTER_KEYS[kind]}.removals.jsonl")


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "-i",
        "--images",
        "image_dir",
        default=DEFAULT_IMAGES,
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


def _model_options(func: Callable[..., Any]) -> Callable[..., Any]:
    path_type = click.Path(dir_okay=False)
    positive = click.IntRange(min=1)
    devices = click.Choice(["auto", "cpu", "cuda"])
    options = [
        click.option("-m", "--model", type=path_type, default=None, help="Model file (default: installed)."),
        click.option("-t", "--confidence-threshold", default=0.9, show_default=True, type=float),
        click.option("-b", "--batch-size", type=positive, help="Images per model call [nsfw 32, faces 16]."),
        click.option("-j", "--workers", default=4, show_default=True, type=positive, help="Decode threads."),
        click.option("--device", type=devices, default="auto", show_default=True, help="cuda: on a GPU."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


#: ``progress(n)``: n more images scored (a tqdm bar's ``update``).
Progress = Callable[[int], object]


def _load(annotations_path: str, image_dir: str) -> tuple[Path, ann.AnnotationFile, Path]:
    path, images = Path(annotations_path), Path(image_dir)
    source = ann.load(path)  # schema errors: one line, before anything is touched
    if not images.is_dir():
        raise base.FilterError(f"images directory not found: {images}")
    return path, source, images


def _finish(kind: str, path: Path, images: Path, outcome: base.FilterOutcome) -> None:
    record = removals_path(path, kind)
    key = base.FILTER_KEYS[kind]
    if outcome.already_applied:
        if record.exists():  # an earlier run may have died between the rename and the deletions
            base.delete_images(images, base.read_removals(record))
        click.echo(f"{path}: {key} already applied; nothing to do")
        return
    for image_id, why in outcome.skipped:
        click.echo(f"warning: {image_id}: {why} (kept)", err=True)
    base.commit(outcome, path, images, removals_path=record)
    total = len(outcome.kept.annotations) + outcome.kept.info[key]["num_removed"]
    click.echo(
        f"{path}: removed {outcome.kept.info[key]['num_removed']} of {total} instances"
        + (f", {len(outcome.skipped)} unreadable images kept" if outcome.skipped else "")
        + f"; removals recorded in {record}"
    )


def _progress_bar(source: ann.AnnotationFile) -> tqdm:
    total = len({r["image_id"] for r in source.annotations})
    return tqdm(total=total, unit="img", disable=None, leave=False)


def _run_image_filter(
    kind: str,
    annotations_path: str,
    image_dir: str,
    run: Callable[[ann.AnnotationFile, Path, Progress], base.FilterOutcome],
) -> None:
    """Load, skip a file already filtered (no model loaded), score with a progress bar, commit."""
    path, source, images = _load(annotations_path, image_dir)
    if base.already_applied(source, kind):
        _finish(kind, path, images, base.FilterOutcome(source, already_applied=True))
        return
    with _progress_bar(source) as bar:
        outcome = run(source, images, bar.update)
    _finish(kind, path, images, outcome)


@click.command("filter-words")
@_common
@click.option(
    "--mode",
    type=click.Choice(["exact", "punctuation"]),
    default="exact",
    show_default=True,
    help="exact: the original rule; punctuation: also catch words touching punctuation.",
)
def filter_words_command(annotations_path: str, image_dir: str, mode: str) -> None:
    """Remove instances whose caption contains an LDNOOBW (en) word; delete their images."""
    from redcaps.filters.words import filter_words

    path, source, images = _load(annotations_path, image_dir)
    _finish("words", path, images, filter_words(source, mode=mode))  # type: ignore[arg-type]


@click.command("filter-nsfw")
@_common
@_model_options
def filter_nsfw_command(
    annotations_path: str,
    image_dir: str,
    model: str | None,
    confidence_threshold: float,
    batch_size: int | None,
    workers: int,
    device: str,
) -> None:
    """Remove instances whose image is NSFW (porn + hentai > threshold); delete their images."""

    def run(source: ann.AnnotationFile, images: Path, progress: Progress) -> base.FilterOutcome:
        from redcaps.filters.nsfw import filter_nsfw  # heavy: only when there is work

        return filter_nsfw(
            source,
            images,
            model=model,
            threshold=confidence_threshold,
            batch_size=batch_size or 32,
            workers=workers,
            device=device,
            progress=progress,
        )

    _run_image_filter("nsfw", annotations_path, image_dir, run)


@click.command("filter-faces")
@_common
@_model_options
@click.option(
    "--pad", is_flag=True, help="Mixed sizes in one padded call per batch (GPU); border scores can shift."
)
@click.option(
    "--long-edge",
    default=512,
    show_default=True,
    type=click.IntRange(min=0),
    help="Resize to this longer edge first, as the original stored images (0: as stored).",
)
def filter_faces_command(
    annotations_path: str,
    image_dir: str,
    model: str | None,
    confidence_threshold: float,
    batch_size: int | None,
    workers: int,
    device: str,
    pad: bool,
    long_edge: int,
) -> None:
    """Remove instances whose image shows a face (RetinaFace score > threshold); delete their images."""

    def run(source: ann.AnnotationFile, images: Path, progress: Progress) -> base.FilterOutcome:
        from redcaps.filters.faces import filter_faces  # heavy: only when there is work

        return filter_faces(
            source,
            images,
            model=model,
            threshold=confidence_threshold,
            batch_size=batch_size or 16,
            workers=workers,
            device=device,
            pad=pad,
            long_edge=long_edge or None,
            progress=progress,
        )

    _run_image_filter("faces", annotations_path, image_dir, run)


COMMANDS = (filter_words_command, filter_nsfw_command, filter_faces_command)
