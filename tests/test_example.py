"""The examples folder: the end-to-end script runs, and the shipped model converts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FREEZEKERAS, keras_predict, needs_script, run_frozen

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPT = EXAMPLES / "train_and_freeze.py"
SHIPPED = EXAMPLES / "tiny_classifier.h5"


@pytest.mark.subprocess
@pytest.mark.slow
def test_example_script_trains_freezes_and_matches_keras(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    match = re.fullmatch(r"max difference: (\S+)", lines[-1])
    assert match, done.stdout
    assert float(match.group(1)) < 1e-5
    # It wrote where it was told, and what it wrote is a small model and a graph that loads.
    h5, pb = tmp_path / "tiny_classifier.h5", tmp_path / "tiny_classifier.pb"
    assert 0 < h5.stat().st_size < 100_000
    assert "feed 'point', fetch 'class_probs/Softmax'" in done.stdout
    points = np.array([[-1.5, 0.2], [1.2, 1.4]], dtype="float32")
    (frozen,) = run_frozen(pb, {"point": points}, ["class_probs/Softmax"])
    np.testing.assert_allclose(frozen, keras_predict(h5, [points])[0], atol=1e-5)
    # The table of the four points is there, one row per point ending with its class.
    assert sum(1 for line in lines if line.rstrip().endswith(("left", "top-right", "bottom-right"))) == 4


def test_shipped_model_is_small():
    assert SHIPPED.is_file(), "examples/tiny_classifier.h5 is missing: run examples/train_and_freeze.py"
    assert SHIPPED.stat().st_size < 100_000


@pytest.mark.subprocess
@pytest.mark.slow
@needs_script
def test_shipped_model_converts_with_installed_command(tmp_path):
    # The README's first command, run from a copy of the layout it assumes.
    (tmp_path / "examples").mkdir()
    shutil.copy(SHIPPED, tmp_path / "examples" / SHIPPED.name)
    done = subprocess.run([str(FREEZEKERAS), "convert", "examples/tiny_classifier.h5",
                           "-o", "tiny_classifier.pb", "--json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["output"] == "tiny_classifier.pb"
    assert [spec["name"] for spec in report["inputs"]] == ["point"]
    assert [spec["name"] for spec in report["outputs"]] == ["class_probs/Softmax"]
    assert report["verification"]["passed"] is True
    points = np.random.default_rng(11).uniform(-2, 2, size=(5, 2)).astype("float32")
    (frozen,) = run_frozen(tmp_path / "tiny_classifier.pb", {"point": points}, ["class_probs/Softmax"])
    np.testing.assert_allclose(frozen, keras_predict(SHIPPED, [points])[0], atol=1e-5)
