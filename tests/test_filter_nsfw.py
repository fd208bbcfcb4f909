"""NSFW filter: the original's preprocessing and rule, the default model on real photos, .h5 and .onnx.

Fixture photos come from the scikit-image wheel (none is NSFW). The default model is installed
once per session from the pinned npm ``nsfwjs`` tarball (see tests/models_fixture.py), or reused
from ``$REDCAPS_MODELS_DIR`` when that already holds it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from redcaps import annotations as ann
from redcaps.filters import base, models, stage
from redcaps.filters.models import NSFW_MODEL_NAME, ModelError
from redcaps.filters.nsfw import ORIGINAL_MODEL_NAME, NsfwScorer, preprocess
from redcaps.filters.stage import filter_images
from redcaps.settings import NsfwSettings
from tests.helpers import annotation_file, record
from tests.models_fixture import SOURCES, copy_photos

# session fixtures shared with the model tests

pytest.importorskip("onnxruntime")

NSFW_FILE = models.NSFW_VARIANTS["nsfw"].filename


def _file(ids: tuple[str, ...] = tuple(SOURCES)) -> ann.AnnotationFile:
    return annotation_file([record(i, subreddit="pics", created_utc=n) for n, i in enumerate(ids)])


@pytest.fixture(scope="session")
def scorer(nsfw_model_dir: Path) -> NsfwScorer:
    return NsfwScorer(nsfw_model_dir / NSFW_FILE, device="cpu")


@pytest.fixture()
def default_model(nsfw_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the installed default model the one ``NsfwScorer()`` finds."""
    monkeypatch.setenv(models.ENV_VAR, str(nsfw_model_dir))
    return nsfw_model_dir / NSFW_FILE


@pytest.fixture()
def image_dir(photo_dir: Path, tmp_path: Path) -> Path:
    """A private copy (commit deletes files)."""
    return copy_photos(photo_dir, tmp_path / "images")


class FixedScorer(base.ImageScorer):
    """Scores from a table keyed by image id: exact threshold edges without a model."""

    model_name = "fixed"

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores
        self.calls: list[int] = []

    def prepare(self, path: Path) -> str:
        with Image.open(path) as image:
            image.load()  # unreadable files fail here, in the worker, like the real scorer
        return path.stem

    def score(self, batch: list[Any]) -> list[float]:
        self.calls.append(len(batch))
        return [self.scores[image_id] for image_id in batch]


# --- preprocessing ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [224, 299])
def test_preprocess_is_keras_load_img_nearest_over_255(photo_dir: Path, tmp_path: Path, size: int) -> None:
    """Bit-identical to the original's ``load_img(p, target_size=(s, s))`` + ``img_to_array / 255``."""
    keras_utils = pytest.importorskip("keras.utils")
    grey = tmp_path / "grey.png"
    Image.open(photo_dir / "pics" / "camera.jpg").convert("L").save(grey)  # a mode the original converted
    for path in [*(photo_dir / "pics").iterdir(), grey]:
        expected = keras_utils.img_to_array(keras_utils.load_img(path, target_size=(size, size))) / 255.0
        ours = preprocess(path, size)
        assert ours.dtype == np.float32 and ours.shape == (size, size, 3)
        np.testing.assert_array_equal(ours, expected.astype(np.float32), err_msg=path.name)


# --- the default model on real photos ---------------------------------------------------------


def test_default_model_keeps_the_photos(default_model: Path, image_dir: Path) -> None:
    outcome = filter_images("nsfw", _file(), image_dir, NsfwSettings(batch_size=4, workers=2))
    assert outcome.removals == [] and outcome.skipped == []
    assert [r["image_id"] for r in outcome.kept.annotations] == list(SOURCES)
    assert outcome.kept.info["nsfw_filter"] == {
        "num_removed": 0,
        "model": NSFW_MODEL_NAME,
        "confidence_threshold": 0.9,
    }


def test_default_model_sane_probabilities(scorer: NsfwScorer, photo_dir: Path) -> None:
    assert scorer.size == 224
    probs = scorer.probabilities([scorer.prepare(photo_dir / "pics" / f"{i}.jpg") for i in SOURCES])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    scores = probs[:, 1] + probs[:, 3]
    assert (scores < 0.1).all(), scores  # porn + hentai: nowhere near the threshold
    labels = dict(zip(SOURCES, probs.argmax(axis=1), strict=True))
    assert labels["coffee"] == labels["chelsea"] == 2  # photos: "neutral"


def test_batched_scores_equal_single_image_scores(scorer: NsfwScorer, photo_dir: Path) -> None:
    batch = [scorer.prepare(photo_dir / "pics" / f"{i}.jpg") for i in SOURCES]
    single = [scorer.score([x])[0] for x in batch]
    np.testing.assert_allclose(scorer.score(batch), single, atol=1e-5)


# --- the rule ---------------------------------------------------------------------------------


def test_threshold_is_strict_and_sums_porn_and_hentai(image_dir: Path) -> None:
    scores = {
        "astronaut": 0.9,
        "camera": float(np.nextafter(0.9, 1)),
        "coffee": 0.95,
        "chelsea": 0.0,
        "rocket": 1.0,
    }
    outcome = filter_images(
        "nsfw", _file(), image_dir, NsfwSettings(batch_size=2), scorer=FixedScorer(scores)
    )
    assert sorted(r.image_id for r in outcome.removals) == ["camera", "coffee", "rocket"]  # 0.9 itself kept
    assert all(r.reason == "nsfw" and r.score == scores[r.image_id] for r in outcome.removals)
    assert [r["image_id"] for r in outcome.kept.annotations] == ["astronaut", "chelsea"]
    assert outcome.kept.info["nsfw_filter"] == {
        "num_removed": 3,
        "model": "fixed",
        "confidence_threshold": 0.9,
    }

    class Probabilities(NsfwScorer):
        def __init__(self) -> None:
            self.size, self.model_name = 8, "p"
            # drawings, hentai, neutral, porn, sexy: only porn + hentai count
            self._run = lambda batch: np.array([[0.0, 0.5, 0.0, 0.45, 0.05], [0.9, 0.05, 0.0, 0.0, 0.05]])[
                : len(batch)
            ]

    probabilities = Probabilities()
    assert probabilities.score([np.zeros((8, 8, 3))] * 2) == pytest.approx([0.95, 0.05])


def test_threshold_edge_on_the_real_model(scorer: NsfwScorer, image_dir: Path) -> None:
    chelsea = scorer.score([scorer.prepare(image_dir / "pics" / "chelsea.jpg")])[0]
    files = _file(("chelsea",))
    below = filter_images(
        "nsfw",
        files,
        image_dir,
        NsfwSettings(confidence_threshold=float(np.nextafter(chelsea, 0))),
        scorer=scorer,
    )
    assert [r.image_id for r in below.removals] == ["chelsea"]
    at = filter_images("nsfw", files, image_dir, NsfwSettings(confidence_threshold=chelsea), scorer=scorer)
    assert at.removals == [] and at.kept.info["nsfw_filter"]["confidence_threshold"] == chelsea


def test_one_model_call_per_batch(image_dir: Path) -> None:
    fixed = FixedScorer(dict.fromkeys(SOURCES, 0.0))
    filter_images("nsfw", _file(), image_dir, NsfwSettings(batch_size=2, workers=3), scorer=fixed)
    assert fixed.calls == [2, 2, 1]


def test_corrupt_image_is_skipped_rest_scored(scorer: NsfwScorer, image_dir: Path) -> None:
    (image_dir / "pics" / "coffee.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (image_dir / "pics" / "chelsea.jpg").write_bytes((image_dir / "pics" / "camera.jpg").read_bytes()[:2000])
    (image_dir / "pics" / "rocket.jpg").unlink()  # missing: not judged, not reported (as the original)
    outcome = filter_images(
        "nsfw", _file(), image_dir, NsfwSettings(batch_size=8, confidence_threshold=0.0), scorer=scorer
    )
    assert sorted(s.image_id for s in outcome.skipped) == ["chelsea", "coffee"]
    assert all(s.reason.startswith("unreadable:") and "\n" not in s.reason for s in outcome.skipped)
    # threshold 0: every image that was scored is removed, so exactly the readable ones went
    assert sorted(r.image_id for r in outcome.removals) == ["astronaut", "camera"]
    assert [r["image_id"] for r in outcome.kept.annotations] == ["coffee", "chelsea", "rocket"]


def test_run_deletes_only_removed_and_rerun_is_noop(image_dir: Path, tmp_path: Path) -> None:
    scores = dict.fromkeys(SOURCES, 0.1) | {"rocket": 0.99}
    output = tmp_path / "pics_2020.json"
    ann.save(output, _file())
    paths = stage.FilterPaths(output, output, tmp_path / "pics_2020.removals.jsonl", image_dir)
    report = stage.run_filter("nsfw", paths, NsfwSettings(), scorer=lambda: FixedScorer(scores))
    assert (report.status, report.removed) == ("filtered", 1)
    assert sorted(p.stem for p in (image_dir / "pics").iterdir()) == sorted(set(SOURCES) - {"rocket"})
    before = output.read_bytes()
    never_loaded = NsfwSettings(model=str(tmp_path / "absent.onnx"))
    assert stage.run_filter("nsfw", paths, never_loaded).status == "already_applied"
    assert output.read_bytes() == before


# --- user models: .onnx and the original .h5 --------------------------------------------------


def test_user_onnx_path_and_model_name(nsfw_model_dir: Path, photo_dir: Path, tmp_path: Path) -> None:
    own = tmp_path / "my_nsfw.onnx"
    shutil.copy(nsfw_model_dir / NSFW_FILE, own)
    scorer = NsfwScorer(own, device="cpu", threads=1)
    assert scorer.model_name == "GantMan nsfw_model (my_nsfw.onnx)" and scorer.size == 224
    installed = NsfwScorer(nsfw_model_dir / NSFW_FILE, device="cpu")
    assert installed.model_name == NSFW_MODEL_NAME  # from the provenance file beside it
    x = [scorer.prepare(photo_dir / "pics" / "rocket.jpg")]
    assert scorer.score(x) == pytest.approx(installed.score(x))


def channels_first_onnx(path: Path, size: int = 8) -> np.ndarray:
    """A tiny NCHW classifier (mean colour -> 5 softmax classes), as a torch/tf2onnx export looks."""
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(15, dtype=np.float32).reshape(3, 5) / 10
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        ],
        "nchw",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, size, size])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", 5])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return weights


def test_channels_first_onnx_gets_transposed_input(photo_dir: Path, tmp_path: Path) -> None:
    weights = channels_first_onnx(tmp_path / "nchw.onnx")
    scorer = NsfwScorer(tmp_path / "nchw.onnx", device="cpu")
    assert scorer.size == 8
    x = scorer.prepare(photo_dir / "pics" / "coffee.jpg")
    logits = x.mean(axis=(0, 1)) @ weights  # channel means: only right if the input was transposed
    probs = np.exp(logits) / np.exp(logits).sum()
    assert scorer.score([x]) == pytest.approx([probs[1] + probs[3]], abs=1e-5)


def gantman_inception_h5(path: Path) -> Any:
    """GantMan's nsfw.299x299.h5 architecture with random weights: InceptionV3 (no top) +
    AvgPool 8 -> Flatten -> Dense 256 relu -> Dropout -> Dense 128 relu -> Dropout -> Dense 5 softmax."""
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    backbone = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=(299, 299, 3))
    x = keras.layers.AveragePooling2D(pool_size=(8, 8))(backbone.output)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(256, activation="relu")(x)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    x = keras.layers.Dropout(0.25)(x)
    out = keras.layers.Dense(5, activation="softmax")(x)
    model = keras.Model(backbone.input, out)
    model.save(path)  # legacy HDF5, like the 2019 release
    return model


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning:keras.*")  # Keras' own numpy 2 notice
def test_original_h5_architecture_loads_and_scores(photo_dir: Path, image_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "nsfw.299x299.h5"
    original = gantman_inception_h5(path)
    scorer = NsfwScorer(path, device="cpu")
    assert scorer.size == 299 and scorer.model_name == f"{ORIGINAL_MODEL_NAME} (nsfw.299x299.h5)"
    batch = [scorer.prepare(photo_dir / "pics" / f"{i}.jpg") for i in ("astronaut", "rocket")]
    expected = np.asarray(original.predict_on_batch(np.stack(batch)))
    assert scorer.score(batch) == pytest.approx((expected[:, 1] + expected[:, 3]).tolist(), abs=1e-5)

    outcome = filter_images(
        "nsfw",
        _file(),
        image_dir,
        NsfwSettings(model=str(path), confidence_threshold=0.0, batch_size=3, device="cpu"),
    )
    assert sorted(r.image_id for r in outcome.removals) == sorted(SOURCES)  # every image scored
    assert outcome.kept.info["nsfw_filter"]["model"] == scorer.model_name

    # the same file through the command line's --model, in place, as users run the original
    from click.testing import CliRunner

    from redcaps.cli.main import main

    annotations = tmp_path / "pics_2020.json"
    ann.save(annotations, _file(("rocket", "coffee")))
    args = ["filter-nsfw", "-a", str(annotations), "-i", str(image_dir), "--model", str(path), "-t", "0"]
    result = CliRunner().invoke(main, [*args, "--device", "cpu"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    filtered = ann.load(annotations)
    assert filtered.annotations == [] and filtered.info["nsfw_filter"]["model"] == scorer.model_name
    assert not (image_dir / "pics" / "rocket.jpg").exists() and (image_dir / "pics" / "camera.jpg").exists()


def keras_2_2_4_h5(path: Path, config: dict[str, Any], weights: dict[str, np.ndarray]) -> None:
    """Write a model the way Keras 2.2.4 ``model.save`` did (HDF5 attributes and groups), with a
    2019-style SGD ``training_config`` that Keras 3 cannot compile: the original file's layout."""
    import h5py

    from redcaps.filters.gantman import layer_weights

    training = {
        "optimizer_config": {"class_name": "SGD", "config": {"lr": 1e-4, "momentum": 0.9, "decay": 0.0}},
        "loss": "categorical_crossentropy",
        "metrics": ["accuracy"],
        "sample_weight_mode": None,
        "loss_weights": None,
    }
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["training_config"] = json.dumps(training).encode()
        group = f.create_group("model_weights")
        group.attrs["keras_version"] = b"2.2.4"
        group.attrs["backend"] = b"tensorflow"
        layers = config["config"]["layers"]
        group.attrs["layer_names"] = [layer["name"].encode() for layer in layers]
        for layer in layers:
            values = layer_weights(layer, weights)
            names = [k for k in weights if k.startswith(layer["name"] + "/")]
            # Keras 2 order is get_weights() order, which layer_weights returns; recover the names
            ordered = [n for v in values for n in names if weights[n] is v]
            assert len(ordered) == len(values), layer["name"]
            layer_group = group.create_group(layer["name"])
            layer_group.attrs["weight_names"] = [f"{n}:0".encode() for n in ordered]
            for name, value in zip(ordered, values, strict=True):
                layer_group.create_dataset(f"{name}:0", data=value)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning:keras.*")
def test_keras_2_2_4_h5_of_gantman_inception_loads(
    nsfwjs_tarball: Path, photo_dir: Path, tmp_path: Path
) -> None:
    """GantMan's own InceptionV3 config (Keras 2.2.4) and weights, saved in Keras 2.2.4's HDF5
    layout: as close to the real nsfw.299x299.h5 as can be built offline. It loads through
    ``--model`` and scores like the ONNX conversion of the same weights."""
    import tarfile

    import onnxruntime as ort

    from redcaps.filters import gantman

    with tarfile.open(nsfwjs_tarball) as tar:

        def text(name: str) -> str:
            member = tar.extractfile(f"package/dist/models/inception_v3/{name}")
            assert member is not None
            return member.read().decode()

        config, weights = gantman.read_tfjs(
            text("model.min.js"), [text(f"group1-shard{i}of6.min.js") for i in range(1, 7)]
        )
    path = tmp_path / "nsfw.299x299.h5"
    keras_2_2_4_h5(path, config, weights)
    scorer = NsfwScorer(path, device="cpu")
    assert scorer.size == 299
    batch = [scorer.prepare(photo_dir / "pics" / f"{i}.jpg") for i in ("chelsea", "rocket")]
    session = ort.InferenceSession(gantman.onnx_model(config, weights).SerializeToString())
    probs = session.run(None, {"input": np.stack(batch)})[0]
    np.testing.assert_allclose(scorer.probabilities(batch), probs, atol=1e-4)
    assert all(s < 0.1 for s in scorer.score(batch))


# --- errors -----------------------------------------------------------------------------------


def test_missing_default_model_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(models.ENV_VAR, str(tmp_path / "empty"))
    with pytest.raises(ModelError) as err:
        NsfwScorer()
    assert "\n" not in str(err.value)
    assert f"python -m redcaps.filters.models nsfw --dest {tmp_path / 'empty'}" in str(err.value)
    with pytest.raises(ModelError, match="not found"):
        filter_images("nsfw", _file(), tmp_path, NsfwSettings())
    with pytest.raises(ModelError, match="not found"):
        NsfwScorer(tmp_path / "nope.h5")


def test_bad_device_format_and_files(nsfw_model_dir: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    with pytest.raises(ModelError, match="unknown device"):
        NsfwScorer(nsfw_model_dir / NSFW_FILE, device="tpu")
    weird = tmp_path / "model.bin"
    weird.write_bytes(b"x")
    with pytest.raises(ModelError, match=r"\.onnx, \.h5 or \.keras"):
        NsfwScorer(weird)
    for name in ("broken.onnx", "broken.h5"):
        (tmp_path / name).write_bytes(b"not a model")
        with pytest.raises(ModelError, match="not a loadable") as err:
            NsfwScorer(tmp_path / name, device="cpu")
        assert "\n" not in str(err.value)
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ModelError, match="cuda"):
            NsfwScorer(nsfw_model_dir / NSFW_FILE, device="cuda")


def test_default_threads_leave_one_core_to_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    from redcaps.filters import nsfw

    monkeypatch.setattr(nsfw.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert nsfw.default_threads() == 7
    monkeypatch.setattr(nsfw.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert nsfw.default_threads() == 1


def test_wrong_output_shape_is_refused(nsfw_model_dir: Path) -> None:
    scorer = NsfwScorer(nsfw_model_dir / NSFW_FILE, device="cpu")
    scorer._run = lambda batch: np.zeros((len(batch), 2), np.float32)
    with pytest.raises(ModelError, match="GantMan classes"):
        scorer.score([np.zeros((224, 224, 3), np.float32)])
