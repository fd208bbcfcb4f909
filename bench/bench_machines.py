"""Many machines behind one luigid: aggregate images/s of N workers with distinct client IPs vs one.

    .venv/bin/python bench/bench_machines.py [--workers 3] [--subreddits 6] [--years 2020]
                                             [--capacity i.redd.it=10,imgur.com=5,staticflickr.com=5]

* The sandbox runs in this process with the image hosts behind its CDN gate
  (``redcaps.sandbox.cdn``): a hidden capacity per host and *per client IP*, 429 above it (half
  with ``Retry-After: 1``). The sandbox has two subreddits; ``--subreddits`` adds generated ones
  (``sandboxextra1`` ...) to its population, so that ``--part i/N`` gives every worker some.
* One luigid on loopback (task history in sqlite), then N ``luigi --module pipeline RedCapsBatch
  --part i/N --workers 1 --downloads-source-address 127.0.0.(i+1)`` processes on one shared data dir:
  like N machines, each with its own egress IP and its own per-machine host budget. The proxy sees
  each worker's source address, so the CDN counts each worker separately.
* Then the same batch with one worker (127.0.0.2, a fresh data dir, luigid and budget dir).
* Product defaults throughout (adaptive host control as shipped), except ``[filters] enabled = words``
  so the CPU stays low and the hosts' capacity, not the machine, bounds the run.

Reported per run: wall time, images downloaded (200s from image hosts), images/s over the wall
time and over the download span (first to last image request), the 429 share, each client IP's
peak accepted requests per 1-s window per host against its capacity, and tasks run more than once
(luigid's task history). Raw JSON goes to bench/out/machines.json; a markdown table is printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import suppress
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
IMAGE_HOSTS = {
    "i.redd.it": "i.redd.it",
    "i.imgur.com": "imgur.com",
    "staticflickr.com": "staticflickr.com",
    "static.flickr.com": "staticflickr.com",
}
DEFAULT_CAPACITY = "i.redd.it=10,i.imgur.com=5,*.staticflickr.com=5"
#: Tasks with dynamic dependencies run again from the top once their new dependencies are done.
REENTERED = ("RedCapsBatch", "DownloadImages_")


def add_subreddits(count: int) -> list[str]:
    """Make the sandbox's population hold ``count`` subreddits (call before any Sandbox is built)."""
    from redcaps.sandbox import posts

    for i in range(1, count - len(posts.SUBREDDITS) + 1):
        posts.SUBREDDITS.setdefault(f"sandboxextra{i}", f"sandboxextra{i}")
    posts._world.cache_clear()
    return list(posts.SUBREDDITS)[:count]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(OSError):
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        time.sleep(0.1)
    raise RuntimeError(f"luigid did not listen on {port}")


def write_cfg(path: Path, data_dir: Path, history: Path, processes: int) -> Path:
    sections = {
        "core": {"autoload_range": "false"},
        "redcaps": {"data_dir": str(data_dir)},
        "filters": {"enabled": "words"},
        "dedup": {"mode": "off"},
        "downloads": {"processes": str(processes)},
        "worker": {"keep_alive": "true", "max_reschedules": "1"},
        "scheduler": {"record_task_history": "true", "retry_delay": "1"},
        "task_history": {"db_connection": f"sqlite:///{history}"},
    }
    path.write_text(
        "".join(f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in kv.items()) for s, kv in sections.items())
    )
    return path


def stop(proc: subprocess.Popen) -> None:
    """SIGKILL a process this bench started (its own session) and whatever it forked."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def task_runs(history: Path) -> dict[str, int]:
    """How often luigid saw each task start RUNNING."""
    with sqlite3.connect(history) as db:
        rows = db.execute(
            "SELECT t.task_id, COUNT(*) FROM task_events e JOIN tasks t ON e.task_id = t.id "
            "WHERE e.event_name = 'RUNNING' GROUP BY t.task_id"
        ).fetchall()
    return dict(rows)


def timeline(history: Path, subreddits: list[str], since: float) -> list[list]:
    """[seconds from ``since`` at start, at end, task family, subreddit] of every task run, in order."""
    with sqlite3.connect(history) as db:
        rows = db.execute(
            "SELECT e.task_id, t.name, e.event_name, e.ts,"
            " (SELECT group_concat(p.value, ' ') FROM task_parameters p WHERE p.task_id = t.id)"
            " FROM task_events e JOIN tasks t ON e.task_id = t.id"
            " WHERE e.event_name IN ('RUNNING', 'DONE', 'FAILED') ORDER BY e.ts, e.id"
        ).fetchall()
    runs, started = [], {}
    for task, name, event, ts, params in rows:
        if event == "RUNNING":
            started[task] = _epoch(ts)
        elif task in started:
            who = next((s for s in subreddits if f"{s}_" in (params or "") or f"{s} " in f"{params} "), "")
            runs.append([round(started.pop(task) - since, 1), round(_epoch(ts) - since, 1), name, who])
    return sorted(runs)


def rate_by_shards_running(runs: list[list], image_starts: list[float]) -> dict[int, float]:
    """Images/s while exactly k download shards ran at once, for each k (times from the run's start):
    what the image hosts delivered with k client IPs busy, collection and start-up left out."""
    edges = sorted({t for start, end, name, _ in runs if name == "DownloadImageShard" for t in (start, end)})
    seconds: dict[int, float] = defaultdict(float)
    images: dict[int, int] = defaultdict(int)
    for low, high in itertools.pairwise(edges):
        k = sum(1 for s, e, name, _ in runs if name == "DownloadImageShard" and s <= low and e >= high)
        if k:
            seconds[k] += high - low
            images[k] += sum(1 for t in image_starts if low <= t < high)
    return {k: round(images[k] / seconds[k], 2) for k in sorted(seconds) if seconds[k] >= 2}


def family_seconds(runs: list[list]) -> dict[str, float]:
    """Seconds spent running tasks (a :func:`timeline`), summed per task family, largest first."""
    totals: dict[str, float] = defaultdict(float)
    for start, end, name, _ in runs:
        totals[name] += end - start
    return {name: round(secs, 1) for name, secs in sorted(totals.items(), key=lambda kv: -kv[1])}


def _epoch(ts: str) -> float:
    from datetime import datetime, timezone

    return datetime.fromisoformat(ts).replace(tzinfo=timezone.utc).timestamp()


def cpu_seconds() -> float:
    """CPU of this process (the sandbox's threads) and of every child reaped so far."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def host_of(host: str) -> str | None:
    for suffix, name in IMAGE_HOSTS.items():
        if host == suffix or host.endswith("." + suffix):
            return name
    return None


def peak_rates(records, window: float = 1.0) -> dict[tuple[str, str], int]:
    """(host, client IP) -> most accepted (non-429) requests started in any ``window``-second span."""
    starts: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in records:
        if r.status != 429:
            starts[(host_of(r.host), r.client.rsplit(":", 1)[0])].append(r.started)
    peaks = {}
    for key, times in starts.items():
        times.sort()
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while times[lo] <= t - window:
                lo += 1
            best = max(best, hi - lo + 1)
        peaks[key] = best
    return peaks


def run(
    box, batch: Path, workers: int, work: Path, subreddits: list[str], processes: int, timeout: float = 1800
) -> dict:
    """One luigid and ``workers`` RedCapsBatch parts (client IPs 127.0.0.2 ...) on one data dir."""
    work.mkdir(parents=True, exist_ok=True)
    port, history = free_port(), work / "history.db"
    cfg = write_cfg(work / "luigi.cfg", work / "data", history, processes)
    runtime = work / "runtime"  # the machine budgets: fresh for each run
    runtime.mkdir()
    env = {
        **os.environ,
        **box.env(),
        "LUIGI_CONFIG_PATH": str(cfg),
        "XDG_RUNTIME_DIR": str(runtime),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    quiet = {"stdout": subprocess.DEVNULL, "start_new_session": True, "cwd": work, "env": env}
    luigid = subprocess.Popen(
        ["luigid", "--address", "127.0.0.1", "--port", str(port), "--logdir", str(work)],
        stderr=subprocess.DEVNULL,
        **quiet,
    )
    procs: list[subprocess.Popen] = []
    try:
        wait_for_port(port)
        box.reset_log()
        load_before = os.getloadavg()
        cpu_before = cpu_seconds()
        started, clock = time.time(), time.monotonic()  # the sandbox logs monotonic times
        common = ["--scheduler-host", "127.0.0.1", "--scheduler-port", str(port), "--workers", "1"]
        for i in range(1, workers + 1):
            args = [sys.executable, "-m", "luigi", "--module", "pipeline", "RedCapsBatch"]
            args += ["--config", str(batch), "--part", f"{i}/{workers}", *common]
            args += ["--downloads-source-address", f"127.0.0.{i + 1}"]
            log = open(work / f"worker{i}.log", "w")  # noqa: SIM115 - closed with the process
            procs.append(subprocess.Popen(args, stderr=log, **quiet))
        codes = [p.wait(timeout=timeout) for p in procs]
        wall = time.time() - started
        load_after = os.getloadavg()
    finally:
        for proc in [*procs, luigid]:
            stop(proc)
    cpu = cpu_seconds() - cpu_before
    for i, code in enumerate(codes, 1):
        if code != 0:
            tail = (work / f"worker{i}.log").read_text()[-3000:]
            raise RuntimeError(f"worker {i} exited {code}:\n{tail}")
    images = [r for r in box.log.records() if host_of(r.host)]
    ok = [r for r in images if r.status == 200]
    span = max(r.finished for r in images) - min(r.started for r in images) if images else 0.0
    runs = task_runs(history)
    twice = {t: n for t, n in runs.items() if n > 1 and not t.startswith(REENTERED)}
    return {
        "workers": workers,
        "wall_s": round(wall, 1),
        "images_ok": len(ok),
        "image_requests": len(images),
        "images_per_s": round(len(ok) / wall, 2),
        "download_span_s": round(span, 1),
        "images_per_s_download_span": round(len(ok) / span, 2) if span else 0.0,
        "share_429": round(sum(r.status == 429 for r in images) / max(1, len(images)), 4),
        "requests_by_client": dict(Counter(r.client.rsplit(":", 1)[0] for r in images)),
        "peak_per_s": {f"{h} {ip}": n for (h, ip), n in sorted(peak_rates(images).items())},
        "tasks": len(runs),
        "download_shards": sum(t.startswith("DownloadImageShard") for t in runs),
        "ran_twice": twice,
        "cpu_s": round(cpu, 1),
        "cores_busy": round(cpu / wall, 2),
        "timeline": (runs_in_order := timeline(history, subreddits, started)),
        "task_seconds": family_seconds(runs_in_order),
        "images_per_s_by_shards_running": rate_by_shards_running(
            runs_in_order, [r.started - clock for r in ok]
        ),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
    }


def parse_capacity(text: str):
    from redcaps.sandbox import CdnProfile

    profiles = {}
    for item in text.split(","):
        host, _, value = item.partition("=")
        profiles[host.strip()] = CdnProfile(capacity=float(value), retry_after_share=0.5, retry_after=1)
    return profiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--subreddits", type=int, default=6)
    parser.add_argument("--years", default="2020")
    parser.add_argument("--capacity", default=DEFAULT_CAPACITY, help="host=requests/s per client IP,...")
    parser.add_argument("--skip-single", action="store_true", help="only the N-worker run")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="[downloads] processes per worker: 1, as the N stand-in machines share this machine's cores",
    )
    args = parser.parse_args()

    subreddits = add_subreddits(args.subreddits)
    from redcaps.sandbox import Sandbox

    results = []
    with Sandbox(cdn=parse_capacity(args.capacity)) as box, tempfile.TemporaryDirectory() as tmp:
        batch = Path(tmp) / "machines.yaml"
        batch.write_text(f"name: machines\nsubreddits: [{', '.join(subreddits)}]\nyears: [{args.years}]\n")
        for n in [args.workers] if args.skip_single else [args.workers, 1]:
            print(f"running {n} worker(s) ...", file=sys.stderr, flush=True)
            results.append(run(box, batch, n, Path(tmp) / f"run{n}", subreddits, args.processes))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    OUT.mkdir(exist_ok=True)
    report = {
        "processes": args.processes,
        "capacity": args.capacity,
        "subreddits": subreddits,
        "years": args.years,
        "runs": results,
    }
    (OUT / "machines.json").write_text(json.dumps(report, indent=2))

    print("| workers | wall (s) | images | images/s | download span (s) | images/s in span | 429 share |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['workers']} | {r['wall_s']} | {r['images_ok']} | {r['images_per_s']} | "
            f"{r['download_span_s']} | {r['images_per_s_download_span']} | {100 * r['share_429']:.1f}% |"
        )
    if len(results) == 2:
        many, one = results
        print(
            f"\nspeed-up: {many['images_per_s'] / one['images_per_s']:.2f}x over wall time, "
            f"{many['images_per_s_download_span'] / one['images_per_s_download_span']:.2f}x "
            "over the download span"
        )
    for r in results:
        print(
            f"{r['workers']} worker(s): peaks/s {r['peak_per_s']}; ran twice: {r['ran_twice'] or 'none'}; "
            f"load {r['load_before']} -> {r['load_after']}; CPU {r['cpu_s']} s = {r['cores_busy']} cores busy"
        )
        print(f"  task seconds by family: {r['task_seconds']}")
        print(f"  images/s while k download shards ran: {r['images_per_s_by_shards_running']}")


if __name__ == "__main__":
    main()
