"""Train a tiny Keras classifier, freeze it with freezekeras, run the frozen graph.

End to end, with nothing downloaded:

1. build and train a small tf_keras model (Dense, BatchNormalization, Dropout)
   that sorts 2-D points into 3 classes, on synthetic data;
2. save it as ``tiny_classifier.h5``;
3. freeze it with the ``freezekeras convert ... --json`` command and read the
   input and output node names from its JSON;
4. load the ``.pb`` with plain TensorFlow (no Keras, no freezekeras) and
   predict a few points by those names, next to Keras' own predictions.

Dropout and BatchNormalization behave differently in training and inference;
the frozen graph must compute the inference-mode predictions, which is what
the last line (``max difference: X``) checks.

Run:  python examples/train_and_freeze.py [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tf.keras is tf-keras (Keras 2), which writes .h5
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hide TensorFlow's C++ log lines

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent
CLASSES = ("left", "top-right", "bottom-right")

#: A few points to predict, one near the middle of each class and one on a border.
POINTS = np.array([[-1.5, 0.2], [1.2, 1.4], [1.0, -1.3], [0.05, 0.0]], dtype="float32")


def make_data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points in [-2, 2]^2, labelled 0 left of x=0, else 1 above y=0, else 2."""
    x = rng.uniform(-2.0, 2.0, size=(n, 2)).astype("float32")
    y = np.where(x[:, 0] < 0, 0, np.where(x[:, 1] >= 0, 1, 2)).astype("int32")
    return x, y


def train(h5: Path) -> keras.Model:
    """Build, train and save the classifier; return it."""
    keras.utils.set_random_seed(0)  # Python, NumPy and TensorFlow seeds
    x, y = make_data(600, np.random.default_rng(0))
    model = keras.Sequential([
        keras.Input((2,), name="point"),
        keras.layers.Dense(16, activation="relu", name="hidden_1"),
        keras.layers.BatchNormalization(name="norm"),
        keras.layers.Dropout(0.2, name="dropout"),
        keras.layers.Dense(16, activation="relu", name="hidden_2"),
        keras.layers.Dense(len(CLASSES), activation="softmax", name="class_probs"),
    ], name="tiny_classifier")
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    print(f"trained: loss {history.history['loss'][-1]:.3f}, "
          f"accuracy {history.history['accuracy'][-1]:.3f}")
    # include_optimizer=False: the optimizer's state is not needed to predict and
    # would triple the file's size.
    with warnings.catch_warnings():  # .h5 is "legacy" to Keras, and what freezekeras reads
        warnings.filterwarnings("ignore", message=".*HDF5 file.*legacy", category=UserWarning)
        model.save(h5, include_optimizer=False)
    print(f"saved {h5} ({h5.stat().st_size / 1000:.1f} KB)")
    return model


def freeze(h5: Path, pb: Path) -> dict:
    """Run ``freezekeras convert H5 -o PB --json`` and return its JSON."""
    command = [sys.executable, "-m", "freezekeras", "convert", str(h5), "-o", str(pb), "--json"]
    print("running:", " ".join(["freezekeras", *command[3:]]))
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"freezekeras failed (exit {done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout)


def predict_frozen(pb: Path, input_name: str, output_name: str, points: np.ndarray) -> np.ndarray:
    """Predict ``points`` with the frozen graph alone, by node names."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(pb.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run(f"{output_name}:0", {f"{input_name}:0": points})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=EXAMPLES,
                        help="Where to write tiny_classifier.h5 and .pb (default: %(default)s).")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    h5 = args.out_dir / "tiny_classifier.h5"
    pb = args.out_dir / "tiny_classifier.pb"

    model = train(h5)
    report = freeze(h5, pb)
    input_name = report["inputs"][0]["name"]
    output_name = report["outputs"][0]["name"]
    print(f"frozen: {pb} ({report['node_count']} nodes); "
          f"feed {input_name!r}, fetch {output_name!r}; "
          f"freezekeras' own check: max diff {report['verification']['max_abs_diff']:.3g}")

    frozen = predict_frozen(pb, input_name, output_name, POINTS)
    reference = model.predict(POINTS, verbose=0)  # predict() runs in inference mode
    print()
    print(f"{'point':>16}  {'frozen .pb':>24}  {'keras':>24}  class")
    for point, f, k in zip(POINTS, frozen, reference):
        print(f"{np.array2string(point, precision=2):>16}  "
              f"{np.array2string(f, precision=4, suppress_small=True):>24}  "
              f"{np.array2string(k, precision=4, suppress_small=True):>24}  {CLASSES[int(f.argmax())]}")
    print()
    print(f"max difference: {float(np.max(np.abs(frozen - reference))):.3g}")


if __name__ == "__main__":
    main()
