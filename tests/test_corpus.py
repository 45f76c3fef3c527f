"""Real third-party .h5 files from ../shared/corpus: they convert, verify and freeze clean.

The corpus (read-only, outside the repository) is described in its MANIFEST.md.
Every model listed here is one plain ``tf_keras.models.load_model`` loads, so
freezekeras must convert it; a failure here is a freezekeras bug to fix, never
one to skip.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from conftest import CORPUS, assert_verified, keras_predict, needs_corpus, own_inputs, run_frozen

import freezekeras
from freezekeras.graphdef.reading import read_graph_def
from freezekeras.tf.freezing import find_leftovers

pytestmark = [pytest.mark.corpus, needs_corpus]

#: The corpus files that take over 1.5 s to convert: left out of the fast subset.
SLOW_FILES = {"teachable_machine_mobilenet.h5", "stock_lstm_tf212.h5"}


def _files(names) -> list:
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_FILES else name for name in names]


# The full models whose "plain load" column in MANIFEST.md says `ok` (the theano-era files that
# "load" with caveats, Lambda, Keras 1, custom-layer and weights-only files are not listed).
PLAIN_LOAD_OK = [
    "k2tf_test_sequential.h5",
    "mtcnn_onet_48net.h5",
    "mtcnn_pnet_12net.h5",
    "dl4j_dcgan_generator.h5",
    "dl4j_reshape_to_rnn_lstm.h5",
    "dl4j_simple_lstm_tf_keras_2.h5",
    "konduit_issue_9349.h5",
    "konduit_tfop_0.h5",
    "konduit_GAPError_se.h5",
    "konduit_cnn1d_tf25.h5",
    "konduit_custom_loss.h5",
    "hls4ml_keras_3layer.h5",
    "faceclf_fer2013_big_xception.h5",
    "faceclf_gender_mini_xception.h5",
    "teachable_machine_mobilenet.h5",
    "stock_lstm_tf212.h5",
]

# reference/ cases (MANIFEST.md) that tf-keras reads: NAME_model.h5, or NAME_config.json + NAME_weights.h5.
REFERENCE = ["simple_rnn_tf_keras_2", "simple_flatten_lstm_tf_keras_2", "mnist_mlp_tf_keras_2",
             "simple_lstm_tf_keras_1", "simple_lstm_th_keras_1", "mnist_mlp_th_keras_1"]

# Full models plain loading gets wrong or cannot build: Keras 1.2.2 configs and weights, Theano kernels.
TRANSLATED = {
    "dl4j_conv2d_theano_keras1.h5": ("convolution2d_1_input", "float32", (None, 5, 5, 5)),
    "dl4j_embedding_lstm_tf_keras1.h5": ("embedding_1_input", "int32", (None, 10)),
    "dl4j_batch_to_conv2d_theano_k2.h5": ("dense_1_input", "float32", (None, 100)),
    "dl4j_bilstm_theano_k2.h5": None,
}

# Weights-only files whose architecture JSON lies beside them (MANIFEST.md), all layers standard.
WEIGHTS_WITH_JSON = ["hls4ml_KERAS_3layer_batch_norm_weights"]

LEFTOVER_OPS = {"VarHandleOp", "VariableV2", "Variable", "ReadVariableOp", "VarIsInitializedOp",
                "RandomUniform", "RandomStandardNormal", "TruncatedNormal"}

#: Size the test gives unknown non-batch dimensions (time steps, image sides); not freezekeras' choice.
FREE_DIM = 24


def _assert_clean(graph_def):
    assert find_leftovers(graph_def) == []
    bad = sorted({node.op for node in graph_def.node
                  if node.op in LEFTOVER_OPS or node.op.startswith("Assign")})
    assert bad == [], f"left-over variable or training ops: {bad}"
    assert not [node.name for node in graph_def.node if "keras_learning_phase" in node.name]
    assert not [node.name for node in graph_def.node if node.device]
    for function in graph_def.library.function:  # While bodies of recurrent layers
        inner = sorted({node.op for node in function.node_def
                        if node.op in LEFTOVER_OPS or node.op.startswith("Assign")})
        assert inner == [], f"left-over ops in function {function.signature.name}: {inner}"


def _assert_inspect_agrees(model, result, architecture=None):
    """inspect (no TensorFlow) of the .h5 predicts convert's nodes; of the .pb lists them and passes --check."""
    quick = freezekeras.inspect(model, architecture=architecture)
    assert [(s.node, s.dtype, s.shape) for s in quick.inputs] == [(s.name, s.dtype, s.shape) for s in result.inputs]
    assert [s.name for s in quick.outputs] == [s.layer for s in result.outputs]
    # every output of the corpus has a rule (None would mean "cannot know", never a wrong name)
    assert [s.node for s in quick.outputs] == [s.name for s in result.outputs]
    assert [s.shape for s in quick.outputs if s.shape is not None] == [
        s.shape for s, q in zip(result.outputs, quick.outputs) if q.shape is not None]
    graph = freezekeras.inspect(result.output)
    assert [(s.name, s.dtype, s.shape) for s in graph.outputs] == [(s.name, s.dtype, s.shape) for s in result.outputs]
    assert [(s.name, s.dtype, s.shape) for s in graph.inputs] == [(s.name, s.dtype, s.shape) for s in result.inputs]
    assert graph.lint_errors == []


@pytest.mark.parametrize("filename", _files(PLAIN_LOAD_OK))
def test_full_model_converts_verifies_and_is_clean(tmp_path, filename, record_property):
    path = CORPUS / filename
    result = freezekeras.convert(path, freezekeras.ConvertOptions(output=tmp_path / "m.pb"))

    assert_verified(result, bound=1e-5)  # measured: 5.4e-7 at most
    record_property("max_abs_diff", result.verification.max_abs_diff)
    record_property("atol", result.verification.atol)
    print(f"\n{filename}: max_abs_diff {result.verification.max_abs_diff:.3g} "
          f"(atol {result.verification.atol:.3g}), {result.node_count} nodes")
    assert result.output.is_file() and result.warnings == ()
    assert result.inputs and result.outputs
    _assert_clean(read_graph_def(result.output))
    _assert_inspect_agrees(path, result)

    # Independently of freezekeras' own check: the model loaded eagerly, as a user would, on
    # other inputs, against the frozen graph run by plain TensorFlow.
    inputs = own_inputs(result.inputs, seed=123, free_dim=FREE_DIM)
    expected = keras_predict(path, inputs)
    frozen = run_frozen(result.output, {spec.name: value for spec, value in zip(result.inputs, inputs)},
                         [spec.name for spec in result.outputs])
    assert len(frozen) == len(expected)
    worst = max(float(np.max(np.abs(got - want))) for got, want in zip(frozen, expected))
    record_property("max_abs_diff_vs_eager_keras", worst)
    print(f"{filename}: max |frozen - eager Keras| {worst:.3g} on the test's own inputs")
    for spec, got, want in zip(result.outputs, frozen, expected):
        assert got.shape == want.shape, f"{filename}: {spec.name}"
        atol = 1e-4 * max(1.0, float(np.max(np.abs(want))))
        np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=f"{filename}: {spec.name}")


# Nested models and TensorFlowOpLayer: the names printed are the frozen graph's own nodes.
NODE_NAMES = {
    "konduit_tfop_0.h5": (["input_1"], ["dense/BiasAdd"]),
    "teachable_machine_mobilenet.h5": (["sequential_1_input"], ["sequential_3/dense_Dense2/Softmax"]),
}


@pytest.mark.parametrize("filename", _files(sorted(NODE_NAMES)))
def test_nested_and_tfop_models_name_their_real_nodes(tmp_path, filename):
    result = freezekeras.convert(CORPUS / filename, freezekeras.ConvertOptions(output=tmp_path / "m.pb"))
    ops = {node.name: node.op for node in read_graph_def(result.output).node}
    assert ([s.name for s in result.inputs], [s.name for s in result.outputs]) == NODE_NAMES[filename]
    assert [ops[s.name] for s in result.inputs] == ["Placeholder"]
    assert all(s.name in ops for s in result.outputs)


@pytest.mark.parametrize("filename", sorted(TRANSLATED))
def test_keras1_and_theano_models_convert_and_verify(tmp_path, filename):
    result = freezekeras.convert(CORPUS / filename, freezekeras.ConvertOptions(output=tmp_path / "m.pb"))
    assert_verified(result, bound=1e-5)
    _assert_clean(read_graph_def(result.output))
    if TRANSLATED[filename]:
        assert [(s.name, s.dtype, s.shape) for s in result.inputs] == [TRANSLATED[filename]]


def _theano_mlp(keras):
    return keras.Sequential([
        keras.layers.Dense(512, activation="relu", input_shape=(784,), name="dense_1"),
        keras.layers.Dropout(0.2, name="dropout_1"),
        keras.layers.Dense(512, activation="relu", name="dense_2"),
        keras.layers.Dropout(0.2, name="dropout_2"),
        keras.layers.Dense(10, activation="softmax", name="dense_3"),
    ])


def _theano_lstm(keras):
    return keras.Sequential([
        keras.layers.LSTM(96, return_sequences=True, input_shape=(None, 12), name="lstm_1"),
        keras.layers.LSTM(96, name="lstm_2"),
        keras.layers.Dense(1, name="dense_1"),
    ])


# Weights-only files that ship no architecture: the test writes one, as their user would.
WEIGHTS_WITHOUT_JSON = {"dl4j_mnist_mlp_theano_k2_weights.h5": _theano_mlp, "dl4j_lstm_theano_k2_weights.h5": _theano_lstm}


@pytest.mark.parametrize("filename", sorted(WEIGHTS_WITHOUT_JSON))
def test_weights_only_file_converts_with_an_architecture_written_for_it(tmp_path, filename):
    import tf_keras

    model = WEIGHTS_WITHOUT_JSON[filename](tf_keras)
    (tmp_path / "arch.json").write_text(model.to_json())
    model.load_weights(CORPUS / filename)
    result = freezekeras.convert(CORPUS / filename, freezekeras.ConvertOptions(
        output=tmp_path / "m.pb", architecture=tmp_path / "arch.json"))
    assert_verified(result, bound=1e-5)
    _assert_clean(read_graph_def(result.output))
    inputs = own_inputs(result.inputs, seed=7, free_dim=5)
    frozen, = run_frozen(result.output, {result.inputs[0].name: inputs[0]}, [result.outputs[0].name])
    np.testing.assert_allclose(frozen, model.predict(inputs[0], verbose=0), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", WEIGHTS_WITH_JSON)
def test_weights_only_file_converts_with_its_json(tmp_path, name):
    result = freezekeras.convert(CORPUS / f"{name}.h5", freezekeras.ConvertOptions(
        output=tmp_path / "m.pb", architecture=CORPUS / f"{name}.json"))
    assert_verified(result, bound=1e-5)
    assert result.warnings == ()
    _assert_clean(read_graph_def(result.output))
    _assert_inspect_agrees(CORPUS / f"{name}.h5", result, architecture=CORPUS / f"{name}.json")


@pytest.mark.parametrize("name", REFERENCE)
def test_reference_model_reproduces_original_predictions(tmp_path, name, record_property):
    folder = CORPUS / "reference"
    if (folder / f"{name}_model.h5").is_file():
        model, options = folder / f"{name}_model.h5", freezekeras.ConvertOptions(output=tmp_path / "m.pb")
    else:
        model = folder / f"{name}_weights.h5"
        options = freezekeras.ConvertOptions(output=tmp_path / "m.pb", architecture=folder / f"{name}_config.json")
    result = freezekeras.convert(model, options)
    assert_verified(result, bound=1e-5)
    _assert_clean(read_graph_def(result.output))
    _assert_inspect_agrees(model, result, architecture=options.architecture)

    with h5py.File(CORPUS / "reference" / f"{name}_inputs_and_outputs.h5", "r") as data:
        input_layers = json.loads(data.attrs["inputs"])["inputs"]
        output_layers = json.loads(data.attrs["outputs"])["outputs"]
        inputs = {layer: data["inputs"][layer][()] for layer in input_layers}
        predictions = {layer: data["predictions"][layer][()] for layer in output_layers}

    # The file names Keras layers; the conversion says which graph node each one is. Keras 1.2
    # named a Sequential model's input differently (lstm_input_1, not lstm_1_input): by position then.
    assert sorted(spec.layer for spec in result.outputs) == sorted(output_layers)
    by_name = sorted(spec.layer for spec in result.inputs) == sorted(input_layers)
    assert by_name or (name.endswith("keras_1") and len(input_layers) == len(result.inputs) == 1)
    feeds = {spec.name: inputs[spec.layer if by_name else input_layers[0]] for spec in result.inputs}
    frozen = run_frozen(result.output, feeds, [spec.name for spec in result.outputs])

    worst = 0.0
    for spec, got in zip(result.outputs, frozen):
        want = predictions[spec.layer]
        assert got.shape == want.shape
        worst = max(worst, float(np.max(np.abs(got - want))))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5, err_msg=f"{name}: {spec.layer}")
    record_property("max_abs_diff_vs_original_keras", worst)
    print(f"\n{name}: max |frozen - original Keras| {worst:.3g}")


# Files freezekeras cannot convert yet (MANIFEST.md), each refused with its reason and next step.
REFUSED = {
    "dl4j_model_lambda.h5": ((), "Lambda layers (lambda_3, lambda_4)"),
    "dl4j_model_lambda.h5 --allow-lambda": (("--allow-lambda",), "Give your own functions for them with "
                                            "--custom-objects FILE.py"),
    "dl4j_space_to_depth_lambda_2in.h5 --allow-lambda": (("--allow-lambda",), "written by another Python version"),
    "konduit_deepfm.h5 --allow-lambda": (("--allow-lambda",), "written by another Python version"),
    "hls4ml_hgq_jet_classifier.h5": ((), "'FixedPointQuantizer', which Keras does not know"),
    "hls4ml_garnet_3layer.h5": ((), "'GarNetStack', which Keras does not know"),
    "dl4j_mnist_mlp_theano_k2_weights.h5": ((), "holds weights only"),
    "hls4ml_qkeras_3layer_weights.h5 --architecture": (
        ("--architecture", str(CORPUS / "hls4ml_qkeras_3layer_weights.json")), "which Keras does not know"),
}


def test_unloadable_lambda_replaced_through_custom_objects(tmp_path):
    """YOLOv2's space_to_depth_x2 Lambda (Python 3.6 bytecode), replaced by the user's function."""
    objects = tmp_path / "yolo_lambdas.py"
    objects.write_text("import tensorflow as tf\n"
                       "CUSTOM_OBJECTS = {'space_to_depth_x2': lambda x: tf.nn.space_to_depth(x, block_size=2)}\n")
    model = CORPUS / "dl4j_space_to_depth_lambda_2in.h5"
    result = freezekeras.convert(model, freezekeras.ConvertOptions(output=tmp_path / "m.pb", custom_objects=objects))
    assert_verified(result, bound=1e-5)
    _assert_clean(read_graph_def(result.output))
    assert "SpaceToDepth" in {node.op for node in read_graph_def(result.output).node}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unsupported_files_are_refused_with_a_reason(tmp_path, case):
    from click.testing import CliRunner

    from freezekeras.cli.commands import main

    flags, phrase = REFUSED[case]
    model = CORPUS / case.split(" ")[0]
    result = CliRunner().invoke(main, ["convert", str(model), "-o", str(tmp_path / "m.pb"), *flags])
    assert result.exit_code == 1
    line, = result.stderr.splitlines()
    assert line.startswith(f"freezekeras: error: {model}: ") and phrase in line, line
    assert list(tmp_path.iterdir()) == []
