"""Conversions of real tiny models: the frozen graph loads, is clean, and computes what Keras computes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import BUILDERS, assert_verified, keras_predict, naive_freeze, own_inputs, run_frozen

import freezekeras
from freezekeras.cli.commands import main
from freezekeras.graphdef.reading import read_graph_def
from freezekeras.tf.freezing import find_leftovers

FORBIDDEN_OPS = {"VarHandleOp", "VariableV2", "ReadVariableOp", "RandomUniform", "If", "StatelessIf", "Switch"}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_frozen_graph_matches_keras(model_dir, tmp_path, name):
    h5 = model_dir / f"{name}.h5"
    result = freezekeras.convert(h5, freezekeras.ConvertOptions(output=tmp_path / f"{name}.pb"))

    assert result.output == tmp_path / f"{name}.pb" and result.output.is_file()
    assert_verified(result, bound=1e-5)
    graph_def = read_graph_def(result.output)
    ops = {node.op for node in graph_def.node}
    assert not ops & FORBIDDEN_OPS
    assert not any(node.op.startswith("Assign") or node.device for node in graph_def.node)
    assert not any("keras_learning_phase" in node.name for node in graph_def.node)
    assert find_leftovers(graph_def) == [] and result.warnings == ()

    inputs = own_inputs(result.inputs, seed=7, free_dim=6, int_high=7)
    expected = keras_predict(h5, inputs)
    frozen = run_frozen(result.output, {s.name: v for s, v in zip(result.inputs, inputs)},
                        [s.name for s in result.outputs])
    assert len(frozen) == len(expected)
    for want, got in zip(expected, frozen):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_names_follow_the_keras_model_order(model_dir, tmp_path):
    result = freezekeras.convert(model_dir / "multi_io.h5", freezekeras.ConvertOptions(output=tmp_path / "m.pb"))
    assert [(s.name, s.dtype, s.shape) for s in result.inputs] == [
        ("features", "float32", (None, 6)), ("tokens", "int32", (None, 5))]
    assert [(s.name, s.layer, s.shape) for s in result.outputs] == [
        ("score/Sigmoid", "score", (None, 1)), ("classes/Softmax", "classes", (None, 4))]


def test_batchnorm_uses_moving_statistics(model_dir, tmp_path):
    """Inference mode: the frozen BN normalises with the moving mean/variance, not the batch's."""
    h5 = model_dir / "conv_bn.h5"
    result = freezekeras.convert(h5, freezekeras.ConvertOptions(output=tmp_path / "m.pb"))
    x = np.random.default_rng(0).normal(size=(1, 12, 12, 3)).astype("float32")
    import tf_keras

    model = tf_keras.models.load_model(h5, compile=False)
    inference = model.predict(x, verbose=0)
    training = model(x, training=True).numpy()  # batch statistics (and updates the moving ones)
    frozen = run_frozen(result.output, {result.inputs[0].name: x}, [result.outputs[0].name])[0]
    np.testing.assert_allclose(frozen, inference, atol=1e-5)
    assert np.max(np.abs(frozen - training)) > 1e-2


def test_recurrent_graph_keeps_function_library_and_versions(model_dir, tmp_path):
    result = freezekeras.convert(model_dir / "stacked_lstm.h5", freezekeras.ConvertOptions(output=tmp_path / "m.pb"))
    graph_def = read_graph_def(result.output)
    assert any(node.op in {"While", "StatelessWhile"} for node in graph_def.node)
    assert len(graph_def.library.function) > 0
    assert graph_def.versions.producer > 0


def test_output_node_freezes_an_inner_node(model_dir, tmp_path):
    h5 = model_dir / "dense.h5"
    result = freezekeras.convert(h5, freezekeras.ConvertOptions(
        output=tmp_path / "hidden.pb", output_nodes=("hidden/Relu",)))
    assert [s.name for s in result.outputs] == ["hidden/Relu"]
    assert_verified(result)
    import tf_keras

    model = tf_keras.models.load_model(h5, compile=False)
    x = np.random.default_rng(1).normal(size=(4, 8)).astype("float32")
    hidden = tf_keras.Model(model.inputs, model.get_layer("hidden").output).predict(x, verbose=0)
    got = run_frozen(result.output, {result.inputs[0].name: x}, ["hidden/Relu"])[0]
    np.testing.assert_allclose(got, hidden, atol=1e-6)
    assert "predictions/Softmax" not in {n.name for n in read_graph_def(result.output).node}


def test_text_output_is_parseable_pbtxt(model_dir, tmp_path):
    result = freezekeras.convert(model_dir / "dense.h5", freezekeras.ConvertOptions(
        output=tmp_path / "m.pbtxt", text=True))
    import tensorflow as tf
    from google.protobuf import text_format

    graph_def = text_format.Parse(result.output.read_text(), tf.compat.v1.GraphDef())
    assert len(graph_def.node) == result.node_count
    assert {s.name for s in result.outputs} <= {node.name for node in graph_def.node}
    assert_verified(result)


def test_default_output_and_output_folder(dense_h5, tmp_path):
    default = freezekeras.convert(dense_h5, freezekeras.ConvertOptions(verify=False))
    assert default.output == dense_h5.with_suffix(".pb") and default.output.is_file()
    assert default.verification is None
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    into_folder = freezekeras.convert(dense_h5, freezekeras.ConvertOptions(output=out_dir, verify=False))
    assert into_folder.output == out_dir / "dense.pb"
    assert sorted(p.name for p in out_dir.iterdir()) == ["dense.pb"]


def test_steps_are_reported_in_order(dense_h5, tmp_path):
    steps = []
    result = freezekeras.convert(dense_h5, freezekeras.ConvertOptions(output=tmp_path / "m.pb"),
                                 on_step=lambda step, seconds: steps.append((step, seconds)))
    assert [step for step, _ in steps] == ["load", "freeze", "write", "verify"]
    assert all(seconds >= 0 for _, seconds in steps)
    assert set(result.timings) == {"load", "freeze", "write", "verify"}


def test_cli_table_names_the_nodes(dense_h5, tmp_path):
    out = tmp_path / "m.pb"
    result = CliRunner().invoke(main, ["convert", str(dense_h5), "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"wrote {out} (")
    assert lines[2:8] == [
        "inputs (feed):",
        "  name          dtype    shape",
        "  hidden_input  float32  (None, 8)",
        "",
        "outputs (fetch):",
        "  name                 dtype    shape",
    ]
    assert lines[8] == "  predictions/Softmax  float32  (None, 3)"
    assert lines[10] == f"route: session (a Keras {_tf_keras_version()} .h5)"
    assert lines[11].startswith("verification: passed, max |frozen - keras| = ")
    assert result.stderr == ""


def test_cli_json_schema(model_dir, tmp_path):
    out = tmp_path / "m.pb"
    result = CliRunner().invoke(main, ["convert", str(model_dir / "multi_io.h5"), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"model", "output", "route", "route_reason", "target", "inputs", "outputs", "node_count",
                         "size_bytes", "verification", "reference", "warnings", "transforms", "timings"}
    assert data["transforms"] == {}
    assert data["target"] is None
    assert (data["route"], data["route_reason"]) == ("session", f"a Keras {_tf_keras_version()} .h5")
    assert data["reference"] is None
    assert data["output"] == str(out) and data["size_bytes"] == out.stat().st_size
    assert data["inputs"] == [
        {"name": "features", "dtype": "float32", "shape": [None, 6], "layer": "features"},
        {"name": "tokens", "dtype": "int32", "shape": [None, 5], "layer": "tokens"},
    ]
    assert [o["name"] for o in data["outputs"]] == ["score/Sigmoid", "classes/Softmax"]
    assert data["verification"]["passed"] is True
    assert data["verification"]["input_shapes"] == {"features": [2, 6], "tokens": [2, 5]}
    assert set(data["verification"]["per_output"]) == {"score/Sigmoid", "classes/Softmax"}


def test_cli_no_verify_in_json(dense_h5, tmp_path):
    result = CliRunner().invoke(main, ["convert", str(dense_h5), "-o", str(tmp_path / "m.pb"),
                                       "--no-verify", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["verification"] is None


def test_callers_keras_models_keep_working(tmp_path):
    """Building in graph mode must not break the caller's eager models of the same classes."""
    import tf_keras

    model = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(2)])
    x = np.ones((1, 3), "float32")
    before = model.predict(x, verbose=0)
    model.save(tmp_path / "mine.h5")
    freezekeras.convert(tmp_path / "mine.h5", freezekeras.ConvertOptions(output=tmp_path / "mine.pb"))
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)


def test_leftovers_of_the_naive_recipe_are_found(model_dir):
    """Learning phase set only after building (the copied freeze_session recipe): training switches stay."""
    naive, raw = naive_freeze(model_dir / "conv_bn.h5")
    found = find_leftovers(naive)
    assert any(line.startswith("learning-phase nodes: ") for line in found), found
    assert any(line.startswith("training switches: ") for line in found), found
    assert any(line.startswith("variable ops: ") for line in find_leftovers(raw))

@pytest.mark.subprocess
@pytest.mark.slow
def test_the_api_prints_nothing(model_dir, tmp_path):
    """A program that imported TensorFlow itself: convert and inspect print nothing of their own."""
    import subprocess
    import sys

    program = f"""
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf, freezekeras
sys.stderr.write("--- imported ---\\n"); sys.stderr.flush()
result = freezekeras.convert({str(model_dir / "stacked_lstm.h5")!r},
                             freezekeras.ConvertOptions(output={str(tmp_path / "m.pb")!r}))
freezekeras.inspect(result.output)
freezekeras.inspect({str(model_dir / "stacked_lstm.h5")!r})
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.split("--- imported ---\n", 1)[1] == ""


def test_an_unused_input_is_named_in_the_warnings(tmp_path):
    import tf_keras

    used, unused = tf_keras.Input((3,), name="used"), tf_keras.Input((2,), name="unused")
    tf_keras.Model([used, unused], tf_keras.layers.Dense(1, name="y")(used)).save(tmp_path / "m.h5")
    result = freezekeras.convert(tmp_path / "m.h5", freezekeras.ConvertOptions(output=tmp_path / "m.pb"))
    assert [s.name for s in result.inputs] == ["used"]
    assert_verified(result)  # the verification fed "used" alone
    assert "unused" not in {node.name for node in read_graph_def(result.output).node}
    assert result.warnings == ("input unused is not used by the outputs, so the frozen graph has no such node",)


def test_output_through_a_symlink_and_permissions_of_a_replaced_file(dense_h5, tmp_path):
    import os

    real = tmp_path / "real.pb"
    real.write_bytes(b"old")
    os.chmod(real, 0o600)
    link = tmp_path / "link.pb"
    link.symlink_to(real)
    result = freezekeras.convert(dense_h5, freezekeras.ConvertOptions(output=link, verify=False))
    assert link.is_symlink() and result.output == real
    assert real.stat().st_size == result.size_bytes > 3
    assert oct(real.stat().st_mode & 0o777) == oct(0o600)


def test_integer_inputs_stay_inside_the_smallest_encoding(tmp_path):
    """CategoryEncoding(num_tokens=4) rejects 4 and above: the verification inputs stay below it."""
    import tf_keras

    codes = tf_keras.Input((3,), dtype="int32", name="codes")
    encoded = tf_keras.layers.CategoryEncoding(num_tokens=4, output_mode="count")(codes)
    tf_keras.Model(codes, tf_keras.layers.Dense(2, name="y")(encoded)).save(tmp_path / "m.h5")
    result = freezekeras.convert(tmp_path / "m.h5", freezekeras.ConvertOptions(output=tmp_path / "m.pb"))
    assert_verified(result)
    codes = own_inputs(result.inputs, seed=3, int_high=4)  # every code CategoryEncoding(4) accepts
    frozen, = run_frozen(result.output, {"codes": codes[0]}, [result.outputs[0].name])
    np.testing.assert_allclose(frozen, keras_predict(tmp_path / "m.h5", codes)[0], atol=1e-5, rtol=0)


def test_stateful_layers_are_named_in_the_warnings(tmp_path):
    import tf_keras

    tf_keras.Sequential([tf_keras.Input((5, 2), batch_size=4), tf_keras.layers.LSTM(3, stateful=True, name="memory"),
                         ]).save(tmp_path / "m.h5")
    result = freezekeras.convert(tmp_path / "m.h5", freezekeras.ConvertOptions(output=tmp_path / "m.pb"))
    assert_verified(result)
    assert result.warnings == ("stateful layer memory is frozen with its state at zero: every run starts afresh",)


@pytest.mark.parametrize("name", ["conv_bn", "multi_io", "nested"])
def test_converting_twice_writes_the_same_bytes(model_dir, tmp_path, name):
    """Stable output: CI can cache or diff the .pb (attribute maps are written sorted)."""
    first = freezekeras.convert(model_dir / f"{name}.h5", freezekeras.ConvertOptions(output=tmp_path / "a.pb"))
    second = freezekeras.convert(model_dir / f"{name}.h5", freezekeras.ConvertOptions(output=tmp_path / "b.pb"))
    assert first.output.read_bytes() == second.output.read_bytes()


@pytest.mark.subprocess
@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_what_tensorflows_import_prints_stays_off_stdout(tmp_path, verbose):
    """TensorFlow's import prints a traceback on stdout when its ``import ssl`` fails (a signal during
    that import made it fail once); stdout carries data only. A stand-in ``tensorflow`` package that
    prints as it does, first on the path of a fresh interpreter."""
    import os
    import subprocess
    import sys

    package = tmp_path / "stand_in" / "tensorflow"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "import logging\n"
        "print('Warning: Failed to load ssl module. Continuing without ssl support.')\n"
        "def get_logger():\n"
        "    return logging.getLogger('tensorflow')\n")
    code = f"from freezekeras.tf.imports import import_tensorflow; import_tensorflow(verbose={verbose})"
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "stand_in")}

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)

    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    assert ("Failed to load ssl module" in done.stderr) == verbose  # quiet: dropped with the native noise


def _tf_keras_version() -> str:
    """The keras_version tf-keras writes into the .h5 files the tests save."""
    import tf_keras

    return tf_keras.__version__
