"""inspect: a Keras model's and a frozen graph's inputs and outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import assert_verified

import freezekeras
from freezekeras.cli.commands import main


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


@pytest.mark.subprocess
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
    assert_verified(converted)
    listed = freezekeras.inspect(converted.output)
    assert [(s.name, s.shape) for s in listed.outputs] == [
        ("tf.split/split", (None, 2)), ("tf.split/split:1", (None, 2))]


def test_graph_with_an_op_this_tensorflow_lacks(frozen_multi_io, tmp_path):
    """Inputs and outputs are still listed, from the nodes' attributes."""
    from freezekeras.graphdef.reading import read_graph_def

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


# --------------------------------------------------------------------------- without TensorFlow

@pytest.fixture(scope="module")
def converted(model_dir, tmp_path_factory) -> dict:
    """Every conftest model converted, binary and text."""
    from conftest import BUILDERS

    folder = tmp_path_factory.mktemp("converted")
    results = {name: freezekeras.convert(model_dir / f"{name}.h5", freezekeras.ConvertOptions(
        output=folder / f"{name}.pb", verify=False)) for name in BUILDERS}
    freezekeras.convert(model_dir / "dense.h5", freezekeras.ConvertOptions(
        output=folder / "dense.pbtxt", text=True, verify=False))
    return results


_NO_TF = """
import json, sys
{call}
print(json.dumps([sorted(m for m in ("tensorflow", "tf_keras", "keras") if m in sys.modules), names]))
"""
_API = "import freezekeras; r = freezekeras.inspect(sys.argv[1]); names = [s.node or s.name for s in r.outputs]"
_CLI = ("from freezekeras.cli.commands import main\nimport contextlib, io\nout = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "    main(['inspect', sys.argv[1], '--json'])\n"
        "names = [s.get('node', s['name']) for s in json.loads(out.getvalue())['outputs']]")


@pytest.mark.subprocess
@pytest.mark.parametrize("how", ["api", "cli"])
@pytest.mark.parametrize("filename", ["dense.pb", "dense.pbtxt", "dense.h5"])
def test_inspect_imports_no_tensorflow(converted, model_dir, how, filename):
    path = model_dir / filename if filename.endswith(".h5") else converted["dense"].output.with_name(filename)
    code = _NO_TF.format(call=_API if how == "api" else _CLI)
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[], ["predictions/Softmax"]]


@pytest.mark.parametrize("name", ["dense", "multi_io", "conv_bn", "stacked_lstm", "nested"])
def test_inspect_of_a_graph_lists_exactly_what_convert_printed(converted, name):
    result = converted[name]
    seen = freezekeras.inspect(result.output)
    assert [(s.name, s.dtype, s.shape) for s in seen.inputs] == [(s.name, s.dtype, s.shape) for s in result.inputs]
    assert [(s.name, s.dtype, s.shape) for s in seen.outputs] == [(s.name, s.dtype, s.shape) for s in result.outputs]


@pytest.mark.parametrize("name", ["dense", "multi_io", "conv_bn", "stacked_lstm", "nested"])
def test_h5_nodes_predicted_are_those_convert_names(converted, model_dir, name):
    result = converted[name]
    seen = freezekeras.inspect(model_dir / f"{name}.h5")
    assert [(s.node, s.dtype, s.shape) for s in seen.inputs] == [(s.name, s.dtype, s.shape) for s in result.inputs]
    assert [s.name for s in seen.outputs] == [s.layer for s in result.outputs]
    assert [s.node for s in seen.outputs] == [s.name for s in result.outputs]  # every one predicted
    assert [s.dtype for s in seen.outputs] == [s.dtype for s in result.outputs]
    assert [s.shape for s in seen.outputs] == [s.shape for s in result.outputs]  # and every shape


@pytest.mark.parametrize("name", ["dense", "nested"])
def test_build_agrees_with_reading_the_config(model_dir, name):
    quick = freezekeras.inspect(model_dir / f"{name}.h5")
    built = freezekeras.inspect(model_dir / f"{name}.h5", build=True)
    assert quick == built


def test_node_is_none_where_the_rules_cannot_know(tmp_path):
    import tf_keras

    x = tf_keras.Input((6,), name="x")
    hidden = tf_keras.layers.Dense(4, name="hidden")(x)
    unit = tf_keras.layers.UnitNormalization(name="unit")(hidden)  # no rule for it
    after = tf_keras.layers.Dense(2, name="after")(tf_keras.layers.Lambda(lambda t: t[:, :3], name="cut")(unit))
    tf_keras.Model(x, [hidden, unit, after]).save(tmp_path / "m.h5")
    seen = freezekeras.inspect(tmp_path / "m.h5")
    assert [(s.name, s.node, s.dtype, s.shape) for s in seen.outputs] == [
        ("hidden", "hidden/BiasAdd", "float32", (None, 4)),
        ("unit", None, "unknown", (None, 4)),  # no node rule, but its shape rule is plain
        ("after", "after/BiasAdd", "float32", None),  # after a Lambda: shape unknown, not guessed
    ]


@pytest.mark.subprocess
@pytest.mark.slow
def test_keras3_files_are_inspected(keras3_archive, tmp_path):
    for path, kind in [(keras3_archive, "keras-archive"), (keras3_archive.with_name("m3.h5"), "keras-h5")]:
        seen = freezekeras.inspect(path)
        assert seen.format == kind
        assert seen.details["keras_version"].startswith("3.")
        assert seen.details["param_count"] == 3 * 2 + 2
        assert seen.details["layer_count"] == 1
        # Keras 3 names a fresh process's first Input "input_layer" and its first Dense "dense"
        assert [(s.dtype, s.shape, s.node) for s in seen.inputs] == [("float32", (None, 3), "input_layer")]
        assert [(s.dtype, s.node) for s in seen.outputs] == [("float32", "dense")]
        converted = freezekeras.convert(path, freezekeras.ConvertOptions(output=tmp_path / f"{kind}.pb"))
        assert [s.name for s in converted.inputs] == ["input_layer"]
        assert [s.name for s in converted.outputs] == ["dense"]


# --------------------------------------------------------------------------- the GraphDef classes

def test_graphdef_classes_do_not_clash_with_tensorflows(converted):
    import tensorflow as tf

    from freezekeras.graphdef.messages import GraphDef
    from freezekeras.graphdef.reading import read_graph_def

    ours = read_graph_def(converted["multi_io"].output)
    theirs = read_graph_def(converted["multi_io"].output, message=tf.compat.v1.GraphDef())
    assert type(ours).DESCRIPTOR.full_name == "freezekeras_tf.GraphDef"
    assert type(theirs).DESCRIPTOR.full_name == "tensorflow.GraphDef"
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)
    assert type(GraphDef()) is type(ours)


def test_committed_descriptors_match_the_installed_tensorflow():
    """Regenerate with tools/regenerate_graphdef.py after a TensorFlow upgrade if this fails."""
    from importlib import resources
    from pathlib import Path

    from google.protobuf import descriptor_pb2

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    try:
        import regenerate_graphdef
    finally:
        sys.path.pop(0)
    fresh = descriptor_pb2.FileDescriptorSet()
    for proto in regenerate_graphdef.file_protos():
        regenerate_graphdef.privatize(proto)
        fresh.file.append(proto)
    committed = resources.files("freezekeras.graphdef").joinpath("descriptors.binpb").read_bytes()
    assert fresh.SerializeToString(deterministic=True) == committed


def test_merge_layers_name_their_last_op(tmp_path):
    import tf_keras

    a, b, c = (tf_keras.Input((3,), name=name) for name in "abc")
    outputs = [tf_keras.layers.Add(name="sum3")([a, b, c]), tf_keras.layers.Multiply(name="product")([a, b]),
               tf_keras.layers.Subtract(name="difference")([a, c]), tf_keras.layers.Concatenate(name="joined")([a, b])]
    tf_keras.Model([a, b, c], outputs).save(tmp_path / "m.h5")
    converted = freezekeras.convert(tmp_path / "m.h5", freezekeras.ConvertOptions(output=tmp_path / "m.pb"))
    seen = freezekeras.inspect(tmp_path / "m.h5")
    assert [s.node for s in seen.outputs] == [s.name for s in converted.outputs] == [
        "sum3/add_1", "product/mul", "difference/sub", "joined/concat"]


@pytest.mark.slow
def test_shapes_derived_from_the_config_are_keras_own(tmp_path):
    """Each shape rule of keras_shapes against the model built by tf-keras (inspect --build)."""
    import tf_keras

    layers = tf_keras.layers
    image = tf_keras.Input((9, 10, 3), name="image")
    series = tf_keras.Input((12, 4), name="series")
    tokens = tf_keras.Input((5,), dtype="int32", name="tokens")
    padded = layers.ZeroPadding2D(((1, 2), (0, 3)), name="padded")(image)
    conv = layers.Conv2D(4, 3, strides=2, padding="valid", name="conv")(padded)
    separable = layers.SeparableConv2D(5, 2, padding="same", dilation_rate=2, name="separable")(conv)
    depthwise = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="depthwise")(conv)
    squeezed = layers.GlobalAveragePooling2D(keepdims=True, name="squeezed")(depthwise)
    scaled = layers.Multiply(name="scaled")([depthwise, squeezed])  # broadcast (1, 1, 8) over (h, w, 8)
    up = layers.UpSampling2D((2, 3), name="up")(layers.MaxPooling2D(2, name="pool")(scaled))
    cropped = layers.Cropping1D((1, 2), name="cropped")(layers.Conv1D(6, 3, padding="causal", name="c1d")(series))
    permuted = layers.Permute((2, 1), name="permuted")(cropped)
    recurrent = layers.GRU(3, return_sequences=True, name="gru")(layers.RepeatVector(4, name="repeat")(
        layers.Flatten(name="flat")(permuted)))
    embedded = layers.Reshape((-1, 2), name="reshaped")(layers.Embedding(7, 4, name="embed")(tokens))
    joined = layers.Concatenate(axis=1, name="joined")([embedded, layers.Reshape((6, 2), name="r2")(
        layers.Dense(12, name="d12")(layers.GlobalMaxPooling1D(name="gmax")(cropped)))])
    outputs = [separable, up, recurrent, joined, layers.LSTM(2, name="lstm")(series)]
    tf_keras.Model([image, series, tokens], outputs).save(tmp_path / "shapes.h5")

    quick = freezekeras.inspect(tmp_path / "shapes.h5")
    built = freezekeras.inspect(tmp_path / "shapes.h5", build=True)
    assert [(s.name, s.shape) for s in quick.outputs] == [(s.name, s.shape) for s in built.outputs]
    assert all(s.shape is not None for s in quick.outputs)
