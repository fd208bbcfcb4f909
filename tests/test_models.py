"""The NSFW model installer: npm tarball pinning, the TF.js reader, the Keras->ONNX translation.

The session fixtures ``nsfwjs_tarball`` and ``nsfw_model_dir`` are in tests/models_fixture.py.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from redcaps.filters import gantman, models
from redcaps.filters.gantman import TfjsError
from redcaps.filters.models import NSFW_TARBALL_SHA256, NSFW_VARIANTS, ModelError
from tests.models_fixture import NSFW_FILE

# --- a fake nsfwjs package -------------------------------------------------------------------


def browserify(literal: str, var: str = "a") -> str:
    """A module in the shape nsfwjs ships (``{1:[function(e,a,n){a.exports=...}``)."""
    return (
        "!function(e){module.exports=e()}(function(){return function e(a,n,i){}({1:[function(e,"
        f"{var},n){{{var}.exports={literal}}},{{}}]}},{{}},[1])(1)}});"
    )


def layer(name: str, kind: str, inputs: list[str], **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "class_name": kind,
        "config": {"name": name, "trainable": False, **config},
        "inbound_nodes": [[[i, 0, 0, {}] for i in inputs]] if inputs else [],
    }


def conv(
    name: str, src: str, filters: int, kernel: int, stride: int, padding: str, **extra: Any
) -> dict[str, Any]:
    return layer(
        name,
        "Conv2D",
        [src],
        filters=filters,
        kernel_size=[kernel, kernel],
        strides=[stride, stride],
        padding=padding,
        data_format="channels_last",
        dilation_rate=[1, 1],
        activation=extra.pop("activation", "linear"),
        use_bias=extra.pop("use_bias", False),
        **extra,
    )


def tiny_config(size: int = 17) -> dict[str, Any]:
    """Every layer kind the GantMan models use, with the awkward settings (odd sizes, 'same' strides)."""
    layers = [
        layer("input_1", "InputLayer", [], batch_input_shape=[None, size, size, 3], dtype="float32"),
        layer("pad", "ZeroPadding2D", ["input_1"], padding=[[0, 1], [0, 1]], data_format="channels_last"),
        conv("conv_a", "pad", 8, 3, 2, "valid"),
        layer("bn_a", "BatchNormalization", ["conv_a"], axis=-1, epsilon=0.001, center=True, scale=True),
        layer("relu6", "ReLU", ["bn_a"], max_value=6, negative_slope=0, threshold=0),
        layer(
            "dw",
            "DepthwiseConv2D",
            ["relu6"],
            kernel_size=[3, 3],
            strides=[1, 1],
            padding="same",
            data_format="channels_last",
            dilation_rate=[1, 1],
            activation="linear",
            use_bias=False,
            depth_multiplier=1,
        ),
        layer("bn_dw", "BatchNormalization", ["dw"], axis=3, epsilon=0.001, center=True, scale=False),
        layer("add", "Add", ["bn_dw", "relu6"]),
        conv("conv_b", "add", 4, 3, 2, "same", use_bias=True, activation="relu"),
        layer("avgpool", "AveragePooling2D", ["add"], pool_size=[3, 3], strides=[2, 2], padding="same"),
        layer("cat", "Concatenate", ["conv_b", "avgpool"], axis=-1),
        layer("act", "Activation", ["cat"], activation="relu"),
        layer("flatten", "Flatten", ["act"], data_format="channels_last"),
        layer("dense_1", "Dense", ["flatten"], units=6, activation="relu", use_bias=True),
        layer("dropout", "Dropout", ["dense_1"], rate=0.5, noise_shape=None, seed=None),
        layer("dense_2", "Dense", ["dropout"], units=5, activation="softmax", use_bias=True),
    ]
    return {
        "class_name": "Model",
        "config": {
            "name": "tiny",
            "layers": layers,
            "input_layers": [["input_1", 0, 0]],
            "output_layers": [["dense_2", 0, 0]],
        },
    }


def tiny_weights() -> dict[str, tuple[list[int], float, float]]:
    """name -> (shape, min, scale) for the manifest; the uint8 values come from ``seed``."""
    shapes = {
        "conv_a/kernel": [3, 3, 3, 8],
        "bn_a/gamma": [8],
        "bn_a/beta": [8],
        "bn_a/moving_mean": [8],
        "bn_a/moving_variance": [8],
        "dw/depthwise_kernel": [3, 3, 8, 1],
        "bn_dw/beta": [8],
        "bn_dw/moving_mean": [8],
        "bn_dw/moving_variance": [8],
        "conv_b/kernel": [3, 3, 8, 4],
        "conv_b/bias": [4],
        "dense_1/kernel": [4 * 4 * 12, 6],
        "dense_1/bias": [6],
        "dense_2/kernel": [6, 5],
        "dense_2/bias": [5],
    }
    return {
        name: (shape, 0.1 if "variance" in name else -0.5, 0.004 if "variance" in name else 1 / 255)
        for name, shape in shapes.items()
    }


def fake_package(seed: int = 0, size: int = 17) -> tuple[str, list[str], dict[str, np.ndarray]]:
    """(model.min.js, [shard.min.js], expected float weights) for the tiny config."""
    config = tiny_config(size)
    specs = tiny_weights()
    rng = np.random.default_rng(seed)
    manifest, blob, expected = [], b"", {}
    for name, (shape, low, scale) in specs.items():
        q = rng.integers(0, 256, size=int(np.prod(shape)), dtype=np.uint8)
        blob += q.tobytes()
        expected[name] = (q.astype(np.float64) * scale + low).astype(np.float32).reshape(shape)
        manifest.append({"name": name, "shape": shape, "dtype": "float32",
                         "quantization": {"min": low, "scale": scale, "dtype": "uint8"}})  # fmt: skip
    model = {
        "modelTopology": {"keras_version": "2.2.4", "backend": "tensorflow", "model_config": config},
        "weightsManifest": [{"paths": ["group1-shard1of1"], "weights": manifest}],
    }
    # minify like the package: unquoted keys, !0/!1 booleans, leading-dot numbers
    text = json.dumps(model, separators=(",", ":"))
    text = text.replace("true", "!0").replace("false", "!1").replace('"name":', "name:").replace(":0.", ":.")
    shard = browserify(json.dumps(base64.b64encode(blob).decode()))
    return browserify(text), [shard], expected


def fake_tarball(path: Path, directory: str = "mobilenet_v2") -> Path:
    model, shards, _ = fake_package()
    members = {
        f"package/dist/models/{directory}/model.min.js": model,
        f"package/dist/models/{directory}/group1-shard1of1.min.js": shards[0],
        "package/LICENSE": "MIT License (fake)",
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


# --- the JS reader ----------------------------------------------------------------------------


def test_js_literal_reads_minified_javascript() -> None:
    text = '{a:!0,b:!1,c:null,d:.5,e:-.25,f:1e-3,g:-2.5E+2,h:[1,"x\\"y",{i:3.}],"j k":"l"}'
    assert gantman.js_literal(text) == {
        "a": True, "b": False, "c": None, "d": 0.5, "e": -0.25, "f": 0.001, "g": -250.0,
        "h": [1, 'x"y', {"i": 3.0}], "j k": "l",
    }  # fmt: skip
    assert gantman.module_export(browserify('{x:"y"}', var="h")) == {"x": "y"}


@pytest.mark.parametrize("code", ['{a:require("fs")}', "{a:1+2}", "{a:function(){}}"])
def test_js_literal_refuses_code(code: str) -> None:
    with pytest.raises(TfjsError):
        gantman.js_literal(code)


def test_module_export_needs_a_browserify_module() -> None:
    with pytest.raises(TfjsError, match="browserify"):
        gantman.module_export("module.exports = {a: 1};")


def test_read_tfjs_dequantizes_like_tfjs() -> None:
    model, shards, expected = fake_package(seed=3)
    config, weights = gantman.read_tfjs(model, shards)
    assert config["config"]["name"] == "tiny" and gantman.input_size(config) == 17
    assert weights.keys() == expected.keys()
    for name, value in expected.items():
        assert weights[name].dtype == np.float32
        np.testing.assert_array_equal(weights[name], value, err_msg=name)
    assert gantman.dequantize(
        bytes([0, 1, 255]), [3], {"dtype": "uint8", "min": -1.0, "scale": 0.5}
    ).tolist() == [
        -1.0,
        -0.5,
        126.5,
    ]


def test_read_tfjs_rejects_short_long_and_mismatched_shards() -> None:
    model, shards, _ = fake_package()
    payload = base64.b64decode(gantman.module_export(shards[0]))
    short = browserify(json.dumps(base64.b64encode(payload[:-1]).decode()))
    long = browserify(json.dumps(base64.b64encode(payload + b"\0").decode()))
    with pytest.raises(TfjsError, match="weights end before"):
        gantman.read_tfjs(model, [short])
    with pytest.raises(TfjsError, match="unused weight bytes"):
        gantman.read_tfjs(model, [long])
    with pytest.raises(TfjsError, match="names 1 shards, got 2"):
        gantman.read_tfjs(model, shards * 2)
    with pytest.raises(TfjsError, match="not one base64 string"):
        gantman.read_tfjs(model, [browserify('"not base64!"')])
    with pytest.raises(TfjsError, match="uint16"):
        gantman.dequantize(b"\0\0", [1], {"dtype": "uint16", "min": 0, "scale": 1})


# --- Keras -> ONNX translation ----------------------------------------------------------------


@pytest.mark.slow  # imports TensorFlow (~5 s)
def test_onnx_translation_equals_keras_on_every_layer_kind() -> None:
    """The translated graph computes what Keras computes from the same config and weights."""
    ort = pytest.importorskip("onnxruntime")
    model, shards, _ = fake_package(seed=1)
    config, weights = gantman.read_tfjs(model, shards)
    session = ort.InferenceSession(gantman.onnx_model(config, weights).SerializeToString())
    x = np.random.default_rng(2).random((3, 17, 17, 3), dtype=np.float32)
    reference = np.asarray(gantman.keras_model(config, weights).predict_on_batch(x))
    assert reference.shape == (3, 5)
    np.testing.assert_allclose(session.run(None, {"input": x})[0], reference, atol=1e-5)


def test_onnx_max_pool_and_unsupported_layers() -> None:
    ort = pytest.importorskip("onnxruntime")
    from onnx import helper

    graph = gantman._OnnxGraph()
    pool = gantman._convert_layer(
        graph,
        layer("mp", "MaxPooling2D", ["x"], pool_size=[3, 3], strides=[2, 2], padding="valid"),
        ["x"],
        [],
    )
    onnx_graph = helper.make_graph(
        graph.nodes,
        "g",
        [helper.make_tensor_value_info("x", 1, [1, 1, 7, 7])],
        [helper.make_tensor_value_info(pool, 1, None)],
    )
    proto = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    x = np.arange(49, dtype=np.float32).reshape(1, 1, 7, 7)
    out = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_array_equal(out[0, 0], [[16, 18, 20], [30, 32, 34], [44, 46, 48]])
    with pytest.raises(TfjsError, match="unsupported layer LSTM"):
        gantman._convert_layer(graph, layer("l", "LSTM", ["x"]), ["x"], [])
    with pytest.raises(TfjsError, match="unsupported activation 'tanh'"):
        gantman._convert_layer(graph, layer("a", "Activation", ["x"], activation="tanh"), ["x"], [])


# --- the installer ----------------------------------------------------------------------------


def test_tampered_tarball_is_refused(tmp_path: Path) -> None:
    fake = fake_tarball(tmp_path / "nsfwjs-4.4.0.tgz")
    dest = tmp_path / "models"
    with pytest.raises(ModelError, match="does not match the pinned") as err:
        models.install_nsfw_model(dest, "nsfw", tarball=fake)
    assert "\n" not in str(err.value)
    assert not dest.exists()
    assert models.main(["nsfw", "--dest", str(dest), "--tarball", str(fake)]) == 1
    assert not dest.exists()


def test_conversion_of_a_verified_tarball_layout(tmp_path: Path) -> None:
    """convert_nsfwjs reads the package layout (the hash check is the caller's, tested above)."""
    fake = fake_tarball(tmp_path / "fake.tgz")
    data, provenance = models.convert_nsfwjs(fake, NSFW_VARIANTS["nsfw"])
    assert provenance["sha256"] == hashlib.sha256(data).hexdigest()
    assert provenance["members"] == [
        "package/dist/models/mobilenet_v2/model.min.js",
        "package/dist/models/mobilenet_v2/group1-shard1of1.min.js",
    ]
    assert provenance["license_text"] == "MIT License (fake)"
    assert data == models.convert_nsfwjs(fake, NSFW_VARIANTS["nsfw"])[0]  # deterministic bytes
    with pytest.raises(ModelError, match="inception_v3/model.min.js missing"):
        models.convert_nsfwjs(fake, NSFW_VARIANTS["nsfw-inception"])


def test_tarball_option_is_for_nsfw_models_only(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        models.main(["faces", "--dest", str(tmp_path), "--tarball", str(tmp_path / "x.tgz")])


def test_npm_missing_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    with pytest.raises(ModelError, match="npm not found"):
        models.install_nsfw_model(tmp_path / "models", "nsfw")


def test_installed_default_model_and_provenance(
    nsfw_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = nsfw_model_dir / NSFW_FILE
    provenance = json.loads((nsfw_model_dir / f"{NSFW_FILE}.provenance.json").read_text())
    assert provenance["package"] == "nsfwjs" and provenance["version"] == "4.4.0"
    assert provenance["tarball_sha256"] == NSFW_TARBALL_SHA256
    assert provenance["sha256"] == models.sha256_file(path)
    # reproducible: the same bytes as the conversion documented in docs/models.md
    assert provenance["sha256"] == NSFW_VARIANTS["nsfw"].reference_sha256 and provenance["matches_reference"]
    assert provenance["license"] == "MIT" and "Permission is hereby granted" in provenance["license_text"]
    assert {"python", "numpy", "onnx"} <= provenance["tools"].keys()
    assert provenance["classes"] == ["drawings", "hentai", "neutral", "porn", "sexy"]

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("an intact install must not fetch again")

    monkeypatch.setattr(models, "npm_pack", no_network)
    assert models.main(["nsfw", "--dest", str(nsfw_model_dir)]) == 0
    assert capsys.readouterr().out.strip() == f"nsfw: {path}"


def test_damaged_install_is_rebuilt(
    nsfw_model_dir: Path, nsfwjs_tarball: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "models"
    dest.mkdir()
    for name in (NSFW_FILE, f"{NSFW_FILE}.provenance.json"):
        (dest / name).write_bytes((nsfw_model_dir / name).read_bytes())
    (dest / NSFW_FILE).write_bytes(b"truncated")
    fetched: list[str] = []

    def fake_pack(spec: str, sha256: str, where: Path) -> Path:
        fetched.append(spec)
        return models.check_sha256(nsfwjs_tarball, sha256)

    monkeypatch.setattr(models, "npm_pack", fake_pack)
    models.install_nsfw_model(dest, "nsfw")
    assert fetched == ["nsfwjs@4.4.0"]
    assert models.sha256_file(dest / NSFW_FILE) == NSFW_VARIANTS["nsfw"].reference_sha256


@pytest.mark.slow
def test_real_tarball_converts_deterministically(nsfwjs_tarball: Path, nsfw_model_dir: Path) -> None:
    first, _ = models.convert_nsfwjs(nsfwjs_tarball, NSFW_VARIANTS["nsfw"])
    second, _ = models.convert_nsfwjs(nsfwjs_tarball, NSFW_VARIANTS["nsfw"])
    assert first == second
    assert hashlib.sha256(first).hexdigest() == models.sha256_file(nsfw_model_dir / NSFW_FILE)


@pytest.mark.slow
def test_default_onnx_equals_the_rebuilt_keras_model(nsfwjs_tarball: Path, nsfw_model_dir: Path) -> None:
    """The shipped ONNX computes what the original Keras MobileNetV2 computes with the same weights."""
    ort = pytest.importorskip("onnxruntime")
    with tarfile.open(nsfwjs_tarball) as tar:

        def text(name: str) -> str:
            member = tar.extractfile(f"package/dist/models/mobilenet_v2/{name}")
            assert member is not None
            return member.read().decode()

        config, weights = gantman.read_tfjs(text("model.min.js"), [text("group1-shard1of1.min.js")])
    keras_model = gantman.keras_model(config, weights)
    assert keras_model.input_shape == (None, 224, 224, 3) and keras_model.output_shape == (None, 5)
    session = ort.InferenceSession(str(nsfw_model_dir / NSFW_FILE))
    x = np.random.default_rng(0).random((4, 224, 224, 3), dtype=np.float32)
    np.testing.assert_allclose(
        session.run(None, {"input": x})[0], np.asarray(keras_model.predict_on_batch(x)), atol=1e-4
    )
