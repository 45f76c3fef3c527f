"""``convert --optimize`` and ``--fp16``: the written graph is the transformed one, verified, and reported.

The transforms themselves are tested in ``test_optimize.py``; here they are
driven through ``convert`` and the command line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import describe, keras_predict, own_inputs, run_frozen

import freezekeras
from freezekeras.cli.commands import main
from freezekeras.graphdef.reading import read_graph_def
from freezekeras.tf.optimize import FP16_RELATIVE_ATOL

pytestmark = pytest.mark.slow


def _convert(model, out, **options):
    return freezekeras.convert(model, freezekeras.ConvertOptions(output=out, **options))


def _matches_keras(result, model, *, rtol):
    feeds = own_inputs(result.inputs, seed=5)
    want = keras_predict(model, feeds)
    got = run_frozen(result.output, dict(zip([spec.name for spec in result.inputs], feeds)),
                     [spec.name for spec in result.outputs])
    for expected, actual in zip(want, got):
        scale = max(1.0, float(np.max(np.abs(expected))))
        np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


def test_optimize_writes_a_smaller_graph_that_computes_the_same(model_dir, tmp_path):
    plain = _convert(model_dir / "conv_bn.h5", tmp_path / "plain.pb")
    optimized = _convert(model_dir / "conv_bn.h5", tmp_path / "optimized.pb", optimize=True)

    report = optimized.transforms["optimize"]
    assert report["nodes_before"] == plain.node_count
    assert report["nodes_after"] == optimized.node_count == len(read_graph_def(optimized.output).node)
    assert optimized.node_count < plain.node_count
    assert report["folded_batch_norms"] == 1
    assert not {node.op for node in read_graph_def(optimized.output).node} & {"FusedBatchNormV3", "FusedBatchNorm"}
    assert [spec.name for spec in optimized.outputs] == [spec.name for spec in plain.outputs]
    assert optimized.verification.atol == plain.verification.atol  # the usual tolerance
    assert plain.transforms == {}
    _matches_keras(optimized, model_dir / "conv_bn.h5", rtol=1e-5)


def test_fp16_halves_the_weights_and_checks_against_the_fp16_tolerance(tmp_path):
    import tf_keras

    tf_keras.utils.set_random_seed(3)
    model = tf_keras.Sequential([tf_keras.Input((64,), name="x"), tf_keras.layers.Dense(256, activation="relu"),
                                 tf_keras.layers.Dense(256, activation="relu"), tf_keras.layers.Dense(4, name="out")])
    model.save(tmp_path / "wide.h5")

    plain = _convert(tmp_path / "wide.h5", tmp_path / "plain.pb")
    half = _convert(tmp_path / "wide.h5", tmp_path / "half.pb", fp16=True)

    assert half.transforms["fp16"]["constants_converted"] == 5  # 3 kernels, 2 biases of 256; the 4 out biases stay
    assert 0.45 < half.size_bytes / plain.size_bytes < 0.55
    assert half.verification.atol >= FP16_RELATIVE_ATOL > plain.verification.atol
    assert 0 < half.verification.max_abs_diff <= half.verification.atol
    _matches_keras(half, tmp_path / "wide.h5", rtol=FP16_RELATIVE_ATOL)
    chosen = _convert(tmp_path / "wide.h5", tmp_path / "chosen.pb", fp16=True, atol=0.5)
    assert chosen.verification.atol == 0.5


def test_fp16_fails_verification_under_a_tight_atol_and_writes_nothing(tmp_path):
    import tf_keras

    tf_keras.utils.set_random_seed(4)
    model = tf_keras.Sequential([tf_keras.Input((32,), name="x"), tf_keras.layers.Dense(128, activation="tanh"),
                                 tf_keras.layers.Dense(3, name="out")])
    model.save(tmp_path / "m.h5")

    result = CliRunner().invoke(main, ["convert", str(tmp_path / "m.h5"), "-o", str(tmp_path / "m.pb"), "--fp16",
                                       "--atol", "1e-9"])

    assert result.exit_code == 3, describe(result)
    assert not (tmp_path / "m.pb").exists()
    assert "differ from Keras'" in result.stderr


def test_the_command_line_reports_both_transforms(model_dir, tmp_path):
    out = tmp_path / "m.pb"
    text = CliRunner().invoke(main, ["convert", str(model_dir / "conv_bn.h5"), "-o", str(out), "--optimize",
                                     "--fp16"])
    data = CliRunner().invoke(main, ["convert", str(model_dir / "conv_bn.h5"), "-o", str(out), "--optimize",
                                     "--fp16", "--json"])

    assert text.exit_code == 0 and data.exit_code == 0, describe(text) + describe(data)
    report = json.loads(data.stdout)
    optimized, halved = report["transforms"]["optimize"], report["transforms"]["fp16"]
    lines = text.stdout.splitlines()
    assert f"optimized: {optimized['nodes_before']} -> {optimized['nodes_after']} nodes (1 BatchNorms folded into " \
           "convolutions)" in lines
    assert any(line.startswith(f"fp16: {halved['constants_converted']} constants stored as float16, ")
               for line in lines)
    assert report["node_count"] == len(read_graph_def(out).node)


@pytest.mark.parametrize("route", ["session", "function"])
def test_an_optimized_lstm_still_runs_with_its_while_loops(model_dir, tmp_path, route):
    result = _convert(model_dir / "stacked_lstm.h5", tmp_path / "lstm.pb", optimize=True, fp16=True, route=route)

    graph_def = read_graph_def(result.output)
    assert len(graph_def.library.function) > 0
    assert {node.op for node in graph_def.node} & {"While", "StatelessWhile"}
    _matches_keras(result, model_dir / "stacked_lstm.h5", rtol=FP16_RELATIVE_ATOL)
