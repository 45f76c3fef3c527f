"""Frozen graphs load and compute in OpenCV's dnn module, one of the runtimes they are for."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import keras_predict, naive_freeze

import freezekeras

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is not installed (it is in the test extras)")


@pytest.mark.parametrize("name", ["dense", "conv_bn", "nested"])
def test_opencv_reads_and_runs_the_frozen_graph(model_dir, tmp_path, name):
    result = freezekeras.convert(model_dir / f"{name}.h5", freezekeras.ConvertOptions(output=tmp_path / "m.pb"))
    net = cv2.dnn.readNetFromTensorflow(str(result.output))
    shape = [2 if dim is None else dim for dim in result.inputs[0].shape]
    x = np.random.default_rng(9).normal(size=shape).astype("float32")
    net.setInput(x.transpose(0, 3, 1, 2) if x.ndim == 4 else x)  # OpenCV takes images as NCHW
    got = net.forward()
    want = keras_predict(model_dir / f"{name}.h5", [x])[0]
    np.testing.assert_allclose(got.reshape(want.shape), want, atol=1e-5, rtol=0)


def test_opencv_refuses_the_naive_recipes_graph(model_dir, tmp_path):
    """The claim behind inference-mode building: a graph frozen with the learning phase set too late
    keeps If nodes on keras_learning_phase, and OpenCV cannot read it."""
    naive, _ = naive_freeze(model_dir / "conv_bn.h5")
    assert any(node.op in {"If", "StatelessIf"} for node in naive.node)
    (tmp_path / "naive.pb").write_bytes(naive.SerializeToString())
    with pytest.raises(cv2.error):
        cv2.dnn.readNetFromTensorflow(str(tmp_path / "naive.pb"))
