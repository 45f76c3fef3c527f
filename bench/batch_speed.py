"""Time one batch `freezekeras convert` of many small models against one call per model.

Builds --models small tf_keras models (Dense, Conv2D and mixed nets of varied
sizes) into a temporary folder (nothing downloaded), then, --runs times each:
one `freezekeras convert MODEL -o OUT/` process per model, one after the other,
and a single `freezekeras convert *.h5 -o OUT/` process. Prints a Markdown
table of the median wall times and the speedup, then where the batch's time
goes (its --json timings, summed over the models).

Run by hand, not in CI:  python bench/batch_speed.py [--runs 3] [--models 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build_models(folder: Path, count: int) -> list[Path]:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_keras
    from tf_keras import layers

    def dense(i: int):
        return tf_keras.Sequential([layers.Dense(16 + 8 * (i % 4), activation="relu", input_shape=(8 + i,)),
                                    layers.Dropout(0.2), layers.Dense(3, activation="softmax")])

    def conv(i: int):
        return tf_keras.Sequential([layers.Conv2D(4 + i % 3, 3, activation="relu", input_shape=(16, 16, 3)),
                                    layers.BatchNormalization(), layers.MaxPooling2D(),
                                    layers.Flatten(), layers.Dense(2 + i % 5)])

    def mixed(i: int):
        image, extra = tf_keras.Input((12, 12, 1)), tf_keras.Input((4,))
        x = layers.GlobalAveragePooling2D()(layers.Conv2D(6, 3, activation="tanh")(image))
        x = layers.Concatenate()([x, layers.Dense(5)(extra)])
        return tf_keras.Model([image, extra], layers.Dense(1 + i % 3, activation="sigmoid")(x))

    kinds = [dense, conv, mixed]
    paths = []
    for i in range(count):
        tf_keras.utils.set_random_seed(i)
        path = folder / f"model_{i:02d}_{kinds[i % 3].__name__}.h5"
        kinds[i % 3](i).save(path)
        paths.append(path)
    return paths


def timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited with {done.returncode}:\n{done.stderr}")
    return seconds, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", type=int, default=20)
    args = parser.parse_args()
    script = Path(sys.executable).parent / "freezekeras"
    cli = [str(script)] if script.is_file() else [sys.executable, "-m", "freezekeras"]
    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "models", Path(tmp) / "out"
        folder.mkdir()
        models = build_models(folder, args.models)
        separate, batch, timings = [], [], []
        for _ in range(args.runs):
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            for model in models:
                timed(cli + ["convert", str(model), "-o", f"{out}/"])
            separate.append(time.perf_counter() - start)
            shutil.rmtree(out)
            seconds, done = timed(cli + ["convert", *map(str, models), "-o", f"{out}/", "--json"])
            batch.append(seconds)
            timings.append(json.loads(done.stdout))
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"{args.models} models; median of {args.runs} runs")
        print()
        print("| command | median s | s per model |")
        print("|---|---:|---:|")
        rows = [(f"{args.models} separate `freezekeras convert MODEL`", statistics.median(separate)),
                (f"one `freezekeras convert` of {args.models} models", statistics.median(batch))]
        for label, seconds in rows:
            print(f"| {label} | {seconds:.2f} | {seconds / args.models:.2f} |")
        print(f"| speedup | {rows[0][1] / rows[1][1]:.1f}x | |")
        print()
        print("| batch step (summed over the models) | median s |")
        print("|---|---:|")
        for step in ("load", "freeze", "write", "verify"):
            sums = [sum(report["timings"].get(step, 0.0) for report in run) for run in timings]
            print(f"| {step} | {statistics.median(sums):.2f} |")
        first_load = statistics.median(run[0]["timings"]["load"] for run in timings)
        print(f"| of which the first model's load (imports TensorFlow) | {first_load:.2f} |")


if __name__ == "__main__":
    main()
