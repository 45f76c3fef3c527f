"""Output shapes of a Keras 2 model from its config alone, for the layers whose shape rule is plain.

A small shape inference for ``inspect`` without TensorFlow: shapes flow from
the input layers' ``batch_input_shape`` through each layer's rule below, in
the config's (topological) order. A layer without a rule, or an input whose
shape is unknown, gives ``None`` (unknown) downstream: never a guess.
Dimensions are ``None`` where Keras' own would be (the batch, free time steps).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from freezekeras.kerasfile.config import (
    MODEL_CLASSES,
    first_node_index,
    input_layers,
    layer_name,
    layers_of,
    references,
)

Shape = tuple[int | None, ...]

#: Layers whose output has their input's shape.
SAME_SHAPE = {"Activation", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
              "GaussianNoise", "GaussianDropout", "AlphaDropout", "BatchNormalization",
              "LayerNormalization", "ReLU", "LeakyReLU", "PReLU", "ELU", "ThresholdedReLU", "Softmax",
              "ActivityRegularization", "Masking", "UnitNormalization"}
#: Elementwise merges: the output has the inputs' shapes broadcast together.
MERGES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}


def model_output_shapes(config: dict[str, Any]) -> list[Shape | None]:
    """The shapes of a (Keras 2) model config's outputs, in its output order; ``None`` where unknown."""
    layers = layers_of(config)
    if config.get("class_name") == "Sequential":
        inputs = input_layers(config)
        shape = _batch_shape(inputs[0][0]) if inputs else None
        for layer in layers:
            if layer.get("class_name") != "InputLayer":
                shape = _one(layer_output_shapes(layer, [shape]))
        return [shape] if layers else []
    known: dict[tuple[str, int], list[Shape | None]] = {}
    for layer in layers:
        name = layer_name(layer)
        if layer.get("class_name") == "InputLayer":
            known[(name, 0)] = [_batch_shape(layer)]
            continue
        for index, node in enumerate(layer.get("inbound_nodes") or [], start=first_node_index(layer)):
            known[(name, index)] = layer_output_shapes(layer, _node_inputs(node, known))
    shapes = []
    for ref in references(config["config"].get("output_layers")):
        outputs = known.get((str(ref[0]), int(ref[1]) if len(ref) > 1 else 0), [])
        position = int(ref[2]) if len(ref) > 2 else 0
        shapes.append(outputs[position] if position < len(outputs) else None)
    return shapes


def layer_output_shapes(layer: dict[str, Any], inputs: Sequence[Shape | None]) -> list[Shape | None]:
    """The output shapes of one call of ``layer`` on inputs of ``inputs`` shapes."""
    class_name = layer.get("class_name")
    inner = layer.get("config") or {}
    if class_name in MODEL_CLASSES:
        return list(model_output_shapes(layer))
    if not inputs or any(shape is None for shape in inputs):
        return [None]
    if inner.get("data_format") == "channels_first":
        return [None]
    if class_name in SAME_SHAPE:
        return [inputs[0]] if len(inputs) == 1 else [None]
    if class_name in MERGES:
        return [_broadcast(inputs)]
    rule = _RULES.get(class_name)
    if rule is None:
        return [None]
    try:
        return [rule(inner, list(inputs))]
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError):
        return [None]


def _broadcast(shapes: Sequence[Shape]) -> Shape | None:
    """NumPy/TensorFlow broadcasting of static shapes (unknown against ``k``: ``k``); ``None`` if ranks differ."""
    if len({len(shape) for shape in shapes}) != 1:  # Keras reshapes inputs of other ranks first
        return None
    result = []
    for dims in zip(*shapes):
        sizes = {d for d in dims if d is not None and d != 1}
        if len(sizes) > 1:
            return None
        result.append(sizes.pop() if sizes else (1 if all(d == 1 for d in dims) else None))
    return tuple(result)


def _one(shapes: list[Shape | None]) -> Shape | None:
    return shapes[0] if len(shapes) == 1 else None


def _batch_shape(layer: dict[str, Any]) -> Shape | None:
    inner = layer.get("config") or {}
    shape = inner.get("batch_input_shape") or inner.get("batch_shape")
    return None if shape is None else tuple(None if d is None else int(d) for d in shape)


def _node_inputs(node: Any, known: dict[tuple[str, int], list[Shape | None]]) -> list[Shape | None]:
    """Input shapes of one call: Keras 2's ``[[layer, node, tensor, kwargs], ...]``."""
    if not isinstance(node, list):
        return []
    shapes = []
    for ref in node:
        if not (isinstance(ref, list) and len(ref) >= 3 and isinstance(ref[0], str)):
            return []
        outputs = known.get((ref[0], int(ref[1])), [])
        shapes.append(outputs[int(ref[2])] if int(ref[2]) < len(outputs) else None)
    return shapes


def _length(size: int | None, kernel: int, padding: str, stride: int, dilation: int = 1) -> int | None:
    """Keras' ``conv_output_length``."""
    if size is None:
        return None
    span = (kernel - 1) * dilation + 1
    if padding in {"same", "causal"}:
        out = size
    elif padding == "valid":
        out = size - span + 1
    else:
        raise ValueError(padding)
    return (out + stride - 1) // stride


def _conv(inner: dict[str, Any], inputs: list[Shape], channels: int | None = None) -> Shape:
    shape = inputs[0]
    spatial = shape[1:-1]
    kernel, strides = inner["kernel_size"], inner.get("strides", [1] * len(spatial))
    dilation = inner.get("dilation_rate", [1] * len(spatial))
    dilation = dilation if isinstance(dilation, list) else [dilation] * len(spatial)
    sizes = tuple(_length(s, k, inner.get("padding", "valid"), st, d)
                  for s, k, st, d in zip(spatial, kernel, strides, dilation))
    return (shape[0], *sizes, channels if channels is not None else inner["filters"])


def _depthwise(inner: dict[str, Any], inputs: list[Shape]) -> Shape:
    channels = inputs[0][-1]
    return _conv(inner, inputs, None if channels is None else channels * inner.get("depth_multiplier", 1))


def _pool(inner: dict[str, Any], inputs: list[Shape]) -> Shape:
    shape = inputs[0]
    pool, strides = inner["pool_size"], inner.get("strides") or inner["pool_size"]
    pool = pool if isinstance(pool, list) else [pool]
    strides = strides if isinstance(strides, list) else [strides]
    sizes = tuple(_length(s, p, inner.get("padding", "valid"), st) for s, p, st in zip(shape[1:-1], pool, strides))
    return (shape[0], *sizes, shape[-1])


def _global_pool(inner: dict[str, Any], inputs: list[Shape]) -> Shape:
    shape = inputs[0]
    if inner.get("keepdims"):
        return (shape[0], *([1] * (len(shape) - 2)), shape[-1])
    return (shape[0], shape[-1])


def _flatten(_inner: dict[str, Any], inputs: list[Shape]) -> Shape:
    rest = inputs[0][1:]
    return (inputs[0][0], None if None in rest else math.prod(rest))


def _reshape(inner: dict[str, Any], inputs: list[Shape]) -> Shape:
    target = list(inner["target_shape"])
    if -1 in target:
        rest = inputs[0][1:]
        known = math.prod(d for d in target if d != -1)
        target[target.index(-1)] = None if None in rest else math.prod(rest) // known
    return (inputs[0][0], *target)


def _concatenate(inner: dict[str, Any], inputs: list[Shape]) -> Shape:
    axis = inner.get("axis", -1) % len(inputs[0])
    if any(len(s) != len(inputs[0]) or s[:axis] + s[axis + 1:] != inputs[0][:axis] + inputs[0][axis + 1:]
           for s in inputs):
        raise ValueError("shapes differ off the concatenation axis")
    sizes = [s[axis] for s in inputs]
    return (*inputs[0][:axis], None if None in sizes else sum(sizes), *inputs[0][axis + 1:])


def _recurrent(inner: dict[str, Any], inputs: list[Shape]) -> Shape:
    if inner.get("return_state") or inner.get("time_major"):
        raise ValueError("several outputs, or time before batch")
    shape = inputs[0]
    return (shape[0], shape[1], inner["units"]) if inner.get("return_sequences") else (shape[0], inner["units"])


def _pad(inner: dict[str, Any], inputs: list[Shape], sign: int, key: str) -> Shape:
    """ZeroPadding (``sign`` 1) and Cropping (``sign`` -1) along the spatial dimensions."""
    shape = inputs[0]
    amounts, spatial = inner[key], shape[1:-1]
    if len(spatial) == 1:  # 1D: one (before, after) pair
        pairs = [amounts if isinstance(amounts, list) else [amounts, amounts]]
    else:  # ((before, after), ...) per dimension
        pairs = [a if isinstance(a, list) else [a, a] for a in amounts]
    if len(pairs) != len(spatial) or any(len(pair) != 2 for pair in pairs):
        raise ValueError("padding does not match the input's rank")
    sizes = tuple(None if s is None else s + sign * sum(pair) for s, pair in zip(spatial, pairs))
    return (shape[0], *sizes, shape[-1])


def _upsample(inner: dict[str, Any], inputs: list[Shape]) -> Shape:
    shape = inputs[0]
    size = inner["size"] if isinstance(inner["size"], list) else [inner["size"]]
    return (shape[0], *(None if s is None else s * k for s, k in zip(shape[1:-1], size)), shape[-1])


_RULES: dict[str, Callable[[dict[str, Any], list[Shape]], Shape]] = {
    "Dense": lambda inner, inputs: (*inputs[0][:-1], inner["units"]),
    "Embedding": lambda inner, inputs: (*inputs[0], inner["output_dim"]),
    "Conv1D": _conv, "Conv2D": _conv, "Conv3D": _conv, "SeparableConv1D": _conv, "SeparableConv2D": _conv,
    "DepthwiseConv2D": _depthwise,
    "MaxPooling1D": _pool, "MaxPooling2D": _pool, "MaxPooling3D": _pool,
    "AveragePooling1D": _pool, "AveragePooling2D": _pool, "AveragePooling3D": _pool,
    "GlobalAveragePooling1D": _global_pool, "GlobalAveragePooling2D": _global_pool,
    "GlobalAveragePooling3D": _global_pool, "GlobalMaxPooling1D": _global_pool,
    "GlobalMaxPooling2D": _global_pool, "GlobalMaxPooling3D": _global_pool,
    "Flatten": _flatten, "Reshape": _reshape, "Concatenate": _concatenate,
    "LSTM": _recurrent, "GRU": _recurrent, "SimpleRNN": _recurrent,
    "Permute": lambda inner, inputs: (inputs[0][0], *(inputs[0][d] for d in inner["dims"])),
    "RepeatVector": lambda inner, inputs: (inputs[0][0], inner["n"], *inputs[0][1:]),
    "ZeroPadding1D": lambda inner, inputs: _pad(inner, inputs, 1, "padding"),
    "ZeroPadding2D": lambda inner, inputs: _pad(inner, inputs, 1, "padding"),
    "ZeroPadding3D": lambda inner, inputs: _pad(inner, inputs, 1, "padding"),
    "Cropping1D": lambda inner, inputs: _pad(inner, inputs, -1, "cropping"),
    "Cropping2D": lambda inner, inputs: _pad(inner, inputs, -1, "cropping"),
    "Cropping3D": lambda inner, inputs: _pad(inner, inputs, -1, "cropping"),
    "UpSampling1D": _upsample, "UpSampling2D": _upsample, "UpSampling3D": _upsample,
}


def free_size_needed(config: dict[str, Any], start: int, limit: int) -> int | None:
    """The smallest of ``start``, ``2 * start``, ... up to ``limit`` that, given to the unknown dimensions past the
    batch of a (Keras 2) model's inputs, leaves every layer's output with sizes of 1 or more.

    A time axis shorter than the model's cropping, pooling or valid convolutions
    would leave nothing (or less) to compute; verification's random inputs need
    at least this size. ``None`` when ``start`` does, or when the config does not
    tell (layers without a shape rule count as fitting).
    """
    size = start
    while size <= limit:
        if all(shape is None or all(dim is None or dim > 0 for dim in shape) for shape in _every_shape(config, size)):
            return None if size == start else size
        size *= 2
    return None


def _every_shape(config: dict[str, Any], size: int) -> list[Shape | None]:
    """Every layer's output shapes in a model config, its inputs' unknown dimensions past the batch set to ``size``."""

    def sized(shape: Shape | None) -> Shape | None:
        return None if shape is None else tuple(d if d is not None or i == 0 else size for i, d in enumerate(shape))

    shapes: list[Shape | None] = []
    layers = layers_of(config)
    if config.get("class_name") == "Sequential":
        inputs = input_layers(config)
        shape = sized(_batch_shape(inputs[0][0])) if inputs else None
        for layer in layers:
            if layer.get("class_name") != "InputLayer":
                shape = _one(layer_output_shapes(layer, [shape]))
                shapes.append(shape)
        return shapes
    known: dict[tuple[str, int], list[Shape | None]] = {}
    for layer in layers:
        name = layer_name(layer)
        if layer.get("class_name") == "InputLayer":
            known[(name, 0)] = [sized(_batch_shape(layer))]
            continue
        for index, node in enumerate(layer.get("inbound_nodes") or [], start=first_node_index(layer)):
            known[(name, index)] = layer_output_shapes(layer, _node_inputs(node, known))
            shapes.extend(known[(name, index)])
    return shapes
