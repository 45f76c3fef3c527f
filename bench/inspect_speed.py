"""Time `freezekeras inspect` against its floors, importing h5py and importing TensorFlow, and print a table.

Builds MobileNetV2 (tf_keras.applications, weights=None, 224x224) as .h5 in a
temporary folder and converts it to .pb (nothing downloaded). Each command
runs in a fresh process (the installed `freezekeras` command, as a user runs
it), --runs times (default 7), the commands taking turns; the Markdown table
gives the median wall time, its ratio to `python -c "import h5py"` (the floor
for reading an HDF5 file from Python) and to `python -c "import tensorflow"`,
and the largest peak memory (the child's maximum RSS, from os.wait4).

Run by hand, not in CI:  python bench/inspect_speed.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import run


def build(folder: Path) -> tuple[Path, Path]:
    """MobileNetV2 as .h5, and converted to .pb (in a child process, so this one stays small)."""
    h5, pb = folder / "mobilenetv2.h5", folder / "mobilenetv2.pb"
    code = ("import os; os.environ['TF_USE_LEGACY_KERAS'] = '1'; import tf_keras, sys; "
            "tf_keras.applications.MobileNetV2(weights=None).save(sys.argv[1])")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", code, str(h5)], check=True, env=env, stderr=subprocess.DEVNULL)
    subprocess.run([str(Path(sys.executable).with_name("freezekeras")), "convert", str(h5), "-o", str(pb)],
                   check=True, stdout=subprocess.DEVNULL)
    return h5, pb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    cli = [str(Path(sys.executable).with_name("freezekeras")), "inspect"]
    with tempfile.TemporaryDirectory() as tmp:
        h5, pb = build(Path(tmp))
        rows = [
            ("python -c 'import tensorflow'", [sys.executable, "-c", "import tensorflow"]),
            ("python -c 'import h5py'", [sys.executable, "-c", "import h5py"]),
            ("inspect mobilenetv2.pb", cli + [str(pb)]),
            ("inspect mobilenetv2.pb --json", cli + [str(pb), "--json"]),
            ("inspect mobilenetv2.pb --check", cli + [str(pb), "--check"]),
            ("inspect mobilenetv2.h5", cli + [str(h5)]),
            ("inspect mobilenetv2.h5 --json", cli + [str(h5), "--json"]),
            ("inspect mobilenetv2.h5 --build", cli + [str(h5), "--build"]),
        ]
        results = {label: [] for label, _ in rows}
        for _ in range(args.runs):  # taking turns, so that a busy moment hits every command alike
            for label, command in rows:
                results[label].append(run(command))
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"median of {args.runs} runs; .pb {pb.stat().st_size / 1e6:.1f} MB, .h5 {h5.stat().st_size / 1e6:.1f} MB")
        print()
        print("| command | median s | x h5py import | x TF import | peak RSS MB |")
        print("|---|---:|---:|---:|---:|")
        medians = {label: statistics.median(r[0] for r in runs) for label, runs in results.items()}
        tf_import, h5py_import = medians["python -c 'import tensorflow'"], medians["python -c 'import h5py'"]
        for label, seconds in medians.items():
            peak = max(r[1] for r in results[label])
            print(f"| `{label}` | {seconds:.3f} | {seconds / h5py_import:.2f} | {seconds / tf_import:.3f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
