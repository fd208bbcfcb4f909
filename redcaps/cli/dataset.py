"""``redcaps summary | report | verify | forget``: what a data directory holds, checked and amended."""

from __future__ import annotations

import sys

import click

from redcaps.errors import RedCapsError
from redcaps.layout import DEFAULT_DATA_DIR, Layout

EXIT_ERROR = 1


@click.command()
@click.option("--data-dir", default=DEFAULT_DATA_DIR, show_default=True, type=click.Path(file_okay=False))
def summary(data_dir: str) -> None:
    """Summarise a pipeline data directory: instances, downloads, failures, shards."""
    from redcaps.report.summary import format_summary, summarize_dataset

    click.echo(format_summary(summarize_dataset(Layout.at(data_dir))))


@click.command()
@click.option("--data-dir", default=DEFAULT_DATA_DIR, show_default=True, type=click.Path(file_okay=False))
@click.option(
    "-o",
    "--output",
    default=None,
    type=click.Path(dir_okay=False),
    help="The HTML file to write.  [default: <data-dir>/stages/report/dataset.html]",
)
def report(data_dir: str, output: str | None) -> None:
    """Write a self-contained HTML report of a data directory (tables, plots, sample thumbnails)."""
    from redcaps.report.html import write_report

    layout = Layout.at(data_dir)
    if not layout.stages.is_dir():
        raise RedCapsError(f"{data_dir}: no pipeline outputs here (no stages/ folder)")
    click.echo(write_report(layout, output or layout.report_file("dataset")))


@click.command()
@click.argument("data_dir", type=click.Path(file_okay=False, exists=True))
def verify(data_dir: str) -> None:
    """Check every recorded artefact's size and sha256, and that every tar and parquet reads;
    name what the next run rebuilds (exit 1 when something is damaged)."""
    from redcaps import integrity

    root = Layout.at(data_dir).root
    damaged = list(integrity.damage(root))
    for artefact, why in damaged:
        integrity.mark_damaged(root, artefact, why)  # the next run's cheap check sees it too
        where = artefact.relative_to(root)
        click.echo(
            f"damaged: {where}: {why}; the next run rebuilds it ({integrity.rebuilt_by(root, artefact)})"
        )
    checked = len(list((root / integrity.CHECKSUMS).rglob("*.json")))
    click.echo(f"{checked} artefacts checked, {len(damaged)} damaged")
    if damaged:
        sys.exit(EXIT_ERROR)


@click.command("forget")
@click.option(
    "--ids",
    "ids_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Post ids, one a line.",
)
@click.option(
    "--data-dir", required=True, type=click.Path(exists=True, file_okay=False), help="The dataset's root."
)
def forget_cmd(ids_file: str, data_dir: str) -> None:
    """Remove posts from a published dataset (annotation files, tars, parquet, sizes, images),
    recording what was removed in stages/forget/<stem>.removals.jsonl; reruns change nothing."""
    from redcaps.dataset.forget import forget, read_ids

    removed = forget(Layout.at(data_dir), read_ids(ids_file))
    for file_stem, ids in removed.items():
        click.echo(f"{file_stem}: removed {len(ids)} post(s): {', '.join(ids)}")
    if not removed:
        click.echo("none of these ids is in the dataset (any more)")


COMMANDS = [summary, report, verify, forget_cmd]
