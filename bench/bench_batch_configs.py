"""Hostile batch configs: time and peak RSS of ``load_batch`` refusing each one.

Each config is loaded in a fresh process, which reports its own wall time for the call and
its peak RSS (``ru_maxrss``) afterwards; the first row, a valid one-line config, is the
interpreter's baseline.

    python bench/bench_batch_configs.py

Prints a markdown table.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time
from redcaps.batch import load_batch
from redcaps.errors import RedCapsError
start = time.perf_counter()
try:
    load_batch(sys.argv[1])
    message = "ok"
except RedCapsError as exc:
    message = str(exc)
seconds = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "rss_mib": rss, "message": message}))
"""


def billion_laughs() -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        text += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    return text + "subreddits: *i\nyears: 2020\n"


#: Built one at a time: Linux keeps a process's peak RSS across exec, so the parent stays small.
CASES: dict[str, Callable[[], bytes] | None] = {
    "valid (baseline)": lambda: b"subreddits: [cats]\nyears: 2020\n",
    "billion laughs": lambda: billion_laughs().encode(),
    "years: 2005-200000000": lambda: b"subreddits: [cats]\nyears: 2005-200000000\n",
    "flow nesting 100,000 deep": lambda: b"runs: " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "1 MiB of '['": lambda: b"[" * (1 << 20),
    "invalid UTF-8": lambda: b"subreddits: [caf\xe9]\nyears: 2020\n",
    "5,000-digit year": lambda: b"subreddits: [cats]\nyears: " + b"9" * 5000 + b"\n",
    "50 MB file": None,  # written in chunks below
}


def main() -> None:
    print("| config | bytes | seconds | peak RSS MiB | message |")
    print("|---|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in CASES.items():
            path = Path(tmp) / "c.yaml"
            with path.open("wb") as fh:
                if make:
                    fh.write(make())
                else:
                    fh.writelines(b"#" * 1_000_000 for _ in range(50))
            size = path.stat().st_size
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(path)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
                env={"PYTHONPATH": str(ROOT)},
            )
            r = json.loads(out.stdout)
            message = r["message"].replace(str(path), "c.yaml")
            row = [name, f"{size:,}", f"{r['seconds']:.4f}", f"{r['rss_mib']:.0f}", f"`{message[:90]}`"]
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
