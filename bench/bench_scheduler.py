"""Luigi scheduling at RedCaps scale: the official batch, chunked versus one graph.

Every task of the real graph runs (FetchMonth, MergeYear, DownloadImages, FilterWords,
Publish, Validate, Tarify, RedCapsYear, RedCapsBatch), but collection uses a source that
returns no posts, so no network is touched and each stage does its real work on empty files:
what is measured is Luigi's scheduling and bookkeeping, not downloads or models. The image
filters are off (``[filters] enabled = words``): they add no tasks, only per-image work.

    python bench/bench_scheduler.py                       # everything below
    python bench/bench_scheduler.py --scenario one-graph --years 10,40,80
    python bench/bench_scheduler.py --scenario stock --years 200   # Luigi's own local scheduler
    python bench/bench_scheduler.py --scenario full       # full batch: fresh, then no-op reruns
    python bench/bench_scheduler.py --scenario schedule-only  # the full batch as one graph, not run

``stock`` runs the chunked batch with Luigi's unmodified local scheduler, which prunes its
whole graph on every ``get_work`` (pipeline/local_scheduler.py explains the fix).

Each measurement runs in its own process (wall time, tasks run, peak RSS) and prints a
markdown table; raw JSON goes to bench/out/scheduler.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OFFICIAL = REPO / "configs" / "redcaps-v1.yaml"


class NoPosts:
    """A post source with nothing in it: collection runs its real code on an empty month."""

    name = "bench-no-posts"

    def iter_posts(self, subreddit: str, start: int, end: int) -> Iterator[dict[str, Any]]:
        return iter(())


def configure(data_dir: Path) -> None:
    import luigi

    import tasks.collect

    tasks.collect.build_source = lambda *args, **kwargs: NoPosts()  # the only stand-in
    config = luigi.configuration.get_config()
    for section, values in {
        "core": {"autoload_range": "false"},
        "redcaps": {"data_dir": str(data_dir)},
        "filters": {"enabled": "words"},
        "collection": {"credentials": str(data_dir / "no-credentials.json")},
    }.items():
        if not config.has_section(section):
            config.add_section(section)
        for key, value in values.items():
            config.set(section, key, value)


def run_once(kind: str, years: int, chunk_size: int, data_dir: Path, batch_config: Path) -> dict[str, Any]:
    """One measurement in this process: build the graph, run it, report."""
    import luigi
    import luigi.interface
    import luigi.scheduler
    import luigi.worker

    configure(data_dir)
    from pipeline import RedCapsBatch, RedCapsYear
    from redcaps.batch import load_batch

    if kind == "stock":  # Luigi's own local scheduler: prunes everything on every get_work
        luigi.interface._WorkerSchedulerFactory.create_local_scheduler = lambda self: (
            luigi.scheduler.Scheduler(prune_on_get_work=True, record_task_history=False)
        )

    done: list[str] = []

    @luigi.Task.event_handler(luigi.Event.SUCCESS)
    def _count(task: luigi.Task) -> None:
        done.append(task.task_id)

    data_dir.mkdir(parents=True, exist_ok=True)
    runs = load_batch(batch_config).runs[:years] if years else load_batch(batch_config).runs
    if kind in ("one-graph", "schedule-only"):
        every_year = [RedCapsYear(subreddit=r.subreddit, year=r.year, first_year=r.first_year) for r in runs]

        class OneGraph(luigi.WrapperTask):
            def requires(self) -> list[luigi.Task]:
                return every_year

        root: luigi.Task = OneGraph()
    else:
        subset = data_dir / "batch.yaml"
        if years:
            lines = [f"name: bench{years}", "runs:"]
            for r in runs:
                first = f", first_year: {r.first_year}" if r.first_year else ""
                lines.append(f"  - {{subreddit: {r.subreddit}, years: [{r.year}]{first}}}")
            subset.write_text("\n".join(lines) + "\n")
        else:
            shutil.copy(batch_config, subset)
        root = RedCapsBatch(config=str(subset), chunk_size=chunk_size)

    start = time.perf_counter()
    if kind == "schedule-only":  # build and schedule the whole graph at once, run nothing
        scheduler = luigi.interface._WorkerSchedulerFactory().create_local_scheduler()
        with luigi.worker.Worker(scheduler=scheduler, worker_processes=1) as worker:
            worker.add(root)
        wall = time.perf_counter() - start
        done.extend(t.id for t in scheduler._state.get_active_tasks())  # counted, not run
    else:
        result = luigi.build([root], local_scheduler=True, detailed_summary=True, log_level="ERROR")
        wall = time.perf_counter() - start
        if result.status not in (luigi.LuigiStatusCode.SUCCESS, luigi.LuigiStatusCode.SUCCESS_WITH_RETRY):
            raise SystemExit(f"bench run failed: {result.summary_text[-2000:]}")
    months = sum(12 * (r.year - (r.first_year or r.year) + 1) for r in runs)
    return {
        "kind": kind,
        "years": len(runs),
        "months": months,
        "chunk_size": chunk_size if kind in ("chunked", "stock") else None,
        "tasks_run": len(done),
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def measure(kind: str, years: int, chunk_size: int, data_dir: Path, batch_config: Path) -> dict[str, Any]:
    """Run one measurement in a fresh process, so peak RSS is its own."""
    cmd = [sys.executable, __file__, "--_once", kind, "--years", str(years), "--chunk-size", str(chunk_size)]
    cmd += ["--data-dir", str(data_dir), "--config", str(batch_config)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result), flush=True)
    return result


def table(rows: list[dict[str, Any]]) -> str:
    head = "| run | years | months | tasks run | wall s | tasks/s | peak RSS MB | load |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = r["label"]
        rate = r["tasks_run"] / r["wall_s"] if r["wall_s"] else 0
        lines.append(
            f"| {name} | {r['years']} | {r['months']} | {r['tasks_run']} | {r['wall_s']} | {rate:.0f} "
            f"| {r['peak_rss_mb']} | {r['load_avg_1m']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenario", choices=["all", "one-graph", "stock", "full", "schedule-only"], default="all"
    )
    parser.add_argument("--years", default="10,20,40", help="subset sizes for the chunked vs one-graph runs")
    parser.add_argument("--chunk-size", type=int, default=10)
    parser.add_argument("--config", type=Path, default=OFFICIAL)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument(
        "--_once", choices=["one-graph", "chunked", "stock", "schedule-only"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()

    if args._once:
        print(json.dumps(run_once(args._once, int(args.years), args.chunk_size, args.data_dir, args.config)))
        return

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp:
        if args.scenario in ("all", "one-graph"):
            for years in (int(y) for y in args.years.split(",")):
                for kind in ("one-graph", "chunked"):
                    data = Path(tmp) / f"{kind}-{years}"
                    row = measure(kind, years, args.chunk_size, data, args.config)
                    rows.append({**row, "label": f"fresh, {kind}"})
                    shutil.rmtree(data)
        if args.scenario in ("all", "stock"):
            for years in (int(y) for y in args.years.split(",")):
                for kind, label in (
                    ("stock", "fresh, chunked, stock local scheduler"),
                    ("chunked", "fresh, chunked"),
                ):
                    data = Path(tmp) / f"{kind}-{years}"
                    rows.append({**measure(kind, years, args.chunk_size, data, args.config), "label": label})
                    shutil.rmtree(data)
        if args.scenario in ("all", "schedule-only"):
            data = Path(tmp) / "schedule-only"
            row = measure("schedule-only", 0, args.chunk_size, data, args.config)
            rows.append({**row, "label": "one graph, scheduled only (tasks scheduled, none run)"})
        if args.scenario in ("all", "full"):
            data = Path(tmp) / "full"
            fresh = measure("chunked", 0, args.chunk_size, data, args.config)
            rows.append({**fresh, "label": "fresh, chunked"})
            rerun = measure("chunked", 0, args.chunk_size, data, args.config)
            rows.append({**rerun, "label": "no-op rerun (batch summary present)"})
            for summary in (data / "stages" / "batch").glob("*.json"):
                summary.unlink()  # now every chunk must be checked again
            rerun = measure("chunked", 0, args.chunk_size, data, args.config)
            rows.append({**rerun, "label": "no-op rerun (every year re-checked)"})
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scheduler.json").write_text(json.dumps(rows, indent=1))
    print(f"\nmachine: {os.cpu_count()} cores; config {args.config.name}; chunk size {args.chunk_size}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
