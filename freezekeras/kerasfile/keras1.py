"""Translating a Keras 1.x model config into the Keras 2 form tf-keras builds.

Keras 2 read Keras 1 files through its ``legacy.interfaces`` argument
converters and ``legacy.layers.Merge``; tf-keras dropped both. This module
does the same translation on the config, before Keras sees it:

* layer classes renamed (``Convolution2D`` -> ``Conv2D``, ``Merge`` ->
  ``Add``/``Multiply``/``Concatenate``/``Average``/``Maximum``/``Dot``,
  ``TimeDistributedDense`` -> ``TimeDistributed(Dense)``, ...);
* arguments renamed (``output_dim`` -> ``units``, ``nb_filter``/``nb_row``/
  ``nb_col`` -> ``filters``/``kernel_size``, ``border_mode`` -> ``padding``,
  ``subsample`` -> ``strides``, ``dim_ordering`` -> ``data_format``, ``p`` ->
  ``rate``, ``input_dtype`` -> ``dtype``, ``bias`` -> ``use_bias``, ...);
* initializers, regularizers and constraints dropped: the weights are loaded
  from the file and a frozen graph never trains, so they change nothing.

The weights' layout (Keras 1 LSTM/GRU per-gate arrays, ``th``-ordered
kernels) is converted when they are loaded, see :mod:`freezekeras.tf.legacy_weights`.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import copy
from typing import Any

from freezekeras.errors import ConversionError

RENAMED_LAYERS = {
    "Convolution1D": "Conv1D",
    "Convolution2D": "Conv2D",
    "Convolution3D": "Conv3D",
    "AtrousConvolution1D": "Conv1D",
    "AtrousConvolution2D": "Conv2D",
    "Deconvolution2D": "Conv2DTranspose",
    "SeparableConvolution2D": "SeparableConv2D",
}

#: Keras 1 ``Merge(mode=...)`` -> the Keras 2 merge layer.
MERGE_MODES = {
    "sum": "Add",
    "mul": "Multiply",
    "concat": "Concatenate",
    "ave": "Average",
    "max": "Maximum",
    "dot": "Dot",
    "cos": "Dot",
}

#: Keras 1 layers Keras 2 removed, with what to do instead.
REMOVED_LAYERS = {
    "Highway": "rebuild it from Dense layers",
    "MaxoutDense": "rebuild it from Dense layers and a Maximum",
    "SReLU": "replace it with a Keras 2 activation",
    "ParametricSoftplus": "replace it with a Keras 2 activation",
}

#: Argument renames that apply to every layer.
RENAMED_ARGUMENTS = {
    "input_dtype": "dtype",
    "bias": "use_bias",
    "border_mode": "padding",
    "subsample": "strides",
    "subsample_length": "strides",
    "nb_filter": "filters",
    "filter_length": "kernel_size",
    "atrous_rate": "dilation_rate",
    "inner_activation": "recurrent_activation",
    "dropout_W": "dropout",
    "dropout_U": "recurrent_dropout",
    "sigma": "stddev",
}

#: Arguments that only shaped training or initialisation; weights come from the file.
DROPPED_ARGUMENTS = {
    "init", "inner_init", "forget_bias_init", "beta_init", "gamma_init",
    "W_regularizer", "b_regularizer", "U_regularizer", "gamma_regularizer", "beta_regularizer",
    "activity_regularizer", "W_constraint", "b_constraint", "U_constraint",
    "weights", "input_dim", "input_length", "consume_less", "mode",
}

RECURRENT_LAYERS = {"LSTM", "GRU", "SimpleRNN"}
POOLING_1D = {"MaxPooling1D", "AveragePooling1D"}
DIM_ORDERING = {"tf": "channels_last", "th": "channels_first"}


def is_keras1(keras_version: str | None) -> bool:
    """Whether a ``keras_version`` attribute names Keras 1.x."""
    return bool(keras_version) and keras_version.split(".")[0] == "1"


def translate_model_config(config: dict[str, Any], *, source: Any = "the model") -> dict[str, Any]:
    """Return the Keras 2 form of a Keras 1 model config (the input is not changed).

    Args:
        config: The ``model_config`` (``{"class_name": ..., "config": ...}``).
        source: The file, for error messages.

    Raises:
        ConversionError: The model uses a layer Keras 2 removed, or a layer
            mode with no Keras 2 equivalent (BatchNormalization ``mode`` 1 or 2).
    """
    return _translate_layer(copy.deepcopy(config), source)


def _translate_layer(layer: dict[str, Any], source: Any) -> dict[str, Any]:
    class_name, config = layer.get("class_name"), layer.get("config")
    if class_name in REMOVED_LAYERS:
        raise ConversionError(
            f"{source}: uses the Keras 1 layer {class_name} ({_name(config)}), which Keras 2 removed; "
            f"{REMOVED_LAYERS[class_name]} in Keras 2 and save the model again."
        )
    if class_name == "Sequential" and _merges_models(_sequential_layers(config)):
        return _merged_sequential_to_functional(_sequential_layers(config), source)
    if class_name in {"Sequential", "Model"}:
        layer["config"] = _translate_model(class_name, config, source)
        if class_name == "Model":
            layer["class_name"] = "Functional"
        return layer
    if not isinstance(config, dict):
        return layer
    if class_name == "Merge":
        return _translate_merge(layer, source)
    if class_name == "TimeDistributedDense":
        return _time_distributed_dense(layer)
    if class_name in {"TimeDistributed", "Bidirectional"} and isinstance(config.get("layer"), dict):
        config["layer"] = _translate_layer(config["layer"], source)
    if class_name == "BatchNormalization" and config.get("mode", 0) != 0:
        raise ConversionError(
            f"{source}: BatchNormalization layer {_name(config)} uses Keras 1 mode {config['mode']}, "
            "which normalizes with the batch's own statistics at inference and has no Keras 2 "
            "equivalent; retrain it with mode=0."
        )
    layer["class_name"] = RENAMED_LAYERS.get(class_name, class_name)
    layer["config"] = _translate_arguments(class_name, config)
    return layer


def _translate_model(class_name: str, config: Any, source: Any) -> Any:
    if class_name == "Sequential":
        layers = _sequential_layers(config)
        translated = _input_layer(layers[0]) + [_translate_layer(item, source) for item in layers]
        return translated if isinstance(config, list) else {**config, "layers": translated}
    config["layers"] = [_translate_nested(item, source) for item in config.get("layers", [])]
    return config


def _sequential_layers(config: Any) -> list[Any]:
    return config if isinstance(config, list) else (config or {}).get("layers", [])


def _merges_models(layers: list[Any]) -> bool:
    """Whether a Keras 1 Sequential model starts with a Merge of other models."""
    first = layers[0] if layers else None
    return isinstance(first, dict) and first.get("class_name") == "Merge" and \
        bool((first.get("config") or {}).get("layers"))


def _merged_sequential_to_functional(layers: list[Any], source: Any) -> dict[str, Any]:
    """A Keras 1 Sequential model starting with ``Merge([model_a, model_b, ...])``, as a functional Model.

    The merged models' layers are flattened into the functional graph under
    their own names, as Keras 1 flattened them when saving the weights.
    """
    entries, inputs, last = _chain(layers, source)
    return {"class_name": "Functional", "config": {
        "name": "sequential", "layers": entries,
        "input_layers": [[name, 0, 0] for name in inputs], "output_layers": [[last, 0, 0]],
    }}


def _chain(layers: list[Any], source: Any) -> tuple[list[dict[str, Any]], list[str], str]:
    """Functional layer entries for a Keras 1 Sequential layer list: (entries, input names, last name)."""
    first, rest = layers[0], layers[1:]
    if _merges_models(layers):
        entries, inputs, tails = [], [], []
        for branch in first["config"]["layers"]:
            if not isinstance(branch, dict) or branch.get("class_name") != "Sequential":
                raise ConversionError(
                    f"{source}: Merge layer {_name(first['config'])} merges a {branch.get('class_name')!r} "
                    "model, and freezekeras translates only merged Sequential models; rebuild it as a "
                    "functional Model in Keras 1 or 2, load the weights and save it again."
                )
            branch_entries, branch_inputs, tail = _chain(_sequential_layers(branch["config"]), source)
            entries, inputs, tails = entries + branch_entries, inputs + branch_inputs, tails + [tail]
        merge = {**first, "config": {k: v for k, v in first["config"].items() if k != "layers"}}
        entries.append(_entry(merge, tails, source))
    else:
        config = dict(first.get("config") or {})
        if "batch_input_shape" not in config:
            raise ConversionError(
                f"{source}: the first layer {_name(config)} of a merged Sequential model has no input "
                "shape (batch_input_shape); the file is incomplete. Save the model again in Keras."
            )
        input_name = f"{config.get('name')}_input"
        entries = [{"class_name": "InputLayer", "name": input_name, "inbound_nodes": [], "config": {
            "batch_input_shape": config.pop("batch_input_shape"), "name": input_name,
            "dtype": config.pop("input_dtype", None) or "float32", "sparse": False}}]
        inputs = [input_name]
        entries.append(_entry({**first, "config": config}, [input_name], source))
    for layer in rest:
        entries.append(_entry(layer, [entries[-1]["name"]], source))
    return entries, inputs, entries[-1]["name"]


def _entry(layer: dict[str, Any], inbound: list[str], source: Any) -> dict[str, Any]:
    translated = _translate_layer(copy.deepcopy(layer), source)
    name = translated["config"]["name"]
    return {**translated, "name": name, "inbound_nodes": [[[source_name, 0, 0, {}] for source_name in inbound]]}


def _input_layer(first: Any) -> list[dict[str, Any]]:
    """An explicit InputLayer for a Sequential model whose input is not float32.

    Keras 1's ``input_dtype`` was the dtype of the input only; as Keras 2's
    ``dtype`` on the first layer it would also be the dtype of that layer's
    weights (an int32 Embedding matrix), so the input gets its own layer,
    named as Keras named it.
    """
    config = first.get("config") if isinstance(first, dict) else None
    if not isinstance(config, dict) or config.get("input_dtype") in (None, "float32"):
        return []
    if "batch_input_shape" not in config:
        return []
    shape = config.pop("batch_input_shape")
    return [{"class_name": "InputLayer", "config": {
        "batch_input_shape": shape, "dtype": config.pop("input_dtype"), "name": f"{config.get('name')}_input",
    }}]


def _translate_nested(item: dict[str, Any], source: Any) -> dict[str, Any]:
    """A functional model's layer entry: the layer itself, keeping ``name`` and ``inbound_nodes``."""
    translated = _translate_layer({"class_name": item.get("class_name"), "config": item.get("config")}, source)
    return {**item, **translated}


def _translate_arguments(class_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Rename and drop Keras 1 arguments of one layer."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key == "output_dim" and class_name != "Embedding":
            out["units"] = value
        elif key == "p" and "Dropout" in class_name:
            out["rate"] = value
        elif key == "dim_ordering":
            if value in DIM_ORDERING:
                out["data_format"] = DIM_ORDERING[value]
        elif key in {"pool_length", "stride"} and class_name in POOLING_1D:
            out["pool_size" if key == "pool_length" else "strides"] = value
        elif key == "length" and class_name == "UpSampling1D":
            out["size"] = value
        elif key in {"input_dim", "input_length"} and class_name == "Embedding":
            out[key] = value
        elif key in {"nb_row", "nb_col"}:
            out["kernel_size"] = (config.get("nb_row"), config.get("nb_col"))
        elif key in {"kernel_dim1", "kernel_dim2", "kernel_dim3"}:
            out["kernel_size"] = (config.get("kernel_dim1"), config.get("kernel_dim2"), config.get("kernel_dim3"))
        elif (key == "dropout" and class_name == "Embedding") or (
                key == "output_shape" and class_name == "Deconvolution2D"):
            continue  # training only; Conv2DTranspose computes its output shape
        elif key == "input_dtype" and class_name != "InputLayer":
            continue  # the dtype of the input, not of this layer's weights
        elif key == "trainable" and class_name == "InputLayer":
            continue  # tf-keras' InputLayer does not take it
        elif key in RENAMED_ARGUMENTS:
            out[RENAMED_ARGUMENTS[key]] = value
        elif key not in DROPPED_ARGUMENTS:
            out[key] = value
    if class_name in RECURRENT_LAYERS:
        out["implementation"] = 2 if config.get("consume_less") == "gpu" else 1
    if class_name == "GRU":
        out["reset_after"] = False  # Keras 1 GRU: one bias, reset gate before the matmul
    if class_name == "ZeroPadding2D":
        out["padding"] = _zero_padding_2d(out.get("padding", (1, 1)))
    return out


def _zero_padding_2d(padding: Any) -> Any:
    """Keras 1.2 allowed ``(top, bottom, left, right)`` and a dict of pads."""
    if isinstance(padding, dict):
        return ((padding.get("top_pad", 0), padding.get("bottom_pad", 0)),
                (padding.get("left_pad", 0), padding.get("right_pad", 0)))
    if isinstance(padding, (list, tuple)) and len(padding) == 4:
        return ((padding[0], padding[1]), (padding[2], padding[3]))
    return padding


def _translate_merge(layer: dict[str, Any], source: Any) -> dict[str, Any]:
    config = layer["config"]
    mode = config.get("mode", "sum")
    if not isinstance(mode, str) or mode not in MERGE_MODES:
        raise ConversionError(
            f"{source}: Merge layer {_name(config)} uses mode {mode!r} (a Python function), which "
            "cannot be translated; rebuild it with a Keras 2 merge or Lambda layer and save the model again."
        )
    new_config: dict[str, Any] = {"name": config.get("name"), "trainable": config.get("trainable", True)}
    if mode == "concat":
        new_config["axis"] = config.get("concat_axis", -1)
    if mode in {"dot", "cos"}:
        axes = config.get("dot_axes", -1)
        new_config.update(axes=axes, normalize=mode == "cos")
    return {**layer, "class_name": MERGE_MODES[mode], "config": new_config}


def _time_distributed_dense(layer: dict[str, Any]) -> dict[str, Any]:
    config = layer["config"]
    dense = _translate_arguments("Dense", {k: v for k, v in config.items() if k != "batch_input_shape"})
    wrapper = {"name": config.get("name"), "trainable": config.get("trainable", True),
               "layer": {"class_name": "Dense", "config": {**dense, "name": f"{config.get('name')}_dense"}}}
    if "batch_input_shape" in config:
        wrapper["batch_input_shape"] = config["batch_input_shape"]
    elif config.get("input_dim"):
        wrapper["batch_input_shape"] = [None, config.get("input_length"), config["input_dim"]]
    return {**layer, "class_name": "TimeDistributed", "config": wrapper}


def _name(config: Any) -> str:
    return repr(config.get("name")) if isinstance(config, dict) and config.get("name") else "(unnamed)"
