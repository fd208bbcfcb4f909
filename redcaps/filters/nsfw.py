"""NSFW filter: the GantMan classifier as the original ran it, batched, with an offline default.

The original loaded GantMan's ``nsfw.299x299.h5`` (InceptionV3), fed it each image squashed to
299x299 with nearest-neighbour resampling, RGB, divided by 255, and removed an instance when
``porn + hentai > 0.9`` (strict). Classes come out as drawings, hentai, neutral, porn, sexy.

Backends: the default is GantMan's MobileNetV2-224 converted to ONNX from npm ``nsfwjs``
(``python -m redcaps.filters.models nsfw``); any GantMan-style ``.onnx`` works (the InceptionV3 one from
``python -m redcaps.filters.models nsfw-inception`` included), and the original ``.h5`` loads through
TensorFlow/Keras. The input size is read from the model, so preprocessing always matches it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from redcaps.filters.base import ImageScorer
from redcaps.filters.gantman import CLASSES
from redcaps.filters.models import NSFW_MODEL_NAME, ModelError, require_model
from redcaps.filters.onnx import check_device, onnx_session
from redcaps.settings import NsfwSettings

#: Columns summed into the score (the original's rule).
NSFW_CLASSES = (CLASSES.index("porn"), CLASSES.index("hentai"))
#: ``info.nsfw_filter.model`` for a user's original Keras file.
ORIGINAL_MODEL_NAME = "GantMan/nsfw_model"

#: A backend maps an (N, S, S, 3) float32 batch to (N, 5) class probabilities.
Backend = Callable[[np.ndarray], np.ndarray]


def preprocess(path: str | Path, size: int) -> np.ndarray:
    """(size, size, 3) float32 as Keras ``load_img(target_size)`` + ``img_to_array / 255`` made it:
    RGB conversion first, then an aspect-squashing NEAREST resize (skipped when already that size)."""
    with Image.open(path) as image:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.NEAREST)
        array = np.asarray(rgb, dtype=np.float32)
    return array / np.float32(255.0)


def _square_side(shape: list[Any] | tuple[Any, ...], path: Path) -> int:
    height, width = shape
    if not (isinstance(height, int) and height == width and height > 0):
        raise ModelError(f"{path}: NSFW model needs a fixed square input, has {height}x{width}")
    return height


def default_threads() -> int:
    """Inference threads when not given: all usable cores but one (that one decodes images)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def _onnx_backend(path: Path, device: str, threads: int | None) -> tuple[Backend, int]:
    if threads is None:  # measured on 2 cores: leave one core to the decode threads, never spin
        session = onnx_session(path, device, threads=default_threads(), spin=False)
    else:
        session = onnx_session(path, device, threads=threads)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{path}: expected one image input, the model has {len(inputs)}")
    model_input = inputs[0]
    shape = model_input.shape
    channels_first = len(shape) == 4 and shape[1] == 3 and shape[3] != 3
    if len(shape) != 4 or 3 not in (shape[1], shape[3]):
        raise ModelError(f"{path}: expected an image input (N, S, S, 3), got {shape}")
    size = _square_side(shape[2:4] if channels_first else shape[1:3], path)

    def run(batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2)) if channels_first else batch
        return session.run(None, {model_input.name: x})[0]

    return run, size


def _keras_backend(path: Path, device: str) -> tuple[Backend, int]:
    """The original ``.h5`` (Keras 2.2.4 era) through Keras 3; ``compile=False`` skips its old SGD config."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        has_gpu = bool(tf.config.list_physical_devices("GPU"))
    elif backend == "torch":
        import torch

        has_gpu = torch.cuda.is_available()
    else:
        has_gpu = False
    if device.startswith("cuda") and not has_gpu:
        raise ModelError(f"device cuda requested but Keras ({backend} backend) sees no GPU")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # h5py/Keras raise many types for a bad file: report one line
        raise ModelError(f"{path}: not a loadable Keras model: {' '.join(str(exc).split())[:200]}") from None
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[3] != 3:
        raise ModelError(f"{path}: expected an image input (N, S, S, 3), got {shape}")
    size = _square_side(shape[1:3], path)
    if backend == "tensorflow" and device == "cpu" and has_gpu:
        import tensorflow as tf

        def run(batch: np.ndarray) -> np.ndarray:
            with tf.device("/CPU:0"):
                return np.asarray(model.predict_on_batch(batch))

        return run, size
    return (lambda batch: np.asarray(model.predict_on_batch(batch))), size


def _onnx_model_name(path: Path) -> str:
    """The ``model`` recorded by our installer's provenance file, else the file name."""
    try:
        record = json.loads(path.with_name(f"{path.name}.provenance.json").read_text(encoding="utf-8"))
        return str(record["model"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"GantMan nsfw_model ({path.name})"


class NsfwScorer(ImageScorer):
    """``porn + hentai`` probability per image; ``model`` None -> the installed default ONNX model.

    ``device`` is "auto" (CUDA when available), "cpu" or "cuda[:N]"; an explicit "cuda" that is
    unavailable raises instead of silently running on CPU. ``threads``: onnxruntime intra-op
    threads; None -> :func:`default_threads` without spin-waiting (the measured best on 2 shared
    cores, see docs/benchmarks/nsfw.md), 0 -> onnxruntime's own default (all cores, spinning).
    Every image is resized to the model's input, so one call takes the whole batch.
    """

    def __init__(
        self, model: str | Path | None = None, *, device: str = "auto", threads: int | None = None
    ) -> None:
        check_device(device)
        if model is None:
            path = require_model("nsfw")
            self.model_name = NSFW_MODEL_NAME
        else:
            path = Path(model)
            if not path.is_file():
                raise ModelError(f"NSFW model not found: {path}")
            self.model_name = (
                _onnx_model_name(path) if path.suffix == ".onnx" else f"{ORIGINAL_MODEL_NAME} ({path.name})"
            )
        if path.suffix == ".onnx":
            self._run, self.size = _onnx_backend(path, device, threads)
        elif path.suffix in (".h5", ".keras"):
            self._run, self.size = _keras_backend(path, device)
        else:
            raise ModelError(f"{path}: NSFW model must be .onnx, .h5 or .keras")

    @classmethod
    def from_settings(cls, settings: NsfwSettings) -> NsfwScorer:
        return cls(settings.model or None, device=settings.device)

    def prepare(self, path: Path) -> np.ndarray:
        return preprocess(path, self.size)

    def probabilities(self, batch: list[np.ndarray]) -> np.ndarray:
        """(N, 5) class probabilities in :data:`CLASSES` order, one model call."""
        probs = self._run(np.stack(batch))
        if probs.shape != (len(batch), len(CLASSES)):
            raise ModelError(
                f"model output {probs.shape}, expected ({len(batch)}, {len(CLASSES)}) GantMan classes"
            )
        return probs

    def score(self, batch: list[Any]) -> list[float]:
        probs = self.probabilities(batch)
        return (probs[:, NSFW_CLASSES[0]] + probs[:, NSFW_CLASSES[1]]).tolist()
