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
import os
import statistics
import tempfile
import time
from pathlib import Path

from samples import make_images

from redcaps import annotations as ann
from redcaps.filters.faces import FaceScorer
from redcaps.filters.stage import filter_images
from redcaps.settings import FaceSettings


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
            warm = ann.AnnotationFile(annotations.info, annotations.annotations[:8])
            filter_images("faces", warm, image_dir, FaceSettings(), scorer=scorer)
            for batch_size in args.batch_sizes:
                rates, cpu = [], []
                for _ in range(args.repeat):  # the machine is shared: report the median run
                    start, cpu_start = time.perf_counter(), time.process_time()
                    settings = FaceSettings(batch_size=batch_size, workers=args.workers)
                    outcome = filter_images("faces", annotations, image_dir, settings, scorer=scorer)
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
