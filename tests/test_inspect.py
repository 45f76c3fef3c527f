"""inspect: a Keras model's and a frozen graph's inputs and outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import freezekeras
from freezekeras.cli import main


@pytest.fixture(scope="module")
def frozen_multi_io(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("frozen") / "multi_io.pb"
    return freezekeras.convert(model_dir / "multi_io.h5", freezekeras.ConvertOptions(output=out))


def test_h5_lists_layer_names_and_the_nodes_convert_prints(model_dir, frozen_multi_io):
    import tf_keras

    result = freezekeras.inspect(model_dir / "multi_io.h5")
    model = tf_keras.models.load_model(model_dir / "multi_io.h5", compile=False)
    assert result.format == "keras-h5"
    assert [s.name for s in result.inputs] == model.input_names == ["features", "tokens"]
    assert [s.name for s in result.outputs] == model.output_names == ["score", "classes"]
    assert [s.node for s in result.inputs] == [s.name for s in frozen_multi_io.inputs]
    assert [s.node for s in result.outputs] == [s.name for s in frozen_multi_io.outputs]
    assert [(s.dtype, s.shape) for s in result.inputs] == [("float32", (None, 6)), ("int32", (None, 5))]
    assert result.details["param_count"] == model.count_params()
    assert result.details["layer_count"] == len(model.layers)
    assert result.details["keras_version"] == tf_keras.__version__
    assert result.details["backend"] == "tensorflow"


def test_pb_lists_placeholders_and_unconsumed_nodes(frozen_multi_io):
    result = freezekeras.inspect(frozen_multi_io.output)
    assert result.format == "graphdef"
    assert [(s.name, s.dtype, s.shape) for s in result.inputs] == [
        (s.name, s.dtype, s.shape) for s in frozen_multi_io.inputs]
    assert [(s.name, s.dtype, s.shape) for s in result.outputs] == [
        (s.name, s.dtype, s.shape) for s in frozen_multi_io.outputs]
    histogram = result.details["op_histogram"]
    assert sum(histogram.values()) == result.details["node_count"] == frozen_multi_io.node_count
    assert histogram["Placeholder"] == 2
    assert list(histogram.values()) == sorted(histogram.values(), reverse=True)


def test_pbtxt_is_read_too(model_dir, tmp_path):
    converted = freezekeras.convert(model_dir / "dense.h5", freezekeras.ConvertOptions(
        output=tmp_path / "m.pbtxt", text=True, verify=False))
    result = freezekeras.inspect(converted.output)
    assert [s.name for s in result.outputs] == ["predictions/Softmax"]
    assert [s.name for s in result.inputs] == [s.name for s in converted.inputs]


def test_cli_json_for_pb(frozen_multi_io):
    result = CliRunner().invoke(main, ["inspect", str(frozen_multi_io.output), "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["format"] == "graphdef" and data["path"] == str(frozen_multi_io.output)
    assert data["inputs"] == [
        {"name": "features", "dtype": "float32", "shape": [None, 6]},
        {"name": "tokens", "dtype": "int32", "shape": [None, 5]},
    ]
    assert data["outputs"] == [
        {"name": "score/Sigmoid", "dtype": "float32", "shape": [None, 1]},
        {"name": "classes/Softmax", "dtype": "float32", "shape": [None, 4]},
    ]
    assert data["node_count"] == frozen_multi_io.node_count
    assert result.stderr == ""


def test_cli_table_for_h5(model_dir):
    result = CliRunner().invoke(main, ["inspect", str(model_dir / "dense.h5")])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{model_dir / 'dense.h5'}: Keras model (keras_version ")
    assert lines[0].endswith("backend tensorflow), 3 layers, 195 parameters")
    assert lines[2:5] == [
        "inputs:",
        "  name          dtype    shape      graph node",
        "  hidden_input  float32  (None, 8)  hidden_input",
    ]
    assert lines[6:9] == [
        "outputs:",
        "  name         dtype    shape      graph node",
        "  predictions  float32  (None, 3)  predictions/Softmax",
    ]


def test_importing_freezekeras_does_not_import_tensorflow():
    code = "import sys, freezekeras, freezekeras.cli; print('tensorflow' in sys.modules, 'h5py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_outputs_of_one_multi_output_op_are_all_listed(tmp_path):
    import tensorflow as tf
    import tf_keras

    x = tf_keras.Input((6,), name="v")
    halves = tf.split(tf_keras.layers.Dense(4, name="dense")(x), 2, axis=1)
    tf_keras.Model(x, halves).save(tmp_path / "split.h5")
    converted = freezekeras.convert(tmp_path / "split.h5", freezekeras.ConvertOptions(output=tmp_path / "s.pb"))
    assert [s.name for s in converted.outputs] == ["tf.split/split", "tf.split/split:1"]
    assert converted.verification.passed
    listed = freezekeras.inspect(converted.output)
    assert [(s.name, s.shape) for s in listed.outputs] == [
        ("tf.split/split", (None, 2)), ("tf.split/split:1", (None, 2))]


def test_graph_with_an_op_this_tensorflow_lacks(frozen_multi_io, tmp_path):
    """Inputs and outputs are still listed, from the nodes' attributes."""
    from freezekeras.graphs import read_graph_def

    graph_def = read_graph_def(frozen_multi_io.output)
    for node in graph_def.node:
        if node.name == "classes/Softmax":
            node.op = "MyVendorSoftmax"
    (tmp_path / "vendor.pb").write_bytes(graph_def.SerializeToString())
    result = freezekeras.inspect(tmp_path / "vendor.pb")
    assert [(s.name, s.dtype, s.shape) for s in result.inputs] == [
        ("features", "float32", (None, 6)), ("tokens", "int32", (None, 5))]
    assert [(s.name, s.dtype) for s in result.outputs] == [("score/Sigmoid", "float32"), ("classes/Softmax", "float32")]
    assert result.details["op_histogram"]["MyVendorSoftmax"] == 1
