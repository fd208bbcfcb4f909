"""The convergence grid: the product's controller against hosts it was not tuned on.

    .venv/bin/python bench/bench_convergence.py --grid [--seconds 60] [--parallel-rate 250]

Every cell is one sandbox host (``gNN.i.redd.it``, in the ``redd.it`` politeness group) with its
own :class:`~redcaps.sandbox.CdnProfile`: capacity {2, 10, 30, 100}/s x bucket {1, 5, 50} x
signal {429 with ``Retry-After: 1``, 429 without, 503}, each with a token bucket of each size
and with a sliding window (C per rolling second). A client process per cell runs the product's
``Fetcher`` from its own loopback address (127.0.0.x: the host counts per client IP) with the
default i.redd.it policy (start 5/s,
burst 10) except a ceiling of 4 C and 16 threads / concurrency 16, so only the controller limits
it. Cells run in parallel, in batches whose capacities add up to at most ``--parallel-rate``
(the sandbox and clients share the machine's CPU). Per cell, from the sandbox's request log:
accepted share of C and push-back share over the last 30 s (or the second half of a shorter
run), and the time until a one-second window holds 90% of C.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
CAPACITIES = (2, 10, 30, 100)
BUCKETS = (1, 5, 50)
SIGNALS = {"429+RA1": ("429", 1), "429": ("429", None), "503": ("503", None)}
PUSH_BACKS = (429, 503, 0)  # 0: a reset connection


def cells() -> list[dict]:
    """The grid; a sliding window has no bucket, so its cells are capacity x signal only."""
    grid = itertools.product(CAPACITIES, (*BUCKETS, None), SIGNALS)
    return [
        {"id": i, "capacity": c, "bucket": b, "signal": s, "counter": "bucket" if b else "window"}
        for i, (c, b, s) in enumerate(grid)
    ]


def profile(cell: dict):
    from redcaps.sandbox import CdnProfile

    over, retry_after = SIGNALS[cell["signal"]]
    capacity, bucket = cell["capacity"], cell["bucket"]
    if bucket is None:  # C per rolling second
        return CdnProfile(
            capacity=capacity, window=1.0, over=over, retry_after=retry_after, retry_after_share=1.0
        )
    return CdnProfile(
        capacity=capacity, burst=bucket, over=over, retry_after=retry_after, retry_after_share=1.0
    )


def host(cell: dict) -> str:
    return f"g{cell['id']:02d}.i.redd.it"


def batches(todo: list[dict], budget: float) -> list[list[dict]]:
    """Cells grouped so each group's capacities add up to at most ``budget`` (one cell at least)."""
    groups: list[list[dict]] = []
    for cell in sorted(todo, key=lambda c: -c["capacity"]):
        for group in groups:
            if sum(c["capacity"] for c in group) + cell["capacity"] <= budget:
                group.append(cell)
                break
        else:
            groups.append([cell])
    return groups


def run_batch(box, group: list[dict], seconds: float, threads: int) -> None:
    env = {**os.environ, **box.env(), "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as budgets:
        children = []
        for cell in group:
            budget = Path(budgets) / str(cell["id"])
            budget.mkdir()
            source = f"127.0.0.{cell['id'] + 2}"
            args = [str(seconds), str(threads), str(4 * cell["capacity"]), str(budget), host(cell), source]
            children.append(
                subprocess.Popen(
                    [sys.executable, str(BENCH / "bench_convergence.py"), "_client", *args], env=env
                )
            )
        for child in children:
            child.wait()


def measure(records, cell: dict, seconds: float) -> dict:
    """Steady share of capacity and push-back share over the last 30 s (at most half the run),
    and the time until a one-second window first holds 90% of capacity."""
    mine = sorted((r for r in records if r.host == host(cell)), key=lambda r: r.started)
    if not mine:
        return {**cell, "error": "no requests"}
    t0, capacity = mine[0].started, cell["capacity"]
    steady = min(30.0, seconds / 2)
    late = [r for r in mine if r.started >= t0 + seconds - steady and r.started < t0 + seconds]
    accepted = [r.started for r in mine if r.status not in PUSH_BACKS]
    reach, low = None, 0
    for high, start in enumerate(accepted):
        while start - accepted[low] >= 1.0:
            low += 1
        if high - low + 1 >= 0.9 * capacity:
            reach = start - t0
            break
    pushed = sum(r.status in PUSH_BACKS for r in late)
    return {
        **cell,
        "steady_share": (len(late) - pushed) / (steady * capacity),
        "steady_push_back_share": pushed / max(1, len(late)),
        "time_to_90pct_s": reach,
        "requests": len(mine),
        "total_push_back_share": sum(r.status in PUSH_BACKS for r in mine) / len(mine),
    }


def verdict(row: dict) -> str:
    limit = 0.05 if row["capacity"] <= 2 else 0.02
    misses = []
    if row["steady_share"] < 0.85:
        misses.append("share")
    if row["steady_push_back_share"] > limit:
        misses.append("push-backs")
    if row["time_to_90pct_s"] is None or row["time_to_90pct_s"] > 15:
        misses.append("time")
    return "met" if not misses else "missed: " + ", ".join(misses)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", action="store_true")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--parallel-rate", type=float, default=250.0, help="req/s of capacity run at once")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--capacities", default=",".join(map(str, CAPACITIES)))
    args = parser.parse_args(argv)
    from redcaps.sandbox import Sandbox

    wanted = {float(c) for c in args.capacities.split(",")}
    todo = [cell for cell in cells() if cell["capacity"] in wanted]
    load_before = os.getloadavg()
    rows = []
    with Sandbox(cdn={host(cell): profile(cell) for cell in todo}) as box:
        for group in batches(todo, args.parallel_rate):
            box.reset_log()
            run_batch(box, group, args.seconds, args.threads)
            records = box.log.records()
            for cell in group:
                rows.append(measure(records, cell, args.seconds))
                print(json.dumps(rows[-1]), flush=True)
    results = {
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "seconds": args.seconds,
        "cells": rows,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "convergence_grid.json").write_text(json.dumps(results, indent=1))
    print(f"\nload average before {load_before}, after {results['load_after']}\n")
    print("| capacity | bucket | signal | counter | steady share | push-backs | time to 90% (s) | target |")
    print("|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: r["id"]):
        reach = "never" if r.get("time_to_90pct_s") is None else f"{r['time_to_90pct_s']:.1f}"
        print(
            f"| {r['capacity']} | {r['bucket'] or '-'} | {r['signal']} | {r['counter']} "
            f"| {r['steady_share']:.0%} | {r['steady_push_back_share']:.1%} | {reach} | {verdict(r)} |"
        )
