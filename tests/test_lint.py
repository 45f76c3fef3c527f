"""lint and ``inspect --check``: what should not be in a frozen serving graph, found without TensorFlow."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import BUILDERS, naive_freeze

import freezekeras
from freezekeras.cli.commands import main
from freezekeras.errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE_ERROR
from freezekeras.graphdef.lint import lint
from freezekeras.graphdef.reading import read_graph_def
from freezekeras.tf.freezing import find_leftovers


def _graph(build):
    """TensorFlow's GraphDef of what ``build(tf)`` adds to a new graph."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        build(tf)
    return graph.as_graph_def()


def _variable(tf):
    v1 = tf.compat.v1
    x = v1.placeholder(tf.float32, (None, 2), name="x")
    weights = v1.Variable(tf.ones((2, 2)), name="w", use_resource=False)  # VariableV2
    tf.matmul(x, weights, name="y")


def _device(tf):
    v1 = tf.compat.v1
    x = v1.placeholder(tf.float32, (None, 2), name="x")
    with tf.device("/device:CPU:0"):
        tf.nn.relu(x, name="y")


def _random(tf):
    v1 = tf.compat.v1
    x = v1.placeholder(tf.float32, (None, 2), name="x")
    tf.add(x, v1.random_uniform(tf.shape(x)), name="y")


def _unused_placeholder(tf):
    v1 = tf.compat.v1
    x = v1.placeholder(tf.float32, (None, 2), name="x")
    v1.placeholder(tf.float32, (None, 3), name="forgotten")
    tf.nn.relu(x, name="y")


def _learning_phase_switch(tf):
    v1 = tf.compat.v1
    x = v1.placeholder(tf.float32, (None, 2), name="x")
    phase = v1.placeholder_with_default(False, (), name="keras_learning_phase")
    _, on_true = tf.raw_ops.Switch(data=x, pred=phase, name="dropout/switch")
    tf.identity(on_true, name="y")


@pytest.mark.parametrize(("build", "expected"), [
    (_variable, {"variables": ["w", "w/Assign"]}),
    (_device, {"device-strings": ["y"]}),
    (_random, {"random-ops": ["random_uniform/RandomUniform"]}),
    (_unused_placeholder, {"unused-placeholders": ["forgotten"]}),
    (_learning_phase_switch, {"learning-phase": ["keras_learning_phase/input", "keras_learning_phase"],
                              "training-switches": ["dropout/switch"]}),
], ids=["variable", "device", "random", "unused-placeholder", "learning-phase-switch"])
def test_each_leftover_kind_is_found(build, expected, tmp_path):
    graph_def = _graph(build)
    assert {f.kind: list(f.nodes) for f in lint(graph_def) if f.severity == "error"} == expected
    path = tmp_path / "g.pb"
    path.write_bytes(graph_def.SerializeToString())
    ours = read_graph_def(path)  # freezekeras' own GraphDef class, no TensorFlow: the same findings
    assert type(ours).DESCRIPTOR.full_name == "freezekeras_tf.GraphDef"
    assert lint(ours) == lint(graph_def)
    result = CliRunner().invoke(main, ["inspect", str(path), "--check"])
    assert result.exit_code == EXIT_CHECK_FAILED
    assert result.stderr.startswith(f"freezekeras: error: {path}: the check found {len(expected)} kind")
    assert result.stderr.count("\n") == 1


def test_the_naive_freeze_recipe_fails_the_check(model_dir, tmp_path):
    naive, raw = naive_freeze(model_dir / "conv_bn.h5")
    branch, = [f.signature.name for f in naive.library.function if f.signature.name.startswith("dropout_1_cond_true_")]
    random = f"{branch}/dropout/random_uniform/RandomUniform"  # inside the function library
    kinds = {f.kind: list(f.nodes) for f in lint(naive)}
    assert kinds == {
        "random-ops": [random],
        "learning-phase": ["keras_learning_phase/input", "keras_learning_phase"],
        "training-switches": ["bn/cond", "dropout_1/cond"],
    }
    assert "variables" in {f.kind for f in lint(raw)}
    path = tmp_path / "naive.pb"
    path.write_bytes(naive.SerializeToString())
    result = CliRunner().invoke(main, ["inspect", str(path), "--check"])
    assert result.exit_code == EXIT_CHECK_FAILED
    assert result.stderr == (
        f"freezekeras: error: {path}: the check found 3 kinds of problem: "
        f"random ops (Dropout?): 1 ({random}); "
        "learning-phase nodes: 2 (keras_learning_phase/input, keras_learning_phase); "
        "training switches: 2 (bn/cond, dropout_1/cond). "
        "Freeze the model for inference (freezekeras convert) or remove these nodes.\n")
    assert result.stdout.splitlines()[-4:] == [
        "lint:",
        f"  error: random ops (Dropout?): 1 ({random})",
        "  error: learning-phase nodes: 2 (keras_learning_phase/input, keras_learning_phase)",
        "  error: training switches: 2 (bn/cond, dropout_1/cond)",
    ]
    # convert's warnings are the same implementation
    assert find_leftovers(naive) == [f.line for f in lint(naive)]


def test_check_with_json_still_prints_the_json(model_dir, tmp_path):
    naive, _ = naive_freeze(model_dir / "dense.h5")
    path = tmp_path / "naive.pb"
    path.write_bytes(naive.SerializeToString())
    result = CliRunner().invoke(main, ["inspect", str(path), "--check", "--json"])
    assert result.exit_code == EXIT_CHECK_FAILED
    data = json.loads(result.stdout)
    assert [(f["kind"], f["severity"], f["count"]) for f in data["lint"]] == [
        ("random-ops", "error", 1), ("learning-phase", "error", 2), ("training-switches", "error", 1)]
    assert data["functions"] == [{"name": f.signature.name, "node_count": len(f.node_def)}
                                 for f in naive.library.function]
    assert sorted(f["name"].rsplit("_", 1)[0] for f in data["functions"]) == ["dropout_cond_false", "dropout_cond_true"]
    assert result.stderr.startswith(f"freezekeras: error: {path}: the check found 3 kinds of problem: ")


def test_channels_first_nodes_are_information(tmp_path):
    """NCHW convolutions run on GPUs and in OpenCV, not on TensorFlow's CPU kernels: said, not failed."""
    def build(tf):
        x = tf.compat.v1.placeholder(tf.float32, (None, 3, 8, 8), name="x")
        conv = tf.nn.conv2d(x, tf.ones((3, 3, 3, 4)), strides=1, padding="VALID", data_format="NCHW", name="conv")
        tf.nn.bias_add(conv, tf.ones((4,)), data_format="NCHW", name="y")  # CPUs run an NCHW BiasAdd

    path = tmp_path / "nchw.pb"
    path.write_bytes(_graph(build).SerializeToString())
    result = CliRunner().invoke(main, ["inspect", str(path), "--check", "--json"])
    assert result.exit_code == EXIT_OK and result.stderr == ""
    assert json.loads(result.stdout)["lint"] == [{
        "kind": "channels-first", "severity": "info", "count": 1, "nodes": ["conv"],
        "message": "channels_first (NCHW) nodes TensorFlow's CPU kernels cannot run: 1 (conv)"}]


@pytest.fixture(scope="module")
def converted(model_dir, tmp_path_factory) -> dict[str, freezekeras.ConversionResult]:
    folder = tmp_path_factory.mktemp("checked")
    return {name: freezekeras.convert(model_dir / f"{name}.h5", freezekeras.ConvertOptions(
        output=folder / f"{name}.pb", verify=False)) for name in BUILDERS}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_freezekeras_own_graphs_pass_the_check(converted, name):
    result = CliRunner().invoke(main, ["inspect", str(converted[name].output), "--check", "--json"])
    assert result.exit_code == EXIT_OK, result.stderr
    assert result.stderr == ""
    lint_found = json.loads(result.stdout)["lint"]
    if len(converted[name].outputs) > 1:  # information only: a multi-output model has several outputs
        assert lint_found == [{"kind": "several-outputs", "severity": "info", "count": 2,
                               "nodes": ["score/Sigmoid", "classes/Softmax"],
                               "message": "several candidate outputs: 2 (score/Sigmoid, classes/Softmax)"}]
    else:
        assert lint_found == []


def test_check_refuses_a_keras_model(model_dir):
    path = model_dir / "dense.h5"
    result = CliRunner().invoke(main, ["inspect", str(path), "--check"])
    assert result.exit_code == EXIT_USAGE_ERROR
    assert result.stdout == ""
    assert result.stderr == (f"freezekeras: error: {path}: --check lints frozen graphs, and this is a Keras "
                             "model. Convert it and check the .pb, or drop --check.\n")


def test_graph_details_count_constants_and_functions(converted):
    details = freezekeras.inspect(converted["dense"].output).details
    assert details["param_count"] == 195  # the Keras model's count_params()
    assert details["const_bytes"] == 195 * 4
    assert details["functions"] == []
    lstm = freezekeras.inspect(converted["stacked_lstm"].output).details
    assert sorted(f["name"].split("_while_")[0] for f in lstm["functions"]) == ["lstm_a", "lstm_a", "lstm_b", "lstm_b"]
    assert all(f["node_count"] > 0 for f in lstm["functions"])
