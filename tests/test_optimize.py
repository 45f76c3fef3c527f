"""Inference simplifications (freezekeras.tf.optimize.optimize) and float16 weights (to_fp16) on real frozen graphs.

Each graph is frozen by freezekeras from a small tf_keras (or Keras 3) model,
transformed, and run with plain TensorFlow (and OpenCV, tf2onnx + onnxruntime)
on the test's own inputs; the numbers are compared with the model's own
predictions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import keras_predict, own_inputs, run_frozen

import freezekeras
from freezekeras.graphdef.lint import lint
from freezekeras.graphdef.reading import graph_inputs_outputs, read_graph_def
from freezekeras.tf.optimize import BATCH_NORM_OPS, FP16_RELATIVE_ATOL, internal_ops, optimize, to_fp16

#: Optimized graphs give the model's numbers within this, relative to the largest |output|.
RELATIVE = 1e-4


def _freeze(model: Path, out: Path, route: str | None = None):
    """``model`` frozen by freezekeras: ``(GraphDef, input names, output names)``."""
    import tensorflow as tf

    freezekeras.convert(model, freezekeras.ConvertOptions(output=out, verify=False, route=route))
    graph_def = read_graph_def(out, message=tf.compat.v1.GraphDef())
    inputs, outputs = graph_inputs_outputs(graph_def)
    return graph_def, [spec.name for spec in inputs], [spec.name for spec in outputs]


def _write(graph_def, path: Path) -> Path:
    path.write_bytes(graph_def.SerializeToString(deterministic=True))
    return path


def _assert_close(got: list, want: list, bound: float = RELATIVE) -> float:
    """The largest difference relative to the largest |want|, asserted at most ``bound``."""
    scale = max(float(np.abs(w).max()) for w in want)
    relative = max(float(np.abs(g - w).max()) for g, w in zip(got, want)) / scale
    assert relative <= bound, relative
    return relative


def _assert_serving_clean(graph_def) -> None:
    """No TensorFlow-internal op (``_FusedConv2D``...) and no lint finding of error level."""
    assert internal_ops(graph_def) == set()
    assert [finding for finding in lint(graph_def) if finding.severity == "error"] == []


def _inputs_for(graph_def, seed: int, batch: int = 3) -> list:
    return own_inputs(graph_inputs_outputs(graph_def)[0], seed=seed, batch=batch, free_dim=7)


# --------------------------------------------------------------------------- optimize


@pytest.mark.slow
@pytest.mark.parametrize("route", ["session", "function"])
def test_optimize_folds_the_batch_norm_into_the_convolution(model_dir, tmp_path, route):
    graph_def, inputs, outputs = _freeze(model_dir / "conv_bn.h5", tmp_path / "plain.pb", route)
    assert any(node.op == "FusedBatchNormV3" for node in graph_def.node)

    optimized, report = optimize(graph_def, inputs=inputs, outputs=outputs)

    assert report.folded_batch_norms == 1 and report.batch_norms_left == 0
    assert report.nodes_after < report.nodes_before == len(graph_def.node)
    assert not {node.op for node in optimized.node} & set(BATCH_NORM_OPS)
    _assert_serving_clean(optimized)
    assert graph_inputs_outputs(optimized) == graph_inputs_outputs(graph_def)  # names, dtypes, shapes
    x = _inputs_for(graph_def, seed=1)
    got = run_frozen(_write(optimized, tmp_path / "opt.pb"), dict(zip(inputs, x)), outputs)
    _assert_close(got, keras_predict(model_dir / "conv_bn.h5", x))


@pytest.mark.slow
def test_optimize_halves_mobilenet_v2(tmp_path):
    import tf_keras

    tf_keras.utils.set_random_seed(6)
    tf_keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35).save(tmp_path / "m.h5")
    graph_def, inputs, outputs = _freeze(tmp_path / "m.h5", tmp_path / "plain.pb")

    optimized, report = optimize(graph_def, inputs=inputs, outputs=outputs)

    assert (report.nodes_before, report.folded_batch_norms, report.batch_norms_left) == (425, 52, 0)
    assert report.nodes_after < report.nodes_before / 2  # 163 with TensorFlow 2.21
    _assert_serving_clean(optimized)
    x = _inputs_for(graph_def, seed=2, batch=2)
    got = run_frozen(_write(optimized, tmp_path / "opt.pb"), dict(zip(inputs, x)), outputs)
    _assert_close(got, keras_predict(tmp_path / "m.h5", x))


@pytest.mark.slow
@pytest.mark.parametrize("route", ["session", "function"])
def test_optimize_keeps_the_while_loops_of_a_stacked_lstm_running(model_dir, tmp_path, route):
    graph_def, inputs, outputs = _freeze(model_dir / "stacked_lstm.h5", tmp_path / "plain.pb", route)

    optimized, report = optimize(graph_def, inputs=inputs, outputs=outputs)

    functions = {function.signature.name for function in graph_def.library.function}
    assert functions and {function.signature.name for function in optimized.library.function} == functions
    assert sum(node.op.endswith("While") for node in optimized.node) == 2
    assert report.function_nodes_after > 0 and report.nodes_after <= report.nodes_before
    assert optimized.versions == graph_def.versions
    _assert_serving_clean(optimized)
    x = _inputs_for(graph_def, seed=3)
    got = run_frozen(_write(optimized, tmp_path / "opt.pb"), dict(zip(inputs, x)), outputs)
    _assert_close(got, keras_predict(model_dir / "stacked_lstm.h5", x))


@pytest.mark.slow
def test_optimizing_twice_gives_the_same_bytes_as_once(model_dir, tmp_path):
    for name in ("conv_bn", "stacked_lstm"):
        graph_def, inputs, outputs = _freeze(model_dir / f"{name}.h5", tmp_path / f"{name}.pb")
        once, _ = optimize(graph_def, inputs=inputs, outputs=outputs)
        again, _ = optimize(graph_def, inputs=inputs, outputs=outputs)
        twice, report = optimize(once, inputs=inputs, outputs=outputs)
        assert again.SerializeToString(deterministic=True) == once.SerializeToString(deterministic=True)
        assert twice.SerializeToString(deterministic=True) == once.SerializeToString(deterministic=True)
        assert report.folded_batch_norms == 0 and report.nodes_after == report.nodes_before


@pytest.mark.slow
def test_opencv_and_onnxruntime_run_the_optimized_cnn(model_dir, tmp_path):
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is not installed (it is in the test extras)")
    graph_def, inputs, outputs = _freeze(model_dir / "conv_bn.h5", tmp_path / "plain.pb")
    optimized, _ = optimize(graph_def, inputs=inputs, outputs=outputs)
    pb = _write(optimized, tmp_path / "opt.pb")
    x = _inputs_for(graph_def, seed=4, batch=2)
    want = keras_predict(model_dir / "conv_bn.h5", x)

    net = cv2.dnn.readNetFromTensorflow(str(pb))
    net.setInput(np.ascontiguousarray(x[0].transpose(0, 3, 1, 2)))  # OpenCV takes images as NCHW
    _assert_close([net.forward().reshape(want[0].shape)], want)
    _assert_close(_onnxruntime(optimized, inputs, outputs, x), want)


def _onnxruntime(graph_def, inputs: list[str], outputs: list[str], x: list) -> list:
    """``graph_def`` converted by tf2onnx and run by onnxruntime."""
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[clients]')")
    tf2onnx = pytest.importorskip("tf2onnx", reason="tf2onnx is not installed (pip install -e '.[clients]')")
    tensors = [name if ":" in name else f"{name}:0" for name in outputs]
    proto, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=[f"{name}:0" for name in inputs],
                                               output_names=tensors, opset=17)
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {f"{name}:0": value for name, value in zip(inputs, x)})


#: A Keras 3 CNN whose BatchNormalizations follow a Conv2D, a DepthwiseConv2D and a Dense; saved with
#: inputs and Keras 3's predictions.
KERAS3_CNN = textwrap.dedent("""
    import keras, numpy as np
    keras.utils.set_random_seed(7)
    layers = keras.layers
    model = keras.Sequential([keras.Input((12, 12, 3)), layers.Conv2D(4, 3), layers.BatchNormalization(),
                              layers.ReLU(), layers.DepthwiseConv2D(3, use_bias=False), layers.BatchNormalization(),
                              layers.GlobalAveragePooling2D(), layers.Dense(8), layers.BatchNormalization(),
                              layers.Dense(2)])
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            shape = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, shape), rng.normal(0, 0.3, shape), rng.normal(0, 0.5, shape),
                               rng.uniform(0.5, 2.0, shape)])
    model.save("cnn.keras")
    x = rng.normal(size=(3, 12, 12, 3)).astype("float32")
    np.savez("cnn.npz", x=x, y=model.predict(x, verbose=0))
""")


@pytest.fixture(scope="module")
def keras3_cnn(tmp_path_factory) -> Path:
    """A Keras 3 ``.keras`` CNN with ``cnn.npz`` (inputs and predictions) next to it, built in a subprocess."""
    folder = tmp_path_factory.mktemp("keras3_cnn")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", KERAS3_CNN], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        pytest.skip(f"cannot build a Keras 3 model here: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return folder / "cnn.keras"


@pytest.mark.slow
@pytest.mark.subprocess
def test_optimize_a_keras3_cnn_on_the_function_route(keras3_cnn, tmp_path):
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is not installed (it is in the test extras)")
    graph_def, inputs, outputs = _freeze(keras3_cnn, tmp_path / "plain.pb")
    saved = np.load(keras3_cnn.with_suffix(".npz"))

    optimized, report = optimize(graph_def, inputs=inputs, outputs=outputs)

    # Grappler folded the Conv2D's BatchNorm into its weights while freezing (function route); the Mul of the
    # DepthwiseConv2D's and the Dense's stay: no TensorFlow tool folds those.
    assert report.folded_batch_norms == 0 and report.nodes_after <= report.nodes_before
    _assert_serving_clean(optimized)
    pb = _write(optimized, tmp_path / "opt.pb")
    _assert_close(run_frozen(pb, dict(zip(inputs, [saved["x"]])), outputs), [saved["y"]])
    net = cv2.dnn.readNetFromTensorflow(str(pb), "", cv2.dnn.ENGINE_CLASSIC)  # the default engine refuses it
    net.setInput(np.ascontiguousarray(saved["x"].transpose(0, 3, 1, 2)))
    _assert_close([net.forward()], [saved["y"]])
    _assert_close(_onnxruntime(optimized, inputs, outputs, [saved["x"]]), [saved["y"]])


# --------------------------------------------------------------------------- fp16


@pytest.mark.slow
def test_fp16_halves_mobilenet_v2_within_the_documented_tolerance(tmp_path):
    import tf_keras

    tf_keras.utils.set_random_seed(8)
    model = tf_keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35,
                                              classifier_activation=None)
    rng = np.random.default_rng(8)
    for layer in model.layers:  # BatchNorm statistics of a trained model, not 0 and 1
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            shape = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.8, 1.2, shape), rng.normal(0, 0.1, shape), rng.normal(0, 0.1, shape),
                               rng.uniform(0.8, 1.2, shape)])
    model.save(tmp_path / "m.h5")
    graph_def, inputs, outputs = _freeze(tmp_path / "m.h5", tmp_path / "plain.pb")

    half, report = to_fp16(graph_def)

    assert report.bytes_before == graph_def.ByteSize() and report.bytes_after == half.ByteSize()
    assert 0.45 < report.bytes_after / report.bytes_before < 0.55
    assert report.constants_converted > 50
    assert graph_inputs_outputs(half) == graph_inputs_outputs(graph_def)  # float32 in, float32 out
    _assert_serving_clean(half)
    x = _inputs_for(graph_def, seed=5, batch=4)
    got = run_frozen(_write(half, tmp_path / "half.pb"), dict(zip(inputs, x)), outputs)
    difference = _assert_close(got, keras_predict(tmp_path / "m.h5", x), FP16_RELATIVE_ATOL)
    assert difference > 0  # the weights did change


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dense", "conv_bn", "stacked_lstm", "nested"])
def test_fp16_graphs_run_within_the_tolerance(model_dir, tmp_path, name):
    graph_def, inputs, outputs = _freeze(model_dir / f"{name}.h5", tmp_path / "plain.pb")
    optimized, _ = optimize(graph_def, inputs=inputs, outputs=outputs)

    half, report = to_fp16(optimized)

    assert report.constants_converted > 0
    assert graph_inputs_outputs(half) == graph_inputs_outputs(graph_def)
    _assert_serving_clean(half)
    x = _inputs_for(graph_def, seed=6)
    got = run_frozen(_write(half, tmp_path / "half.pb"), dict(zip(inputs, x)), outputs)
    _assert_close(got, keras_predict(model_dir / f"{name}.h5", x), FP16_RELATIVE_ATOL)


def test_fp16_leaves_small_and_non_float32_constants_alone():
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 20), name="x")
        weights = tf.constant(np.linspace(-1, 1, 20 * 4, dtype="float32").reshape(20, 4), name="w")
        huge = tf.constant(np.full((20, 4), 1e6, "float32"), name="huge")  # beyond float16's range
        scaled = tf.matmul(x, weights) * tf.constant(2.0, name="two") + tf.matmul(x, huge)
        tf.cast(scaled, tf.float64, name="wide") + tf.constant(np.ones(4), name="ones64")
    graph_def = graph.as_graph_def()

    half, report = to_fp16(graph_def)

    ops = {node.name: (node.op, node.attr["dtype"].type if "dtype" in node.attr else None) for node in half.node}
    assert report.constants_converted == 1
    assert ops["w"][0] == "Cast" and ops["w_fp16"] == ("Const", tf.float16.as_datatype_enum)
    assert ops["two"][0] == ops["huge"][0] == ops["ones64"][0] == "Const"
    assert to_fp16(graph_def, min_elements=81)[1].constants_converted == 0


def test_fp16_converts_constants_inside_a_while_body(tmp_path):
    import tensorflow as tf

    def body(i, value):
        matrix = tf.constant(np.eye(8, dtype="float32") * 0.5 + 0.01, name="matrix")
        return i + 1, tf.tanh(tf.matmul(value, matrix))

    graph = tf.Graph()
    with graph.as_default():  # control flow v2: a While op, its body in the function library
        x = tf.compat.v1.placeholder(tf.float32, (None, 8), name="x")
        tf.identity(tf.while_loop(lambda i, _: i < 3, body, [tf.constant(0), x])[1], name="y")
    graph_def = graph.as_graph_def()
    assert any(node.op in {"While", "StatelessWhile"} for node in graph_def.node)

    half, report = to_fp16(graph_def)

    in_bodies = [node for function in half.library.function for node in function.node_def
                 if "dtype" in node.attr and node.attr["dtype"].type == tf.float16.as_datatype_enum]
    assert report.constants_converted == len(in_bodies) == 1
    feeds = {"x": own_inputs(graph_inputs_outputs(graph_def)[0], seed=7)[0]}
    want = run_frozen(_write(graph_def, tmp_path / "plain.pb"), feeds, ["y"])
    got = run_frozen(_write(half, tmp_path / "half.pb"), feeds, ["y"])
    _assert_close(got, want, FP16_RELATIVE_ATOL)
