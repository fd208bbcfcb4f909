"""How fast the adaptive per-host control finds a host's hidden capacity, and how closely it keeps to it.

    .venv/bin/python bench/bench_convergence.py [--capacities 2,10,50,200] [--phase 20] [--after 15]
                                                [--download-imgs 30:600,2:120]

* The sandbox runs in this process with ``i.redd.it`` behind a CDN gate (``redcaps.sandbox.cdn``):
  capacity C requests/s per client IP, a burst of one second's worth, 429 above it (half with
  ``Retry-After: 1``), latency rising to +50 ms as the client's bucket empties.
* Convergence: a client process runs ``Fetcher`` with the product's ``HttpConfig`` defaults (start
  rate 5/s) except a ceiling of 4 C and 32 threads / concurrency 32 so only the controller limits it;
  one attempt per URL, and URLs the host answers with a tiny 404 (healthy to the controller) so
  the loopback's CPU does not bound 200/s. After ``--phase`` seconds the capacity halves.
  From the sandbox's request log: time until a one-second window holds 90% of C in accepted
  requests, accepted share of C and 429 share over the last 10 s before the change, then the time
  until the controller's rate (traced by the client every 0.1 s) is under the new capacity, and
  the accepted and 429 shares of the last 10 s after it.
* download-imgs: ``redcaps download-imgs`` exactly as a user runs it (default ``HttpConfig``:
  i.redd.it starts at 5/s, ceiling 50/s) on N small i.redd.it images against capacity C; accepted
  requests/s over the run against C and the 429 share.

Raw JSON goes to bench/out/convergence.json; a markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
HOST = "i.redd.it"


def client(
    seconds: float, threads: int, ceiling: float, budget_dir: str, host: str = HOST, source: str = ""
) -> None:
    """Hammer ``host`` with ``threads`` threads through the product's Fetcher for ``seconds``
    (from the local address ``source``, when given: the host counts per client IP)."""
    from redcaps.net.config import HttpConfig
    from redcaps.net.fetcher import Fetcher
    from redcaps.net.limits import DEFAULT_HOST_POLICIES, HostPolicy

    start = DEFAULT_HOST_POLICIES["redd.it"]
    policies = dict(DEFAULT_HOST_POLICIES)
    policies["redd.it"] = HostPolicy(rate=start.rate, burst=start.burst, concurrency=threads, ceiling=ceiling)
    fetcher = Fetcher(
        HttpConfig(
            host_policies=policies,
            max_attempts=1,
            pool_size=threads,
            budget_dir=budget_dir,
            source_address=source,
        )
    )
    stop = time.monotonic() + seconds

    def trace() -> None:  # the controller's rate every 0.1 s, for the parent to read
        with open(Path(budget_dir) / "trace.jsonl", "a") as out:
            while time.monotonic() < stop:
                out.write(json.dumps([time.time(), fetcher.limiter.rate(host)]) + "\n")
                out.flush()
                time.sleep(0.1)

    threading.Thread(target=trace, daemon=True).start()

    def work(i: int) -> None:
        n = 0
        while time.monotonic() < stop:
            n += 1
            fetcher.get(f"https://{host}/bench_{i}_{n}.jpg")  # not an image path: a tiny 404

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))


def windows(starts: list[float], t0: float, t1: float, step: float = 0.25, width: float = 1.0):
    """(window start, count) of ``starts`` in each ``width``-second window from t0 to t1."""
    starts = sorted(starts)
    t, out = t0, []
    while t + width <= t1:
        out.append((t, sum(1 for s in starts if t <= s < t + width)))
        t += step
    return out


def convergence(capacity: float, phase: float, after: float, threads: int) -> dict:
    from redcaps.sandbox import CdnProfile, Sandbox

    profile = CdnProfile(capacity=capacity, retry_after_share=0.5, retry_after=1, load_latency=0.05)
    with Sandbox(cdn={HOST: profile}) as box, tempfile.TemporaryDirectory() as budget:
        env = {**os.environ, **box.env(), "PYTHONPATH": str(REPO)}
        args = [
            sys.executable,
            __file__,
            "_client",
            str(phase + after),
            str(threads),
            str(4 * capacity),
            budget,
        ]
        child = subprocess.Popen(args, env=env)
        while not box.log.records() and child.poll() is None:
            time.sleep(0.05)
        t0 = min(r.started for r in box.log.records())
        time.sleep(max(0.0, t0 + phase - time.monotonic()))
        box.cdn.set_capacity(HOST, capacity / 2)
        changed, changed_wall = time.monotonic(), time.time()
        child.wait()
        records = box.log.for_host(HOST)
        trace = [json.loads(line) for line in (Path(budget) / "trace.jsonl").read_text().splitlines()]
    accepted = [r.started for r in records if r.status != 429]
    sent = [r.started for r in records]
    refused = [r.started for r in records if r.status == 429]
    reach = next((t - t0 for t, n in windows(accepted, t0, changed) if n >= 0.9 * capacity), None)
    back = next((t - changed_wall for t, rate in trace if t >= changed_wall and rate <= capacity / 2), None)

    def share(items: list[float], low: float, high: float) -> int:
        return sum(1 for s in items if low <= s < high)

    before = (changed - 10, changed)
    late = (changed + after - 10, changed + after)
    return {
        "capacity": capacity,
        "time_to_90pct_s": reach,
        "steady_share_of_capacity": share(accepted, *before) / (10 * capacity),
        "steady_429_share": share(refused, *before) / max(1, share(sent, *before)),
        "after_halving_back_under_s": back,
        "after_halving_share_of_capacity": share(accepted, *late) / (10 * capacity / 2),
        "after_halving_429_share": share(refused, *late) / max(1, share(sent, *late)),
        "requests": len(records),
        "total_429_share": len(refused) / max(1, len(records)),
    }


def download_imgs(capacity: float, images: int) -> dict:
    from redcaps.sandbox import CdnProfile, Sandbox

    profile = CdnProfile(capacity=capacity, retry_after_share=0.5, retry_after=1, load_latency=0.05)
    with Sandbox(cdn={HOST: profile}) as box, tempfile.TemporaryDirectory() as tmp:
        records = []
        for i in range(images):
            url = f"https://{HOST}/conv{i:05d}x{int(capacity)}.jpg"
            box.world.kinds[url] = "small"  # 200x150: the host's capacity, not CPU, is the bound
            records.append(
                {
                    "image_id": f"c{i:05d}",
                    "author": "bench",
                    "url": url,
                    "raw_caption": "a bench image",
                    "caption": "a bench image",
                    "subreddit": "bench",
                    "score": 1,
                    "created_utc": 1577923200 + i,
                    "permalink": f"/r/bench/comments/c{i:05d}/a/",
                }
            )
        info = {
            "start_date": "2020-01-01",
            "end_date": "2020-12-31",
            "url": "https://redcaps.xyz",
            "version": "1.0",
        }
        annotations = Path(tmp) / "bench_2020.json"
        annotations.write_text(json.dumps({"info": info, "annotations": records}))
        env = {**os.environ, **box.env(), "PYTHONPATH": str(REPO), "XDG_RUNTIME_DIR": tmp}
        command = ["-c", "from redcaps.cli.main import main; main()", "download-imgs", "-a", str(annotations)]
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, *command, "-o", str(Path(tmp) / "images")],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - started
        got = box.log.for_host(HOST)
    first, last = min(r.started for r in got), max(r.started for r in got)
    accepted = sum(r.status != 429 for r in got)
    return {
        "capacity": capacity,
        "images": images,
        "summary": done.stdout.strip().splitlines()[-1],
        "wall_s": wall,
        "accepted_per_s": accepted / (last - first),
        "share_of_capacity": accepted / (last - first) / capacity,
        "requests": len(got),
        "429_share": (len(got) - accepted) / len(got),
    }


def budget_cost(n: int = 20000) -> dict:
    """CPU microseconds per request the limiter adds (one token taken, one answer reported), with
    the state in this process and with it in the machine's shared file under flock."""
    from redcaps.net.budget import MachineBudget, ProcessBudget
    from redcaps.net.limits import HostLimiter, HostPolicy

    costs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, budget in (("process", ProcessBudget()), ("machine", MachineBudget(tmp))):
            limiter = HostLimiter({"*": HostPolicy(rate=1e9, burst=10**9, ceiling=2e9)}, budget=budget)
            started = time.process_time()
            for _ in range(n):
                with limiter.slot("example.org") as ticket:
                    ticket.response(200)
            costs[name] = (time.process_time() - started) / n * 1e6
    return costs


def main() -> None:
    if sys.argv[1:2] == ["_client"]:
        seconds, threads, ceiling, budget, *where = sys.argv[2:]
        client(float(seconds), int(threads), float(ceiling), budget, *where)
        return
    if "--grid" in sys.argv:
        from convergence_grid import main as grid_main

        grid_main(sys.argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--capacities", default="2,10,50,200")
    parser.add_argument("--phase", type=float, default=20.0, help="seconds before the capacity halves")
    parser.add_argument("--after", type=float, default=15.0, help="seconds after it halves")
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--download-imgs", default="30:600,2:120", help="capacity:images,... ('' to skip)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    results = {"load_before": load_before, "convergence": [], "download_imgs": [], "cost_us": budget_cost()}
    print(json.dumps({"limiter_cpu_us_per_request": results["cost_us"]}), flush=True)
    for capacity in [float(c) for c in args.capacities.split(",") if c]:
        row = convergence(capacity, args.phase, args.after, args.threads)
        results["convergence"].append(row)
        print(json.dumps(row), flush=True)
    for item in [x for x in args.download_imgs.split(",") if x]:
        capacity, images = item.split(":")
        row = download_imgs(float(capacity), int(images))
        results["download_imgs"].append(row)
        print(json.dumps(row), flush=True)
    results["load_after"] = os.getloadavg()
    OUT.mkdir(exist_ok=True)
    (OUT / "convergence.json").write_text(json.dumps(results, indent=1))

    def fmt(value: float | None, pattern: str = "{:.1f}") -> str:
        return "never" if value is None else pattern.format(value)

    print(f"\nload average before {load_before}, after {results['load_after']}\n")
    print(
        "| capacity (req/s) | time to 90% (s) | steady share of capacity | steady 429 share "
        "| halved: back under (s) | halved: share of new capacity | halved: 429 share |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results["convergence"]:
        print(
            f"| {r['capacity']:g} | {fmt(r['time_to_90pct_s'])} | {r['steady_share_of_capacity']:.0%} "
            f"| {r['steady_429_share']:.1%} | {fmt(r['after_halving_back_under_s'])} "
            f"| {r['after_halving_share_of_capacity']:.0%} | {r['after_halving_429_share']:.1%} |"
        )
    if results["download_imgs"]:
        print(
            "\n| download-imgs vs capacity (req/s) | images | accepted req/s "
            "| share of capacity | 429 share |"
        )
        print("|---|---|---|---|---|")
        for r in results["download_imgs"]:
            print(
                f"| {r['capacity']:g} | {r['images']} | {r['accepted_per_s']:.1f} "
                f"| {r['share_of_capacity']:.0%} | {r['429_share']:.1%} |"
            )


if __name__ == "__main__":
    main()
