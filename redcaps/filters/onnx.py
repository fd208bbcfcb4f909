"""One onnxruntime session setup for the image filters: threads, spinning, and the device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redcaps.filters.models import ModelError


def check_device(device: str) -> None:
    if device not in ("auto", "cpu") and not (device == "cuda" or device.startswith("cuda:")):
        raise ModelError(f"unknown device {device!r} (use auto, cpu or cuda)")


def onnx_session(path: Path, device: str, *, threads: int = 0, spin: bool = True) -> Any:
    """An ``InferenceSession`` on CUDA when asked (or for ``auto`` when available), else CPU.

    ``threads`` 0 keeps onnxruntime's own count; ``spin=False`` stops idle intra-op threads from
    spinning, which steals the cores the image-decoding threads need."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers: list[Any] = ["CPUExecutionProvider"]
    if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(device.partition(":")[2] or 0)}))
    elif device.startswith("cuda"):
        raise ModelError(
            "device cuda requested but onnxruntime has no CUDAExecutionProvider (onnxruntime-gpu)"
        )
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise ModelError(f"{path}: not a loadable ONNX model: {' '.join(str(exc).split())[:200]}") from None
