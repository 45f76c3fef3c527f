"""``python -m freezekeras.compatibility FOLDER``: the compatibility table of a folder of models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from click.testing import CliRunner
from conftest import run_frozen, user_env

import freezekeras
from freezekeras.cli.commands import main
from freezekeras.compatibility import Case, find_cases


def _recording(path: Path, inputs, predictions) -> None:
    """The deeplearning4j layout: inputs/<input layer>, predictions/<output layer>, outputs/ = labels."""
    with h5py.File(path, "w") as handle:
        handle["inputs/hidden_input"] = inputs
        handle["predictions/predictions"] = predictions
        handle["outputs/predictions"] = predictions.round()  # training labels: never compared


@pytest.fixture(scope="module")
def folder(model_dir, tmp_path_factory) -> Path:
    """good.h5, broken.h5, and in reference/: a model and a weights + config pair, each with a recording.

    The recordings hold the frozen graph's own predictions, so the difference is exactly 0; the
    weights pair's are off by 0.25 in one place.
    """
    import numpy as np
    import tf_keras

    root = tmp_path_factory.mktemp("corpus")
    dense = (model_dir / "dense.h5").read_bytes()
    (root / "good.h5").write_bytes(dense)
    (root / "broken.h5").write_text("not a model\n")
    (root / "notes.txt").write_text("not a model either, and not an .h5: ignored\n")
    ref = root / "reference"
    ref.mkdir()
    (ref / "tiny_model.h5").write_bytes(dense)
    model = tf_keras.models.load_model(model_dir / "dense.h5", compile=False)
    model.save_weights(ref / "off_weights.h5")
    (ref / "off_config.json").write_text(model.to_json())

    frozen = freezekeras.convert(model_dir / "dense.h5", freezekeras.ConvertOptions(
        output=tmp_path_factory.mktemp("frozen") / "dense.pb", verify=False)).output
    inputs = np.random.default_rng(5).normal(size=(6, 8)).astype("float32")
    predictions, = run_frozen(frozen, {"hidden_input": inputs}, ["predictions/Softmax"])
    _recording(ref / "tiny_inputs_and_outputs.h5", inputs, predictions)
    wrong = predictions.copy()
    wrong[4, 0] += 0.25
    _recording(ref / "off_inputs_and_outputs.h5", inputs, wrong)
    return root


def test_cases_pair_weights_with_config_and_models_with_recordings(folder):
    ref = folder / "reference"
    assert find_cases(folder) == [
        Case(folder / "broken.h5"),
        Case(folder / "good.h5"),
        Case(ref / "off_weights.h5", ref / "off_config.json", ref / "off_inputs_and_outputs.h5"),
        Case(ref / "tiny_model.h5", None, ref / "tiny_inputs_and_outputs.h5"),
    ]


def test_report_table_and_summary(folder, tmp_path):
    import tf_keras

    out = tmp_path / "report.md"
    version = tf_keras.__version__

    result = CliRunner().invoke(main, ["report", str(folder), "-o", str(out)])

    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    progress = result.stderr.splitlines()
    assert [line.split(": ")[0] for line in progress] == [
        f"[1/4] {folder / 'broken.h5'}", f"[2/4] {folder / 'good.h5'}",
        f"[3/4] {folder / 'reference' / 'off_weights.h5'}", f"[4/4] {folder / 'reference' / 'tiny_model.h5'}"]
    lines = out.read_text().splitlines()
    assert lines[0] == "# Compatibility report"
    start = lines.index("| file | keras_version | backend | outcome | max diff (live) | max diff (reference) |")
    assert lines[start + 1:start + 7] == [
        "|---|---|---|---|---|---|",
        "| `broken.h5` | — | — | refused: is not an HDF5 file. | — | — |",
        f"| `good.h5` | {version} | tensorflow | converted + verified | 0 | — |",
        f"| `reference/off_weights.h5` + `reference/off_config.json` | {version} | tensorflow | failed: the frozen "
        "graph's outputs differ from the predictions recorded in off_inputs_and_outputs.h5 by up to 0.25 "
        "(output predictions/Softmax, tolerance 0.0001); nothing was written. | 0 | 0.25 |",
        f"| `reference/tiny_model.h5` | {version} | tensorflow | converted + verified | 0 | 0 |",
        "",
    ]
    assert lines[-1] == ("**Summary:** 4 models: 2 converted and verified, 1 refused (1 not a readable Keras model), "
                         "1 failed; reference cases: 1 of 2 reproduce the recorded predictions to 1e-5")


def test_report_goes_to_stdout_without_output_option(tmp_path):
    (tmp_path / "empty.h5").write_bytes(b"")
    result = CliRunner().invoke(main, ["report", str(tmp_path)])

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-3:] == [
        "| `empty.h5` | — | — | refused: the file is empty. | — | — |",
        "",
        "**Summary:** 1 model: 0 converted and verified, 1 refused (1 not a readable Keras model), 0 failed",
    ]


@pytest.mark.subprocess
def test_runs_from_the_installed_command(tmp_path):
    (tmp_path / "broken.h5").write_text("not a model\n")
    out = tmp_path / "report.md"

    done = subprocess.run([sys.executable, "-m", "freezekeras", "report", str(tmp_path), "-o", str(out)],
                          capture_output=True, text=True, env=user_env(), cwd=tmp_path, timeout=300)

    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    line, = done.stderr.splitlines()
    assert line.startswith(f"[1/1] {tmp_path / 'broken.h5'}: refused: is not an HDF5 file. (") and line.endswith(" s)")
    assert out.read_text().splitlines()[-1] == (
        "**Summary:** 1 model: 0 converted and verified, 1 refused (1 not a readable Keras model), 0 failed")


def test_a_missing_folder_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path / "nowhere")])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Directory" in result.stderr and "does not exist" in result.stderr
