"""The HTML report: self-contained, shown in a real browser, and never showing what it must not."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import luigi
import pytest
from click.testing import CliRunner
from PIL import Image, ImageChops, ImageFilter, ImageStat

import redcaps
from pipeline import RedCapsYear
from redcaps.cli.main import main
from redcaps.errors import RedCapsError
from redcaps.layout import DEDUP, DOWNLOADED, MERGED, TARIFY, YEAR, Layout, manifest_path, shard_path
from redcaps.report.html import write_report
from redcaps.report.thumbnails import SAMPLES_PER_SUBREDDIT, THUMBNAIL_EDGE, thumbnail

HEADINGS = [
    "About this report",
    "Counts per subreddit and year",
    "Shards",
    "Posts dropped per rule",
    "Downloads failed per host and reason",
    "Filter removals",
    "Duplicates",
    "Image sizes",
    "Posts per month",
    "Scores",
    "Caption lengths",
    "Sample images",
]
#: Anything a page could load from elsewhere: a resource attribute or CSS url() not a data: URI.
EXTERNAL = re.compile(
    r"""(?:\b(?:src|href|srcset|poster|data)\s*=\s*["']?|url\(\s*["']?)(?!data:|#)[^"'\s>)]""", re.I
)
CHROMIUM = shutil.which("chromium")


def thumbnails(page: str) -> dict[str, tuple[bytes, bool]]:
    """The page's thumbnails by image id: (JPEG bytes, marked blurred)."""
    found = re.findall(
        r'<figure data-image-id="([^"]+)"( data-blurred)?><img [^>]*src="data:image/jpeg;base64,([^"]+)"',
        page,
    )
    return {image_id: (base64.b64decode(data), bool(blurred)) for image_id, blurred, data in found}


def check_self_contained(page: str) -> None:
    for heading in HEADINGS:
        assert f"<h2>{heading}</h2>" in page
    assert "http://" not in page and "https://" not in page
    assert EXTERNAL.search(page) is None, EXTERNAL.search(page)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # the inline plots' ids do not collide
    assert set(re.findall(r'(?:href="#|url\(#)([^")]+)', page)) <= set(ids)


def screenshot(report: Path, tmp_path: Path) -> Image.Image:
    png = tmp_path / "report.png"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--screenshot={png}",
        "--window-size=1200,5200",
        report.resolve().as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return Image.open(png).convert("RGB")


@pytest.mark.slow
def test_the_year_report_is_a_stage_and_opens_in_a_browser(sandbox_env, luigi_config, tmp_path):
    """The real pipeline (word filter only) ends with the report of the year's final file."""
    config = luigi.configuration.get_config()
    config.set("filters", "enabled", "words")
    luigi.task_register.Register.clear_instance_cache()
    year = RedCapsYear(subreddit="sandboxcats", year=2020)
    result = luigi.build([year], local_scheduler=True, detailed_summary=True, log_level="WARNING")
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text
    layout = Layout.at(luigi_config)
    report = layout.report_file("sandboxcats_2020")
    assert json.loads(layout.stage_file(YEAR, "sandboxcats_2020").read_text())["report"] == str(report)

    page = report.read_text(encoding="utf-8")
    check_self_contained(page)
    assert page.count("<svg") == 5  # image sizes, posts per month, scores, caption lengths, download yield
    final = json.loads(layout.final_file("sandboxcats_2020").read_text())["annotations"]
    shown = thumbnails(page)
    assert len(shown) == SAMPLES_PER_SUBREDDIT and set(shown) <= {r["image_id"] for r in final}
    assert "http_404" in page and "placeholder" in page  # the sandbox's dead images, by reason
    check_in_browser(report, tmp_path)


def check_in_browser(report: Path, tmp_path: Path) -> None:
    """The page renders with its photos and plots: many colours, not a blank page."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    image = screenshot(report, tmp_path)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 2000  # photos and plots, not a blank or text-only page
    drawn = sum(n for n, rgb in colours if min(rgb) < 230)
    assert drawn > 4 * THUMBNAIL_EDGE**2  # more than a few thumbnails' worth of pixels


def patterned(seed: int) -> Image.Image:
    """A sharp checkerboard in a colour of its own: high-frequency content a blur must remove."""
    image = Image.new("RGB", (256, 192), (seed * 40 % 256, 90, 200))
    tile = Image.new("RGB", (8, 8), (250, 250, 250))
    for x in range(0, 256, 16):
        for y in range(0, 192, 16):
            image.paste(tile, (x + (y // 16 % 2) * 8, y))
    return image


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def sharpness(data: bytes) -> float:
    with Image.open(io.BytesIO(data)) as image:
        return ImageStat.Stat(image.convert("L").filter(ImageFilter.FIND_EDGES)).stddev[0]


@pytest.fixture()
def half_filtered(tmp_path: Path) -> tuple[Layout, dict[str, list[str]]]:
    """A stem whose NSFW and face removals are recorded while their images are still on disk (a run
    stopped before the filters' commit), with some images only inside the shards."""
    layout = Layout.at(tmp_path / "data")
    stem = "roses_2021"
    ids = [f"img{n:04d}" for n in range(10)]
    groups = {"nsfw": ids[:2], "faces": ids[2:4], "in_tar": ids[4:7], "loose": ids[7:]}
    records = [
        {
            "image_id": i,
            "subreddit": "roses",
            "caption": f"a rose number {n}",
            "url": f"https://i.redd.it/{i}.jpg",
        }
        for n, i in enumerate(ids)
    ]
    info = {"collection": {"considered": 12, "kept": 10, "dropped": {"video": 2}}}
    downloaded = layout.stage_file(DOWNLOADED, stem)
    downloaded.parent.mkdir(parents=True)
    downloaded.write_text(json.dumps({"info": info, "annotations": records}))
    manifests = layout.manifests(stem)
    manifests.mkdir(parents=True)
    lines = [
        {
            "image_id": i,
            "url": f"https://i.redd.it/{i}.jpg",
            "status": "ok",
            "original_width": 256,
            "original_height": 192,
        }
        for i in ids
    ]
    lines.append({"image_id": "gone", "url": "https://i.imgur.com/gone.jpg", "status": "http_404"})
    manifest_path(manifests, 0).write_text("".join(json.dumps(x) + "\n" for x in lines))
    for kind in ("nsfw", "faces"):
        removals = layout.removals(kind, stem)
        removals.parent.mkdir(parents=True)
        removals.write_text(
            "".join(json.dumps({"image_id": i, "subreddit": "roses"}) + "\n" for i in groups[kind])
        )
    layout.tarfiles.mkdir(parents=True)
    with tarfile.open(shard_path(layout.tarfiles, stem, 0), "w") as tar:
        for n, image_id in enumerate(ids):
            data = jpeg(patterned(n))
            if image_id in groups["in_tar"]:
                member = tarfile.TarInfo(f"{image_id}.jpg")
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            else:
                layout.image("roses", image_id).parent.mkdir(parents=True, exist_ok=True)
                layout.image("roses", image_id).write_bytes(data)
    return layout, groups


def test_nsfw_removals_are_never_shown_and_face_removals_are_blurred(half_filtered, tmp_path):
    layout, groups = half_filtered
    report = write_report(layout, tmp_path / "report.html")
    page = report.read_text(encoding="utf-8")
    check_self_contained(page)
    shown = thumbnails(page)
    assert sorted(shown) == sorted(groups["faces"] + groups["in_tar"] + groups["loose"])
    for image_id in groups["nsfw"]:
        assert image_id not in page
        never = thumbnail(layout.image("roses", image_id).read_bytes())
        assert all(data != never for data, _ in shown.values())
    for image_id in groups["faces"]:
        data, marked = shown[image_id]
        plain = thumbnail(layout.image("roses", image_id).read_bytes())
        assert marked and sharpness(data) < 0.3 * sharpness(plain)
    for image_id in groups["loose"] + groups["in_tar"]:
        data, marked = shown[image_id]
        assert not marked and sharpness(data) > 10
    # the images only in the shards are the same pictures as the loose ones would have been
    with tarfile.open(layout.shard_files("roses_2021")[0]) as tar:
        first = groups["in_tar"][0]
        original = thumbnail(tar.extractfile(f"{first}.jpg").read())
    assert (
        ImageChops.difference(
            Image.open(io.BytesIO(original)), Image.open(io.BytesIO(shown[first][0]))
        ).getbbox()
        is None
    )
    assert "i.imgur.com" in page and "http_404" in page
    # the same data gives the same page
    assert write_report(layout, tmp_path / "again.html").read_text(encoding="utf-8") == page


def test_the_report_opens_in_a_browser_with_its_plots_and_thumbnails(half_filtered, tmp_path):
    layout, _ = half_filtered
    report = write_report(layout, tmp_path / "report.html")
    page = report.read_text(encoding="utf-8")
    assert page.count("<svg") == 3 and len(thumbnails(page)) == 8  # sizes, captions, yields
    check_in_browser(report, tmp_path)


def test_the_report_command(half_filtered, tmp_path):
    layout, _ = half_filtered
    out = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(main, ["report", "--data-dir", str(layout.root), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out) and "<h2>Sample images</h2>" in out.read_text(encoding="utf-8")
    result = CliRunner().invoke(main, ["report", "--data-dir", str(layout.root)])
    assert result.exit_code == 0 and Path(result.output.strip()) == layout.report_file("dataset")
    assert layout.report_file("dataset").is_file()

    result = CliRunner().invoke(main, ["report", "--data-dir", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "no pipeline outputs" in result.output


def test_duplicates_read_not_run_until_the_dedup_stage_has_run(half_filtered, tmp_path):
    layout, _ = half_filtered
    row = "<td>r/roses</td><td>2021</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
    page = write_report(layout, tmp_path / "before.html").read_text(encoding="utf-8")
    assert row.format(0, 0, 0, "not run") in page

    dedup_output = layout.stage_file(DEDUP, "roses_2021")
    dedup_output.parent.mkdir(parents=True)
    block = {
        "mode": "exact",
        "max_distance": 4,
        "hashed": 10,
        "groups": 3,
        "exact": 3,
        "near": 2,
        "dropped": 1,
    }
    dedup_output.write_text(json.dumps({"info": {"dedup": block}, "annotations": []}))
    page = write_report(layout, tmp_path / "after.html").read_text(encoding="utf-8")
    assert row.format(3, 2, 1, "exact") in page


def test_a_torn_last_manifest_line_is_dropped_and_a_torn_middle_one_is_an_error(half_filtered, tmp_path):
    """A download killed mid-append leaves a torn last line: the report leaves it out; a bad line
    before others is damage, reported with its place."""
    layout, _ = half_filtered
    manifest = manifest_path(layout.manifests("roses_2021"), 0)
    whole = manifest.read_text(encoding="utf-8")
    manifest.write_text(whole + '{"image_id": "torn", "url": "https://i.imgur.com/torn.jpg", "sta')
    torn = write_report(layout, tmp_path / "torn.html").read_text(encoding="utf-8")
    manifest.write_text(whole)
    assert torn == write_report(layout, tmp_path / "whole.html").read_text(encoding="utf-8")

    manifest.write_text('{"image_id": "torn", "sta\n' + whole)
    with pytest.raises(RedCapsError, match=r"00000\.jsonl:1: not a JSON line"):
        write_report(layout, tmp_path / "broken.html")


@pytest.fixture()
def two_years(tmp_path: Path) -> Layout:
    """Two packed years as a dataset user gets them: final files (with filter blocks, scores, dates
    and empty captions), manifests with both sizes, shards and sizes.json."""
    layout = Layout.at(tmp_path / "data")
    layout.tarfiles.mkdir(parents=True)
    for n, stem in enumerate(["cats_2020", "roses_2020"]):
        subreddit = stem.split("_")[0]
        ids = [f"{subreddit[:2]}{k:04d}" for k in range(4)]
        records = [
            {
                "image_id": i,
                "subreddit": subreddit,
                "caption": "" if k == 0 else f"a {subreddit} {k}",
                "score": 3 * 10**k,
                "created_utc": 1580515200 + k * 40 * 86400,  # 2020-02-01, then every 40 days
                "url": f"https://i.redd.it/{i}.jpg",
            }
            for k, i in enumerate(ids)
        ]
        info = {
            "collection": {"considered": 6, "kept": 4, "dropped": {"video": 2}},
            "download": {"attempted": 4, "ok": 4, "failed": {}},
            "nsfw_filter": {"num_removed": 0, "model": "<b>nsfw</b> & co", "confidence_threshold": 0.9},
            "face_filter": {"num_removed": 0, "model": "retinaface", "confidence_threshold": 0.75},
        }
        layout.final_file(stem).parent.mkdir(parents=True, exist_ok=True)
        layout.final_file(stem).write_text(json.dumps({"info": info, "annotations": records}))
        for stage in (MERGED, DOWNLOADED):
            layout.stage_file(stage, stem).parent.mkdir(parents=True, exist_ok=True)
            layout.stage_file(stage, stem).write_text(json.dumps({"info": info, "annotations": records}))
        lines = [
            {"image_id": i, "url": "u", "status": "ok", "bytes": 250_000, "width": 512, "height": 384}
            | {"original_width": 2048, "original_height": 1536}
            for i in ids
        ]
        layout.manifests(stem).mkdir(parents=True)
        manifest_path(layout.manifests(stem), 0).write_text("".join(json.dumps(x) + "\n" for x in lines))
        shard = shard_path(layout.tarfiles, stem, 0)
        shard.write_bytes(b"\0" * (10_240 * (n + 1)))
        tarify = layout.stage_file(TARIFY, stem)
        tarify.parent.mkdir(parents=True, exist_ok=True)
        tarify.write_text(json.dumps({"shards": [str(shard)], "samples": 4}))
    (layout.tarfiles / "sizes.json").write_text(
        json.dumps({"cats_2020_00000000.tar": 4, "roses_2020_00000000.tar": 4})
    )
    newest = 1_700_000_000  # 2023-11-14 22:13 UTC: the run date is the newest stage output's time
    for path in (layout.root / "stages").rglob("*.json"):
        os.utime(path, (newest - 60, newest - 60))
    os.utime(layout.stage_file(TARIFY, "roses_2020"), (newest, newest))
    for stem in ("cats_2020", "roses_2020"):
        os.utime(layout.final_file(stem), (newest - 60, newest - 60))
    return layout


def cells(page: str, heading: str) -> list[list[str]]:
    """The body rows of the first table after ``heading``, as text."""
    section = page.split(f"<h2>{heading}</h2>", 1)[1].split("</section>", 1)[0]
    body = section.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)]


def test_the_report_as_a_dataset_user_reads_it(two_years, tmp_path):
    page = write_report(two_years, tmp_path / "report.html").read_text(encoding="utf-8")
    check_self_contained(page)
    counts = cells(page, "Counts per subreddit and year")
    assert counts[-1] == ["total", "", "12", "8", "8", "", "8", "2", "8"]  # empty captions: 2
    assert "2 of 8 instances have an empty caption" in page
    assert cells(page, "Shards") == [
        ["cats_2020_00000000.tar", "4", "10.2 kB"],
        ["roses_2020_00000000.tar", "4", "20.5 kB"],
        ["total", "8", "30.7 kB"],
    ]
    snippet = html.unescape(page.split("<pre><code>", 1)[1].split("</code></pre>", 1)[0])
    assert len(snippet.splitlines()) == 3 and str(two_years.tarfiles) in snippet
    scope: dict = {}
    exec(compile(snippet.splitlines()[0] + "\n" + snippet.splitlines()[1], "snippet", "exec"), scope)
    assert [Path(s).name for s in scope["shards"]] == ["cats_2020_00000000.tar", "roses_2020_00000000.tar"]
    about = dict(row for row in cells(page, "About this report"))
    assert about["tool"] == f"redcaps {redcaps.__version__}" and about["run date"] == "2023-11-14 22:13 UTC"
    section = page.split("<h2>About this report</h2>", 1)[1].split("</section>", 1)[0]
    assert "<td>nsfw</td><td>&lt;b&gt;nsfw&lt;/b&gt; &amp; co</td><td>0.9</td>" in section  # escaped
    assert "<td>faces</td><td>retinaface</td><td>0.75</td>" in section and "<b>" not in page
    assert cells(page, "Image sizes")[0] == ["r/cats", "2020", "4", "2048×1536", "512×384", "1.0 MB"]
    assert (
        page.count("<svg") == 5 and 'id="yields-' in page and 'id="months-' in page and 'id="scores-' in page
    )
    again = write_report(two_years, tmp_path / "again.html").read_text(encoding="utf-8")
    assert again == page  # the same data gives the same page


def test_recovered_images_are_shown_with_their_route(half_filtered, tmp_path):
    """Images stored from a rewrite or a preview get a sample of their own, labelled with the
    route (NSFW removals still never shown); a data dir with none has no such section."""
    layout, groups = half_filtered
    assert "<h2>Recovered images</h2>" not in write_report(layout, tmp_path / "plain.html").read_text()
    manifest = manifest_path(layout.manifests("roses_2021"), 0)
    routes = {groups["loose"][0]: "preview", groups["in_tar"][0]: "rewrite", groups["nsfw"][0]: "preview"}
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    for row in rows:
        if row["image_id"] in routes:
            row.update(route=routes[row["image_id"]], fetched_url="https://preview.redd.it/x.jpg")
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    page = write_report(layout, tmp_path / "report.html").read_text(encoding="utf-8")
    recovered = page.split("<h2>Recovered images</h2>")[1]
    figures = re.findall(r'<figure data-image-id="([^"]+)".*?<figcaption>(.*?)</figcaption>', recovered)
    assert {i: label.split("</span>")[0].rpartition(" ")[2] for i, label in figures} == {
        groups["loose"][0]: "preview",
        groups["in_tar"][0]: "rewrite",
    }
    assert "https://" not in page  # the fetched URL is not put on the page
