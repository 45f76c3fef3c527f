"""Time `freezekeras inspect` (which imports no TensorFlow) against importing TensorFlow, and print a table.

Builds MobileNetV2 (tf_keras.applications, weights=None, 224x224) as .h5 in a
temporary folder and converts it to .pb (nothing downloaded). Each command
runs in a fresh process, --runs times (default 5); the Markdown table gives
the median wall time, its ratio to `python -c "import tensorflow"`, and the
largest peak memory (the child's maximum RSS, from os.wait4).

Run by hand, not in CI:  python bench/inspect_speed.py [--runs 5]
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
    subprocess.run([sys.executable, "-m", "freezekeras", "convert", str(h5), "-o", str(pb)],
                   check=True, stdout=subprocess.DEVNULL)
    return h5, pb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "freezekeras", "inspect"]
    with tempfile.TemporaryDirectory() as tmp:
        h5, pb = build(Path(tmp))
        rows = [
            ("python -c 'import tensorflow'", [sys.executable, "-c", "import tensorflow"]),
            ("inspect mobilenetv2.pb", cli + [str(pb)]),
            ("inspect mobilenetv2.pb --json", cli + [str(pb), "--json"]),
            ("inspect mobilenetv2.pb --check", cli + [str(pb), "--check"]),
            ("inspect mobilenetv2.h5", cli + [str(h5)]),
            ("inspect mobilenetv2.h5 --json", cli + [str(h5), "--json"]),
            ("inspect mobilenetv2.h5 --build", cli + [str(h5), "--build"]),
        ]
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"median of {args.runs} runs; .pb {pb.stat().st_size / 1e6:.1f} MB, .h5 {h5.stat().st_size / 1e6:.1f} MB")
        print()
        print("| command | median s | x TF import | peak RSS MB |")
        print("|---|---:|---:|---:|")
        baseline = None
        for label, command in rows:
            results = [run(command) for _ in range(args.runs)]
            seconds = statistics.median(r[0] for r in results)
            baseline = baseline or seconds
            print(f"| `{label}` | {seconds:.3f} | {seconds / baseline:.3f} | {max(r[1] for r in results):.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
