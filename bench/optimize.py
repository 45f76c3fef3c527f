"""Latency of the plain and the optimized frozen graph against Keras ``predict``: a Markdown table, run by hand.

Each model is built with tf_keras (``weights=None``, then its biases and
BatchNorm statistics moved away from 0 and 1, as a trained model's are, so that
no constant folding removes them), saved as .h5, frozen by
:func:`freezekeras.convert` and optimized by :func:`freezekeras.tf.optimize.optimize`.
Both graphs run in a TensorFlow session with its default configuration (what a
user loading the .pb gets); the table gives the median milliseconds of
``--runs`` calls at batch 1 and 32, after one warm-up call.

Run by hand, not in CI:  python bench/optimize.py [--runs 20] [--models MobileNetV2 ResNet50 StackedLSTM]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

BATCHES = (1, 32)


def build(name: str):
    """The tf_keras model ``name`` with trained-looking biases and BatchNorm statistics."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    if name == "StackedLSTM":
        model = tf_keras.Sequential([tf_keras.Input((50, 32)), tf_keras.layers.LSTM(128, return_sequences=True),
                                     tf_keras.layers.LSTM(128), tf_keras.layers.Dense(10)])
    else:
        model = getattr(tf_keras.applications, name)(weights=None)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            shape = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.8, 1.2, shape), rng.normal(0, 0.1, shape), rng.normal(0, 0.1, shape),
                               rng.uniform(0.8, 1.2, shape)])
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.01, layer.bias.shape))
    return model


def median_ms(call, runs: int) -> float:
    """The median wall milliseconds of ``call()`` over ``runs`` calls, after one warm-up call."""
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def graph_latencies(graph_def, inputs: list[str], outputs: list[str], feeds: dict[int, np.ndarray],
                    runs: int) -> list[float]:
    """Median ms per batch size of ``graph_def`` in a session with TensorFlow's default configuration."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    fetches = [name if ":" in name else f"{name}:0" for name in outputs]
    with tf.compat.v1.Session(graph=graph) as session:
        return [median_ms(lambda x=feeds[batch]: session.run(fetches, {f"{inputs[0]}:0": x}), runs)
                for batch in BATCHES]


def measure(name: str, folder: Path, runs: int) -> dict:
    """One model's row: node counts and the latencies of the plain graph, the optimized one and Keras."""
    import tensorflow as tf
    import tf_keras

    import freezekeras
    from freezekeras.graphdef.reading import graph_inputs_outputs, read_graph_def
    from freezekeras.tf.optimize import optimize

    model = build(name)
    model.save(folder / f"{name}.h5")
    freezekeras.convert(folder / f"{name}.h5",
                        freezekeras.ConvertOptions(output=folder / f"{name}.pb", verify=False))
    plain = read_graph_def(folder / f"{name}.pb", message=tf.compat.v1.GraphDef())
    specs = graph_inputs_outputs(plain)
    inputs, outputs = [spec.name for spec in specs[0]], [spec.name for spec in specs[1]]
    start = time.perf_counter()
    optimized, report = optimize(plain, inputs=inputs, outputs=outputs)
    seconds = time.perf_counter() - start
    shape = list(model.inputs[0].shape[1:])
    feeds = {batch: np.random.default_rng(batch).normal(size=[batch, *shape]).astype("float32") for batch in BATCHES}
    keras = [median_ms(lambda x=feeds[batch], b=batch: model.predict(x, batch_size=b, verbose=0), runs) for batch in BATCHES]
    tf_keras.backend.clear_session()
    return {"model": name, "nodes": (report.nodes_before, report.nodes_after), "bn": report.folded_batch_norms,
            "seconds": seconds, "plain": graph_latencies(plain, inputs, outputs, feeds, runs),
            "optimized": graph_latencies(optimized, inputs, outputs, feeds, runs), "keras": keras}


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = ["| model | nodes plain -> optimized | BN folded | optimize s | plain ms b1 / b32 "
             "| optimized ms b1 / b32 | Keras predict ms b1 / b32 |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = [f"{row[key][0]:.1f} / {row[key][1]:.1f}" for key in ("plain", "optimized", "keras")]
        lines.append(f"| {row['model']} | {row['nodes'][0]} -> {row['nodes'][1]} | {row['bn']} | "
                     f"{row['seconds']:.1f} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    """Parse the arguments, measure every model, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--models", nargs="+", default=["MobileNetV2", "ResNet50", "StackedLSTM"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows = [measure(name, Path(folder), args.runs) for name in args.models]
    import tensorflow as tf

    print(f"{platform.node()}, {os.cpu_count()} CPUs, {platform.python_version()}, TensorFlow {tf.__version__}; "
          f"{datetime.date.today()}; `python bench/optimize.py {' '.join(sys.argv[1:])}`; "
          f"median of {args.runs} runs\n")
    print(table(rows))


if __name__ == "__main__":
    main()
