"""Peak memory of ``redcaps download-imgs -j 16`` on images that are small to send and huge to decode.

    python bench/bench_memory.py [--corpora png16,rgb8] [--cpus 0,16] [--before REV]

* ``png16``: sixteen 9400x9400 RGBA 16-bit PNGs of ~687 KB each (zeros, deflated; each has its
  own tEXt chunk so no two bodies are equal), 707 MB of raster each.
* ``rgb8``: sixteen 7000x7000 RGB 8-bit PNGs (~150 KB each, 196 MB of raster each): under
  the per-image limit, so only the process-wide decode budget bounds their sum.
* The images are served from loopback (127.0.0.1-127.0.0.16, one address per image so host
  politeness limits do not serialise the fetches) by ``bench/imgserver.py``'s handler.
* Each run is a fresh ``redcaps download-imgs -j 16`` child; its peak RSS comes from
  ``wait4``. ``--cpus N`` makes the child believe it has N cores (``os.cpu_count``), which
  sets how many images it decodes at once, to show a bigger machine on this one (0 = real).
* ``--before REV`` also runs the engine at REV (``git archive``), by default with the real
  core count only. A child whose RSS passes ``--kill-above-mb`` (6 GB) is killed, since the
  machine is shared; its peak is then reported as that guard.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out" / "memory"
COUNT = 16
TARGET_BYTES = 2 * 2**30

sys.path.insert(0, str(BENCH))

import imgserver  # noqa: E402
from bench_download import source_tree  # noqa: E402

#: name: (width, height, bit depth, PNG colour type, bytes per pixel)
CORPORA = {"png16": (9400, 9400, 16, 6, 8), "rgb8": (7000, 7000, 8, 2, 3)}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def blank_pngs(name: str) -> list[bytes]:
    """Sixteen PNGs of zeros: the pixel data is deflated once, each body gets its own tEXt chunk."""
    width, height, depth, color_type, per_pixel = CORPORA[name]
    row = b"\0" * (1 + width * per_pixel)
    deflate = zlib.compressobj(9)
    idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    head = b"\x89PNG\r\n\x1a\n" + _chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    )
    tail = _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    return [head + _chunk(b"tEXt", b"Comment\0bench image %d" % n) + tail for n in range(COUNT)]


class Bodies:
    """``lookup`` for imgserver's handler: ``/<corpus>/<n>.png``."""

    def __init__(self, corpora: dict[str, list[bytes]]) -> None:
        self.corpora = corpora

    def lookup(self, path: str) -> tuple[bytes, bytes] | None:
        match = re.fullmatch(r"/(\w+)/(\d+)\.png", path)
        if not match or match[1] not in self.corpora:
            return None
        bodies = self.corpora[match[1]]
        return b"image/png", bodies[int(match[2]) % len(bodies)]


def start_server(bodies: Bodies) -> int:
    """Serve on 127.0.0.1-127.0.0.16 (one port) from a background thread; return the port."""
    ready: list[int] = []
    started = threading.Event()

    async def serve() -> None:
        hosts = [f"127.0.0.{n}" for n in range(1, COUNT + 1)]
        first = await asyncio.start_server(imgserver.make_handler(bodies), hosts[0], 0, backlog=256)
        port = first.sockets[0].getsockname()[1]
        others = [await asyncio.start_server(imgserver.make_handler(bodies), h, port) for h in hosts[1:]]
        ready.append(port)
        started.set()
        await asyncio.gather(first.serve_forever(), *(s.serve_forever() for s in others))

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True).start()
    if not started.wait(30):
        raise SystemExit("image server did not start")
    return ready[0]


def annotation_file(folder: Path, corpus: str, port: int) -> Path:
    records = [
        {
            "image_id": f"{corpus}{n:02d}",
            "author": "bench",
            "url": f"http://127.0.0.{n + 1}:{port}/{corpus}/{n}.png",
            "raw_caption": f"bench image {n}",
            "caption": f"bench image {n}",
            "subreddit": "bench",
            "score": 10,
            "created_utc": 1577923200 + n,
            "permalink": f"/r/bench/comments/{corpus}{n:02d}/x/",
        }
        for n in range(COUNT)
    ]
    info = {
        "start_date": "2020-01-01",
        "end_date": "2020-12-31",
        "url": "https://redcaps.xyz",
        "version": "1.0",
    }
    path = folder / f"bench_{corpus}.json"
    path.write_text(json.dumps({"info": info, "annotations": records}))
    return path


def _watch(proc: subprocess.Popen, kill_above_mb: int, killed: threading.Event) -> None:
    """Kill the child once its RSS passes ``kill_above_mb`` (the machine is shared)."""
    status = Path(f"/proc/{proc.pid}/status")
    while proc.returncode is None:
        try:
            rss_kb = int(re.search(r"VmRSS:\s+(\d+)", status.read_text())[1])
        except (OSError, TypeError):
            return
        if rss_kb > kill_above_mb * 1024:
            killed.set()
            proc.kill()
            return
        time.sleep(0.05)


def run(ann_path: Path, work: Path, src: Path, cpus: int, kill_above_mb: int) -> dict:
    """One ``redcaps download-imgs -j 16`` child; its peak RSS, time, exit code and statuses."""
    work.mkdir(parents=True)
    fake = f"os.cpu_count = lambda: {cpus}; " if cpus else ""
    argv = ["redcaps", "download-imgs", "-a", str(ann_path), "-o", str(work / "images"), "-j", str(COUNT)]
    if (src / "redcaps" / "egress.py").exists():  # our own server, on loopback (older trees had no guard)
        argv += ["--allow-network", "127.0.0.0/8"]
    code = f"import os, sys; {fake}sys.argv = {argv!r}; from redcaps.cli.main import main; main()"
    env = {**os.environ, "PYTHONPATH": str(src), "NO_PROXY": ",".join(f"127.0.0.{n}" for n in range(1, 17))}
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "REQUESTS_CA_BUNDLE"):
        env.pop(var, None)
    load = os.getloadavg()
    start = time.perf_counter()
    killed = threading.Event()
    with open(work / "log.txt", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", code], env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT
        )
        threading.Thread(target=_watch, args=(proc, kill_above_mb, killed), daemon=True).start()
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    output = (work / "log.txt").read_text()
    summary = [line for line in output.splitlines() if line.startswith(("downloaded", "failed"))]
    return {
        "exit_code": os.waitstatus_to_exitcode(status),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),  # ru_maxrss is in KiB on Linux
        "seconds": round(seconds, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "load_1min": [round(load[0], 1), round(os.getloadavg()[0], 1)],
        "summary": " / ".join(summary) or " ".join(output.strip().splitlines()[-1:]),
        "killed_above_mb": kill_above_mb if killed.is_set() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default="png16,rgb8")
    parser.add_argument("--cpus", default="0,16", help="simulated core counts for this tree (0 = real)")
    parser.add_argument("--before", help="also run the engine at this git revision")
    parser.add_argument("--before-cpus", default="0", help="simulated core counts for --before (0 = real)")
    parser.add_argument("--kill-above-mb", type=int, default=6144, help="stop a child past this RSS")
    args = parser.parse_args()
    names = args.corpora.split(",")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    corpora = {name: blank_pngs(name) for name in names}
    port = start_server(Bodies(corpora))
    trees = [("this tree", REPO, int(c)) for c in args.cpus.split(",")]
    if args.before:
        old = source_tree(args.before)
        trees[:0] = [(f"before ({args.before})", old, int(c)) for c in args.before_cpus.split(",")]
    runs = []
    (OUT / stamp).mkdir(parents=True)
    for name in names:
        ann_path = annotation_file(OUT / stamp, name, port)
        for label, src, cpus in trees:
            result = run(ann_path, OUT / stamp / f"{name}-{len(runs)}", src, cpus, args.kill_above_mb)
            result.update(corpus=name, engine=label, cpus=cpus or os.cpu_count())
            result["body_kb"] = round(sum(map(len, corpora[name])) / len(corpora[name]) / 1024)
            runs.append(result)
            print(json.dumps(result), flush=True)
    (OUT / stamp / "runs.json").write_text(json.dumps(runs, indent=1))
    print(
        "\n| corpus | engine | decode slots (cores) | peak RSS | under 2 GB | wall s | load 1-min | outcome |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        under = "yes" if r["peak_rss_mb"] * 2**20 < TARGET_BYTES else "**no**"
        if r["killed_above_mb"]:
            r["summary"] = f"killed at {r['killed_above_mb']} MB RSS (guard)"
        print(
            f"| {r['corpus']} ({r['body_kb']} KB bodies) | {r['engine']} | {r['cpus']}"
            f" | {r['peak_rss_mb']} MB"
            f" | {under} | {r['seconds']} | {r['load_1min'][0]}->{r['load_1min'][1]} | {r['summary']}"
            + ("" if r["exit_code"] == 0 else f" (exit {r['exit_code']})")
            + " |"
        )


if __name__ == "__main__":
    main()
