"""Download engine against img2dataset 1.47.0, side by side in one run, on a loopback server.

    .venv/bin/python bench/bench_download.py [--urls 2000] [--rounds 2] [--corpora phone,mixed]

* img2dataset runs from its own virtualenv ``bench/out/venv-img2dataset`` (created on first
  use: ``pip install img2dataset==1.47.0``; never a project dependency).
* ``bench/imgserver.py`` serves the corpora from ``bench/corpora.py`` on 127.0.0.1 in its
  own process; its fetch-only ceiling is measured first and reported.
* The same work for both: shorter edge 512 only if bigger, JPEG quality 90, WebDataset tars
  of 1,000 samples. redcaps runs its real product path, ``luigi --module pipeline.official
  OfficialFile --local-scheduler`` (DownloadImages + Validate + Tarify), with a bench
  luigi.cfg whose ``[host_limits]`` lifts the politeness limits for 127.0.0.1 only.
* Tools alternate (A B A B ...) per corpus; each run gets images/s for the whole command and
  in steady state, CPU-seconds per image (children's rusage), successes, and the load
  average before and after. A markdown table is printed, raw JSON goes to bench/out/.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import csv
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
VENV = OUT / "venv-img2dataset"
IMG2DATASET_VERSION = "1.47.0"
RESIZE, QUALITY, TAR_SAMPLES = 512, 90, 1000
UNIQUE = {"phone": 50, "mixed": 200}

sys.path.insert(0, str(BENCH))

import corpora  # noqa: E402
import imgserver  # noqa: E402

#: The bench's luigi.cfg: product defaults except the loopback host's politeness limits.
LUIGI_CFG = """\
[core]
autoload_range = false

[worker]
keep_alive = false

[redcaps]
data_dir = {data_dir}

[images]
resize = {resize}
edge = shorter
quality = {quality}

[downloads]
shard_size = 5000
workers = {workers}
max_attempts = 1
# the benchmark server is ours, on loopback (internal addresses are refused otherwise)
allow_networks = 127.0.0.0/8

[shards]
shard_size = {tar_samples}
format = json

[host_limits]
# loopback only: the benchmark server is ours, so no rate limit and a wide concurrency cap
127.0.0.1 = rate=100000 burst=100000 concurrency={workers}
"""


#: Tools besides img2dataset: redcaps with product defaults, and variants that change one setting.
VARIANTS: dict[str, dict[str, dict[str, str]]] = {
    "redcaps": {},
    # img2dataset's resize filter (area averaging) instead of the default bicubic: the same work
    "redcaps-box": {"images": {"resample": "box"}},
    # the shard's threads in one process (the engine before [downloads] processes)
    "redcaps-1p": {"downloads": {"processes": "1"}},
}


def ensure_venv() -> Path:
    """img2dataset's own virtualenv (Python 3.11; 1.47.0 installs with no extra pins)."""
    exe = VENV / "bin" / "img2dataset"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "-q", f"img2dataset=={IMG2DATASET_VERSION}"], check=True
        )
    return exe


def start_server(specs: list[str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "imgserver.py"), *sum((["--corpus", s] for s in specs), [])],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit("image server did not start")
    return proc, int(line.split()[1])


def url_list(corpus: str, count: int, port: int) -> list[str]:
    images = corpora.build(corpus, UNIQUE[corpus])
    return [f"http://127.0.0.1:{port}/{corpus}/{n}.{images[n % len(images)][0]}" for n in range(count)]


def write_inputs(folder: Path, urls: list[str]) -> tuple[Path, Path]:
    """The same URLs as img2dataset's CSV and as a redcaps annotation file."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "urls.csv"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["url", "caption"])
        for n, url in enumerate(urls):
            writer.writerow([url, f"bench image {n}"])
    records = [
        {
            "image_id": f"b{n:06d}",
            "author": "bench",
            "url": url,
            "raw_caption": f"bench image {n}",
            "caption": f"bench image {n}",
            "subreddit": "bench",
            "score": 10,
            "created_utc": 1577923200 + n,
            "permalink": f"/r/bench/comments/b{n:06d}/x/",
        }
        for n, url in enumerate(urls)
    ]
    info = {
        "start_date": "2020-01-01",
        "end_date": "2020-12-31",
        "url": "https://redcaps.xyz",
        "version": "1.0",
    }
    ann_path = folder / "bench_2020.json"
    ann_path.write_text(json.dumps({"info": info, "annotations": records}))
    return csv_path, ann_path


def count_tar_images(folder: Path) -> int:
    total = 0
    for tar in sorted(folder.rglob("*.tar")):
        with tarfile.open(tar) as tf:
            total += sum(m.name.endswith(".jpg") for m in tf.getmembers())
    return total


class Progress(threading.Thread):
    """Samples a done-count while a command runs, for the steady-state rate (10%..90%)."""

    def __init__(self, count_done, total: int) -> None:
        super().__init__(daemon=True)
        self.count_done, self.total = count_done, total
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            with contextlib.suppress(OSError):
                self.samples.append((time.perf_counter(), self.count_done()))

    def steady_rate(self) -> float | None:
        lo, hi = 0.1 * self.total, 0.9 * self.total
        first = next((s for s in self.samples if s[1] >= lo), None)
        last = next((s for s in self.samples if s[1] >= hi), None)
        if not first or not last or last[0] <= first[0]:
            return None
        return (last[1] - first[1]) / (last[0] - first[0])


def journal_lines(image_dir: Path) -> int:
    """Outcomes written so far by redcaps (journal while running, then the manifest)."""
    return sum(p.read_bytes().count(b"\n") for p in (image_dir / ".manifests").rglob("*.jsonl*"))


def timed(cmd: list[str], env: dict, cwd: Path, progress: Progress | None, log: Path) -> dict:
    load_before = os.getloadavg()
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    if progress:
        progress.start()
    with open(log, "w") as fh:
        code = subprocess.run(cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - start
    if progress:
        progress.stop.set()
        progress.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage.ru_utime - usage_before.ru_utime) + (usage.ru_stime - usage_before.ru_stime)
    return {
        "exit_code": code,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "steady_images_per_s": round(r, 1) if progress and (r := progress.steady_rate()) else None,
    }


def source_tree(rev: str) -> Path:
    """The repository at ``rev`` (``git archive``), to time an earlier engine in the same run."""
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True)
    if commit.returncode:
        raise SystemExit(f"unknown revision {rev!r}")
    folder = OUT / "src" / commit.stdout.strip()
    if not (folder / "redcaps").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", commit.stdout.strip()], cwd=REPO, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def run_redcaps(
    ann_path: Path,
    work: Path,
    workers: int,
    src: Path = REPO,
    settings: dict[str, dict[str, str]] | None = None,
) -> dict:
    data_dir = work / "redcaps"
    data_dir.mkdir(parents=True)
    ann_copy = work / ann_path.name
    ann_copy.write_bytes(ann_path.read_bytes())
    cfg = work / "luigi.cfg"
    parser = configparser.ConfigParser()
    parser.read_string(
        LUIGI_CFG.format(
            data_dir=data_dir, resize=RESIZE, quality=QUALITY, workers=workers, tar_samples=TAR_SAMPLES
        )
    )
    parser.read_dict(settings or {})
    with open(cfg, "w") as fh:
        parser.write(fh)
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg), "PYTHONPATH": str(src), "NO_PROXY": "127.0.0.1"}
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(var, None)
    cmd = [
        str(REPO / ".venv" / "bin" / "luigi"),
        "--module",
        "pipeline.official",
        "OfficialFile",
        "--annotations",
        str(ann_copy),
        "--local-scheduler",
    ]
    total = len(json.loads(ann_path.read_text())["annotations"])
    progress = Progress(lambda: journal_lines(data_dir / "images"), total)
    result = timed(cmd, env, work, progress, work / "redcaps.log")
    result["successes"] = count_tar_images(data_dir / "tarfiles")
    return result


def run_img2dataset(csv_path: Path, work: Path, processes: int, threads: int) -> dict:
    out = work / "img2dataset"
    cmd = [
        str(VENV / "bin" / "img2dataset"),
        "--url_list", str(csv_path),
        "--input_format", "csv",
        "--url_col", "url",
        "--caption_col", "caption",
        "--output_format", "webdataset",
        "--output_folder", str(out),
        "--processes_count", str(processes),
        "--thread_count", str(threads),
        "--image_size", str(RESIZE),
        "--resize_mode", "keep_ratio",
        "--resize_only_if_bigger", "True",
        "--encode_format", "jpg",
        "--encode_quality", str(QUALITY),
        "--number_sample_per_shard", str(TAR_SAMPLES),
        "--retries", "0",
        "--timeout", "30",
        "--enable_wandb", "False",
    ]  # fmt: skip
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled", "NO_PROXY": "127.0.0.1"}
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(var, None)
    result = timed(cmd, env, work, None, work / "img2dataset.log")
    stats = [json.loads(p.read_text()) for p in out.glob("*_stats.json")]
    result["successes"] = count_tar_images(out)
    result["stats_successes"] = sum(s.get("successes", 0) for s in stats)
    starts = [s["start_time"] for s in stats if "start_time" in s]
    ends = [s["end_time"] for s in stats if "end_time" in s]
    if starts and ends and max(ends) > min(starts):
        # shards run in parallel: first shard start to last shard end is the steady phase
        result["steady_images_per_s"] = round(result["stats_successes"] / (max(ends) - min(starts)), 1)
    return result


def summarize(runs: list[dict]) -> list[dict]:
    rows = []
    for corpus in dict.fromkeys(r["corpus"] for r in runs):
        per_tool = {}
        tools = sorted(
            {r["tool"] for r in runs if r["corpus"] == corpus}, key=lambda t: (t != "img2dataset", t)
        )
        for tool in tools:
            mine = [r for r in runs if r["corpus"] == corpus and r["tool"] == tool]
            if not mine:
                continue
            seconds = sum(r["seconds"] for r in mine)
            images = sum(r["successes"] for r in mine)
            steady = [r["steady_images_per_s"] for r in mine if r.get("steady_images_per_s")]
            per_tool[tool] = {
                "corpus": corpus,
                "tool": tool,
                "runs": len(mine),
                "successes": sorted({r["successes"] for r in mine}),
                "images_per_s": round(images / seconds, 1) if seconds else 0.0,
                "steady_images_per_s": round(sum(steady) / len(steady), 1) if steady else None,
                "cpu_ms_per_image": round(1000 * sum(r["cpu_seconds"] for r in mine) / max(1, images), 1),
                "load": ", ".join(f"{r['load_before'][0]:.1f}->{r['load_after'][0]:.1f}" for r in mine),
            }
        base = per_tool.get("img2dataset")
        for ours in [v for k, v in per_tool.items() if k != "img2dataset" and base]:
            ours["ratio"] = round(ours["images_per_s"] / max(0.01, base["images_per_s"]), 2)
            if ours["steady_images_per_s"] and base["steady_images_per_s"]:
                ours["steady_ratio"] = round(ours["steady_images_per_s"] / base["steady_images_per_s"], 2)
            ours["same_successes"] = ours["successes"] == base["successes"]
        rows.extend(per_tool.values())
    return rows


def markdown(rows: list[dict], runs: list[dict], ceilings: dict, corpus_info: dict) -> str:
    out = io.StringIO()
    out.write(
        "| corpus | tool | runs | ok images | images/s (command) | images/s (steady) | CPU ms/image"
        " | load 1-min | redcaps/img2dataset (command / steady) |\n"
    )
    out.write("|---|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        ratio = ""
        if "ratio" in r:
            ratio = f"**{r['ratio']}x** / {r.get('steady_ratio', '-')}x"
            if not r["same_successes"]:
                ratio += " (success counts differ!)"
        out.write(
            f"| {r['corpus']} | {r['tool']} | {r['runs']} | {'/'.join(map(str, r['successes']))} | "
            f"{r['images_per_s']} | {r['steady_images_per_s'] or '-'} | {r['cpu_ms_per_image']} | "
            f"{r['load']} | {ratio} |\n"
        )
    out.write("\nEvery run, in the order run (load = 1-minute load average before -> after):\n\n")
    out.write("| corpus | round | tool | seconds | ok images | images/s | steady | CPU s | load |\n")
    out.write("|---|---|---|---|---|---|---|---|---|\n")
    for r in runs:
        out.write(
            f"| {r['corpus']} | {r['round']} | {r['tool']} | {r['seconds']} | {r['successes']} | "
            f"{r['successes'] / r['seconds']:.1f} | {r.get('steady_images_per_s') or '-'} | "
            f"{r['cpu_seconds']} | {r['load_before'][0]:.1f}->{r['load_after'][0]:.1f} |\n"
        )
    out.write("\nServer ceiling (fetch only, 2 client processes x 4 threads, no decoding):\n\n")
    for corpus, c in ceilings.items():
        info = corpus_info[corpus]
        out.write(
            f"- {corpus} ({info['unique_images']} unique, mean {info['mean_kb']} KB, {info['mean_mp']} MP): "
            f"{c['keep_alive']['requests_per_s']} req/s ({c['keep_alive']['mb_per_s']} MB/s) keep-alive, "
            f"{c['close']['requests_per_s']} req/s new connection per request\n"
        )
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description="redcaps vs img2dataset download benchmark")
    parser.add_argument("--urls", type=int, default=2000, help="URLs per corpus")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each tool per corpus (alternating)")
    parser.add_argument("--corpora", default="phone,mixed")
    parser.add_argument(
        "--tools",
        default="img2dataset,redcaps",
        help=f"order within a round, of img2dataset, {', '.join(VARIANTS)}; redcaps@<git rev> also times"
        " an earlier engine (before/after)",
    )
    parser.add_argument(
        "--workers", type=int, default=16, help="redcaps download threads ([downloads] workers)"
    )
    parser.add_argument("--i2d-processes", type=int, default=2)
    parser.add_argument("--i2d-threads", type=int, default=16)
    parser.add_argument("--keep", action="store_true", help="keep the downloaded outputs")
    parser.add_argument("--report", metavar="JSON", help="only print the tables of an earlier run's raw JSON")
    args = parser.parse_args()
    if args.report:
        raw = json.loads(Path(args.report).read_text())
        print(markdown(summarize(raw["runs"]), raw["runs"], raw["ceilings"], raw["corpora"]))
        return
    names = args.corpora.split(",")
    tools = args.tools.split(",")
    if "img2dataset" in tools:
        ensure_venv()
    corpus_info = {name: corpora.describe(corpora.build(name, UNIQUE[name])) for name in names}
    server, port = start_server([f"{n}:{UNIQUE[n]}" for n in names])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs: list[dict] = []
    ceilings: dict = {}
    try:
        for name in names:
            paths = [u.split(str(port), 1)[1] for u in url_list(name, min(args.urls, 1000), port)]
            ceilings[name] = {
                "keep_alive": imgserver.measure_ceiling(port, paths, keep_alive=True),
                "close": imgserver.measure_ceiling(port, paths, keep_alive=False),
            }
            print(name, corpus_info[name], ceilings[name], flush=True)
        for name in names:
            csv_path, ann_path = write_inputs(OUT / "inputs" / name, url_list(name, args.urls, port))
            for round_ in range(args.rounds):
                for tool in tools:
                    work = OUT / "runs" / f"{stamp}-{name}-{round_}-{tool}"
                    work.mkdir(parents=True)
                    if tool.startswith("redcaps@"):
                        result = run_redcaps(
                            ann_path, work, args.workers, source_tree(tool.partition("@")[2])
                        )
                    elif tool in VARIANTS:
                        result = run_redcaps(ann_path, work, args.workers, settings=VARIANTS[tool])
                    else:
                        result = run_img2dataset(csv_path, work, args.i2d_processes, args.i2d_threads)
                    result.update(corpus=name, tool=tool, round=round_, urls=args.urls)
                    runs.append(result)
                    print(json.dumps(result), flush=True)
                    if not args.keep:
                        subprocess.run(
                            ["rm", "-rf", str(work / "redcaps" / "images"), str(work / "img2dataset")]
                        )
    finally:
        server.kill()
        server.wait()
    rows = summarize(runs)
    table = markdown(rows, runs, ceilings, corpus_info)
    result_path = OUT / f"bench_download-{stamp}.json"
    result_path.write_text(
        json.dumps(
            {"args": vars(args), "cpus": os.cpu_count(), "corpora": corpus_info, "ceilings": ceilings,
             "runs": runs, "summary": rows},
            indent=1,
        )
    )  # fmt: skip
    print()
    print(table)
    print(f"raw results: {result_path}")


if __name__ == "__main__":
    main()
