"""``convert --reference FILE``: the frozen graph against recorded inputs and predictions."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import (
    CORPUS,
    assert_nothing_changed,
    assert_one_error_line,
    keras_predict,
    needs_corpus,
    run_frozen,
    snapshot,
)

import freezekeras
from freezekeras.cli.commands import main
from freezekeras.errors import EXIT_USAGE_ERROR, EXIT_VERIFICATION_FAILED

#: multi_io's inputs and outputs: (Keras layer, graph node).
MULTI_INPUTS = [("features", "features"), ("tokens", "tokens")]
MULTI_OUTPUTS = [("score", "score/Sigmoid"), ("classes", "classes/Softmax")]


def _record(h5: Path, batch: int = 5) -> tuple[list, list]:
    """Inputs of ``batch`` samples for the model, and Keras' own predictions for them (eager, as a user would)."""
    import tf_keras

    rng = np.random.default_rng(11)
    model = tf_keras.models.load_model(h5, compile=False)
    inputs = []
    for tensor in model.inputs:
        shape = (batch, *tensor.shape[1:])
        if tensor.dtype.is_integer:
            inputs.append(rng.integers(0, 7, size=shape).astype(tensor.dtype.name))
        else:
            inputs.append(rng.normal(size=shape).astype("float32"))
    return inputs, keras_predict(h5, inputs)


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _hdf5(path: Path, inputs: dict, predictions: dict) -> Path:
    with h5py.File(path, "w") as handle:
        for group, arrays in (("inputs", inputs), ("predictions", predictions)):
            handle.create_group(group)
            for name, value in arrays.items():
                handle.create_dataset(f"{group}/{name}", data=value)
    return path


def _formats(folder: Path, inputs: list, outputs: list) -> dict[str, Path]:
    layers_in = [layer for layer, _ in MULTI_INPUTS]
    layers_out = [layer for layer, _ in MULTI_OUTPUTS]
    return {
        "npz-positional": _npz(folder / "positional.npz", **{f"x{i}": v for i, v in enumerate(inputs)},
                               **{f"y{i}": v for i, v in enumerate(outputs)}),
        "npz-by-layer": _npz(folder / "by_layer.npz", **dict(zip(layers_in + layers_out, inputs + outputs))),
        "npz-by-node-mixed": _npz(folder / "by_node.npz", x0=inputs[0], tokens=inputs[1],
                                  **dict(zip([node for _, node in MULTI_OUTPUTS], outputs))),
        "hdf5-by-layer": _hdf5(folder / "recorded.h5", dict(zip(layers_in, inputs)), dict(zip(layers_out, outputs))),
    }


@pytest.fixture(scope="module")
def multi_io_recordings(model_dir, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("recordings")
    inputs, outputs = _record(model_dir / "multi_io.h5")
    return _formats(folder, inputs, outputs)


@pytest.mark.parametrize("fmt", ["npz-positional", "npz-by-layer", "npz-by-node-mixed", "hdf5-by-layer"])
def test_recorded_predictions_are_reproduced(model_dir, multi_io_recordings, tmp_path, fmt):
    result = CliRunner().invoke(main, ["convert", str(model_dir / "multi_io.h5"), "-o", str(tmp_path / "m.pb"),
                                       "--reference", str(multi_io_recordings[fmt]), "--json"])

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    check = data["reference"]
    assert check["passed"] is True and check["max_abs_diff"] <= 1e-5
    assert check["atol"] == 1e-4  # the default rule: 1e-4 x max(1, largest |recorded|); outputs are probabilities
    assert check["input_shapes"] == {"features": [5, 6], "tokens": [5, 5]}  # the whole recorded batch
    assert set(check["per_output"]) == {"score/Sigmoid", "classes/Softmax"}
    assert data["verification"]["passed"] is True  # the live check still ran
    assert set(data["timings"]) == {"load", "freeze", "write", "verify", "reference"}


def test_text_output_names_the_recorded_difference(dense_h5, tmp_path):
    inputs, outputs = _record(dense_h5, batch=4)
    recording = _npz(tmp_path / "rec.npz", x0=inputs[0], y0=outputs[0])
    out = tmp_path / "m.pb"

    result = CliRunner().invoke(main, ["convert", str(dense_h5), "-o", str(out), "--reference", str(recording)])

    assert result.exit_code == 0, result.stderr
    frozen, = run_frozen(out, {"hidden_input": inputs[0]}, ["predictions/Softmax"])
    measured = float(np.max(np.abs(frozen.astype(np.float64) - outputs[0])))
    assert measured <= 1e-5
    assert result.stdout.splitlines()[-1] == (
        f"reference: passed, max |frozen - recorded| = {measured:.3g} "
        "(tolerance 0.0001; recorded inputs hidden_input (4, 8))")


def test_no_verify_runs_only_the_reference_check(dense_h5, tmp_path):
    inputs, outputs = _record(dense_h5, batch=3)
    recording = _npz(tmp_path / "rec.npz", hidden_input=inputs[0], predictions=outputs[0])

    result = freezekeras.convert(dense_h5, freezekeras.ConvertOptions(
        output=tmp_path / "m.pb", verify=False, reference=recording, atol=1e-5))

    assert result.verification is None
    assert result.reference.passed and result.reference.atol == 1e-5
    assert result.reference.input_shapes == {"hidden_input": (3, 8)}
    assert set(result.timings) == {"load", "freeze", "write", "reference"}


@pytest.mark.parametrize("flags", [(), ("--no-verify",)], ids=["verify", "no-verify"])
def test_predictions_that_differ_fail_and_write_nothing(dense_h5, tmp_path, flags):
    inputs, outputs = _record(dense_h5, batch=4)
    wrong = outputs[0].copy()
    wrong[2, 1] += 0.25
    recording = _hdf5(tmp_path / "rec.h5", {"hidden_input": inputs[0]}, {"predictions": wrong})
    before = snapshot(tmp_path)

    result = CliRunner().invoke(main, ["convert", str(dense_h5), "--reference", str(recording), *flags])

    assert_one_error_line(
        result, EXIT_VERIFICATION_FAILED, dense_h5,
        f"the frozen graph's outputs differ from the predictions recorded in {recording} by up to 0.25 "
        "(output predictions/Softmax, tolerance 0.0001); nothing was written.", "--atol")
    assert_nothing_changed(before, tmp_path)


def _arrays(tmp: Path, **arrays) -> Path:
    return _npz(tmp / "rec.npz", **arrays)


EXPECTED_NPZ = "Use the keys x0 or hidden_input, y0 or predictions."

#: name -> (make the reference file from (tmp_path, inputs, outputs), phrases of the error line).
BAD_REFERENCES = {
    "missing-output": (lambda tmp, x, y: _arrays(tmp, x0=x[0]),
                       ("nothing is recorded for output predictions (node predictions/Softmax)", EXPECTED_NPZ)),
    "extra-key": (lambda tmp, x, y: _arrays(tmp, x0=x[0], y0=y[0], labels=y[0]),
                  ("the key labels names no input or output of the model", EXPECTED_NPZ)),
    "twice": (lambda tmp, x, y: _arrays(tmp, x0=x[0], hidden_input=x[0], y0=y[0]),
              ("the keys x0 and hidden_input both give input hidden_input", EXPECTED_NPZ)),
    "wrong-input-shape": (lambda tmp, x, y: _arrays(tmp, x0=x[0][:, :7], y0=y[0]),
                          ("x0 has shape (4, 7) but input hidden_input has shape (None, 8)",
                           "Record arrays of that shape")),
    "wrong-output-shape": (lambda tmp, x, y: _arrays(tmp, x0=x[0], y0=y[0][:, 0]),
                           ("y0 has shape (4,) but output predictions has shape (None, 3)",)),
    "sample-counts": (lambda tmp, x, y: _arrays(tmp, x0=x[0], y0=y[0][:3]),
                      ("the arrays record different numbers of samples (x0 4, y0 3)",)),
    "strings": (lambda tmp, x, y: _arrays(tmp, x0=x[0].astype(str), y0=y[0]),
                ("x0 holds <U", "values, which input hidden_input (float32) cannot take", "Record float32 values")),
    "hdf5-without-prediction": (lambda tmp, x, y: _hdf5(tmp / "rec.h5", {"hidden_input": x[0]}, {}),
                                ("nothing is recorded for output predictions",
                                 "Use the keys inputs/hidden_input, predictions/predictions.")),
    "keras-model-as-reference": (lambda tmp, x, y: tmp / "model.h5",  # the model itself
                                 ("has no inputs/ and no predictions/ group (given as --reference)",
                                  "inputs/<input layer> and the expected outputs as predictions/<output layer>")),
    "hdf5-training-labels": (lambda tmp, x, y: _labels_only(tmp / "rec.h5", x, y),
                             ("has no predictions/ group (given as --reference) (outputs/ is not read: "
                              "it may hold training labels).",)),
    "not-a-reference-file": (lambda tmp, x, y: _write(tmp / "rec.npz", b"x0,y0\n1,2\n"),
                             ("is neither an .npz nor an HDF5 file (given as --reference)", "Pass an .npz")),
    "pickled-objects": (lambda tmp, x, y: _pickled(tmp / "rec.npz"),
                        ("cannot be read as an .npz", "Pass an .npz")),
    "missing-file": (lambda tmp, x, y: tmp / "nowhere.npz", ("no such file (given as --reference)",)),
    "directory": (lambda tmp, x, y: tmp, ("is a directory (given as --reference)",)),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _labels_only(path: Path, inputs: list, outputs: list) -> Path:
    """deeplearning4j's layout without its predictions/ group: outputs/ holds the training labels."""
    with h5py.File(path, "w") as handle:
        handle["inputs/hidden_input"] = inputs[0]
        handle["outputs/predictions"] = outputs[0]
    return path


def _pickled(path: Path) -> Path:
    np.savez(path, x0=np.array([{"a": 1}], dtype=object))
    return path


@pytest.fixture(scope="module")
def dense_recorded(model_dir) -> tuple[list, list]:
    return _record(model_dir / "dense.h5", batch=4)


@pytest.mark.parametrize("case", sorted(BAD_REFERENCES))
def test_reference_files_that_do_not_fit_are_usage_errors(model_dir, dense_recorded, tmp_path, case):
    model = tmp_path / "model.h5"
    model.write_bytes((model_dir / "dense.h5").read_bytes())
    make, phrases = BAD_REFERENCES[case]
    reference = make(tmp_path, *dense_recorded)
    before = snapshot(tmp_path)

    result = CliRunner().invoke(main, ["convert", str(model), "--reference", str(reference)])

    assert_one_error_line(result, EXIT_USAGE_ERROR, reference, *phrases)
    assert_nothing_changed(before, tmp_path)


# reference/ cases of the shared corpus (MANIFEST.md) that tf-keras reads today.
CORPUS_REFERENCE = {
    "mnist_mlp_tf_keras_2": ("mnist_mlp_tf_keras_2_weights.h5", "--architecture", "mnist_mlp_tf_keras_2_config.json"),
    "simple_rnn_tf_keras_2": ("simple_rnn_tf_keras_2_model.h5",),
    "simple_flatten_lstm_tf_keras_2": ("simple_flatten_lstm_tf_keras_2_model.h5",),
    "simple_lstm_tf_keras_1": ("simple_lstm_tf_keras_1_model.h5",),
    "simple_lstm_th_keras_1": ("simple_lstm_th_keras_1_model.h5",),
    "mnist_mlp_th_keras_1": ("mnist_mlp_th_keras_1_weights.h5", "--architecture", "mnist_mlp_th_keras_1_config.json"),
}


@pytest.mark.corpus
@needs_corpus
@pytest.mark.parametrize("name", sorted(CORPUS_REFERENCE))
def test_corpus_reference_cases_reproduce_the_original_predictions(tmp_path, name):
    folder = CORPUS / "reference"
    model, *flags = CORPUS_REFERENCE[name]
    flags = [str(folder / flag) if flag.endswith(".json") else flag for flag in flags]

    result = CliRunner().invoke(main, [
        "convert", str(folder / model), *flags, "-o", str(tmp_path / "m.pb"), "--json", "--atol", "1e-5",
        "--reference", str(folder / f"{name}_inputs_and_outputs.h5")])

    assert result.exit_code == 0, result.stderr
    check = json.loads(result.stdout)["reference"]
    assert check["passed"] is True and check["atol"] == 1e-5 and check["max_abs_diff"] <= 1e-5
    print(f"\n{name}: max |frozen - recorded| {check['max_abs_diff']:.3g}")


def test_recorded_inputs_the_graph_cannot_run_on_are_a_usage_error(model_dir, multi_io_recordings, tmp_path):
    """Token 99 is beyond the Embedding's 7 rows: shapes and dtypes fit, running fails."""
    with np.load(multi_io_recordings["npz-positional"]) as recorded:
        arrays = dict(recorded)
    arrays["x1"] = np.full_like(arrays["x1"], 99)
    reference = _npz(tmp_path / "rec.npz", **arrays)
    before = snapshot(tmp_path)

    result = CliRunner().invoke(main, ["convert", str(model_dir / "multi_io.h5"), "-o", str(tmp_path / "m.pb"),
                                       "--no-verify", "--reference", str(reference)])

    assert_one_error_line(result, EXIT_USAGE_ERROR, reference,
                          f"the frozen graph of {model_dir / 'multi_io.h5'} cannot run on the recorded inputs (",
                          "nothing was written. Record inputs this model takes.")
    assert_nothing_changed(before, tmp_path)
