"""A Sequential model saved before it was built: its input shape, from ``--input-shape`` or its first weights.

A ``Sequential`` whose layers were never told their input shape (built by
``fit`` in a Keras that did not record it, or never built at all) saves a config
with no ``batch_input_shape`` and no ``InputLayer``; tf-keras then builds a model
without inputs, which cannot be frozen. The shape is read here, with h5py, from
the first layer that holds weights (its kernel's input size), and written into
the config before Keras builds it.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

from freezekeras.contract import format_dims
from freezekeras.errors import UsageError
from freezekeras.kerasfile.config import input_layers, layer_name, layers_of
from freezekeras.kerasfile.h5file import KerasFileInfo, reading_hdf5, text_attribute

#: Layers that keep their input's shape and hold no weights: the first weighted layer may follow them.
_PASS_THROUGH = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                 "GaussianDropout", "AlphaDropout", "Activation", "Masking", "ActivityRegularization", "ReLU",
                 "LeakyReLU", "ELU", "Softmax", "ThresholdedReLU"}
_RECURRENT = {"LSTM", "GRU", "SimpleRNN", "CuDNNLSTM", "CuDNNGRU", "ConvLSTM1D"}
#: Convolutions: the kernel's input-channel axis counted from its end, and the input's spatial rank.
_CONVOLUTIONS = {"Conv1D": 1, "Conv2D": 2, "Conv3D": 3, "SeparableConv1D": 1, "SeparableConv2D": 2,
                 "DepthwiseConv1D": 1, "DepthwiseConv2D": 2, "Conv1DTranspose": 1, "Conv2DTranspose": 2,
                 "Conv3DTranspose": 3, "LocallyConnected1D": 1}


def built_sequential(info: KerasFileInfo, input_shapes: Sequence[tuple[str | None, tuple[int | None, ...]]] = ()
                     ) -> tuple[KerasFileInfo, tuple[str, ...]]:
    """``info`` with an input shape for a Sequential saved before it was built; other models as they are.

    The shape comes from ``input_shapes`` (``--input-shape``: a bare DIMS, or one
    naming the input Keras will make, ``<first layer>_input``, or the first layer),
    else from the first layer holding weights.

    Returns:
        The (rewritten) file info and a note on what was assumed.

    Raises:
        UsageError: The shape cannot be told from the weights and ``input_shapes`` gives none.
    """
    config = info.model_config
    try:
        layers = layers_of(config) if config.get("class_name") == "Sequential" else []
        if not layers or not all(isinstance(layer, dict) for layer in layers) or input_layers(config):
            return info, ()
    except (AttributeError, TypeError, KeyError):  # a malformed config: Keras says what is wrong with it
        return info, ()
    first = layers[0]
    names = {layer_name(first), f"{layer_name(first)}_input"}
    given = [dims for name, dims in input_shapes if name is None or name in names]
    if given:
        shape, note = tuple(given[0]), None
    else:
        shape, source = _from_weights(info, layers)
        if shape is None:
            raise UsageError(
                f"{info.path}: is a Sequential model saved before it was built: its config gives no input shape, "
                f"and {source}. Pass the input's shape with --input-shape DIMS, the batch first "
                "(e.g. --input-shape -1,28,28; -1 for an unknown dimension)."
            )
        note = (f"the Sequential model was saved before it was built (its config gives no input shape); freezekeras "
                f"gave it the input shape {format_dims(shape)} from {source}. Pass --input-shape to choose another")
    rewritten = copy.deepcopy(config)
    layers_of(rewritten)[0].setdefault("config", {})["batch_input_shape"] = list(shape)
    return dataclasses.replace(info, model_config=rewritten, config_rewritten=True), (note,) if note else ()


def _from_weights(info: KerasFileInfo, layers: list[dict[str, Any]]) -> tuple[tuple[int | None, ...] | None, str]:
    """The input shape the first weighted layer's first weight gives, and where it came from (or why not)."""
    for layer in layers:
        class_name, inner = layer.get("class_name"), layer.get("config") or {}
        if class_name in _PASS_THROUGH:
            continue
        name = layer_name(layer)
        wrapped = inner.get("layer") if class_name in {"Bidirectional", "TimeDistributed"} else None
        kind = (wrapped or {}).get("class_name") if wrapped else class_name
        weight = _first_weight_shape(info, name)
        if weight is None:
            return None, f"its first layer {name} ({class_name}) holds no weights in the file to tell it from"
        shape = _input_shape(kind, inner if not wrapped else (wrapped.get("config") or {}), weight)
        if shape is None:
            return None, f"its first layer {name} ({class_name}) does not tell it"
        if class_name == "TimeDistributed":
            shape = (shape[0], None, *shape[1:])
        what = "kernel" if kind != "Embedding" else "embeddings"
        unknown = " (the time axis stays unknown)" if kind in _RECURRENT or class_name == "TimeDistributed" else ""
        return shape, f"layer {name}'s {what} {format_dims(weight)}{unknown}"
    return None, "it has no layer with weights to tell it from"


def _input_shape(kind: str | None, inner: dict[str, Any], weight: tuple[int, ...]) -> tuple[int | None, ...] | None:
    if kind == "Dense" and len(weight) == 2:
        return (None, weight[0])
    if kind in _RECURRENT and len(weight) == 2:
        return (None, None, weight[0])
    if kind == "Embedding":
        length = inner.get("input_length")
        return (None, length if isinstance(length, int) else None)
    rank = _CONVOLUTIONS.get(kind or "")
    if rank is None or len(weight) != rank + 2:
        return None
    channels = weight[rank] if not kind.endswith("Transpose") else weight[rank + 1]
    if inner.get("data_format") == "channels_first":
        return (None, channels, *([None] * rank))
    return (None, *([None] * rank), channels)


def _first_weight_shape(info: KerasFileInfo, name: str) -> tuple[int, ...] | None:
    """The shape of layer ``name``'s first weight in the file (a whole model's ``model_weights``, or weights only)."""
    import h5py

    with reading_hdf5(info.path), h5py.File(info.path, "r") as handle:
        root = handle["model_weights"] if "model_weights" in handle else handle
        if name not in root:
            return None
        group = root[name]
        names = [text_attribute(item) for item in group.attrs.get("weight_names", [])]
        if not names or names[0] not in group:
            return None
        return tuple(int(d) for d in group[names[0]].shape)
