"""NSFW-filter throughput on this machine: images/s through ``filter_nsfw``, decoding included.

Builds N JPEGs (≤512 px, mixed sizes and aspect ratios) from the scikit-image sample photos,
then times the whole filter (decode threads + model + decision) per batch size and thread
count, and splits one pass into its parts (decode+resize per image, model per image).

    python bench/bench_nsfw.py [--images 256] [--batch-sizes 1,8,16,32,64] [--threads auto,0,1,2]
    [--workers 2] [--model path.onnx|path.h5] [--repeat 2]

``--compare-runtimes nsfwjs-4.4.0.tgz`` instead times the model alone (batch 16, random input)
in Keras/TensorFlow and in onnxruntime (1 thread, no spinning) for both GantMan models of the
tarball: the measurement behind choosing ONNX as the default runtime.

``--threads``: ``auto`` is the scorer's default (cores - 1, no spin-waiting), ``0`` is
onnxruntime's own default (all cores, spinning), N is N threads. The best of ``--repeat`` runs
is reported (the machine is shared; the load average is printed). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from samples import make_images

from redcaps import annotations as ann
from redcaps.filters.nsfw import NsfwScorer
from redcaps.filters.stage import filter_images
from redcaps.settings import NsfwSettings


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _threads(text: str) -> list[int | None]:
    return [None if x == "auto" else int(x) for x in text.split(",") if x]


def parts(scorer: NsfwScorer, paths: list[Path], batch_size: int) -> tuple[float, float]:
    """(decode+resize ms/image on one thread, model ms/image at ``batch_size``)."""
    start = time.perf_counter()
    prepared = [scorer.prepare(p) for p in paths]
    decode = (time.perf_counter() - start) * 1000 / len(paths)
    start = time.perf_counter()
    for i in range(0, len(prepared), batch_size):
        scorer.score(prepared[i : i + batch_size])
    model = (time.perf_counter() - start) * 1000 / len(paths)
    return decode, model


def compare_runtimes(tarball: Path, rounds: int) -> None:
    """Model-only ms/image, Keras/TensorFlow vs onnxruntime, on the same decoded weights."""
    import tarfile

    import onnxruntime as ort

    from redcaps.filters import gantman

    print("| model | Keras/TensorFlow ms/image | onnxruntime (1 thread) ms/image | load |")
    print("|---|---:|---:|---:|")
    with tarfile.open(tarball) as tar:
        for directory in ("mobilenet_v2", "inception_v3"):

            def text(name: str, directory: str = directory) -> str:
                member = tar.extractfile(f"package/dist/models/{directory}/{name}")
                assert member is not None
                return member.read().decode()

            paths = gantman.module_export(text("model.min.js"))["weightsManifest"][0]["paths"]
            config, weights = gantman.read_tfjs(text("model.min.js"), [text(f"{p}.min.js") for p in paths])
            size = gantman.input_size(config)
            x = np.random.default_rng(0).random((16, size, size, 3), dtype=np.float32)
            keras_model = gantman.keras_model(config, weights)
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(gantman.onnx_model(config, weights).SerializeToString(), options)
            keras_model.predict_on_batch(x[:2])
            session.run(None, {"input": x[:2]})
            for _ in range(rounds):
                start = time.perf_counter()
                keras_model.predict_on_batch(x)
                keras_ms = (time.perf_counter() - start) * 1000 / len(x)
                start = time.perf_counter()
                session.run(None, {"input": x})
                onnx_ms = (time.perf_counter() - start) * 1000 / len(x)
                print(f"| {directory} {size} | {keras_ms:.1f} | {onnx_ms:.1f} | {os.getloadavg()[0]:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-sizes", type=_ints, default=[1, 8, 16, 32, 64])
    parser.add_argument("--threads", type=_threads, default=[None], help="auto (default), 0 = ORT's own, N")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--model", default=None, help="default: the installed default ONNX model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compare-runtimes", type=Path, metavar="TARBALL", default=None)
    args = parser.parse_args()
    if args.compare_runtimes is not None:
        compare_runtimes(args.compare_runtimes, args.repeat)
        return
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")

    with tempfile.TemporaryDirectory(prefix="bench-nsfw-") as tmp:
        image_dir = Path(tmp)
        annotations = make_images(image_dir, args.images)
        paths = sorted((image_dir / "bench").iterdir())
        warm = ann.AnnotationFile(annotations.info, annotations.annotations[:8])
        scorers = {t: NsfwScorer(args.model, device=args.device, threads=t) for t in args.threads}
        for scorer in scorers.values():
            filter_images("nsfw", warm, image_dir, NsfwSettings(), scorer=scorer)
        configs = [(t, b) for t in args.threads for b in args.batch_sizes]
        best = dict.fromkeys(configs, float("inf"))
        flagged = {}
        for _ in range(args.repeat):  # interleaved, so a burst of load on the shared machine hits all
            for threads, batch_size in configs:
                start = time.perf_counter()
                settings = NsfwSettings(batch_size=batch_size, workers=args.workers)
                outcome = filter_images("nsfw", annotations, image_dir, settings, scorer=scorers[threads])
                best[threads, batch_size] = min(best[threads, batch_size], time.perf_counter() - start)
                flagged[threads, batch_size] = len(outcome.removals)
        scorer = next(iter(scorers.values()))
        print(f"\n{scorer.model_name} (input {scorer.size}), {args.images} JPEGs ≤512 px")
        print(f"workers={args.workers}, best of {args.repeat} interleaved runs\n")
        print(
            "| batch | ORT threads | images/s | ms/image | decode+resize ms (1 thread) | model ms | flagged |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for threads, batch_size in configs:
            rate = len(annotations.annotations) / best[threads, batch_size]
            decode, model = parts(scorers[threads], paths[:64], batch_size)
            label = {None: "auto", 0: "ORT default"}.get(threads, threads)
            row = (batch_size, label, rate, 1000 / rate, decode, model, flagged[threads, batch_size])
            print("| {} | {} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {} |".format(*row))

    print(f"\nload average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
