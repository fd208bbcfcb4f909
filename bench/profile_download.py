"""Profile the redcaps download path (the same Luigi command the benchmark times) with py-spy.

    .venv/bin/pip install py-spy     # a profiling tool, not a project dependency
    .venv/bin/python bench/profile_download.py [--corpus phone] [--urls 1000]

Samples every non-idle thread at 200 Hz (``--native`` also attributes time inside C code,
but its unwinding of GIL waits is unreliable), writes the collapsed stacks and a speedscope
file to bench/out/, and prints the functions with the most samples: self time (where the
CPU is spent) and inclusive time of the download path's own steps.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_download as bd  # noqa: E402

#: Steps of the download path whose inclusive share is reported (substring of a frame).
STEPS = {
    "fetch (requests, limiter, retries)": "get (redcaps/net/fetcher.py",
    "process_image (all)": "process_image (redcaps/download/images.py",
    "  decode (ImageFile.load)": "load (PIL/ImageFile.py",
    "  resize": "resize (PIL/Image.py",
    "  encode (save)": "save (PIL/Image.py",
    "  original size (header re-read)": "_original_size (redcaps/download/images.py",
    "sha256": "sha256",
    "write image (atomic, fsync)": "write_bytes (redcaps/atomic.py",
    "journal line": "to_line (redcaps/download/manifest.py",
    "tarify (write_shards)": "write_shards (redcaps/dataset/tarify.py",
    "validate": "(redcaps/validate.py",
}


def top(collapsed: Path, limit: int = 15) -> str:
    own: collections.Counter[str] = collections.Counter()
    steps: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for name, needle in STEPS.items():
            if any(needle in f for f in frames):
                steps[name] += n
    lines = [f"{total} samples (non-idle threads, all processes)", ""]
    lines += ["| step | share of samples |", "|---|---|"]
    lines += [f"| {name} | {100 * steps[name] / total:.1f}% |" for name in STEPS]
    lines += ["", "| self time: function | share |", "|---|---|"]
    lines += [f"| `{f[:100]}` | {100 * n / total:.1f}% |" for f, n in own.most_common(limit)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="phone")
    parser.add_argument("--urls", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--label", default=time.strftime("%Y%m%d-%H%M%S"))
    parser.add_argument("--native", action="store_true", help="also sample C frames (slower, noisier)")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy", path=str(bd.REPO / ".venv" / "bin")) or shutil.which("py-spy")
    if not py_spy:
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
    server, port = bd.start_server([f"{args.corpus}:{bd.UNIQUE[args.corpus]}"])
    try:
        urls = bd.url_list(args.corpus, args.urls, port)
        _, ann_path = bd.write_inputs(bd.OUT / "inputs" / f"profile-{args.corpus}", urls)
        work = bd.OUT / "profile" / f"{args.label}-{args.corpus}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        collapsed = work / "profile.txt"
        original_run = subprocess.run

        def under_py_spy(cmd, **kwargs):  # noqa: ANN001, ANN202 - wraps subprocess.run
            wrapped = [py_spy, "record", "--rate", "200", "--subprocesses", "--format", "raw"]
            wrapped += ["--native"] if args.native else []
            return original_run([*wrapped, "--output", str(collapsed), "--", *cmd], **kwargs)

        bd.subprocess.run = under_py_spy  # type: ignore[assignment]
        try:
            result = bd.run_redcaps(ann_path, work, args.workers)
        finally:
            bd.subprocess.run = original_run  # type: ignore[assignment]
    finally:
        server.kill()
        server.wait()
    print(f"{result['successes']} images in {result['seconds']} s under the profiler ({os.cpu_count()} CPUs)")
    report = top(collapsed)
    (work / "top.md").write_text(report + "\n")
    print(report)
    print(f"\ncollapsed stacks: {collapsed}")


if __name__ == "__main__":
    main()
