"""The GantMan NSFW models as npm ``nsfwjs`` publishes them, turned into Keras and ONNX models.

``nsfwjs`` ships the GantMan Keras 2.2.4 models converted to TensorFlow.js "layers" format: the
Keras model config plus 8-bit quantized weights (``float = q * scale + min``), both wrapped in
browserify ``.min.js`` modules (the weights as one base64 string per shard). This module reads
those files WITHOUT executing them (a tiny JS-literal reader), dequantizes the weights exactly as
TF.js does, and

* rebuilds the original Keras model from its own config (:func:`keras_model`, needs TensorFlow):
  the reference the ONNX file is checked against, and what an ``.h5`` would contain;
* writes the same graph as ONNX (:func:`onnx_model`, needs only the ``onnx`` package): one node
  per Keras op, NHWC input like the original, deterministic bytes for the same weights.

A direct graph translation is used because Keras 3's ONNX export for the TensorFlow backend
needs ``tf2onnx`` (not a dependency, tied to older TensorFlow releases) and a torch
re-implementation would be a second copy of both architectures; the translation is checked
against :func:`keras_model` in the tests.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from redcaps.errors import RedCapsError

#: Output order of every GantMan model.
CLASSES = ("drawings", "hentai", "neutral", "porn", "sexy")
ONNX_OPSET = 17
ONNX_INPUT = "input"
ONNX_OUTPUT = "probabilities"


class TfjsError(RedCapsError):
    """A TF.js model file that does not have the expected shape (one-line message)."""


# --- reading the .min.js modules -------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*")"""
    r"""|(?P<num>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"""
    r"""|(?P<bool>!0|!1)"""
    r"""|(?P<ident>[A-Za-z_$][\w$]*)"""
    r"""|(?P<punct>[{}\[\]:,]))"""
)
_EXPORT = re.compile(r"\{1:\[function\(\w+,(\w+),\w+\)\{\1\.exports=")
_EXPORT_END = "},{}]},{},[1])(1)"


def js_literal(text: str) -> Any:
    """Parse a minified JS object/array/string literal (unquoted keys, ``!0``, ``.5``) as JSON."""
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise TfjsError(f"unexpected JavaScript at offset {pos}: {text[pos : pos + 20]!r}")
        pos = match.end()
        kind = match.lastgroup
        value = match.group(kind or "")
        if kind == "num":
            value = re.sub(r"^(-?)\.", r"\g<1>0.", value)
            value = re.sub(r"\.(?=$|[eE])", ".0", value)
        elif kind == "bool":
            value = "true" if value == "!0" else "false"
        elif kind == "ident" and value not in ("null", "true", "false"):
            value = json.dumps(value)
        out.append(value)
    try:
        return json.loads("".join(out))
    except json.JSONDecodeError as exc:
        raise TfjsError(f"not a JSON-like literal: {exc}") from None


def module_export(source: str) -> Any:
    """The literal a browserify bundle exports (``{1:[function(e,a,n){a.exports=<literal>}...``)."""
    match = _EXPORT.search(source)
    end = source.rfind(_EXPORT_END)
    if match is None or end < match.end():
        raise TfjsError("not a browserify module exporting one literal")
    return js_literal(source[match.end() : end])


def dequantize(raw: bytes, shape: list[int], quantization: Mapping[str, Any]) -> np.ndarray:
    """TF.js uint8 dequantization: ``q * scale + min`` (float64 maths, stored as float32)."""
    if quantization.get("dtype") != "uint8":
        raise TfjsError(f"unsupported quantization {quantization.get('dtype')!r}")
    q = np.frombuffer(raw, dtype=np.uint8).astype(np.float64)
    return (q * float(quantization["scale"]) + float(quantization["min"])).astype(np.float32).reshape(shape)


def read_tfjs(model_source: str, shard_sources: list[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(Keras model config, weights by name) from the ``model.min.js`` and shard sources, in order."""
    model = module_export(model_source)
    try:
        config = model["modelTopology"]["model_config"]
        (group,) = model["weightsManifest"]
        specs = group["weights"]
    except (KeyError, TypeError, ValueError):
        raise TfjsError(
            "model.min.js lacks modelTopology.model_config or one weightsManifest group"
        ) from None
    if len(group["paths"]) != len(shard_sources):
        raise TfjsError(f"manifest names {len(group['paths'])} shards, got {len(shard_sources)}")
    try:
        blob = b"".join(base64.b64decode(module_export(s), validate=True) for s in shard_sources)
    except (TypeError, ValueError) as exc:  # binascii.Error is a ValueError
        raise TfjsError(f"weight shard is not one base64 string: {exc}") from None
    weights: dict[str, np.ndarray] = {}
    offset = 0
    for spec in specs:
        size = int(np.prod(spec["shape"], dtype=np.int64))  # one byte per uint8 value
        if offset + size > len(blob):
            raise TfjsError(f"weights end before {spec['name']}")
        weights[spec["name"]] = dequantize(blob[offset : offset + size], spec["shape"], spec["quantization"])
        offset += size
    if offset != len(blob):
        raise TfjsError(f"{len(blob) - offset} unused weight bytes")
    return config, weights


def input_size(config: Mapping[str, Any]) -> int:
    """Square input side (224 or 299) from the InputLayer's ``batch_input_shape``."""
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "InputLayer":
            _, height, width, channels = layer["config"]["batch_input_shape"]
            if height != width or channels != 3:
                raise TfjsError(f"unexpected input shape {layer['config']['batch_input_shape']}")
            return int(height)
    raise TfjsError("no InputLayer")


# --- Keras (reference) -----------------------------------------------------------------------


def layer_weights(layer: Mapping[str, Any], weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """A layer's weights in Keras ``get_weights()`` order."""
    name, kind, cfg = layer["name"], layer["class_name"], layer["config"]
    if kind in ("Conv2D", "Dense"):
        names = ["kernel"] + (["bias"] if cfg.get("use_bias", True) else [])
    elif kind == "DepthwiseConv2D":
        names = ["depthwise_kernel"] + (["bias"] if cfg.get("use_bias", True) else [])
    elif kind == "BatchNormalization":
        names = (["gamma"] if cfg.get("scale", True) else []) + (["beta"] if cfg.get("center", True) else [])
        names += ["moving_mean", "moving_variance"]
    else:
        return []
    try:
        return [weights[f"{name}/{w}"] for w in names]
    except KeyError as exc:
        raise TfjsError(f"weight {exc.args[0]} missing from the manifest") from None


def keras_model(config: Mapping[str, Any], weights: Mapping[str, np.ndarray]) -> Any:
    """The original Keras model rebuilt from its own config, with the dequantized weights."""
    from keras.src.legacy.saving import saving_utils  # the loader Keras uses for Keras 2 .h5 configs

    model = saving_utils.model_from_config(copy.deepcopy(dict(config)))  # it mutates its argument
    for layer in config["config"]["layers"]:
        values = layer_weights(layer, weights)
        if values:
            model.get_layer(layer["name"]).set_weights(values)
    return model


# --- ONNX ------------------------------------------------------------------------------------


class _OnnxGraph:
    """Accumulates nodes and initializers; tensors stay NCHW between the input and the head."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def const(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


def _pool_attrs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "kernel_shape": list(cfg["pool_size"]),
        "strides": list(cfg["strides"] or cfg["pool_size"]),
        "auto_pad": "SAME_UPPER" if cfg["padding"] == "same" else "VALID",
    }


def _activation(graph: _OnnxGraph, name: str, tensor: str, activation: str) -> str:
    if activation == "linear":
        return tensor
    if activation == "relu":
        return graph.node("Relu", [tensor], f"{name}/relu")
    if activation == "softmax":
        return graph.node("Softmax", [tensor], f"{name}/softmax", axis=-1)
    raise TfjsError(f"{name}: unsupported activation {activation!r}")


def _convert_layer(
    graph: _OnnxGraph, layer: Mapping[str, Any], inputs: list[str], values: list[np.ndarray]
) -> str:
    """One Keras 2.2.4 layer as ONNX nodes; returns the output tensor name."""
    name, kind, cfg = layer["name"], layer["class_name"], layer["config"]
    x = inputs[0]
    if kind == "Dropout":
        return x
    if kind in ("Conv2D", "DepthwiseConv2D"):
        kernel = values[0]
        if kind == "Conv2D":
            w, group = kernel.transpose(3, 2, 0, 1), 1  # (kh, kw, in, out) -> (out, in, kh, kw)
        else:
            kh, kw, cin, mult = kernel.shape
            w, group = kernel.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw), cin
        args = [x, graph.const(f"{name}/kernel", w)]
        if len(values) > 1:
            args.append(graph.const(f"{name}/bias", values[1]))
        y = graph.node(
            "Conv",
            args,
            f"{name}/conv",
            kernel_shape=list(w.shape[2:]),
            strides=list(cfg["strides"]),
            dilations=list(cfg["dilation_rate"]),
            group=group,
            auto_pad="SAME_UPPER" if cfg["padding"] == "same" else "VALID",
        )
        return _activation(graph, name, y, cfg["activation"])
    if kind == "BatchNormalization":
        if cfg["axis"] not in (-1, 3):
            raise TfjsError(f"{name}: BatchNormalization axis {cfg['axis']}")
        it = iter(values)
        gamma = next(it) if cfg.get("scale", True) else None
        beta = next(it) if cfg.get("center", True) else None
        mean, var = next(it), next(it)
        gamma = np.ones_like(mean) if gamma is None else gamma
        beta = np.zeros_like(mean) if beta is None else beta
        params = [
            graph.const(f"{name}/{p}", v)
            for p, v in zip(("gamma", "beta", "mean", "var"), (gamma, beta, mean, var), strict=True)
        ]
        return graph.node("BatchNormalization", [x, *params], f"{name}/bn", epsilon=float(cfg["epsilon"]))
    if kind == "ReLU":
        if cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
            raise TfjsError(f"{name}: leaky/thresholded ReLU not supported")
        if cfg.get("max_value") is None:
            return graph.node("Relu", [x], f"{name}/relu")
        low = graph.const(f"{name}/min", np.array(0.0, np.float32))
        high = graph.const(f"{name}/max", np.array(cfg["max_value"], np.float32))
        return graph.node("Clip", [x, low, high], f"{name}/clip")
    if kind == "Activation":
        return _activation(graph, name, x, cfg["activation"])
    if kind == "ZeroPadding2D":
        (top, bottom), (left, right) = cfg["padding"]
        pads = graph.const(f"{name}/pads", np.array([0, 0, top, left, 0, 0, bottom, right], np.int64))
        return graph.node("Pad", [x, pads], f"{name}/pad")
    if kind == "MaxPooling2D":
        return graph.node("MaxPool", [x], f"{name}/pool", **_pool_attrs(cfg))
    if kind == "AveragePooling2D":  # Keras 'same' average pooling ignores the padding
        return graph.node("AveragePool", [x], f"{name}/pool", count_include_pad=0, **_pool_attrs(cfg))
    if kind == "Add":
        return graph.node("Sum", inputs, f"{name}/add")
    if kind == "Concatenate":
        if cfg["axis"] not in (-1, 3):
            raise TfjsError(f"{name}: Concatenate axis {cfg['axis']}")
        return graph.node("Concat", inputs, f"{name}/concat", axis=1)
    if kind == "Flatten":  # Keras flattens NHWC: go back to channels-last first
        nhwc = graph.node("Transpose", [x], f"{name}/nhwc", perm=[0, 2, 3, 1])
        return graph.node("Flatten", [nhwc], f"{name}/flatten", axis=1)
    if kind == "Dense":
        y = graph.node(
            "Gemm",
            [x, graph.const(f"{name}/kernel", values[0]), graph.const(f"{name}/bias", values[1])],
            f"{name}/dense",
        )
        return _activation(graph, name, y, cfg["activation"])
    raise TfjsError(f"{name}: unsupported layer {kind}")


def onnx_model(config: Mapping[str, Any], weights: Mapping[str, np.ndarray], *, doc: str = "") -> Any:
    """The Keras graph as an ONNX ModelProto: input (N, S, S, 3) RGB/255, output (N, 5) softmax."""
    from onnx import TensorProto, checker, helper

    size = input_size(config)
    graph = _OnnxGraph()
    tensors: dict[str, str] = {}
    body = config["config"]
    for layer in body["layers"]:
        if layer["class_name"] == "InputLayer":
            tensors[layer["name"]] = graph.node("Transpose", [ONNX_INPUT], "input/nchw", perm=[0, 3, 1, 2])
            continue
        (inbound,) = layer["inbound_nodes"]  # every layer is called once in these models
        inputs = [tensors[src] for src, *_ in inbound]
        tensors[layer["name"]] = _convert_layer(graph, layer, inputs, layer_weights(layer, weights))
    ((output_layer, _, _),) = body["output_layers"]
    graph.node("Identity", [tensors[output_layer]], ONNX_OUTPUT)
    onnx_graph = helper.make_graph(
        graph.nodes,
        body.get("name", "gantman"),
        [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, ["batch", size, size, 3])],
        [helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, ["batch", len(CLASSES)])],
        graph.initializers,
    )
    model = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        producer_name="redcaps.filters.gantman",
        doc_string=doc,
    )
    model.ir_version = 8  # readable by onnxruntime >= 1.10 (opset 17 needs IR 8)
    helper.set_model_props(model, {"classes": ",".join(CLASSES), "input_size": str(size)})
    checker.check_model(model)
    return model
