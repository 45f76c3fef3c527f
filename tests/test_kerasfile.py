"""freezekeras.kerasfile without TensorFlow: Keras configs written as dicts, files written with h5py.

Every expected value is worked out by hand from the config in the test (Keras'
naming and shape rules), not copied from what the code returns. Nothing here
imports tensorflow, tf_keras or keras; :func:`test_the_tensorflow_free_tests_run_without_tensorflow`
runs this file and test_graphdef.py in an interpreter where importing them fails.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

import freezekeras
from freezekeras.errors import ConversionError
from freezekeras.kerasfile.compat import (
    cudnn_layers_to_portable,
    default_gru_reset_after,
    function_references_to_names,
)
from freezekeras.kerasfile.config import config_inspection, output_op
from freezekeras.kerasfile.h5file import find_lambda_layers
from freezekeras.kerasfile.keras1 import is_keras1, translate_model_config
from freezekeras.kerasfile.shapes import layer_output_shapes, model_output_shapes
from freezekeras.results import TensorSpec

# --------------------------------------------------------------------------- configs, as Keras 2 saves them


def layer(class_name: str, name: str, inbound: list | None = None, **config) -> dict:
    """A functional model's layer entry; ``inbound``: the names of the first call's inputs."""
    entry = {"class_name": class_name, "name": name, "config": {"name": name, **config}}
    entry["inbound_nodes"] = [] if inbound is None else [[[source, 0, 0, {}] for source in inbound]]
    return entry


def functional(layers: list, inputs: list[str], outputs: list) -> dict:
    """``outputs``: layer names, or ``[name, node, tensor]`` triples."""
    return {"class_name": "Functional", "config": {
        "name": "model", "layers": layers,
        "input_layers": [[name, 0, 0] for name in inputs],
        "output_layers": [ref if isinstance(ref, list) else [ref, 0, 0] for ref in outputs],
    }}


def input_layer(name: str, shape: list, dtype: str = "float32") -> dict:
    return layer("InputLayer", name, batch_input_shape=[None, *shape], dtype=dtype)


SEQUENTIAL = {"class_name": "Sequential", "config": {"name": "seq", "layers": [
    {"class_name": "InputLayer", "config": {"name": "pixels", "batch_input_shape": [None, 8], "dtype": "float32"}},
    {"class_name": "Dense", "config": {"name": "hidden", "units": 16, "activation": "relu"}},
    {"class_name": "Dropout", "config": {"name": "drop", "rate": 0.5}},
    {"class_name": "Dense", "config": {"name": "predictions", "units": 3, "activation": "softmax"}},
]}}

#: Two inputs (a float and an int32 one), two outputs, as the conftest model multi_io.
MULTI_IO = functional([
    input_layer("features", [6]),
    input_layer("tokens", [5], dtype="int32"),
    layer("Dense", "dense", ["features"], units=8, activation="tanh"),
    layer("Embedding", "embedding", ["tokens"], input_dim=7, output_dim=4),
    layer("Flatten", "flatten", ["embedding"]),
    layer("Concatenate", "concatenate", ["dense", "flatten"], axis=-1),
    layer("Dense", "score", ["concatenate"], units=1, activation="sigmoid"),
    layer("Dense", "classes", ["concatenate"], units=4, activation="softmax"),
], ["features", "tokens"], ["score", "classes"])


def test_sequential_inputs_outputs_and_nodes():
    inputs, outputs, count = config_inspection(SEQUENTIAL, predict_nodes=True,
                                               output_shapes=model_output_shapes(SEQUENTIAL))

    assert inputs == (TensorSpec("pixels", "float32", (None, 8), node="pixels"),)
    # Dense(softmax) named predictions: tf-keras' op is predictions/Softmax; (None, 8) -> 16 -> 3 units
    assert outputs == (TensorSpec("predictions", "float32", (None, 3), node="predictions/Softmax"),)
    assert count == 3  # len(model.layers): a Sequential model does not count its InputLayer


def test_a_sequential_model_without_an_input_layer_names_its_input_after_the_first_layer():
    """Keras 2.0-2.1 saved a Sequential model as the list of its layers; the input is ``<first>_input``."""
    config = {"class_name": "Sequential", "config": [
        {"class_name": "Dense", "config": {"name": "dense_1", "units": 4, "batch_input_shape": [None, 10],
                                           "activation": "linear", "use_bias": True}},
    ]}

    inputs, outputs, count = config_inspection(config, predict_nodes=True)

    assert inputs == (TensorSpec("dense_1_input", "float32", (None, 10), node="dense_1_input"),)
    assert [(s.name, s.node, s.shape) for s in outputs] == [("dense_1", "dense_1/BiasAdd", None)]
    assert count == 1
    assert model_output_shapes(config) == [(None, 4)]


def test_an_unbuilt_sequential_model_has_no_known_input():
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Dense", "config": {"name": "d", "units": 2}}]}}

    inputs, outputs, _ = config_inspection(config, predict_nodes=True)

    assert inputs == ()
    assert [s.name for s in outputs] == ["d"]
    assert model_output_shapes(config) == [None]


def test_functional_model_with_two_inputs_and_two_outputs():
    inputs, outputs, count = config_inspection(MULTI_IO, predict_nodes=True,
                                               output_shapes=model_output_shapes(MULTI_IO))

    assert inputs == (TensorSpec("features", "float32", (None, 6), node="features"),
                      TensorSpec("tokens", "int32", (None, 5), node="tokens"))
    # dense (None, 8) and flatten 5 * 4 = 20 joined: (None, 28); then 1 and 4 units
    assert outputs == (TensorSpec("score", "float32", (None, 1), node="score/Sigmoid"),
                       TensorSpec("classes", "float32", (None, 4), node="classes/Softmax"))
    assert count == 8  # a functional model counts its InputLayers


def test_without_predicting_nodes_no_node_is_named():
    inputs, outputs, _ = config_inspection(MULTI_IO, predict_nodes=False)

    assert [s.node for s in (*inputs, *outputs)] == [None, None, None, None]
    assert [s.shape for s in outputs] == [None, None]  # no shapes given


def test_a_nested_model_names_its_inner_output_node():
    """A Sequential model with its own InputLayer, called once: its first saved node has index 1."""
    inner = {"class_name": "Sequential", "name": "inner", "config": {"name": "inner", "layers": [
        {"class_name": "InputLayer", "config": {"name": "inner_input", "batch_input_shape": [None, 4]}},
        {"class_name": "Dense", "config": {"name": "features", "units": 6, "activation": "relu"}},
    ]}, "inbound_nodes": [[["image", 0, 0, {}]]]}
    config = functional([input_layer("image", [4]), inner], ["image"], [["inner", 1, 0]])

    inputs, outputs, _ = config_inspection(config, predict_nodes=True, output_shapes=model_output_shapes(config))

    assert [s.node for s in inputs] == ["image"]
    assert outputs == (TensorSpec("inner", "float32", (None, 6), node="inner/features/Relu"),)


def test_a_layer_called_twice_has_no_predicted_node_for_its_second_call():
    """The second call's ops get another name scope (shared_1/...): the rules do not guess it."""
    shared = layer("Dense", "shared", units=3, activation="linear")
    shared["inbound_nodes"] = [[["a", 0, 0, {}]], [["b", 0, 0, {}]]]
    config = functional([input_layer("a", [2]), input_layer("b", [2]), shared], ["a", "b"],
                        [["shared", 0, 0], ["shared", 1, 0]])

    _, outputs, _ = config_inspection(config, predict_nodes=True, output_shapes=model_output_shapes(config))

    assert [(s.name, s.node) for s in outputs] == [("shared", "shared/BiasAdd"), ("shared", None)]
    assert [s.shape for s in outputs] == [(None, 3), (None, 3)]


@pytest.mark.parametrize(("entry", "expected"), [
    ({"class_name": "Dense", "config": {"name": "d", "activation": "linear"}}, "d/BiasAdd"),
    ({"class_name": "Dense", "config": {"name": "d", "activation": "linear", "use_bias": False}}, None),
    ({"class_name": "Conv2D", "config": {"name": "c", "activation": "elu"}}, "c/Elu"),
    ({"class_name": "Conv2D", "config": {"name": "c", "activation": "relu", "data_format": "channels_first"}}, None),
    ({"class_name": "Activation", "config": {"name": "a", "activation": "tanh"}}, "a/Tanh"),
    ({"class_name": "ReLU", "config": {"name": "r", "max_value": 6.0}}, "r/Relu6"),
    ({"class_name": "ReLU", "config": {"name": "r", "max_value": 4.0}}, None),
    ({"class_name": "Softmax", "config": {"name": "s", "axis": 1}}, None),
    ({"class_name": "GlobalAveragePooling2D", "config": {"name": "g"}}, "g/Mean"),
    ({"class_name": "Add", "config": {"name": "sum"}, "inbound_nodes": [[["x", 0, 0, {}]] * 2]}, "sum/add"),
    ({"class_name": "Add", "config": {"name": "sum"}, "inbound_nodes": [[["x", 0, 0, {}]] * 4]}, "sum/add_2"),
    ({"class_name": "BatchNormalization", "config": {"name": "bn"}}, None),
    ({"class_name": "MyLayer", "config": {"name": "m"}}, None),
], ids=["dense-bias", "dense-no-bias", "conv-elu", "conv-channels-first", "activation", "relu6", "relu4",
        "softmax-axis-1", "global-pool", "add-2", "add-4", "batchnorm", "unknown"])
def test_the_output_op_rules(entry, expected):
    """x0 + x1 + x2 + x3 makes add, add_1, add_2: the last names the output."""
    assert output_op(entry) == expected


# --------------------------------------------------------------------------- shapes


def test_convolution_pooling_flatten_dense_shapes():
    config = functional([
        input_layer("image", [28, 28, 1]),
        layer("Conv2D", "conv", ["image"], filters=8, kernel_size=[3, 3], strides=[1, 1], padding="valid"),
        layer("MaxPooling2D", "pool", ["conv"], pool_size=[2, 2], strides=[2, 2], padding="valid"),
        layer("Conv2D", "down", ["pool"], filters=4, kernel_size=[3, 3], strides=[2, 2], padding="same"),
        layer("Flatten", "flatten", ["down"]),
        layer("Dense", "logits", ["flatten"], units=10),
    ], ["image"], ["conv", "pool", "down", "flatten", "logits"])

    assert model_output_shapes(config) == [
        (None, 26, 26, 8),  # 28 - 3 + 1
        (None, 13, 13, 8),  # 26 / 2
        (None, 7, 7, 4),    # ceil(13 / 2), "same"
        (None, 196),        # 7 * 7 * 4
        (None, 10),
    ]


def test_concatenate_global_pooling_and_unknown_dimensions():
    config = functional([
        input_layer("frames", [None, 16, 16, 3]),  # any number of frames
        input_layer("a", [5, 2]),
        input_layer("b", [5, 3]),
        layer("Concatenate", "joined", ["a", "b"], axis=-1),
        layer("Concatenate", "stacked", ["a", "a"], axis=1),
        layer("GlobalAveragePooling2D", "gap", ["joined"]),  # rank 3 into a 2-D pooling: shapes say nothing wrong
        layer("Reshape", "flat", ["joined"], target_shape=[-1]),
        layer("LSTM", "lstm", ["a"], units=7, return_sequences=True),
        layer("Flatten", "unknown", ["frames"]),
    ], ["frames", "a", "b"], ["joined", "stacked", "flat", "lstm", "unknown"])

    assert model_output_shapes(config) == [
        (None, 5, 5),   # 2 + 3 channels
        (None, 10, 2),  # 5 + 5 steps
        (None, 25),     # 5 * 5
        (None, 5, 7),
        (None, None),   # an unknown frame count: Flatten cannot know the size
    ]


def test_unknown_layers_and_channels_first_give_none_downstream():
    config = functional([
        input_layer("x", [8, 8, 3]),
        layer("MyLayer", "custom", ["x"]),
        layer("Dense", "after", ["custom"], units=2),
        layer("Conv2D", "nchw", ["x"], filters=2, kernel_size=[3, 3], data_format="channels_first"),
    ], ["x"], ["after", "nchw"])

    assert model_output_shapes(config) == [None, None]


@pytest.mark.parametrize(("class_name", "config", "inputs", "expected"), [
    ("AveragePooling2D", {"pool_size": [3, 3], "strides": [1, 1], "padding": "same"}, [(None, 9, 9, 2)], (None, 9, 9, 2)),
    ("MaxPooling1D", {"pool_size": 2, "padding": "valid"}, [(None, 7, 4)], (None, 3, 4)),
    ("Conv1D", {"filters": 5, "kernel_size": [3], "dilation_rate": [2], "padding": "valid"}, [(None, 10, 1)],
     (None, 6, 5)),  # span (3 - 1) * 2 + 1 = 5: 10 - 5 + 1
    ("DepthwiseConv2D", {"kernel_size": [3, 3], "depth_multiplier": 2, "padding": "valid"}, [(None, 5, 5, 3)],
     (None, 3, 3, 6)),
    ("GlobalMaxPooling2D", {"keepdims": True}, [(None, 4, 4, 6)], (None, 1, 1, 6)),
    ("ZeroPadding2D", {"padding": [[1, 2], [3, 4]]}, [(None, 5, 5, 1)], (None, 8, 12, 1)),
    ("Cropping1D", {"cropping": [1, 1]}, [(None, 6, 2)], (None, 4, 2)),
    ("UpSampling2D", {"size": [2, 3]}, [(None, 4, 4, 1)], (None, 8, 12, 1)),
    ("RepeatVector", {"n": 3}, [(None, 5)], (None, 3, 5)),
    ("Permute", {"dims": [2, 1]}, [(None, 4, 6)], (None, 6, 4)),
    ("Add", {}, [(None, 1, 4), (None, 3, 1)], (None, 3, 4)),  # broadcast
    ("Dropout", {"rate": 0.5}, [(None, 3)], (None, 3)),
    ("Concatenate", {"axis": -1}, [(None, 2, 3), (None, 4, 3)], None),  # shapes differ off the axis
])
def test_one_layer_shape_rule(class_name, config, inputs, expected):
    assert layer_output_shapes({"class_name": class_name, "config": config}, inputs) == [expected]


# --------------------------------------------------------------------------- Keras 1 configs


KERAS1_CNN = {"class_name": "Sequential", "config": [
    {"class_name": "Convolution2D", "config": {
        "name": "conv", "nb_filter": 8, "nb_row": 3, "nb_col": 5, "border_mode": "same", "subsample": [1, 1],
        "dim_ordering": "th", "batch_input_shape": [None, 1, 28, 28], "input_dtype": "float32",
        "init": "glorot_uniform", "W_regularizer": None, "activation": "relu", "bias": True, "trainable": True}},
    {"class_name": "Dropout", "config": {"name": "drop", "p": 0.25, "trainable": True}},
    {"class_name": "Flatten", "config": {"name": "flat", "trainable": True}},
    {"class_name": "Dense", "config": {"name": "out", "output_dim": 10, "activation": "softmax", "init": "zero",
                                       "input_dim": None, "trainable": True}},
]}


def test_keras1_sequential_is_translated_to_keras2_names():
    original = copy.deepcopy(KERAS1_CNN)

    translated = translate_model_config(KERAS1_CNN)

    assert KERAS1_CNN == original  # the input is not changed
    assert translated == {"class_name": "Sequential", "config": [
        {"class_name": "Conv2D", "config": {
            "name": "conv", "filters": 8, "kernel_size": (3, 5), "padding": "same", "strides": [1, 1],
            "data_format": "channels_first", "batch_input_shape": [None, 1, 28, 28], "activation": "relu",
            "use_bias": True, "trainable": True}},
        {"class_name": "Dropout", "config": {"name": "drop", "rate": 0.25, "trainable": True}},
        {"class_name": "Flatten", "config": {"name": "flat", "trainable": True}},
        {"class_name": "Dense", "config": {"name": "out", "units": 10, "activation": "softmax", "trainable": True}},
    ]}


def test_keras1_recurrent_layers_and_an_integer_input():
    config = {"class_name": "Sequential", "config": [
        {"class_name": "Embedding", "config": {"name": "emb", "input_dim": 50, "output_dim": 8, "input_length": 10,
                                               "batch_input_shape": [None, 10], "input_dtype": "int32",
                                               "dropout": 0.1}},
        {"class_name": "LSTM", "config": {"name": "lstm", "output_dim": 6, "inner_activation": "hard_sigmoid",
                                          "consume_less": "gpu", "return_sequences": True, "dropout_W": 0.2}},
        {"class_name": "GRU", "config": {"name": "gru", "output_dim": 4, "consume_less": "cpu"}},
    ]}

    translated = translate_model_config(config)["config"]

    # int32 was the input's dtype only: it becomes an InputLayer of its own, named as Keras named it
    assert translated[0] == {"class_name": "InputLayer", "config": {
        "batch_input_shape": [None, 10], "dtype": "int32", "name": "emb_input"}}
    assert translated[1] == {"class_name": "Embedding", "config": {
        "name": "emb", "input_dim": 50, "output_dim": 8, "input_length": 10}}
    assert translated[2]["config"] == {"name": "lstm", "units": 6, "recurrent_activation": "hard_sigmoid",
                                       "return_sequences": True, "dropout": 0.2, "implementation": 2}
    assert translated[3]["config"] == {"name": "gru", "units": 4, "implementation": 1, "reset_after": False}


def test_keras1_functional_model_and_merge_layers():
    config = {"class_name": "Model", "config": {
        "name": "m", "input_layers": [["a", 0, 0], ["b", 0, 0]], "output_layers": [["cat", 0, 0]],
        "layers": [
            {"class_name": "InputLayer", "name": "a", "inbound_nodes": [],
             "config": {"name": "a", "batch_input_shape": [None, 3], "input_dtype": "float32"}},
            {"class_name": "InputLayer", "name": "b", "inbound_nodes": [],
             "config": {"name": "b", "batch_input_shape": [None, 3], "input_dtype": "float32"}},
            {"class_name": "Merge", "name": "cat", "inbound_nodes": [[["a", 0, 0], ["b", 0, 0]]],
             "config": {"name": "cat", "mode": "concat", "concat_axis": -1, "mode_type": "raw"}},
        ]}}

    translated = translate_model_config(config)

    assert translated["class_name"] == "Functional"
    a, b, cat = translated["config"]["layers"]
    assert a["config"] == {"name": "a", "batch_input_shape": [None, 3], "dtype": "float32"}
    assert cat == {"class_name": "Concatenate", "name": "cat", "inbound_nodes": [[["a", 0, 0], ["b", 0, 0]]],
                   "config": {"name": "cat", "trainable": True, "axis": -1}}
    assert translate_model_config(
        {"class_name": "Merge", "config": {"name": "p", "mode": "cos", "dot_axes": 1}}
    ) == {"class_name": "Dot", "config": {"name": "p", "trainable": True, "axes": 1, "normalize": True}}


@pytest.mark.parametrize(("layer_config", "phrase"), [
    ({"class_name": "Highway", "config": {"name": "hw"}}, "Keras 1 layer Highway ('hw'), which Keras 2 removed"),
    ({"class_name": "BatchNormalization", "config": {"name": "bn", "mode": 2}}, "uses Keras 1 mode 2"),
    ({"class_name": "Merge", "config": {"name": "m", "mode": ["bytecode"]}}, "(a Python function)"),
])
def test_untranslatable_keras1_layers_are_refused(layer_config, phrase):
    config = {"class_name": "Sequential", "config": [layer_config]}

    with pytest.raises(ConversionError, match=f"^m\\.h5: .*{re.escape(phrase)}"):
        translate_model_config(config, source="m.h5")


@pytest.mark.parametrize(("version", "expected"), [("1.2.2", True), ("1", True), ("2.1.6", False),
                                                    ("3.0.0", False), ("", False), (None, False)])
def test_is_keras1(version, expected):
    assert is_keras1(version) is expected


# --------------------------------------------------------------------------- rewrites of configs tf-keras cannot read


def test_cudnn_layers_become_the_portable_layers():
    config = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "CuDNNLSTM", "config": {"name": "l", "units": 3}},
        {"class_name": "Dense", "config": {"name": "d", "units": 1}}]}}

    rewritten, changed = cudnn_layers_to_portable(config)

    assert changed and rewritten["config"]["layers"][0] == {"class_name": "LSTM", "config": {
        "name": "l", "units": 3, "activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True}}
    assert rewritten["config"]["layers"][1] == config["config"]["layers"][1]
    assert cudnn_layers_to_portable(rewritten) == (rewritten, False)


def test_old_grus_get_reset_after_false_and_new_ones_keep_theirs():
    config = {"layers": [{"class_name": "GRU", "config": {"name": "old"}},
                         {"class_name": "GRU", "config": {"name": "new", "reset_after": True}}]}

    rewritten, changed = default_gru_reset_after(config)

    assert changed
    assert [layer["config"].get("reset_after") for layer in rewritten["layers"]] == [False, True]
    assert "reset_after" not in config["layers"][0]["config"]  # a new object


def test_function_references_become_names():
    reference = {"module": "builtins", "class_name": "function", "config": "soft_clip", "registered_name": "function"}
    config = {"class_name": "Dense", "config": {"name": "d", "activation": reference}}

    assert function_references_to_names(config) == (
        {"class_name": "Dense", "config": {"name": "d", "activation": "soft_clip"}}, True)
    assert function_references_to_names({"activation": "relu"}) == ({"activation": "relu"}, False)


def test_lambda_layers_are_found_inside_wrappers_and_nested_models():
    config = functional([
        input_layer("x", [4, 3]),
        layer("TimeDistributed", "per_step", ["x"],
              layer={"class_name": "Lambda", "config": {"name": "step_lambda", "function": ["code", None, None]}}),
        {"class_name": "Sequential", "name": "inner", "inbound_nodes": [[["per_step", 0, 0, {}]]],
         "config": {"name": "inner", "layers": [
             {"class_name": "Lambda", "config": {"name": "inner_lambda", "function": ["code", None, None]}}]}},
    ], ["x"], ["inner"])

    assert sorted(find_lambda_layers(config)) == ["inner_lambda", "step_lambda"]
    assert list(find_lambda_layers(SEQUENTIAL)) == []


# --------------------------------------------------------------------------- a whole .h5 file, written with h5py


def write_h5(path: Path, config: dict, weights: dict[str, np.ndarray], keras_version: str = "2.15.0") -> Path:
    """An .h5 laid out as tf-keras' ``model.save`` lays it out, written with h5py alone."""
    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = json.dumps(config)
        handle.attrs["keras_version"] = keras_version
        handle.attrs["backend"] = "tensorflow"
        group = handle.create_group("model_weights")
        for name, value in weights.items():
            group.create_dataset(name, data=value)
    return path


def test_inspect_reads_an_h5_written_without_keras(tmp_path):
    path = write_h5(tmp_path / "seq.h5", SEQUENTIAL, {
        "hidden/hidden/kernel:0": np.zeros((8, 16), "float32"), "hidden/hidden/bias:0": np.zeros(16, "float32"),
        "predictions/predictions/kernel:0": np.zeros((16, 3), "float32"),
        "predictions/predictions/bias:0": np.zeros(3, "float32"),
    })

    result = freezekeras.inspect(path)

    assert [(s.name, s.dtype, s.shape, s.node) for s in result.inputs] == [("pixels", "float32", (None, 8), "pixels")]
    assert [(s.name, s.shape, s.node) for s in result.outputs] == [("predictions", (None, 3), "predictions/Softmax")]
    expected = {"keras_version": "2.15.0", "backend": "tensorflow", "layer_count": 3,
                "param_count": 8 * 16 + 16 + 16 * 3 + 3}
    assert {key: result.details.get(key) for key in expected} == expected


def test_inspect_translates_a_keras1_h5(tmp_path):
    path = write_h5(tmp_path / "k1.h5", KERAS1_CNN, {}, keras_version="1.2.2")

    result = freezekeras.inspect(path)

    assert [(s.name, s.shape) for s in result.inputs] == [("conv_input", (None, 1, 28, 28))]
    assert [s.name for s in result.outputs] == ["out"]


# --------------------------------------------------------------------------- the guard


BLOCKER = textwrap.dedent('''
    import sys

    class NoTensorFlow:
        """Makes importing TensorFlow or Keras fail, as on a machine without them."""
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"tensorflow", "tf_keras", "keras"}:
                raise ImportError(f"test_kerasfile's guard: {name} may not be imported here")
            return None

    sys.meta_path.insert(0, NoTensorFlow())
    import pytest
    code = pytest.main(sys.argv[1:])
    loaded = sorted({name.split(".")[0] for name in sys.modules} & {"tensorflow", "tf_keras", "keras"})
    print("LOADED", loaded)
    sys.exit(int(code) or (3 if loaded else 0))
''')


@pytest.mark.subprocess
def test_the_tensorflow_free_tests_run_without_tensorflow(tmp_path):
    """This file and test_graphdef.py pass in an interpreter that cannot import TensorFlow or Keras."""
    here = Path(__file__).resolve().parent
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, str(here / "test_kerasfile.py"), str(here / "test_graphdef.py"),
         "-m", "not subprocess", "-q", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'inner'}"],
        capture_output=True, text=True, timeout=300, cwd=here.parent)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "LOADED []" in done.stdout
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]
