"""channels_first (NCHW) models: frozen so that they run on CPUs, checked against channels_last twins.

TensorFlow's CPU kernels run no NCHW convolution or pooling, so Keras itself
cannot predict with such a model here. Each test builds a channels_last twin
with the same weights (kernels have one layout in both formats; a Permute
before Flatten restores the channels-first flattening order), feeds it the
same inputs transposed to NHWC, and compares the frozen graph with it.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import randomize, run_frozen, write_keras1

from freezekeras.cli.commands import main
from freezekeras.graphdef.lint import lint
from freezekeras.graphdef.reading import read_graph_def
from freezekeras.tf.layout import channels_first_nodes

FIRST = {"data_format": "channels_first"}


def classifier_pair():
    """Conv2D, BatchNormalization, MaxPooling2D, Flatten, Dense: (channels_first, channels_last twin)."""
    import tf_keras

    layers = tf_keras.layers
    first = tf_keras.Sequential([
        tf_keras.Input((3, 8, 8), name="image"), layers.Conv2D(4, 3, activation="relu", name="conv", **FIRST),
        layers.BatchNormalization(axis=1, name="bn"), layers.MaxPooling2D(name="pool", **FIRST),
        layers.Flatten(name="flatten"), layers.Dense(2, name="dense"),
    ])
    twin = tf_keras.Sequential([
        tf_keras.Input((8, 8, 3)), layers.Conv2D(4, 3, activation="relu"), layers.BatchNormalization(),
        layers.MaxPooling2D(), layers.Permute((3, 1, 2)), layers.Flatten(), layers.Dense(2),
    ])
    return first, twin


def dense_prediction_pair():
    """A fully convolutional model whose outputs are channels-first maps: Conv2DTranspose,
    SeparableConv2D, DepthwiseConv2D, AveragePooling2D, Concatenate on the channels, UpSampling2D."""
    import tf_keras

    layers = tf_keras.layers

    def build(shape, fmt, axis):
        given = {"data_format": fmt}
        x = tf_keras.Input(shape)
        up = layers.Conv2DTranspose(3, 3, strides=2, padding="same", **given)(x)
        sep = layers.SeparableConv2D(4, 3, padding="same", activation="relu", **given)(up)
        depth = layers.DepthwiseConv2D(3, padding="same", **given)(sep)
        joined = layers.Concatenate(axis=axis)([sep, depth])
        pooled = layers.AveragePooling2D(**given)(joined)
        return tf_keras.Model(x, [layers.UpSampling2D(**given)(pooled), layers.Conv2D(2, 1, **given)(joined)])

    return build((2, 5, 5), "channels_first", 1), build((5, 5, 2), "channels_last", -1)


def _convert(model_path, out_path) -> dict:
    result = CliRunner().invoke(main, ["convert", str(model_path), "-o", str(out_path), "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("pair", [classifier_pair, dense_prediction_pair], ids=lambda pair: pair.__name__)
def test_a_channels_first_model_runs_on_cpus_and_matches_its_channels_last_twin(tmp_path, pair):
    import tf_keras

    tf_keras.utils.set_random_seed(4)
    first, twin = pair()
    randomize(twin, seed=4)
    first.set_weights(twin.get_weights())
    first.save(tmp_path / "first.h5")

    data = _convert(tmp_path / "first.h5", tmp_path / "first.pb")

    x = np.random.default_rng(5).normal(size=(3, *first.input_shape[1:])).astype("float32")
    frozen = run_frozen(tmp_path / "first.pb", {data["inputs"][0]["name"]: x},
                        [spec["name"] for spec in data["outputs"]])
    expected = twin.predict(x.transpose(0, 2, 3, 1), verbose=0)
    for got, want in zip(frozen, expected if isinstance(expected, list) else [expected]):
        np.testing.assert_allclose(got, want.transpose(0, 3, 1, 2) if want.ndim == 4 else want, atol=1e-5)
    assert data["verification"]["passed"]
    assert data["inputs"][0]["shape"] == [None, *first.input_shape[1:]]  # still channels first
    assert [spec["shape"] for spec in data["outputs"]] == [
        [None, *shape[1:]] for shape in (first.output_shape if isinstance(first.output_shape, list)
                                         else [first.output_shape])]
    graph_def = read_graph_def(tmp_path / "first.pb")
    assert not [node.name for node in graph_def.node  # a BiasAdd that is an output may stay: CPUs run it
                if node.op != "BiasAdd" and node.name in channels_first_nodes(graph_def)]
    assert any(node.op == "Transpose" for node in graph_def.node)
    assert "channels-first" not in {finding.kind for finding in lint(graph_def)}
    warning, = [w for w in data["warnings"] if "channels_first" in w]
    assert warning.endswith("compute in NHWC between transposes, as TensorFlow's CPU kernels need; the inputs "
                            "and outputs keep the model's channels-first shapes (--keep-nchw for OpenCV's dnn module)")


def test_a_keras1_theano_cnn_in_th_ordering(tmp_path):
    """The classic Keras 1 Theano model: dim_ordering "th", kernels stored (filters, channels, rows,
    columns) and mirrored, as Theano's true convolution wants them."""
    import tf_keras

    layers = tf_keras.layers
    tf_keras.utils.set_random_seed(6)
    twin = tf_keras.Sequential([
        tf_keras.Input((6, 6, 2)), layers.Conv2D(3, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Permute((3, 1, 2)), layers.Flatten(), layers.Dense(2, activation="softmax"),
    ])
    randomize(twin, seed=6)
    config = {"class_name": "Sequential", "config": [
        {"class_name": "Convolution2D", "config": {
            "name": "convolution2d_1", "trainable": True, "batch_input_shape": [None, 2, 6, 6],
            "input_dtype": "float32", "nb_filter": 3, "nb_row": 3, "nb_col": 3, "init": "glorot_uniform",
            "activation": "relu", "border_mode": "valid", "subsample": [1, 1], "dim_ordering": "th",
            "W_regularizer": None, "b_regularizer": None, "activity_regularizer": None,
            "W_constraint": None, "b_constraint": None, "bias": True}},
        {"class_name": "MaxPooling2D", "config": {
            "name": "maxpooling2d_1", "trainable": True, "pool_size": [2, 2], "strides": [2, 2],
            "border_mode": "valid", "dim_ordering": "th"}},
        {"class_name": "Flatten", "config": {"name": "flatten_1", "trainable": True}},
        {"class_name": "Dense", "config": {
            "name": "dense_1", "trainable": True, "output_dim": 2, "init": "glorot_uniform",
            "activation": "softmax", "W_regularizer": None, "b_regularizer": None,
            "activity_regularizer": None, "W_constraint": None, "b_constraint": None, "bias": True,
            "input_dim": 12}},
    ]}
    saved = tf_keras.Sequential([  # the model as Keras 1 held it, built but never run here
        tf_keras.Input((2, 6, 6)), layers.Conv2D(3, 3, activation="relu", name="convolution2d_1", **FIRST),
        layers.MaxPooling2D(name="maxpooling2d_1", **FIRST), layers.Flatten(name="flatten_1"),
        layers.Dense(2, activation="softmax", name="dense_1"),
    ])
    saved.set_weights(twin.get_weights())
    write_keras1(tmp_path / "th.h5", saved, config)
    with h5py.File(tmp_path / "th.h5", "r+") as handle:  # th layout, mirrored as Theano stores it
        layer = handle["model_weights/convolution2d_1"]
        kernel = layer["convolution2d_1_W"][()]
        del layer["convolution2d_1_W"]
        layer.create_dataset("convolution2d_1_W", data=np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)[:, :, ::-1, ::-1]))

    result = CliRunner().invoke(main, ["convert", str(tmp_path / "th.h5"), "--backend", "theano",
                                       "-o", str(tmp_path / "th.pb"), "--json"])

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["inputs"][0]["shape"] == [None, 2, 6, 6]
    x = np.random.default_rng(7).normal(size=(4, 2, 6, 6)).astype("float32")
    frozen, = run_frozen(tmp_path / "th.pb", {data["inputs"][0]["name"]: x}, [data["outputs"][0]["name"]])
    np.testing.assert_allclose(frozen, twin.predict(x.transpose(0, 2, 3, 1), verbose=0), atol=1e-5)


def test_a_channels_last_model_is_left_as_it_is(model_dir, tmp_path):
    data = _convert(model_dir / "conv_bn.h5", tmp_path / "m.pb")

    graph_def = read_graph_def(tmp_path / "m.pb")
    assert not any(node.op == "Transpose" for node in graph_def.node)
    assert not [w for w in data["warnings"] if "channels_first" in w]


def test_keep_nchw_leaves_the_layout_for_opencv(tmp_path):
    import tf_keras

    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is not installed (it is in the test extras)")
    tf_keras.utils.set_random_seed(4)
    first, twin = classifier_pair()
    randomize(twin, seed=4)
    first.set_weights(twin.get_weights())
    first.save(tmp_path / "first.h5")

    result = CliRunner().invoke(main, ["convert", str(tmp_path / "first.h5"), "-o", str(tmp_path / "kept.pb"),
                                       "--keep-nchw", "--json"])

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["verification"]["passed"]
    assert data["warnings"] == [
        "4 channels_first (NCHW) nodes (conv/Conv2D, conv/BiasAdd, bn/FusedBatchNormV3, ...) "
        "kept as NCHW (--keep-nchw): OpenCV's dnn module and GPUs run them, TensorFlow's CPU kernels do not"]
    graph_def = read_graph_def(tmp_path / "kept.pb")
    assert len(channels_first_nodes(graph_def)) == 4
    assert not any(node.op == "Transpose" for node in graph_def.node)
    assert [(f.kind, f.nodes) for f in lint(graph_def)] == [
        ("channels-first", ("conv/Conv2D", "bn/FusedBatchNormV3", "pool/MaxPool"))]
    net = cv2.dnn.readNetFromTensorflow(str(tmp_path / "kept.pb"))
    x = np.random.default_rng(5).normal(size=(1, 3, 8, 8)).astype("float32")
    net.setInput(x)
    np.testing.assert_allclose(net.forward(), twin.predict(x.transpose(0, 2, 3, 1), verbose=0), atol=1e-5)
