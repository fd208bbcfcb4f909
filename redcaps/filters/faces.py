"""Face filter: RetinaFace as the original ran it, batched, with an offline default model.

The original flagged an image when any RetinaFace detection survived ``score > 0.9``, top-500
and NMS 0.4. NMS always keeps the best box, so that is exactly "max face probability over all
anchors > threshold"; :func:`detect` keeps the full decoding for inspection and tests, while
scoring uses the max. Input is the original's: the image as the original stored it, longer edge
512 px (it resized every download so, up or down, Pillow BICUBIC), RGB->BGR minus (104, 117, 123).
The original fed its stored file as is; this pipeline stores the *shorter* edge at 512 by default,
so the image is brought back to the original's size first (a no-op for images stored the
original's way). RetinaFace's verdicts depend on scale, and the smaller input halves the cost.
``long_edge=None`` feeds the stored image unchanged.

A model call takes the images of one size from a batch, so scores equal single-image scores.
Opt-in padding (for GPUs) pads to the batch's largest height and width with the mean (zero
after subtraction) and ignores anchors whose cells lie wholly in the padding, so an image keeps
its own anchors; activations near its border still see the padding and can shift.

Backends: the default MobileNet-0.25 ONNX (``python -m redcaps.filters.models faces``), any RetinaFace
``.onnx`` with dynamic height/width, or the original ResNet-50 ``.pth`` through
:mod:`redcaps.filters.retinaface`.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from redcaps.filters.base import ImageScorer
from redcaps.filters.models import FACES_MODEL_NAME, ModelError, require_model
from redcaps.filters.onnx import check_device, onnx_session
from redcaps.settings import FaceSettings

MEAN_BGR = np.array([104, 117, 123], dtype=np.float32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)
VARIANCES = (0.1, 0.2)
TOP_K = 500
NMS_THRESHOLD = 0.4
#: ``info.face_filter.model`` for the original ResNet-50 weights (a user's ``.pth``).
ORIGINAL_MODEL_NAME = "redcaps-dataset/pytorch-retinaface"

#: A backend maps a (N, 3, H, W) float32 batch to (loc (N, A, 4), conf (N, A, 2)).
Backend = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


# --- preprocessing and anchors ---------------------------------------------------------------


def resize_long_edge(image: Image.Image, long_edge: int) -> Image.Image:
    """The original download's resize: ``scale = N / max(w, h)``, rounded, BICUBIC, up or down."""
    scale = long_edge / max(image.size)
    if scale == 1.0:
        return image
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)


def preprocess(path: str | Path, long_edge: int | None = FaceSettings.long_edge) -> np.ndarray:
    """Decode to (3, H, W) float32 BGR minus the mean, as the original fed the network."""
    with Image.open(path) as image:
        rgb_image = image.convert("RGB")
    if long_edge:
        rgb_image = resize_long_edge(rgb_image, long_edge)
    rgb = np.asarray(rgb_image)
    # One pass per channel straight into the planar layout (3 passes fewer than cast, subtract,
    # transpose-copy); runs in decode threads, which numpy lets run outside the GIL.
    out = np.empty((3, rgb.shape[0], rgb.shape[1]), dtype=np.float32)
    for channel in range(3):
        np.subtract(rgb[:, :, 2 - channel], MEAN_BGR[channel], out=out[channel], dtype=np.float32)
    return out


def _cells(height: int, width: int) -> list[tuple[int, int]]:
    return [(math.ceil(height / s), math.ceil(width / s)) for s in STEPS]


def num_anchors(height: int, width: int) -> int:
    """``len(priors(height, width))`` without building them (photos come in hundreds of sizes)."""
    cells = zip(_cells(height, width), MIN_SIZES, strict=True)
    return sum(rows * cols * len(sizes) for (rows, cols), sizes in cells)


@lru_cache(maxsize=64)
def priors(height: int, width: int) -> np.ndarray:
    """Anchors (cx, cy, w, h), normalised, in the network's order: level, row, column, size."""
    levels = []
    for (rows, cols), step, sizes in zip(_cells(height, width), STEPS, MIN_SIZES, strict=True):
        ys = (np.arange(rows) + 0.5) * step / height
        xs = (np.arange(cols) + 0.5) * step / width
        cy, cx = (a.reshape(-1, 1) for a in np.meshgrid(ys, xs, indexing="ij"))
        per_size = [
            np.hstack([cx, cy, np.full_like(cx, s / width), np.full_like(cy, s / height)]) for s in sizes
        ]
        levels.append(np.stack(per_size, axis=1).reshape(-1, 4))
    return np.concatenate(levels).astype(np.float32)


@lru_cache(maxsize=256)
def valid_anchors(height: int, width: int, padded_height: int, padded_width: int) -> np.ndarray:
    """Mask of a padded batch's anchors that an (height, width) image has when run alone."""
    masks = []
    cells = zip(_cells(padded_height, padded_width), _cells(height, width), MIN_SIZES, strict=True)
    for (rows, cols), (own_rows, own_cols), sizes in cells:
        grid = np.zeros((rows, cols, len(sizes)), dtype=bool)
        grid[:own_rows, :own_cols] = True
        masks.append(grid.reshape(-1))
    return np.concatenate(masks)


# --- the original decoding -------------------------------------------------------------------


def decode(loc: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Regression offsets -> normalised (x1, y1, x2, y2) boxes (variances 0.1 / 0.2)."""
    centers = anchors[:, :2] + loc[:, :2] * VARIANCES[0] * anchors[:, 2:]
    sizes = anchors[:, 2:] * np.exp(loc[:, 2:] * VARIANCES[1])
    return np.hstack([centers - sizes / 2, centers + sizes / 2])


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float = NMS_THRESHOLD) -> list[int]:
    """Greedy NMS in pixel coordinates with the original's ``+1`` box areas."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        order = rest[inter / (areas[i] + areas[rest] - inter) <= threshold]
    return keep


def detect(
    loc: np.ndarray,
    conf: np.ndarray,
    height: int,
    width: int,
    threshold: float = FaceSettings.confidence_threshold,
) -> tuple[np.ndarray, np.ndarray]:
    """One image's detections as the original computed them: (boxes in pixels, scores)."""
    scores = conf[:, 1]
    idx = np.flatnonzero(scores > threshold)
    if idx.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    boxes = decode(loc[idx], priors(height, width)[idx]) * np.array([width, height, width, height])
    order = scores[idx].argsort()[::-1][:TOP_K]
    boxes, kept_scores = boxes[order], scores[idx][order]
    keep = nms(boxes, kept_scores)
    return boxes[keep], kept_scores[keep]


# --- backends --------------------------------------------------------------------------------


def _onnx_backend(path: Path, device: str, threads: int | None) -> Backend:
    session = onnx_session(path, device, threads=threads or 0, spin=False)
    shape = session.get_inputs()[0].shape
    if any(isinstance(d, int) for d in shape[2:]):
        raise ModelError(f"{path}: fixed input size {shape[2:]}; export RetinaFace with dynamic height/width")
    input_name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    loc_at, conf_at = (names.index("loc"), names.index("conf")) if {"loc", "conf"} <= set(names) else (0, 1)

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = session.run(None, {input_name: batch})
        return outputs[loc_at], outputs[conf_at]

    return run


def _torch_backend(path: Path, device: str, threads: int | None, half: bool) -> Backend:
    import torch

    from redcaps.filters.retinaface import load_retinaface

    if threads:
        torch.set_num_threads(threads)  # process-wide: torch has no per-model thread pool
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("device cuda requested but torch.cuda.is_available() is False")
    target = torch.device(device)
    dtype = torch.float16 if half and target.type == "cuda" else torch.float32
    try:
        model = load_retinaface(path).to(target, dtype)
    except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError) as exc:  # one line
        detail = " ".join(str(exc).split())
        detail = detail if len(detail) <= 300 else detail[:300] + "..."
        raise ModelError(f"{path}: not RetinaFace-ResNet50 weights: {detail}") from None

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(target, dtype, non_blocking=True)
            loc, conf, _ = model(x)
            return loc.float().cpu().numpy(), conf.float().cpu().numpy()

    return run


# --- scorer and filter -----------------------------------------------------------------------


class FaceScorer(ImageScorer):
    """Max face probability per image; ``model`` None -> the installed default ONNX model.

    ``device`` is "auto" (CUDA when available), "cpu" or "cuda[:N]"; an explicit "cuda" that is
    unavailable raises instead of silently running on CPU. ``threads`` caps intra-op threads
    (for torch this is process-wide). ``half`` runs the torch model in fp16 on CUDA only.

    By default one model call takes the batch's images of one size, so every score equals the
    single-image score (on CPU, batching gains nothing anyway). ``pad=True`` runs mixed sizes in
    one padded call, worth it on a GPU; scores at the image border can then shift (seen: 0.31 ->
    0.45 for a cat photo), so it is opt-in. ``long_edge`` resizes every image as the original
    stored it (512; None: as stored here).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str = "auto",
        threads: int | None = None,
        half: bool = False,
        pad: bool = False,
        long_edge: int | None = FaceSettings.long_edge,
    ) -> None:
        check_device(device)
        self.pad = pad
        self.long_edge = long_edge
        if model is None:
            path, self.model_name = require_model("faces"), FACES_MODEL_NAME
        else:
            path = Path(model)
            if not path.is_file():
                raise ModelError(f"face model not found: {path}")
            self.model_name = (
                ORIGINAL_MODEL_NAME if path.suffix in (".pth", ".pt") else f"retinaface ({path.name})"
            )
        if path.suffix == ".onnx":
            self._run = _onnx_backend(path, device, threads)
        elif path.suffix in (".pth", ".pt"):
            self._run = _torch_backend(path, device, threads, half)
        else:
            raise ModelError(f"{path}: face model must be .onnx or .pth")

    @classmethod
    def from_settings(cls, settings: FaceSettings) -> FaceScorer:
        return cls(
            settings.model or None,
            device=settings.device,
            pad=settings.pad,
            long_edge=settings.long_edge or None,
        )

    def prepare(self, path: Path) -> np.ndarray:
        return preprocess(path, self.long_edge)

    def forward(self, batch: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """Run one padded batch: (loc, conf, padded (H, W))."""
        height = max(x.shape[1] for x in batch)
        width = max(x.shape[2] for x in batch)
        if len(batch) == 1:
            padded = batch[0][None]
        elif all(x.shape[1:] == (height, width) for x in batch):
            padded = np.stack(batch)
        else:
            padded = np.zeros((len(batch), 3, height, width), dtype=np.float32)
            for i, x in enumerate(batch):
                padded[i, :, : x.shape[1], : x.shape[2]] = x
        loc, conf = self._run(padded)
        if conf.shape[1] != num_anchors(height, width) or conf.shape[2] != 2:
            raise ModelError(f"model output {conf.shape} does not match RetinaFace anchors")
        return loc, conf, (height, width)

    def score(self, batch: list[Any]) -> list[float]:
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(batch):
            groups.setdefault(() if self.pad else x.shape[1:], []).append(i)
        scores = [0.0] * len(batch)
        for members in groups.values():
            _, conf, (height, width) = self.forward([batch[i] for i in members])
            for row, i in enumerate(members):
                if batch[i].shape[1:] == (height, width):
                    scores[i] = float(conf[row, :, 1].max())
                else:
                    valid = valid_anchors(batch[i].shape[1], batch[i].shape[2], height, width)
                    scores[i] = float(conf[row, valid, 1].max())
        return scores

    def detect(
        self, path: str | Path, threshold: float = FaceSettings.confidence_threshold
    ) -> tuple[np.ndarray, np.ndarray]:
        """The original's boxes and scores for one image, run alone."""
        x = self.prepare(Path(path))
        loc, conf, _ = self.forward([x])
        return detect(loc[0], conf[0], x.shape[1], x.shape[2], threshold)
