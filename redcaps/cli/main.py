"""The ``redcaps`` command: the original tool's subcommands, done safely.

Dead links are a normal outcome (recorded, exit 0). Anything that stops the job — bad input,
an unwritable output, a crash — prints one ``error:`` line and exits non-zero.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import get_args

import click
from tqdm import tqdm

from redcaps import __version__
from redcaps import annotations as ann
from redcaps.download.images import RESAMPLE_FILTERS, ImageOptions
from redcaps.errors import RedCapsError
from redcaps.layout import DEFAULT_DATA_DIR, Layout, manifest_dir, stem, stem_of
from redcaps.settings import (
    SOURCES,
    CollectionSettings,
    DownloadSettings,
    Format,
    ShardSettings,
    range_of,
)

EXIT_ERROR = 1
EXIT_INVALID = 3
DEFAULT_LAYOUT = Layout(Path(DEFAULT_DATA_DIR))


class InRange(click.ParamType):
    """A number in the range a settings field declares (:func:`redcaps.settings.ranged`): the
    CLI and the preflight take the same values."""

    def __init__(self, cls: type, name: str, kind: type = int) -> None:
        self.bounds, self.kind = range_of(cls, name), kind
        self.name = kind.__name__

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> object:
        try:
            number = self.kind(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not {'an integer' if self.kind is int else 'a number'}", param, ctx)
        if self.bounds is not None and number not in self.bounds:
            self.fail(f"{value!r} must be {self.bounds}", param, ctx)
        return number


class Group(click.Group):
    """Turn expected failures into one line on stderr and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except RedCapsError as exc:
            for line in str(exc).splitlines() or [""]:  # a preflight's problems: one line each
                click.echo(f"error: {line}", err=True)
            sys.exit(EXIT_ERROR)
        except OSError as exc:
            click.echo(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
            sys.exit(EXIT_ERROR)


@click.group(cls=Group)
@click.version_option(__version__, prog_name="redcaps")
def main() -> None:
    """Download and build RedCaps-style image-text datasets."""


@main.command("download-imgs")
@click.option("-a", "--annotations", "annotations_path", required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--save-to",
    default=str(DEFAULT_LAYOUT.images),
    show_default=True,
    type=click.Path(file_okay=False),
    help="Images go to <dir>/<subreddit>/<image_id>.jpg.",
)
@click.option(
    "-z",
    "--resize",
    default=ImageOptions.resize,
    show_default=True,
    type=InRange(ImageOptions, "resize"),
    help="Target edge; -1 keeps size.",
)
@click.option(
    "--edge",
    type=click.Choice(["shorter", "longer"]),
    default=ImageOptions.edge,
    show_default=True,
    help="Which edge --resize sets ('longer' reproduces the original tool).",
)
@click.option(
    "--quality",
    default=ImageOptions.quality,
    show_default=True,
    type=InRange(ImageOptions, "quality"),
    help="JPEG quality of stored images.",
)
@click.option(
    "--resample",
    type=click.Choice(sorted(RESAMPLE_FILTERS)),
    default=ImageOptions.resample,
    show_default=True,
    help="Resize filter ('box' averages areas like img2dataset, for less CPU).",
)
@click.option(
    "-j",
    "--workers",
    default=DownloadSettings.workers,
    show_default=True,
    type=InRange(DownloadSettings, "workers"),
    help="Download threads.",
)
@click.option(
    "--processes",
    default=DownloadSettings.processes,
    show_default=True,
    type=InRange(DownloadSettings, "processes"),
    help="Processes the threads are spread over (0: one per core).",
)
@click.option(
    "-u",
    "--update-annotations",
    is_flag=True,
    help="Rewrite the annotation file keeping only instances whose image was downloaded.",
)
@click.option(
    "--shard-size",
    default=DownloadSettings.images_per_shard,
    show_default=True,
    type=InRange(DownloadSettings, "images_per_shard"),
    help="Instances per manifest shard.",
)
@click.option(
    "--allow-network",
    "allow_networks",
    multiple=True,
    metavar="CIDR",
    help="An internal network that may be fetched (your own mirror); others are refused.",
)
@click.option("--source-address", default="", help="Local IP to send from (one run per IP).")
@click.option(
    "--recover/--no-recover",
    default=DownloadSettings.recover,
    show_default=True,
    help="Try a dead image's live forms and its post's Reddit preview (from Arctic Shift).",
)
def download_imgs(
    annotations_path: str,
    save_to: str,
    resize: int,
    edge: str,
    quality: int,
    resample: str,
    workers: int,
    processes: int,
    update_annotations: bool,
    shard_size: int,
    allow_networks: tuple[str, ...],
    source_address: str,
    recover: bool,
) -> None:
    """Download the images of one annotation file (reruns retry only retryable failures)."""
    from redcaps.download.manifest import downloaded_annotations
    from redcaps.download.previews import PreviewLookup
    from redcaps.download.shard import download_file
    from redcaps.net.config import HttpConfig
    from redcaps.net.fetcher import Fetcher

    source = ann.load(annotations_path)
    image_dir = Path(save_to)
    image_dir.mkdir(parents=True, exist_ok=True)
    options = ImageOptions(resize=resize, edge=edge, quality=quality, resample=resample)  # type: ignore[arg-type]
    settings = DownloadSettings(
        images_per_shard=shard_size, workers=workers, processes=processes, recover=recover
    )
    http = HttpConfig(allow_networks=allow_networks, source_address=source_address)
    fetcher = Fetcher(http)
    previews = PreviewLookup(config=http) if recover else None
    try:
        with tqdm(total=len(source.annotations), unit="img", disable=None) as bar:
            outcomes = download_file(
                source,
                image_dir,
                manifest_dir(image_dir, stem_of(annotations_path)),
                fetcher,
                options,
                settings,
                progress=lambda outcome: bar.update(1),
                previews=previews,
            )
    finally:
        fetcher.close()
        if previews is not None:
            previews.close()
    counts = Counter(o.status for o in outcomes)
    ok = counts.pop("ok", 0)
    click.echo(f"downloaded {ok} of {len(source.annotations)} images into {image_dir}")
    if counts:
        click.echo("failed: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if update_annotations:
        ann.save(annotations_path, downloaded_annotations(source, {o.image_id: o for o in outcomes}))
        click.echo(f"updated {annotations_path}: kept {ok} instances")


@main.command("download-anns")
@click.option("-s", "--subreddit", required=True, help="Subreddit name, without r/.")
@click.option(
    "-m",
    "--month",
    "--yyyy-mm",
    "month",
    required=True,
    type=click.DateTime(["%Y-%m"]),
    help="Month as YYYY-MM (the original spelled it --yyyy-mm).",
)
@click.option(
    "-o",
    "--save-to",
    default=str(DEFAULT_LAYOUT.annotations),
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory for <subreddit>_<YYYY-MM>.json.",
)
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default=CollectionSettings.source,
    show_default=True,
    help="Where posts come from (pushshift reads its token from $PUSHSHIFT_TOKEN).",
)
@click.option(
    "--dump-file", type=click.Path(dir_okay=False, exists=True), help="For --source dump: one .zst file."
)
@click.option(
    "--dump-dir", type=click.Path(file_okay=False, exists=True), help="For --source dump: a directory."
)
@click.option("--pushshift-url", default=None, help="Base URL of a Pushshift-compatible API.")
@click.option(
    "-c",
    "--credentials",
    type=click.Path(dir_okay=False, exists=True),
    help=f"Reddit/Imgur keys [default: {CollectionSettings.credentials} if present]. Optional: without"
    " them the source's fields are used and imgur albums are skipped.",
)
@click.option(
    "--min-score",
    default=CollectionSettings.min_score,
    show_default=True,
    help="Drop posts scoring below this.",
)
@click.option("--no-preflight-network", is_flag=True, help="Skip the source check (one request) first.")
def download_anns(
    subreddit: str,
    month,
    save_to: str,
    source: str,
    dump_file: str | None,
    dump_dir: str | None,
    pushshift_url: str | None,
    credentials: str | None,
    min_score: int,
    no_preflight_network: bool,
) -> None:
    """Collect one month of image posts of a subreddit as an annotation file."""
    from redcaps import preflight
    from redcaps.collect.credentials import load_credentials
    from redcaps.collect.month import build_imgur, build_refresher, build_source, collect_month

    path = Path(save_to) / f"{stem(subreddit, month)}.json"  # checks the name first
    if (dump_file or dump_dir) and source != "dump":
        raise RedCapsError("--dump-file/--dump-dir need --source dump")
    checked = CollectionSettings(
        source=source,
        pushshift_url=pushshift_url or CollectionSettings.pushshift_url,
        dump_dir=dump_file or dump_dir or "",
        credentials=credentials or CollectionSettings.credentials,
    )
    problems = preflight.check_collection(checked, [subreddit], network=not no_preflight_network)
    preflight.raise_problems(problems + preflight.check_data_dir(save_to)[0])
    creds = load_credentials(credentials or CollectionSettings.credentials)
    result = collect_month(
        subreddit,
        month.year,
        month.month,
        source=build_source(source, dump_dir=dump_file or dump_dir, pushshift_url=pushshift_url),
        refresher=build_refresher(creds),
        imgur=build_imgur(creds),
        min_score=min_score,
    )
    ann.save(path, result)
    info = result.info["collection"]
    dropped = ", ".join(f"{k} {v}" for k, v in info["dropped"].items()) or "none"
    refreshed = "refreshed from Reddit" if info["refreshed"] else "not refreshed (no Reddit credentials)"
    click.echo(
        f"wrote {path}: {info['kept']} of {info['considered']} posts kept ({refreshed}); dropped: {dropped}"
    )


@main.command()
@click.argument("annotation_filepaths", nargs=-1, required=True)
@click.option("-o", "--save-to", required=True, type=click.Path(), help="Merged annotation file.")
@click.option("-d", "--delete-old", is_flag=True, help="Delete the inputs after a successful merge.")
def merge(annotation_filepaths: tuple[str, ...], save_to: str, delete_old: bool) -> None:
    """Merge annotation files (globs allowed): de-duplicate by image_id, sort by time."""
    from redcaps.merge import expand_inputs, merge_files

    result = merge_files(expand_inputs(annotation_filepaths), save_to, delete_old=delete_old)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"merged {len(result.inputs)} files into {result.output}: {result.records} instances"
        f" ({result.duplicates} duplicates dropped)"
    )
    for path in result.deleted:
        click.echo(f"deleted {path}")


@main.command()
@click.option("-a", "--annotations", "paths", required=True, multiple=True, type=click.Path(dir_okay=False))
def validate(paths: tuple[str, ...]) -> None:
    """Check annotation files against the RedCaps format; exit 3 if any has an error."""
    from redcaps.validate import validate_file

    failed = 0
    for path in paths:
        problems = validate_file(path)
        errors = sum(p.severity == "error" for p in problems)
        for problem in problems:
            click.echo(f"{path}: {problem}", err=problem.severity == "error")
        click.echo(
            f"{path}: {'INVALID' if errors else 'ok'} ({errors} errors, {len(problems) - errors} warnings)"
        )
        failed += bool(errors)
    if failed:
        sys.exit(EXIT_INVALID)


@main.command("make-tarfiles")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False))
@click.option("--image-dir", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--output-dir", required=True, type=click.Path(file_okay=False))
@click.option(
    "-z",
    "--shard-size",
    default=ShardSettings.samples_per_tar,
    show_default=True,
    type=InRange(ShardSettings, "samples_per_tar"),
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(get_args(Format)),
    default=ShardSettings.format,
    show_default=True,
    help="Caption members per sample: .txt and .json (both), or one of them",
)
@click.option(
    "--manifests",
    type=click.Path(file_okay=False, exists=True),
    help="Download manifests (image sizes, failures); default <image-dir>/.manifests/<stem> if present",
)
def make_tarfiles(
    input_path: str, image_dir: str, output_dir: str, shard_size: int, fmt: str, manifests: str | None
) -> None:
    """Pack an annotation file and its images into WebDataset shards <stem>_%08d.tar, with a
    .parquet and _stats.json beside each shard and sizes.json for the folder."""
    from redcaps.dataset.tarify import write_shards

    annotations = ann.load(input_path)
    file_stem = stem_of(input_path)
    result = write_shards(
        annotations,
        image_dir,
        output_dir,
        file_stem,
        shard_size=shard_size,
        fmt=fmt,  # type: ignore[arg-type]
        manifests=manifests or manifest_dir(image_dir, file_stem),
    )
    click.echo(
        f"wrote {result.samples} samples in {len(result.shards)} shards to {output_dir}"
        f"; {len(result.missing)} instances had no image"
    )


from redcaps.cli.dataset import COMMANDS as DATASET_COMMANDS  # noqa: E402 - after main exists
from redcaps.cli.filters import COMMANDS as FILTER_COMMANDS  # noqa: E402 - after main exists

for _command in (*DATASET_COMMANDS, *FILTER_COMMANDS):
    main.add_command(_command)

from redcaps.collect.check_sources import check_sources_command  # noqa: E402 - after main exists

main.add_command(check_sources_command)


@main.command("sandbox")
@click.option("--state-dir", default="sandbox-state", show_default=True, type=click.Path(file_okay=False))
@click.option("--port", default=0, help="Proxy port; 0 picks a free one.")
def sandbox(state_dir: str, port: int) -> None:
    """Start the offline sandbox (needs the sandbox extra) and print the lines to export."""
    from redcaps.sandbox.__main__ import main as sandbox_main

    sandbox_main(["serve", "--state-dir", state_dir, "--port", str(port)])


if __name__ == "__main__":
    main()
