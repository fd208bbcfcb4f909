"""Face-filter throughput on this machine: images/s through ``filter_faces``, decoding included.

Builds N JPEGs of mixed sizes from the scikit-image sample photos, stored as this project does by
default (shorter edge 512, ``--edge shorter``) or as the original did (longer edge 512), then times
the whole filter (decode threads + model + decision) per batch size and thread count.

    python bench/bench_faces.py [--images 240] [--batch-sizes 1,8,16,32] [--threads 0,2]
    [--model path.onnx|path.pth] [--pad] [--workers 4] [--repeat 3] [--allow-spinning] [--edge shorter|longer]

``--threads 0`` means the runtime's default. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from redcaps import annotations as ann
from redcaps.filters.faces import FaceScorer, filter_faces

PHOTOS = ("astronaut.png", "camera.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png")


def make_images(image_dir: Path, count: int, seed: int = 0, edge: str = "longer") -> ann.AnnotationFile:
    """``count`` JPEGs: random crops of the sample photos with one edge 512 (see ``edge``)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("error: scikit-image is needed for the sample photos (pip install scikit-image)")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    photos = [Image.open(data / name).convert("RGB") for name in PHOTOS]
    rng = np.random.default_rng(seed)
    (image_dir / "bench").mkdir(parents=True, exist_ok=True)
    records = []
    for n in range(count):
        photo = photos[n % len(photos)]
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.6, 1)), int(h * rng.uniform(0.6, 1))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        image = photo.crop((x, y, x + cw, y + ch))
        # longer: the original's storage (other edge 256-512); shorter: this project's default
        # ([images] edge=shorter, other edge 512-910, up to 16:9)
        other = int(rng.integers(256, 513)) if edge == "longer" else int(rng.integers(512, 911))
        size = (512, other) if n % 2 else (other, 512)
        image = image.resize(size)
        image_id = f"img{n:05d}"
        image.save(image_dir / "bench" / f"{image_id}.jpg", quality=90)
        records.append(
            {
                "image_id": image_id,
                "author": "bench",
                "url": f"https://i.redd.it/{image_id}.jpg",
                "raw_caption": "photo",
                "caption": "photo",
                "subreddit": "bench",
                "score": 10,
                "created_utc": 1_600_000_000 + n,
                "permalink": f"/r/bench/comments/{image_id}/photo/",
            }
        )
    info = {
        "start_date": "2020-01-01",
        "end_date": "2020-12-31",
        "url": "https://redcaps.xyz",
        "version": "1.0",
    }
    return ann.AnnotationFile(info, records)


def _allow_spinning() -> None:
    """Undo the product's ``allow_spinning=0`` for a before/after comparison (bench only)."""
    import onnxruntime

    class SpinningOptions(onnxruntime.SessionOptions):
        def add_session_config_entry(self, key: str, value: str) -> None:
            if key != "session.intra_op.allow_spinning":
                super().add_session_config_entry(key, value)

    onnxruntime.SessionOptions = SpinningOptions  # type: ignore[misc]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--batch-sizes", type=_ints, default=[1, 8, 16, 32])
    parser.add_argument("--threads", type=_ints, default=[0, 2])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--edge",
        choices=["longer", "shorter"],
        default="shorter",
        help="which edge the stored images have at 512",
    )
    parser.add_argument("--model", default=None, help="default: the installed default ONNX model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pad", action="store_true", help="one padded model call per batch")
    parser.add_argument(
        "--allow-spinning",
        action="store_true",
        help="ONNX Runtime's default busy-wait (the 'before' figures)",
    )
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")

    if args.allow_spinning:
        _allow_spinning()
    with tempfile.TemporaryDirectory(prefix="bench-faces-") as tmp:
        image_dir = Path(tmp)
        annotations = make_images(image_dir, args.images, edge=args.edge)
        rows = []
        for threads in args.threads:
            scorer = FaceScorer(args.model, device=args.device, threads=threads or None, pad=args.pad)
            filter_faces(
                ann.AnnotationFile(annotations.info, annotations.annotations[:8]), image_dir, scorer=scorer
            )
            for batch_size in args.batch_sizes:
                rates, cpu = [], []
                for _ in range(args.repeat):  # the machine is shared: report the median run
                    start, cpu_start = time.perf_counter(), time.process_time()
                    outcome = filter_faces(
                        annotations, image_dir, batch_size=batch_size, workers=args.workers, scorer=scorer
                    )
                    rates.append(len(annotations.annotations) / (time.perf_counter() - start))
                    cpu.append(1000 * (time.process_time() - cpu_start) / len(annotations.annotations))
                rate, cpu_ms = statistics.median(rates), statistics.median(cpu)
                rows.append(
                    (batch_size, threads or "default", rate, max(rates), cpu_ms, len(outcome.removals))
                )
        print(
            f"\n{scorer.model_name}, {args.images} JPEGs, {args.edge} edge 512 px,"
            f" workers={args.workers}, pad={args.pad}\n"
        )
        print(
            f"| batch size | threads | images/s (median of {args.repeat}) | best | CPU ms/image | flagged |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        for batch_size, threads, rate, best, cpu_ms, flagged in rows:
            print(f"| {batch_size} | {threads} | {rate:.1f} | {best:.1f} | {cpu_ms:.1f} | {flagged} |")

    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
