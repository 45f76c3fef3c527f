"""Time `freezekeras convert` and `freezekeras inspect` as a user runs them, and print a table.

Builds the models into a temporary folder (nothing downloaded):
MobileNetV2 (tf_keras.applications, weights=None, 224x224), a stacked LSTM
and a small Dense model. Each command runs in a fresh process, --runs times;
the table gives the median wall time and the largest peak memory (the child
process's maximum RSS, from os.wait4).

Run by hand, not in CI:  python bench/convert_speed.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

from timing import run


def build_models(folder: Path) -> dict[str, Path]:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_keras

    models = {
        "MobileNetV2": tf_keras.applications.MobileNetV2(weights=None),
        "stacked LSTM": tf_keras.Sequential([
            tf_keras.layers.LSTM(64, return_sequences=True, input_shape=(None, 16)),
            tf_keras.layers.LSTM(32),
            tf_keras.layers.Dense(4),
        ]),
        "Dense": tf_keras.Sequential([
            tf_keras.layers.Dense(32, activation="relu", input_shape=(8,)),
            tf_keras.layers.Dense(3, activation="softmax"),
        ]),
    }
    paths = {}
    for name, model in models.items():
        paths[name] = folder / (name.replace(" ", "_") + ".h5")
        model.save(paths[name])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "freezekeras"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = build_models(folder)
        rows = [("python -c 'import tensorflow'", [sys.executable, "-c", "import tensorflow"])]
        for name, path in paths.items():
            pb = folder / (path.stem + ".pb")
            rows.append((f"convert {name}", cli + ["convert", str(path), "-o", str(pb)]))
            rows.append((f"inspect {name} .h5", cli + ["inspect", str(path)]))
            rows.append((f"inspect {name} .pb", cli + ["inspect", str(pb)]))
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"median of {args.runs} runs")
        print(f"{'command':<32} {'median s':>9} {'peak RSS MB':>12}")
        for label, command in rows:
            results = [run(command) for _ in range(args.runs)]
            seconds = statistics.median(r[0] for r in results)
            print(f"{label:<32} {seconds:>9.2f} {max(r[1] for r in results):>12.0f}")


if __name__ == "__main__":
    main()
